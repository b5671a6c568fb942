import ConsentryAudit
public import ConsentryCore
import ConsentryCrypto
import ConsentryPolicy
public import Foundation
import GRDB

/// Options for synthetic demo data. The same options and day give the same data.
public struct DemoOptions: Sendable {
    /// Profiles to generate. The default is 1,000.
    public var profiles: Int
    /// The random seed. The default is 42.
    public var seed: UInt64
    /// The mean number of behavioral events per profile (the count per profile is skewed: most have few,
    /// some many). The default is 10.
    public var eventsPerProfile: Double

    /// Creates options; every parameter has a default.
    public init(profiles: Int = 1_000, seed: UInt64 = 42, eventsPerProfile: Double = 10) {
        self.profiles = max(0, profiles)
        self.seed = seed
        self.eventsPerProfile = max(0, eventsPerProfile)
    }
}

/// What loading demo data did.
public struct DemoReport: Sendable, Codable, Equatable {
    /// The profile import.
    public var profiles: ImportReport
    /// The event import.
    public var events: ImportReport
    /// Consent ledger records written.
    public var consentRecords: Int
}

/// Deterministic synthetic customers: names, `.example`/`.test` e-mail addresses, sources, browsing,
/// cart, purchase and e-mail events with skewed distributions, and mixed consents.
///
/// Every value is fictitious. Times are spread over the 90 days before the start of the day of `now`, so
/// that data generated on one day is identical for one seed.
public struct DemoGenerator: Sendable {
    /// The options the data is generated from.
    public let options: DemoOptions
    /// Midnight UTC of the generation day, in milliseconds; all event times fall in the 90 days before it.
    public let anchorMillis: Int64

    /// Creates a generator anchored at the start of the UTC day containing `now`.
    public init(options: DemoOptions, now: Date) {
        self.options = options
        let millis = Int64(now.timeIntervalSince1970 * 1000)
        anchorMillis = millis - millis % 86_400_000
    }

    static let firstNames = [
        "Ada", "Ben", "Chiara", "Dmitri", "Elif", "Farah", "Goran", "Hana", "Ivo", "Jana", "Kofi", "Lena", "Mateo", "Nora", "Omar", "Priya",
        "Quentin", "Rosa", "Sven", "Tara", "Ugo", "Vera", "Wen", "Ximena", "Yusuf", "Zoe", "Amara", "Bruno", "Carla", "Dario", "Emil", "Greta",
    ]
    static let lastNames = [
        "Abara", "Berger", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Horvat", "Ivanova", "Jensen", "Kowalski", "Lindqvist", "Moreau",
        "Novak", "Okafor", "Petrov", "Quinn", "Rossi", "Schmidt", "Tanaka", "Urban", "Varga", "Weber", "Yilmaz", "Zimmermann", "Haddad",
    ]
    static let places: [(city: String, country: String, language: String, dial: String, currency: String)] = [
        ("Berlin", "DE", "de", "+49151", "EUR"), ("Hamburg", "DE", "de", "+49160", "EUR"), ("Vienna", "AT", "de", "+43660", "EUR"),
        ("Paris", "FR", "fr", "+33612", "EUR"), ("Lyon", "FR", "fr", "+33698", "EUR"), ("Madrid", "ES", "es", "+34612", "EUR"),
        ("Milan", "IT", "it", "+39347", "EUR"), ("Amsterdam", "NL", "nl", "+31612", "EUR"), ("Stockholm", "SE", "sv", "+46701", "SEK"),
        ("London", "GB", "en-GB", "+44770", "GBP"), ("Dublin", "IE", "en", "+35385", "EUR"), ("Austin", "US", "en-US", "+1512", "USD"),
        ("Oakland", "US", "en-US", "+1510", "USD"), ("Sao Paulo", "BR", "pt-BR", "+551199", "BRL"), ("Toronto", "CA", "en", "+1416", "CAD"),
    ]
    static let domains = ["mail.example", "post.example", "inbox.test", "customers.example"]
    /// Product categories and their item-id prefixes.
    public static let categories = ["running", "hiking", "cycling", "swimming", "yoga", "tennis"]
    static let tiers = ["bronze", "bronze", "bronze", "silver", "silver", "gold", "platinum"]

    /// Each profile gets its own stream of the shared generator.
    typealias Random = SplitMix64

