import ConsentryAudit
public import ConsentryCore
import ConsentryCrypto
public import ConsentryPolicy
import Foundation
import GRDB

/// What a bulk derived-data write did.
public struct DerivedWriteSummary: Sendable, Codable, Equatable {
    /// Permit or deny of the request itself.
    public var decision: Effect
    /// Values stored.
    public var written: Int
    /// Subjects skipped, by reason (their consent or flags no longer admit the purpose, or they are gone).
    public var skipped: [String: Int]
    /// The audit entry.
    public var auditSequence: Int64
}

/// Everything held about one subject, for access and portability requests. Values are the subject's own data.
public struct SubjectExport: Sendable, Codable, Equatable {
    /// One behavioral event.
    public struct Event: Sendable, Codable, Equatable {
        /// The event type.
        public var type: String
        /// When (RFC 3339).
        public var time: String
        /// The item.
        public var itemID: String?
        /// The category.
        public var category: String?
        /// The amount.
        public var amount: Double?
        /// The currency.
        public var currency: String?
        /// The campaign.
        public var campaignID: String?
    }

    /// The subject's audit pseudonym.
    public var subject: String
    /// Profile fields with their source and when the source observed them.
    public var profile: [String: String]
    /// Sources and observation times per field.
    public var provenance: [String: String]
    /// The kinds of identifier the subject can be found by (values are in ``profile``).
    public var identities: [String]
    /// The consent ledger, oldest first.
    public var consents: [ConsentRecordInfo]
    /// Current flags.
    public var flags: [String]
    /// Behavioral events, oldest first.
    public var events: [Event]
    /// Derived data (`kind/name` → value): segment memberships, scores, recommendations.
    public var derived: [String: String]
    /// The processing log: audit entries about the subject (single-subject entries and bulk entries whose set holds them).
    public var processing: [ProcessingRecord]
}

/// One use of a subject's data, from the audit log, as shown to the subject: when, which role, for which purpose,
/// which fields, and the decision. Names of the staff involved are left out.
public struct ProcessingRecord: Sendable, Codable, Equatable {
    /// The audit entry's sequence number.
    public var sequence: Int64
    /// When (RFC 3339).
    public var time: String
    /// The role that acted.
    public var role: String?
    /// What was done (`read_profile`, `segment`, `render`, …).
    public var action: String
    /// The purpose.
    public var purpose: String?
    /// The fields involved.
    public var fields: [String]
    /// `permit` or `deny`.
    public var decision: String
    /// The decision's reasons.
    public var reasons: [String]

    init(_ entry: AuditEntry) {
        sequence = entry.sequence
        time = Normalize.formatTimestamp(millis: entry.time)
        role = entry.role
        action = entry.action
        purpose = entry.purpose
        fields = entry.fields
        decision = entry.decision
        reasons = entry.reasons
    }
}

/// Receives a subject's data from ``Vault/exportSubject(_:as:purpose:reason:into:)``, section by
/// section in this order: profile fields, identities, consents, flags, events, derived data, processing log.
public protocol SubjectExportSink {
    /// Called first, with the subject's audit pseudonym.
    mutating func begin(subject pseudonym: String) throws
    /// One profile field with where it came from and when the source observed it.
    mutating func profileField(_ name: String, value: String, source: String, observedAt: String) throws
    /// One identifier kind the subject can be found by, and the source that supplied it.
    mutating func identity(kind: String, source: String) throws
    /// One consent ledger record.
    mutating func consent(_ record: ConsentRecordInfo) throws
    /// One current flag (`restriction`, `objection:<purpose>`, …).
    mutating func flag(_ name: String) throws
    /// One behavioral event.
    mutating func event(_ event: SubjectExport.Event) throws
    /// One derived value.
    mutating func derived(kind: String, name: String, value: String) throws
    /// One use of the subject's data, from the audit log.
    mutating func processing(_ record: ProcessingRecord) throws
    /// Called last.
    mutating func finish() throws
}

