import ConsentryAudit
public import ConsentryCore
import ConsentryCrypto
public import Foundation
import GRDB

/// A validated behavioral event, ready to store.
struct EventRecord {
    var id: String
    var email: String?
    var customerID: String?
    var type: EventType
    var time: Int64
    var itemID: String?
    var category: String?
    var amount: Double?
    var currency: String?
    var campaignID: String?

    /// A canonical text of the content, hashed to tell a re-delivery from an id reused for another event.
    var canonical: String {
        [id, type.rawValue, String(time), itemID ?? "", category ?? "", amount.map { String($0) } ?? "", currency ?? "", campaignID ?? ""]
            .joined(separator: "\u{1F}")
    }
}

extension EventRecord {
    /// The keys an event line may have; others are dropped and reported.
    static let knownKeys: Set<String> = ["id", "email", "customer_id", "type", "time", "item_id", "category", "amount", "currency", "campaign_id"]

    /// Whether `key` is one of ``knownKeys`` (a switch, which is cheaper than hashing on this hot path).
    static func isKnownKey(_ key: String) -> Bool {
        switch key {
        case "id", "email", "customer_id", "type", "time", "item_id", "category", "amount", "currency", "campaign_id": true
        default: false
        }
    }

    /// Validates one parsed JSON object, returning the event or the problem, and the keys that are not stored.
    static func validate(_ members: [(String, StrictJSON.Value)], now: Int64) -> (result: Result<EventRecord, FieldProblem>, dropped: [String]) {
        var dropped: [String] = []
        do { return (.success(try EventRecord(members: members, now: now, dropped: &dropped)), dropped) } catch {
            return (.failure(error), dropped)
        }
    }

    /// Validates one parsed JSON object as an event.
    init(members: [(String, StrictJSON.Value)], now: Int64, dropped: inout [String]) throws(FieldProblem) {
        var strings: [String: String] = [:]
        var amount: Double?
        for (key, value) in members {
            guard Self.isKnownKey(key) else {
                dropped.append(key)
                continue
            }
            switch (key, value) {
            case (_, .null): continue
            case ("amount", .number(let text)):
                do { amount = try Normalize.number(text) } catch { throw FieldProblem(field: key, reason: error.message) }
            case ("amount", _): throw FieldProblem(field: key, reason: "must be a JSON number such as `12.5`")
            case (_, .string(let text)): strings[key] = text
            default: throw FieldProblem(field: key, reason: "must be a JSON string")
            }
        }
        func text(_ key: String, required: Bool = false) throws(FieldProblem) -> String? {
            guard let raw = strings[key], !Normalize.trimmed(raw).isEmpty else {
                if required { throw FieldProblem(field: key, reason: "is required") }
                return nil
            }
            do { return try Normalize.text(raw, maxLength: 128) } catch { throw FieldProblem(field: key, reason: error.message) }
        }
        guard let id = try text("id", required: true) else { throw FieldProblem(field: "id", reason: "is required") }
        self.id = id
        email = nil
        customerID = nil
        if let raw = strings["email"] {
            do { email = try Normalize.email(raw) } catch { throw FieldProblem(field: "email", reason: error.message) }
        }
        if let raw = strings["customer_id"] {
            do { customerID = try Normalize.customerID(raw) } catch { throw FieldProblem(field: "customer_id", reason: error.message) }
        }
        guard email != nil || customerID != nil else {
            throw FieldProblem(field: nil, reason: "the event has neither `email` nor `customer_id`; add one so it can be linked to a subject")
        }
        guard let typeText = strings["type"] else { throw FieldProblem(field: "type", reason: "is required; use one of \(EventType.choiceList)") }
        guard let type = EventType(rawValue: typeText) else {
            throw FieldProblem(field: "type", reason: "is not a known event type; use one of \(EventType.choiceList)")
        }
        self.type = type
        guard let timeText = strings["time"] else {
            throw FieldProblem(field: "time", reason: "is required, as RFC 3339 such as `2026-11-20T10:00:00Z`")
        }
        do { time = try Normalize.timestampMillis(timeText) } catch { throw FieldProblem(field: "time", reason: error.message) }
        guard time <= now + 86_400_000 else {
            throw FieldProblem(field: "time", reason: "is more than a day in the future; check the source system's clock")
        }
        itemID = try text("item_id")
        category = try text("category")
        campaignID = try text("campaign_id")
        self.amount = amount
        if let raw = strings["currency"] {
            do { currency = try Normalize.currency(raw) } catch { throw FieldProblem(field: "currency", reason: error.message) }
        } else {
            currency = nil
        }
        if let amount, amount < 0 { throw FieldProblem(field: "amount", reason: "must not be negative; record refunds in the source system") }
        if amount != nil && currency == nil { throw FieldProblem(field: "currency", reason: "is required when `amount` is given") }
        if amount == nil && currency != nil { throw FieldProblem(field: "amount", reason: "is required when `currency` is given") }
        switch type {
        case .view, .cartAdd, .cartRemove:
            if itemID == nil { throw FieldProblem(field: "item_id", reason: "is required for `\(type.rawValue)` events") }
        case .purchase:
            if amount == nil { throw FieldProblem(field: "amount", reason: "is required for `purchase` events, with `currency`") }
        case .emailSent, .emailOpen, .emailClick:
            if campaignID == nil { throw FieldProblem(field: "campaign_id", reason: "is required for `\(type.rawValue)` events") }
        case .unsubscribe:
            break
        }
    }
}