    func random(_ index: Int, stream: UInt64) -> Random {
        var r = Random(seed: options.seed &* 0xD1B5_4A32_D192_ED03 &+ UInt64(index) &* 0x9E37_79B9 &+ stream)
        _ = r.next()
        return r
    }

    /// The e-mail address of profile `index` (stable for a seed).
    public func email(of index: Int) -> String {
        var r = random(index, stream: 1)
        let first = r.pick(Self.firstNames).lowercased(), last = r.pick(Self.lastNames).lowercased()
        return "\(first).\(last).\(index)@\(r.pick(Self.domains))"
    }

    /// The profile fields of profile `index`, as field name and raw value, with its source system.
    public func profile(_ index: Int) -> (source: DataSource, values: [(String, String)]) {
        var r = random(index, stream: 1)
        let first = r.pick(Self.firstNames), last = r.pick(Self.lastNames)
        let domain = r.pick(Self.domains)
        let place = r.pick(Self.places)
        let year = 1950 + r.below(56), month = 1 + r.below(12), day = 1 + r.below(28)
        var values: [(String, String)] = [
            ("email", "\(first.lowercased()).\(last.lowercased()).\(index)@\(domain)"),
            ("customer_id", "C\(String(format: "%08d", index))"),
            ("first_name", first), ("last_name", last),
            ("birth_date", String(format: "%04d-%02d-%02d", year, month, day)),
            ("city", place.city), ("country", place.country), ("language", place.language),
            ("loyalty_tier", r.pick(Self.tiers)),
        ]
        if r.chance(0.8) { values.append(("phone", place.dial + String(format: "%07d", r.below(10_000_000)))) }
        let source: DataSource = r.chance(0.6) ? .crm : (r.chance(0.5) ? .web : .pos)
        return (source, values)
    }

    /// The behavioral events of profile `index` as JSON-ready key/value pairs (no direct identifiers other
    /// than the customer id that links them).
    public func events(_ index: Int) -> [[(String, String)]] {
        var r = random(index, stream: 2)
        // Replay the profile's stream to find its place, so that purchases use the profile's currency.
        var p = random(index, stream: 1)
        _ = p.pick(Self.firstNames)
        _ = p.pick(Self.lastNames)
        _ = p.pick(Self.domains)
        let currency = p.pick(Self.places).currency
        let count = options.eventsPerProfile == 0 ? 0 : min(2_000, Int(-log(max(r.unit(), 1e-12)) * options.eventsPerProfile))
        let favourite = r.pick(Self.categories)
        var events: [[(String, String)]] = []
        var cart: [String] = []
        for k in 0..<count {
            let time = anchorMillis - Int64(r.below(90 * 86_400)) * 1000 - 1000
            let roll = r.unit()
            let category = r.chance(0.7) ? favourite : r.pick(Self.categories)
            let item = "\(category.prefix(3))-\(String(format: "%03d", Int(pow(r.unit(), 2) * 40)))"
            var event: [(String, String)] = [("id", "demo-\(options.seed)-\(index)-\(k)"), ("customer_id", "C\(String(format: "%08d", index))")]
            switch roll {
            case ..<0.55: event += [("type", "view"), ("item_id", item), ("category", category)]
            case ..<0.67:
                event += [("type", "cart_add"), ("item_id", item), ("category", category)]
                cart.append(item)
            case ..<0.69: event += [("type", "cart_remove"), ("item_id", cart.last ?? item), ("category", category)]
            case ..<0.75:
                let amount = Double(1_999 + r.below(18_000)) / 100
                event += [
                    ("type", "purchase"), ("item_id", cart.popLast() ?? item), ("category", category), ("amount", String(format: "%.2f", amount)),
                    ("currency", currency),
                ]
            case ..<0.88: event += [("type", "email_sent"), ("campaign_id", "camp-\(r.below(12))")]
            case ..<0.95: event += [("type", "email_open"), ("campaign_id", "camp-\(r.below(12))")]
            case ..<0.995: event += [("type", "email_click"), ("campaign_id", "camp-\(r.below(12))")]
            default: event += [("type", "unsubscribe")]
            }
            event.append(("time", Normalize.formatTimestamp(millis: time)))
            events.append(event)
        }
        return events
    }