/// Collects an export in memory (small subjects, tests).
struct InMemoryExportSink: SubjectExportSink {
    var export = SubjectExport(
        subject: "", profile: [:], provenance: [:], identities: [], consents: [], flags: [], events: [], derived: [:], processing: [])

    mutating func begin(subject pseudonym: String) { export.subject = pseudonym }
    mutating func profileField(_ name: String, value: String, source: String, observedAt: String) {
        export.profile[name] = value
        export.provenance[name] = "\(source) at \(observedAt)"
    }
    mutating func identity(kind: String, source: String) { export.identities.append(kind) }
    mutating func consent(_ record: ConsentRecordInfo) { export.consents.append(record) }
    mutating func flag(_ name: String) { export.flags.append(name) }
    mutating func event(_ event: SubjectExport.Event) { export.events.append(event) }
    mutating func derived(kind: String, name: String, value: String) { export.derived["\(kind)/\(name)"] = value }
    mutating func processing(_ record: ProcessingRecord) { export.processing.append(record) }
    mutating func finish() {}
}

/// What an erasure removed.
public struct ErasureSummary: Sendable, Codable, Equatable {
    /// Rows deleted per kind (`subject`, `identity`, `event`, `consent_record`, `subject_flag`, `derived`).
    public var deleted: [String: Int]
    /// The audit entry.
    public var auditSequence: Int64
}

extension Vault {
    /// Stores derived values (a score, a segment membership, a recommendation) of many subjects, sealed with each
    /// subject's data key, in one transaction with one audit entry holding the subject set.
    ///
    /// The request needs a data action granted for the purpose; each subject is admitted again at write time,
    /// so a withdrawal since the computation means its value is not stored.
    ///
    /// With `replaceAll`, every stored value of `kind/name` is removed first (a segment's new member list replaces the
    /// old); `removing` removes the values of those subjects only (an incremental update of some subjects).
    public func writeDerived(
        _ request: AccessRequest, kind: String, name: String, values: [SubjectID: String], replaceAll: Bool = false,
        removing: Set<SubjectID> = [], requestID: String? = nil
    ) async throws(GateError) -> DerivedWriteSummary {
        guard FieldName.isValid(kind), FieldName.isValid(name) else {
            throw GateError(.invalidInput, "derived data kind and name must be lower-case identifiers such as `score` and `engagement`")
        }
        guard DerivedKind.named(kind) != nil else {
            throw GateError(
                .invalidInput,
                "`\(kind)` is not a registered kind of derived data; use one of \(DerivedKind.registered.map { "`\($0.name)`" }.joined(separator: ", "))")
        }
        // A denial is an answer here, not an error: the summary says so and cites the audited denial.
        let authorized = decide(request)
        let decision = authorized.isPermit && (loadedPolicy == nil || request.purpose == nil) ? Decision.deny(.purposeRequired) : authorized
        let outcome = try await performOutcome(
            request, requestID: requestID, decision: decision, failure: "write derived data (nothing was stored)"
        ) { scope -> (written: Int, skipped: [String: Int]) in
            guard let policy = scope.snapshot.loaded, let purpose = request.purpose else {
                throw Refusal(request: request, decision: .deny(.purposeRequired))
            }
            let db = scope.db
            var removed = 0
            if replaceAll { removed = try SQLiteSubjectRows.deleteDerived(subject: nil, kind: kind, name: name, db) }
            for subject in removing where values[subject] == nil {
                removed += try SQLiteSubjectRows.deleteDerived(subject: subject.rawValue, kind: kind, name: name, db)
            }
            let stored = try storeDerived(db, kind: kind, name: name, purpose: purpose, values: values, policy: policy)
            var counts = stored.skipped.reduce(into: ["written": stored.written]) { $0["skipped.\($1.key)"] = $1.value }
            counts["requested"] = values.count
            if removed > 0 { counts["removed"] = removed }
            scope.entry.subjectSet = stored.pseudonyms
            scope.entry.counts = counts
            scope.entry.reasons.append("derived: \(kind)/\(name)")
            return (stored.written, stored.skipped)
        }
        switch outcome {
        case .refused(_, let entry): return DerivedWriteSummary(decision: .deny, written: 0, skipped: [:], auditSequence: entry.sequence)
        case .done(let counts, let entry):
            return DerivedWriteSummary(decision: .permit, written: counts.written, skipped: counts.skipped, auditSequence: entry?.sequence ?? 0)
        }
    }