/// A validated event with its keyed hashes: `key` of its id (idempotency) and `digest` of its content.
struct HashedEvent {
    var record: EventRecord
    var key: [UInt8]
    var digest: [UInt8]
}

/// An event line as the preparing thread leaves it for the writer.
struct PreparedEvent {
    var line: Int
    var result: Result<HashedEvent, FieldProblem>
    /// Keys of the line that are not stored (counted even when the event is rejected).
    var dropped: [String]

    init(_ item: (line: Int, result: Result<EventRecord, FieldProblem>, dropped: [String]), hashing: BlindIndexer) {
        line = item.line
        dropped = item.dropped
        result = item.result.map { HashedEvent(record: $0, key: hashing.hash(tag: 0x10, $0.id), digest: hashing.hash(tag: 0x11, $0.canonical)) }
    }
}

extension Vault {
    /// Imports a JSON Lines file of behavioral events.
    ///
    /// Each event is linked to the subject its `customer_id` or `email` resolves to (through the blind
    /// indexes) and stored without direct identifiers. Events are idempotent by `id`: re-importing the
    /// same event is counted as a duplicate and skipped; an `id` reused with different content is rejected.
    /// Events may arrive in any order. An event for an unknown subject is rejected: import the profile
    /// first, then import the events again (those already stored are skipped).
    ///
    /// - Throws: ``GateError`` with code `invalidInput` when the file is unusable as a whole (nothing was
    ///   changed), or `storage` when writing fails.
    ///   `denied` when `role` may not import (the denial is audited).
    public func importEvents(from url: URL, as principal: Principal = .system) async throws(GateError) -> ImportReport {
        let (actor, role) = (principal.actor, principal.role)
        let template = try await importAudit(actor: actor, role: role, what: "events")
        let file = try InputFile(url: url)
        var lines = LineSplitter(file.bytes)
        guard let first = lines.next() else { throw GateError(.invalidInput, "`\(url.path)` is empty; nothing was imported") }
        guard case .object = try? StrictJSON.parse(first.text) else {
            throw GateError(
                .invalidInput,
                "`\(url.path)` line \(first.line) is not a JSON object; an events file has one `{...}` object per line (nothing was imported)")
        }
        var report = ImportReport(file: url.path, kind: "events")
        let now = nowMillis
        let items = LineSplitter(file.bytes).lazy.map { Self.eventItem(line: $0.line, text: $0.text, now: now) }
        try ingestEvents(items, now: now, report: &report, audit: template)
        return report
    }

    /// Parses and validates one event line, keeping the names of keys that are not stored.
    static func eventItem(line: Int, text: ArraySlice<UInt8>, now: Int64) -> (line: Int, result: Result<EventRecord, FieldProblem>, dropped: [String])
    {
        let parsed: StrictJSON.Value
        do { parsed = try StrictJSON.parse(text) } catch {
            return (line, .failure(FieldProblem(field: nil, reason: "invalid JSON at column \(error.column): \(error.reason)")), [])
        }
        guard case .object(let members) = parsed else {
            return (line, .failure(FieldProblem(field: nil, reason: "expected a JSON object `{...}`")), [])
        }
        let validated = EventRecord.validate(members, now: now)
        return (line, validated.result, validated.dropped)
    }

