public import ConsentryAudit
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
    public var processing: [AuditEntry]
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
    public func writeDerived(
        _ request: AccessRequest, kind: String, name: String, values: [SubjectID: String], requestID: String? = nil
    ) throws(VaultError) -> DerivedWriteSummary {
        guard FieldName.isValid(kind), FieldName.isValid(name) else {
            throw VaultError(.invalidInput, "derived data kind and name must be lower-case identifiers such as `score` and `engagement`")
        }
        guard let policy = loadedPolicy else {
            let entry = try auditAlone(draft(request, .deny(.policyUnavailable), requestID: requestID))
            return DerivedWriteSummary(decision: .deny, written: 0, skipped: [:], auditSequence: entry.sequence)
        }
        let authorized = policy.authorize(request)
        guard authorized.isPermit, let purpose = request.purpose else {
            let entry = try auditAlone(draft(request, authorized, requestID: requestID))
            return DerivedWriteSummary(decision: .deny, written: 0, skipped: [:], auditSequence: entry.sequence)
        }
        do {
            let summary = try db.write { db -> DerivedWriteSummary in
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
                let upsert = try db.cachedStatement(
                    sql:
                        "INSERT INTO derived (subject_id, kind, name, sealed, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (subject_id, kind, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at"
                )
                for id in ids {
                    if let reason = policy.admit(states[id.rawValue]?.state ?? SubjectState(), purpose: purpose) {
                        skipped[reason.rawValue, default: 0] += 1
                        continue
                    }
                    guard
                        let row = try Row.fetchOne(
                            db.cachedStatement(sql: "SELECT kek_version, wrapped_key, key_version, audit_secret FROM subject WHERE id = ?"),
                            arguments: [id.rawValue])
                    else {
                        skipped[DecisionReason.Code.subjectNotFound.rawValue, default: 0] += 1
                        continue
                    }
                    try unwrapDataKey(of: id, kekVersion: UInt32(row[0] as Int64), wrapped: row[1], into: &scratch)
                    let sealed = Sealing.seal(
                        values[id]!, key: scratch,
                        associatedData: Sealing.derivedAssociatedData(subject: id, kind: kind, name: name, keyVersion: UInt32(row[2] as Int64)),
                        nonces: nonces)
                    scratch.zero()
                    try upsert.execute(arguments: [id.rawValue, kind, name, Data(sealed), nowMillis])
                    pseudonyms += pseudonymBytes(secret: row[3])
                    written += 1
                }
                var counts = skipped.reduce(into: ["written": written]) { $0["skipped.\($1.key)"] = $1.value }
                counts["requested"] = values.count
                var entry = draft(request, authorized, subjectSet: pseudonyms, counts: counts, requestID: requestID)
                entry.reasons.append("derived: \(kind)/\(name)")
                let audited = try audit(entry, db: db)
                return DerivedWriteSummary(decision: .permit, written: written, skipped: skipped, auditSequence: audited.sequence)
            }
            try checkpointIfDue()
            return summary
        } catch {
            throw Self.storageError(error, "write derived data (nothing was stored)")
        }
    }

    /// Everything held about one subject (profile, identities, consents, flags, events, derived data and the
    /// processing log), for access and portability requests. Needs `export` for the purpose (`service` in the
    /// default policy); audited in the same transaction as the read.
    public func exportSubject(
        _ reference: SubjectReference, actor: String, role: Role, purpose: Purpose = .service, reason: String? = nil, requestID: String? = nil
    )
        throws(VaultError) -> SubjectExport
    {
        let request = AccessRequest(actor: actor, role: role, action: .export, purpose: purpose, reason: reason)
        // The export is the subject's own data: the purpose's field list does not limit it, so only the role's grant is checked.
        let authorized = loadedPolicy?.authorize(request) ?? .deny(.policyUnavailable)
        guard authorized.isPermit else { try refuse(request, authorized, requestID: requestID) }
        do {
            return try db.write { db -> SubjectExport in
                guard let subject = try resolve(reference, db: db) else {
                    throw VaultError(.notFound, "no subject matches; check the e-mail address or customer id")
                }
                try refreshKEKs(db)
                // One read of the subject's row and one unwrap of its data key serve the profile and the derived data.
                guard let row = try subjectRow(subject, db: db) else { throw VaultError(.integrity, "subject \(subject) has no row") }
                let keyVersion = UInt32(row["key_version"] as Int64)
                let pseudonym = self.pseudonym(secret: row["audit_secret"])
                var export = SubjectExport(
                    subject: pseudonym, profile: [:], provenance: [:], identities: [], consents: [], flags: [], events: [], derived: [:],
                    processing: [])
                var scratch = try SecretBytes(count: Sealing.keyLength)
                defer { scratch.zero() }
                let fields = schema.fields.map(\.name)
                for (field, value) in zip(fields, try openFields(fields, of: subject, row: row, db: db, scratch: &scratch)) {
                    if let value { export.profile[field.rawValue] = value }
                }
                for entry in (row["fields"] as Data).withUnsafeBytes({ PackedFields.decode($0) })?.entries ?? [] {
                    export.provenance[entry.name] = "\(entry.source.rawValue) at \(Normalize.formatTimestamp(millis: entry.observedAt))"
                }
                export.identities = try String.fetchAll(
                    db, sql: "SELECT kind FROM identity WHERE subject_id = ? UNION ALL SELECT kind FROM shared_identity WHERE subject_id = ?",
                    arguments: [subject.rawValue, subject.rawValue])
                export.consents = try consentRecords(db, subject)
                let state = try derivedStates(db, from: subject.rawValue, to: subject.rawValue)[subject.rawValue]?.state ?? SubjectState()
                export.flags = flagNames(state)
                export.events = try Row.fetchAll(
                    db, sql: "SELECT type, time, item_id, category, amount, currency, campaign_id FROM event WHERE subject_id = ? ORDER BY time",
                    arguments: [subject.rawValue]
                ).map { row in
                    SubjectExport.Event(
                        type: row[0], time: Normalize.formatTimestamp(millis: row[1]), itemID: row[2], category: row[3], amount: row[4],
                        currency: row[5],
                        campaignID: row[6])
                }
                for row in try Row.fetchAll(db, sql: "SELECT kind, name, sealed FROM derived WHERE subject_id = ?", arguments: [subject.rawValue]) {
                    let kind: String = row[0], name: String = row[1]
                    let ad = Sealing.derivedAssociatedData(subject: subject, kind: kind, name: name, keyVersion: keyVersion)
                    guard let value = (row[2] as Data).withUnsafeBytes({ Sealing.openString($0, key: scratch, associatedData: ad) }) else {
                        throw VaultError(.integrity, "derived value `\(kind)/\(name)` of subject \(subject) failed its integrity check")
                    }
                    export.derived["\(kind)/\(name)"] = value
                }
                try forEachAuditEntry(db, AuditFilter(subject: .subject(subject), limit: Int.max)) { export.processing.append($0) }
                var entry = draft(
                    request, authorized, subject: pseudonym, counts: ["events": export.events.count, "fields": export.profile.count],
                    requestID: requestID)
                entry.fields = export.profile.keys.sorted()
                _ = try audit(entry, db: db)
                return export
            }
        } catch {
            throw Self.storageError(error, "export the subject (nothing was released)")
        }
    }

    /// Erases one subject: deletes its row (and with it the wrapped data key, so every sealed value and derived value
    /// is crypto-shredded, and the audit-pseudonym secret, so past entries can no longer be linked), its identities,
    /// events, consents, flags and derived data; then checkpoints the WAL so that freed pages are overwritten.
    /// Needs `erase` for the purpose (`service` in the default policy); audited in the same transaction.
    ///
    /// Data-subject requests build on this hook: verification, suppression of re-imports, retention exceptions and
    /// signed receipts belong to them.
    public func eraseSubject(
        _ reference: SubjectReference, actor: String, role: Role, purpose: Purpose = .service, reason: String? = nil, requestID: String? = nil
    )
        throws(VaultError) -> ErasureSummary
    {
        let request = AccessRequest(actor: actor, role: role, action: .erase, purpose: purpose, reason: reason)
        let authorized = loadedPolicy?.authorize(request) ?? .deny(.policyUnavailable)
        guard authorized.isPermit else { try refuse(request, authorized, requestID: requestID) }
        let summary: ErasureSummary
        do {
            summary = try db.write { db -> ErasureSummary in
                guard let subject = try resolve(reference, db: db) else {
                    throw VaultError(.notFound, "no subject matches; check the e-mail address or customer id")
                }
                let pseudonym = self.pseudonym(secret: try auditSecret(of: subject, db: db))
                var deleted: [String: Int] = [:]
                for table in ["identity", "shared_identity", "event", "consent_record", "subject_flag", "derived"] {
                    deleted[table] =
                        try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table) WHERE subject_id = ?", arguments: [subject.rawValue]) ?? 0
                }
                // INVARIANT: erasure is final. The row holds the wrapped data key and the pseudonym secret;
                // deleting it crypto-shreds every sealed value and unlinks past audit entries.
                try db.execute(sql: "DELETE FROM subject WHERE id = ?", arguments: [subject.rawValue])
                deleted["subject"] = db.changesCount
                var entry = draft(request, authorized, subject: pseudonym, counts: deleted.mapKeys { "deleted.\($0)" }, requestID: requestID)
                entry.reasons.append("erased: data key destroyed")
                let audited = try audit(entry, db: db)
                return ErasureSummary(deleted: deleted, auditSequence: audited.sequence)
            }
            // Freed pages were zeroed by secure_delete in the database file; truncating the WAL removes the old copies there.
            _ = try db.writeWithoutTransaction { try $0.checkpoint(.truncate) }
        } catch {
            throw Self.storageError(error, "erase the subject (nothing was erased)")
        }
        try checkpointIfDue(force: true)
        return summary
    }

    func consentRecords(_ db: Database, _ subject: SubjectID) throws -> [ConsentRecordInfo] {
        try Row.fetchAll(
            db,
            sql:
                "SELECT id, purpose, state, time, source, notice_version, evidence_ref, expires_at FROM consent_record WHERE subject_id = ? ORDER BY id",
            arguments: [subject.rawValue]
        ).map { row in
            ConsentRecordInfo(
                id: row[0], purpose: row[1], state: row[2], time: Normalize.formatTimestamp(millis: row[3]), source: row[4], noticeVersion: row[5],
                evidence: row[6], expiresAt: (row[7] as Int64?).map { Normalize.formatTimestamp(millis: $0) })
        }
    }

    func flagNames(_ state: SubjectState) -> [String] {
        var flags: [String] = []
        if state.restricted { flags.append("restriction") }
        if state.saleOptOut { flags.append("opt_out_sale_share") }
        if state.globalPrivacyControl { flags.append("gpc") }
        return flags + state.objections.map { "objection:\($0.rawValue)" }.sorted()
    }
}

extension Dictionary {
    func mapKeys<T: Hashable>(_ transform: (Key) -> T) -> [T: Value] {
        Dictionary<T, Value>(uniqueKeysWithValues: map { (transform($0.key), $0.value) })
    }
}