    /// Seals and stores `values` as derived data `kind/name` computed for `purpose`, in the caller's transaction. Each
    /// subject is admitted again first: one whose consent or flags no longer admit the purpose is skipped and loses any
    /// value it had, so that a value computed before the change does not outlive it.
    /// - Parameter keepExisting: a subject that has a value already keeps it (an experiment's arm is never reassigned).
    /// - Returns: the values written, the subjects skipped by reason, and the written subjects' pseudonyms.
    func storeDerived(
        _ db: Database, kind: String, name: String, purpose: Purpose, values: [SubjectID: String], policy: Policy,
        keepExisting: Bool = false
    ) throws -> (written: Int, skipped: [String: Int], pseudonyms: [UInt8]) {
        try refreshKEKs(db)
        var written = 0
        var skipped: [String: Int] = [:]
        var pseudonyms: [UInt8] = []
        let ids = values.keys.sorted()
        var states: [Int64: DerivedState] = [:]
        if let first = ids.first, let last = ids.last {
            _ = try applyLedger(db, from: first.rawValue, to: last.rawValue, after: (0, 0), withRecordIDs: false, to: &states)
        }
        var scratch = try SecretBytes(count: Sealing.keyLength)
        defer { scratch.zero() }
        let nonces = NonceSource()
        for id in ids {
            if let reason = policy.admit(states[id.rawValue]?.state ?? SubjectState(), purpose: purpose) {
                skipped[reason.rawValue, default: 0] += 1
                _ = try SQLiteSubjectRows.deleteDerived(subject: id.rawValue, kind: kind, name: name, db)
                continue
            }
            if keepExisting, try SQLiteSubjectRows.derivedExists(subject: id.rawValue, kind: kind, name: name, db) { continue }
            guard let keys = try SQLiteSubjectRows.keys(of: id.rawValue, db) else {
                skipped[DecisionReason.Code.subjectNotFound.rawValue, default: 0] += 1
                continue
            }
            try unwrapDataKey(of: id, kekVersion: keys.kekVersion, wrapped: keys.wrappedKey, into: &scratch)
            let sealed = Sealing.seal(
                values[id]!, key: scratch, associatedData: Sealing.derivedAssociatedData(subject: id, kind: kind, name: name, keyVersion: keys.keyVersion),
                nonces: nonces)
            scratch.zero()
            try SQLiteSubjectRows.upsertDerived(subject: id.rawValue, kind: kind, name: name, sealed: sealed, at: nowMillis, purpose: purpose.rawValue, db)
            pseudonyms += pseudonymBytes(secret: keys.auditSecret)
            written += 1
        }
        return (written, skipped, pseudonyms)
    }

    /// Everything held about one subject (profile, identities, consents, flags, events, derived data and the
    /// processing log), for access and portability requests. Needs `export` for the purpose (`service` in the
    /// default policy); audited in the same transaction as the read.
    public func exportSubject(
        _ reference: SubjectReference, as principal: Principal, purpose: Purpose = .service, reason: String? = nil
    )
       async throws(GateError) -> SubjectExport
    {
        var sink = InMemoryExportSink()
        _ = try await exportSubject(reference, as: principal, purpose: purpose, reason: reason, into: &sink)
        return sink.export
    }

    /// Checks that `role` may receive a subject's export (`export` for `service`), auditing a denial: downloading a
    /// stored export needs the same grant as producing it.
    public func requireExportGrant(as principal: Principal) async throws(GateError) {
        let (actor, role, requestID) = (principal.actor, principal.role, principal.requestID)
        _ = try await require(AccessRequest(actor: actor, role: role, action: .export, purpose: .service), requestID: requestID)
    }