    /// The consent history of profile `index`: purpose, state and time, oldest first.
    public func consents(_ index: Int) -> [(purpose: Purpose, state: ConsentState, time: Int64)] {
        var r = random(index, stream: 3)
        var records: [(Purpose, ConsentState, Int64)] = []
        let start = anchorMillis - Int64(90 + r.below(600)) * 86_400_000
        if r.chance(0.75) {
            if r.chance(0.12) {
                records.append((.emailMarketing, .pending, start))
            } else {
                records.append((.emailMarketing, .pending, start))
                records.append((.emailMarketing, .confirmed, start + 3_600_000))
                if r.chance(0.1) { records.append((.emailMarketing, .withdrawn, start + Int64(1 + r.below(80)) * 86_400_000)) }
            }
        }
        if r.chance(0.6) { records.append((.personalization, .granted, start)) }
        if r.chance(0.45) { records.append((.profiling, .granted, start)) }
        if r.chance(0.15) { records.append((.saleShare, .granted, start)) }
        return records
    }

    /// Writes `profiles.csv` and `events.jsonl` into `directory` (created if needed) and returns their URLs.
    public func writeFiles(to directory: URL) throws -> (profiles: URL, events: URL) {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let profilesURL = directory.appendingPathComponent("profiles.csv")
        let eventsURL = directory.appendingPathComponent("events.jsonl")
        let columns = ["email", "customer_id", "first_name", "last_name", "phone", "birth_date", "city", "country", "language", "loyalty_tier"]
        var csv = columns.joined(separator: ",") + "\n"
        var jsonl = ""
        for i in 0..<options.profiles {
            let values = Dictionary(profile(i).values, uniquingKeysWith: { a, _ in a })
            csv += columns.map { CSVText.quote(values[$0] ?? "") }.joined(separator: ",") + "\n"
            for event in events(i) {
                jsonl +=
                    "{"
                    + event.map { key, value in
                        key == "amount" ? "\"\(key)\":\(value)" : "\"\(key)\":\"\(value)\""
                    }.joined(separator: ",") + "}\n"
            }
        }
        try Data(csv.utf8).write(to: profilesURL)
        try Data(jsonl.utf8).write(to: eventsURL)
        return (profilesURL, eventsURL)
    }
}

/// CSV output helpers shared by every CSV the product writes.
public enum CSVText {
    /// Quotes a value per RFC 4180 when it holds a comma, quote, CR or LF. For files meant to be read back
    /// by an importer (demo data); reports meant for people use ``spreadsheetSafe(_:)``.
    public static func quote(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// Quotes a value for a CSV that people open in spreadsheets, defusing formula injection: a value
    /// starting with `=`, `+`, `-`, `@`, tab or carriage return is prefixed with `'` so it is shown as text.
    public static func spreadsheetSafe(_ value: String) -> String {
        guard let first = value.unicodeScalars.first, ["=", "+", "-", "@", "\t", "\r"].contains(first) else { return quote(value) }
        return quote("'" + value)
    }
}

extension Vault {
    /// Loads deterministic synthetic data (profiles, events and consents) through the normal ingest path.
    public func loadDemoData(_ options: DemoOptions, as principal: Principal = .system) async throws(GateError) -> DemoReport {
        let (actor, role) = (principal.actor, principal.role)
        let profileAudit = try await importAudit(actor: actor, role: role, what: "demo profiles")
        let eventAudit = try await importAudit(actor: actor, role: role, what: "demo events")
        _ = try await requireAdministrative(.consentWrite, actor: actor, role: role, requestID: nil)
        let generator = DemoGenerator(options: options, now: clock.now())
        var profiles = ImportReport(file: "(demo)", kind: "profiles")
        for source in [DataSource.crm, .web, .pos] {
            let records = (0..<options.profiles).lazy.compactMap { i -> ProfileRecord? in
                let p = generator.profile(i)
                guard p.source == source else { return nil }
                return ProfileRecord(line: i + 1, values: p.values.map { (key: $0.0, value: $0.1) })
            }
            try ingestProfiles(records, source: source, report: &profiles, audit: profileAudit)
        }
        var events = ImportReport(file: "(demo)", kind: "events")
        let now = nowMillis
        let items = sequence(state: (profile: 0, pending: [[(String, String)]](), line: 0)) {
            state -> (line: Int, result: Result<EventRecord, FieldProblem>, dropped: [String])? in
            while state.pending.isEmpty {
                guard state.profile < options.profiles else { return nil }
                state.pending = generator.events(state.profile).reversed()
                state.profile += 1
            }
            let event = state.pending.removeLast()
            state.line += 1
            let members = event.map { key, value -> (String, StrictJSON.Value) in (key, key == "amount" ? .number(value) : .string(value)) }
            let validated = EventRecord.validate(members, now: now)
            return (state.line, validated.result, validated.dropped)
        }
        try ingestEvents(items, now: now, report: &events, audit: eventAudit)
        let consentCount = try await loadDemoConsents(options, generator: generator, as: principal)
        return DemoReport(profiles: profiles, events: events, consentRecords: consentCount)
    }