    /// Stores validated events (or records their rejections), one transaction per batch.
    ///
    /// Parsing, validation and the event's keyed hashes run on a preparing thread (`items` is consumed there); this
    /// thread resolves subjects and writes.
    func ingestEvents(
        _ items: some Sequence<(line: Int, result: Result<EventRecord, FieldProblem>, dropped: [String])>, now: Int64, report: inout ImportReport,
        audit: AuditDraft
    ) throws(GateError) {
        let limit = configuration.maxReportedRejections
        let hashing = keys.eventIDs
        try pipelined(items, prepare: { PreparedEvent($0, hashing: hashing) }) { (prepared) throws(GateError) in
            try inBatches(prepared, line: \.line, report: &report, audit: audit) { item, db, cache, report in
                do {
                    try self.store(try item.result.get(), now: now, db: db, subjects: &cache, report: &report)
                } catch let problem as FieldProblem {
                    report.reject(.init(line: item.line, field: problem.field, reason: problem.reason), limit: limit)
                }
            } counting: { item, report in
                for key in item.dropped { report.droppedFields[FieldProblem.name(ofKey: key), default: 0] += 1 }
            }
        }
    }

    private func store(
        _ event: HashedEvent, now: Int64, db: Database, subjects: inout [String: SubjectID], report: inout ImportReport
    ) throws {
        let record = event.record
        func resolve(_ kind: IdentityKind, _ value: String) throws -> SubjectID? {
            let cacheKey = kind.rawValue + ":" + value
            if let known = subjects[cacheKey] { return known }
            let found = try ProfileIngest.lookup(kind, keys.blindIndex.index(kind, value), binder: keys.recordBinding, db: db)
            if let found { subjects[cacheKey] = found }
            return found
        }
        let byCustomer = try record.customerID.flatMap { try resolve(.customerID, $0) }
        let byEmail = try record.email.flatMap { try resolve(.email, $0) }
        if let byCustomer, let byEmail, byCustomer != byEmail {
            throw FieldProblem(field: nil, reason: "the `email` and the `customer_id` belong to two different subjects; send one of them")
        }
        guard let subject = byCustomer ?? byEmail else {
            throw FieldProblem(
                field: record.customerID != nil ? "customer_id" : "email",
                reason: "matches no subject in the vault; import the profile first, then import the events again (stored events are skipped)")
        }
        let stored = SQLiteIngestRows.EventInsert(
            key: event.key, digest: event.digest, subject: subject.rawValue, type: record.type.rawValue, time: record.time, itemID: record.itemID,
            category: record.category, amount: record.amount, currency: record.currency, campaignID: record.campaignID, receivedAt: now)
        if try SQLiteIngestRows.insertEvent(stored, db) {
            report.inserted += 1
            report.touchedSubjects.insert(subject)
            return
        }
        let digest = try SQLiteIngestRows.storedDigest(ofEventKey: event.key, db)
        guard digest == Data(event.digest) else {
            throw FieldProblem(field: "id", reason: "was already imported for a different event; give each event its own id")
        }
        report.duplicates += 1
    }
}

extension Vault {
    /// Imports events given as JSON objects in memory (the HTTP API's batch ingest), with the same validation,
    /// idempotency and audit as a file import. `lines` are the objects' JSON texts; rejections name their position.
    public func importEvents(json lines: [Data], source label: String, as principal: Principal) async throws(GateError) -> ImportReport {
        let (actor, role) = (principal.actor, principal.role)
        let template = try await importAudit(actor: actor, role: role, what: "events (\(label))")
        var report = ImportReport(file: label, kind: "events")
        let now = nowMillis
        let items = lines.enumerated().lazy.map { index, data in Self.eventItem(line: index + 1, text: ArraySlice(data), now: now) }
        try ingestEvents(items, now: now, report: &report, audit: template)
        return report
    }
}