    /// Streams everything held about one subject into `sink`, section by section, reading events and audit entries
    /// through cursors so that memory does not grow with the subject's history. The audit entry is written in the
    /// same transaction before the first value reaches the sink; if the sink throws, the transaction (and the entry)
    /// is rolled back and the caller must discard what the sink wrote.
    /// - Returns: how many items of each kind were exported.
    public func exportSubject<Sink: SubjectExportSink>(
        _ reference: SubjectReference, as principal: Principal, purpose: Purpose = .service, reason: String? = nil,
        into sink: inout Sink
    ) async throws(GateError) -> [String: Int] {
        let (actor, role, requestID) = (principal.actor, principal.role, principal.requestID)
        let request = AccessRequest(actor: actor, role: role, action: .export, purpose: purpose, reason: reason)
        // The export is the subject's own data: the purpose's field list does not limit it, so only the role's grant is checked.
        return try await perform(request, requestID: requestID, failure: "export the subject (nothing was released)") { scope -> [String: Int] in
            let db = scope.db
            // The writer's page cache is large for imports; while an export walks a long history it is held
            // small, so that memory stays flat however many events the subject has.
            try SQLiteSubjectRows.holdCacheSmall(db)
            defer { SQLiteSubjectRows.restoreCache(db) }
            guard let subject = try resolve(reference, db: db) else {
                throw GateError(.notFound, "no subject matches; check the e-mail address or customer id")
            }
            try refreshKEKs(db)
            // One read of the subject's row and one unwrap of its data key serve the profile and the derived data.
            guard let row = try subjectRow(subject, db: db) else {
                throw GateError(.integrity, "a subject has no row (its identity points nowhere); run `consentry check`")
            }
            let keyVersion = row.keyVersion
            let pseudonym = self.pseudonym(secret: row.auditSecret)
            let packed = row.fields.withUnsafeBytes({ PackedFields.decode($0) })?.entries ?? []
            let events = try SQLiteSubjectRows.eventCount(of: subject.rawValue, db)
            // INVARIANT: no audit, no data. The entry precedes the first value handed to the sink.
            scope.entry.subject = pseudonym
            scope.entry.counts = ["events": events, "fields": packed.count]
            scope.entry.fields = packed.map(\.name).sorted()
            try scope.recordNow()

            var counts: [String: Int] = [:]
            try sink.begin(subject: pseudonym)
            var scratch = try SecretBytes(count: Sealing.keyLength)
            defer { scratch.zero() }
            let fields = schema.fields.map(\.name)
            let provenance = Dictionary(packed.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            for (field, value) in zip(fields, try openFields(fields, of: subject, row: row, db: db, scratch: &scratch)) {
                guard let value else { continue }
                let origin = provenance[field.rawValue]
                try sink.profileField(
                    field.rawValue, value: value, source: origin?.source.rawValue ?? "",
                    observedAt: origin.map { Normalize.formatTimestamp(millis: $0.observedAt) } ?? "")
                counts["fields", default: 0] += 1
            }
            for identity in try SQLiteSubjectRows.identities(of: subject.rawValue, db) {
                try sink.identity(kind: identity.kind, source: identity.source)
                counts["identities", default: 0] += 1
            }
            for record in try consentRecords(db, subject) {
                try sink.consent(record)
                counts["consents", default: 0] += 1
            }
            let state = try derivedState(of: subject, db: db).state
            for flag in flagNames(state) {
                try sink.flag(flag)
                counts["flags", default: 0] += 1
            }
            try SQLiteSubjectRows.forEachEvent(of: subject.rawValue, db) { event in
                try sink.event(
                    SubjectExport.Event(
                        type: event.type, time: Normalize.formatTimestamp(millis: event.time), itemID: event.itemID, category: event.category,
                        amount: event.amount, currency: event.currency, campaignID: event.campaignID))
                counts["events", default: 0] += 1
            }
            try SQLiteSubjectRows.forEachDerived(of: subject.rawValue, db) { kind, name, sealed in
                let ad = Sealing.derivedAssociatedData(subject: subject, kind: kind, name: name, keyVersion: keyVersion)
                guard let value = sealed.withUnsafeBytes({ Sealing.openString($0, key: scratch, associatedData: ad) }) else {
                    throw GateError(.integrity, "derived value `\(kind)/\(name)` of \(subjectLabel(subject, db)) failed its integrity check")
                }
                try sink.derived(kind: kind, name: name, value: value)
                counts["derived", default: 0] += 1
            }
            // Fired triggers are derived data too, kept in the trigger queue.
            for entry in try await scope.tx.triggerEntries(ofSubject: subject.rawValue) {
                let state = entry.acknowledgedAt == nil ? "pending" : "handled"
                try sink.derived(kind: "trigger", name: entry.trigger, value: "fired \(Normalize.formatTimestamp(millis: entry.firedAt)) (\(state))")
                counts["derived", default: 0] += 1
            }
            try forEachAuditEntry(db, AuditFilter(subject: .subject(subject), limit: Int.max)) {
                try sink.processing(ProcessingRecord($0))
                counts["processing", default: 0] += 1
            }
            try sink.finish()
            return counts
        }
    }

    /// Erases one subject: deletes its row (and with it the wrapped data key, so every sealed value and derived value
    /// is crypto-shredded, and the audit-pseudonym secret, so past entries can no longer be linked), its identities,
    /// events, consents, flags and derived data; then checkpoints the WAL so that freed pages are overwritten.
    /// Needs `erase` for the purpose (`service` in the default policy); audited in the same transaction.
    ///
    /// This is the bare hook; ``eraseForRequest(_:as:)`` adds verification, suppression of re-imports,
    /// retention exceptions and a signed receipt.
    public func eraseSubject(
        _ reference: SubjectReference, as principal: Principal, purpose: Purpose = .service, reason: String? = nil
    )
       async throws(GateError) -> ErasureSummary
    {
        let (actor, role, requestID) = (principal.actor, principal.role, principal.requestID)
        let request = AccessRequest(actor: actor, role: role, action: .erase, purpose: purpose, reason: reason)
        let (deleted, entry) = try await performRecorded(request, requestID: requestID, failure: "erase the subject (nothing was erased)") {
            scope -> [String: Int] in
            let db = scope.db
            guard let subject = try resolve(reference, db: db) else {
                throw GateError(.notFound, "no subject matches; check the e-mail address or customer id")
            }
            scope.entry.subject = self.pseudonym(secret: try auditSecret(of: subject, db: db))
            let deleted = try await eraseRows(of: subject, scope.tx)
            scope.entry.counts = deleted.mapKeys { "deleted.\($0)" }
            scope.entry.reasons.append("erased: data key destroyed")
            // Freed pages were zeroed by secure_delete in the database file; truncating the WAL removes the old copies there.
            scope.truncatesLog = true
            scope.forcesCheckpoint = true
            return deleted
        }
        return ErasureSummary(deleted: deleted, auditSequence: entry?.sequence ?? 0)
    }

    func consentRecords(_ db: Database, _ subject: SubjectID) throws -> [ConsentRecordInfo] {
        try SQLiteLedgerRows.consentRecords(of: subject.rawValue, db).map { row in
            ConsentRecordInfo(
                id: row.id, purpose: row.purpose, state: row.state, time: Normalize.formatTimestamp(millis: row.time), source: row.source,
                noticeVersion: row.noticeVersion, evidence: row.evidence, expiresAt: row.expiresAt.map { Normalize.formatTimestamp(millis: $0) })
        }
    }

    func flagNames(_ state: SubjectState) -> [String] {
        var flags: [String] = []
        if state.restricted { flags.append("restriction") }
        if state.saleOptOut { flags.append("opt_out_sale_share") }
        if state.globalPrivacyControl { flags.append("gpc") }
        if state.limitSensitive { flags.append("limit_sensitive") }
        return flags + state.objections.map { "objection:\($0.rawValue)" }.sorted()
    }
}

extension Dictionary {
    func mapKeys<T: Hashable>(_ transform: (Key) -> T) -> [T: Value] {
        Dictionary<T, Value>(uniqueKeysWithValues: map { (transform($0.key), $0.value) })
    }
}