    /// Writes the demo consents of `options` for subjects already in the vault (the demo's customer ids), in batches,
    /// skipping subjects that have demo consents: for benchmarks that import the demo files and then need consents.
    /// - Returns: the records written.
    @discardableResult
    public func loadDemoConsents(_ options: DemoOptions, as principal: Principal = .system) async throws(GateError) -> Int {
        try await loadDemoConsents(options, generator: DemoGenerator(options: options, now: clock.now()), as: principal)
    }

    private func loadDemoConsents(_ options: DemoOptions, generator: DemoGenerator, as principal: Principal) async throws(GateError) -> Int {
        let consentDecision = try await requireAdministrative(.consentWrite, actor: principal.actor, role: principal.role, requestID: nil)
        var consentCount = 0
        do {
            var start = 0
            while start < options.profiles {
                let end = min(options.profiles, start + configuration.importBatchSize)
                consentCount += try await store.write { tx in try tx.run { db -> Int in
                    var written = 0
                    for i in start..<end {
                        let hash = keys.blindIndex.index(.customerID, "C\(String(format: "%08d", i))")
                        guard let subject = try ProfileIngest.lookup(.customerID, hash, binder: keys.recordBinding, db: db) else { continue }
                        let already = try SQLiteLedgerRows.consentCount(subject: subject.rawValue, source: "demo", db)
                        guard already == 0 else { continue }
                        for record in generator.consents(i) {
                            try appendConsent(
                                subject: subject, purpose: record.purpose, state: record.state, time: record.time, source: "demo", db: db)
                            written += 1
                        }
                    }
                    // Consent writes are administrative changes: the batch and its entry commit together.
                    if written > 0 {
                        var entry = draft(
                            AccessRequest(actor: principal.actor, role: principal.role, action: .consentWrite), consentDecision,
                            counts: ["records": written],
                            requestID: nil)
                        entry.reasons.append("source: demo")
                        _ = try audit(entry, db: db)
                    }
                    return written
                } }
                start = end
            }
        } catch {
            throw Self.storageError(error, "write demo consents")
        }
        return consentCount
    }

    /// Appends one consent record to the ledger (the ledger's rules come with the gate) and returns its id.
    @discardableResult
    func appendConsent(
        subject: SubjectID, purpose: Purpose, state: ConsentState, time: Int64, source: String, noticeVersion: String? = nil,
        evidence: String? = nil, expiresAt: Int64? = nil, db: Database
    ) throws -> Int64 {
        // The id is chosen here (the write transaction holds the writer) so that the binding can cover it: the ledger
        // is append-only, so the binding cannot be added after the insert.
        let id = try SQLiteLedgerRows.nextConsentID(db)
        let recordedAt = nowMillis
        let binding = RecordBinding.consent(
            keys.recordBinding, id: id, subject: subject.rawValue, purpose: purpose.rawValue, state: state.rawValue, time: time, source: source,
            noticeVersion: noticeVersion, evidence: evidence, expiresAt: expiresAt, recordedAt: recordedAt)
        try SQLiteLedgerRows.insertConsent(
            ConsentRecordRow(
                id: id, subjectID: subject.rawValue, purpose: purpose.rawValue, state: state.rawValue, time: time, source: source,
                noticeVersion: noticeVersion, evidence: evidence, expiresAt: expiresAt, recordedAt: recordedAt, binding: binding), db)
        try advanceLedgerHead(of: subject, consent: id, db: db)
        return id
    }
}
