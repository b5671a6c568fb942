import ConsentryAudit
public import ConsentryCore
import ConsentryCrypto
import ConsentryPolicy
public import Foundation
import GRDB

/// One incoming profile record before validation: raw values by column or key, in input order.
struct ProfileRecord {
    var line: Int
    var values: [(key: String, value: String)]
    /// A problem found while reading the record (wrong value type in JSON, wrong column count in CSV).
    var problem: FieldProblem?
}

/// The file formats profiles can be imported from.
public enum ProfileFormat: String, Sendable, CaseIterable, Codable {
    /// Comma-separated values with a header row of field names (RFC 4180).
    case csv
    /// JSON Lines: one JSON object per line, keys are field names.
    case jsonl

    /// The format implied by a file name's extension (`.csv`, `.jsonl`, `.ndjson`), or nil.
    public init?(fileExtension: String) {
        switch fileExtension.lowercased() {
        case "csv": self = .csv
        case "jsonl", "ndjson": self = .jsonl
        default: return nil
        }
    }
}

extension Vault {
    /// The column that carries when a record's values were last changed in its source; used by merges.
    static let recordTimeColumn = "updated_at"

    /// Imports a file of profiles.
    ///
    /// Values are validated and normalized by the field schema; undeclared fields are not stored and are
    /// reported; records matching an existing subject by e-mail or customer id are merged into it (per
    /// field, a higher-precedence source wins, else the newest non-empty value). Records are committed in
    /// batches; a bad record is rejected with line, field and reason while the good ones are committed.
    ///
    /// - Throws: ``GateError`` with code `invalidInput` for a file that is unusable as a whole (unreadable,
    ///   empty, not UTF-8, bad header), in which case nothing was changed; `storage` when writing fails.
    ///   `denied` when `role` may not import (the denial is audited).
    public func importProfiles(
        from url: URL, source: DataSource, format: ProfileFormat, as principal: Principal = .system
    ) async throws(GateError) -> ImportReport {
        let (actor, role) = (principal.actor, principal.role)
        let template = try await importAudit(actor: actor, role: role, what: "profiles from \(source.rawValue)")
        let file = try InputFile(url: url)
        var report = ImportReport(file: url.path, kind: "profiles")
        switch format {
        case .csv:
            if let first = file.bytes.first(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\r") }),
                first == UInt8(ascii: "{") || first == UInt8(ascii: "[")
            {
                throw GateError(.invalidInput, "`\(url.path)` looks like JSON, not CSV; pass `--format jsonl` for JSON Lines (nothing was imported)")
            }
            var reader = CSVReader(file.bytes)
            let header = try csvHeader(reader.next(), path: url.path)
            let records = reader.lazy.map { record -> ProfileRecord in
                switch record {
                case .malformed(let line, let reason):
                    return ProfileRecord(line: line, values: [], problem: FieldProblem(field: nil, reason: reason))
                case .values(let line, let values):
                    guard values.count == header.count else {
                        return ProfileRecord(
                            line: line, values: [],
                            problem: FieldProblem(
                                field: nil,
                                reason: "has \(values.count) values but the header has \(header.count) columns; check for a missing or extra comma"))
                    }
                    return ProfileRecord(line: line, values: Array(zip(header, values)).map { (key: $0.0, value: $0.1) })
                }
            }
            try ingestProfiles(records, source: source, report: &report, audit: template)
        case .jsonl:
            var lines = LineSplitter(file.bytes)
            guard let first = lines.next() else { throw GateError(.invalidInput, "`\(url.path)` is empty; nothing was imported") }
            guard case .object = try? StrictJSON.parse(first.text) else {
                throw GateError(
                    .invalidInput,
                    "`\(url.path)` line \(first.line) is not a JSON object; a JSON Lines file has one `{...}` object per line (nothing was imported)")
            }
            let records = LineSplitter(file.bytes).lazy.map { Self.profileRecord(line: $0.line, text: $0.text) }
            try ingestProfiles(records, source: source, report: &report, audit: template)
        }
        return report
    }

    /// Reads a JSON Lines record: keys and scalar values; nested values and syntax errors become the record's problem.
    static func profileRecord(line: Int, text: ArraySlice<UInt8>) -> ProfileRecord {
        let value: StrictJSON.Value
        do { value = try StrictJSON.parse(text) } catch {
            return ProfileRecord(
                line: line, values: [], problem: FieldProblem(field: nil, reason: "invalid JSON at column \(error.column): \(error.reason)"))
        }
        guard case .object(let members) = value else {
            return ProfileRecord(line: line, values: [], problem: FieldProblem(field: nil, reason: "expected a JSON object `{...}`"))
        }
        guard members.count <= maximumColumns else {
            return ProfileRecord(
                line: line, values: [],
                problem: FieldProblem(field: nil, reason: "has \(members.count) keys, more than the \(maximumColumns) a profile may have"))
        }
        var record = ProfileRecord(line: line, values: [])
        for (key, member) in members {
            switch member {
            case .string(let s), .number(let s): record.values.append((key, s))
            case .bool(let b): record.values.append((key, b ? "true" : "false"))
            case .null: continue
            case .array, .object:
                record.problem =
                    record.problem
                    ?? FieldProblem(field: FieldProblem.name(ofKey: key), reason: "must be a string, number or boolean, not a list or object")
            }
        }
        return record
    }

    /// The widest CSV header, and the most keys of a JSON Lines record, accepted.
    static let maximumColumns = 1_024

    /// Validates a CSV header: field names, no duplicates, an identity column, no undeclared special-category column.
    private func csvHeader(_ record: CSVReader.Record?, path: String) throws(GateError) -> [String] {
        guard case .values(_, let raw)? = record else {
            var reason = ""
            if case .malformed(_, let why)? = record { reason = " (\(why))" }
            throw GateError(
                .invalidInput,
                "`\(path)` line 1: the header row is malformed\(reason); the first line must list field names separated by commas (nothing was imported)"
            )
        }
        // A profile has dozens of fields; a header far wider is a wrong file or an attack on the reports.
        guard raw.count <= Self.maximumColumns else {
            throw GateError(
                .invalidInput,
                "`\(path)` line 1: the header has \(raw.count) columns, more than the \(Self.maximumColumns) accepted; check that this is a profile export (nothing was imported)"
            )
        }
        var names: [String] = []
        for (index, column) in raw.enumerated() {
            let name = Normalize.trimmed(column).lowercased()
            guard name == Self.recordTimeColumn || FieldName.isValid(name) else {
                throw GateError(
                    .invalidInput,
                    "`\(path)` line 1, column \(index + 1): the header is not a field name; use lower-case names from policies/fields.yaml, and if the first line holds data, add a header row (nothing was imported)"
                )
            }
            guard !names.contains(name) else {
                throw GateError(.invalidInput, "`\(path)` line 1: the column `\(name)` appears twice; remove one (nothing was imported)")
            }
            if schema[name] == nil, let category = SpecialCategory.category(ofName: name) {
                throw GateError(
                    .invalidInput,
                    "`\(path)` line 1: the column `\(name)` looks like special-category data (\(category)) and is not declared; special-category data is only imported when policies/fields.yaml declares it with `class: special` (nothing was imported)"
                )
            }
            names.append(name)
        }
        guard names.contains("email") || names.contains("customer_id") else {
            throw GateError(
                .invalidInput,
                "`\(path)` line 1: the header has neither an `email` nor a `customer_id` column, so no record could be matched to a subject (nothing was imported)"
            )
        }
        return names
    }

    /// Runs records through identity resolution and storage, one transaction per batch.
    ///
    /// Two stages on two threads: a preparer validates, normalizes, hashes and seals each record as a would-be new
    /// subject (nothing that needs the database), while this thread resolves identities and writes. A bounded queue
    /// between them keeps memory flat.
    func ingestProfiles(_ records: some Sequence<ProfileRecord>, source: DataSource, report: inout ImportReport, audit: AuditDraft) throws(GateError)
    {
        let ingest: ProfileIngest
        let preparer: ProfilePreparer
        do {
            ingest = try ProfileIngest(vault: self, source: source)
            preparer = try ProfilePreparer(vault: self, schema: ingest.schema, source: source, now: ingest.now)
        } catch { throw GateError(.key, error.message) }
        try pipelined(records, prepare: preparer.prepare) { (prepared) throws(GateError) in
            try inBatches(prepared, line: \.line, report: &report, audit: audit, beginning: ingest.beginBatch) { prepared, db, _, report in
                try ingest.apply(prepared, db: db, report: &report)
            }
        }
    }
}

extension Vault {
    /// Authorizes an import by `role` (denials are audited) and returns the audit template of its batches.
    func importAudit(actor: String, role: Role, what: String) async throws(GateError) -> AuditDraft {
        let decision = try await requireAdministrative(.import, actor: actor, role: role, requestID: nil)
        var entry = draft(AccessRequest(actor: actor, role: role, action: .import), decision, requestID: nil)
        entry.reasons.append(what)
        return entry
    }
}

/// The per-import state: statements, a nonce pool and a scratch data key in locked memory.
final class ProfileIngest {
    let vault: Vault
    /// The field schema for the whole import: a server that reloads its policy files meanwhile does not change the
    /// rules half-way through a file.
    let schema: FieldSchema
    let source: DataSource
    let now: Int64
    let nonces = NonceSource()
    var scratchKey: SecretBytes
    let limit: Int
    /// Whether the suppression list has entries (most vaults have none to check). Read again at the start of every
    /// batch: an erasure committed by another process between two batches must stop the erased subject's records in
    /// the batches that follow.
    var suppressionActive = true

    init(vault: Vault, source: DataSource) throws(CryptoError) {
        self.vault = vault
        self.schema = vault.schema
        self.source = source
        self.now = vault.nowMillis
        self.scratchKey = try SecretBytes(count: Sealing.keyLength)
        self.limit = vault.configuration.maxReportedRejections
    }

    /// Reads, in the batch's own transaction, what may have changed since the last batch.
    func beginBatch(_ db: Database) throws {
        suppressionActive = try SQLiteIngestRows.suppressionInUse(db)
    }

    /// Resolves and stores one prepared record. A `FieldProblem` rejects the record; a database error aborts the batch.
    func apply(_ prepared: PreparedProfile, db: Database, report: inout ImportReport) throws {
        for key in prepared.dropped { report.droppedFields[FieldProblem.name(ofKey: key), default: 0] += 1 }
        if let problem = prepared.problem {
            report.reject(.init(line: prepared.line, field: problem.field, reason: problem.reason), limit: limit)
            return
        }
        if try isSuppressed(prepared, db: db) {
            report.suppressed += 1
            report.reject(
                .init(
                    line: prepared.line, field: nil,
                    reason:
                        "the subject with this e-mail address or customer id was erased at their request, so the record is not imported (see docs/rights.md)"
                ),
                limit: limit)
            return
        }
        let hashes = prepared.hashes
        let byEmail = try hashes[.email].flatMap { try Self.lookup(.email, $0, binder: vault.keys.recordBinding, db: db) }
        let byCustomer = try hashes[.customerID].flatMap { try Self.lookup(.customerID, $0, binder: vault.keys.recordBinding, db: db) }
        if let byEmail, let byCustomer, byEmail != byCustomer {
            report.reject(
                .init(
                    line: prepared.line, field: nil,
                    reason: "the `email` and the `customer_id` belong to two different subjects; correct the record or merge the subjects first"),
                limit: limit)
            return
        }
        if let existing = byEmail ?? byCustomer {
            let changed = try merge(into: existing, values: prepared.values, observedAt: prepared.observedAt, db: db)
            if changed { report.merged += 1 } else { report.unchanged += 1 }
            try insertIdentities(hashes, subject: existing, db: db)
        } else {
            let subject = try insertPrepared(prepared, db: db)
            try insertIdentities(hashes, subject: subject, db: db)
            report.inserted += 1
        }
    }

    /// Inserts the subject the preparer sealed. Seals it again here if the key-encryption key changed since
    /// (another process rotated the keys) or, about once in 2^63 subjects, the random id is taken.
    private func insertPrepared(_ prepared: PreparedProfile, db: Database) throws -> SubjectID {
        var candidate = prepared.fresh
        while true {
            if candidate?.kekVersion != vault.keys.activeVersion {
                candidate = NewSubject.seal(
                    prepared.values, observedAt: prepared.observedAt, source: source, keys: vault.keys, scratch: &scratchKey, nonces: nonces)
            }
            guard let fresh = candidate else { throw GateError(.key, "the active key-encryption key is not loaded") }
            // An empty ledger head from the start, so that a subject whose records and head were all deleted shows.
            let head = RecordBinding.sealHead(vault.keys.recordBinding, subject: fresh.id.rawValue, RecordBinding.LedgerHead())
            if try SQLiteIngestRows.insertSubject(
                id: fresh.id.rawValue, kekVersion: fresh.kekVersion, wrappedKey: fresh.wrapped, fields: fresh.packed, auditSecret: fresh.auditSecret,
                ledgerHead: head, at: now, db)
            {
                return fresh.id
            }
            candidate = nil  // the random id is taken: seal again under a new one
        }
    }

    /// Whether the record's e-mail address or customer id is on the suppression list of erased subjects.
    private func isSuppressed(_ prepared: PreparedProfile, db: Database) throws -> Bool {
        guard suppressionActive else { return false }
        for (spec, value) in prepared.values {
            guard let kind = spec.identityKind, kind != .phone else { continue }
            if try SQLiteIngestRows.isSuppressed(vault.keys.suppression.index(kind, value), db) { return true }
        }
        return false
    }

    /// The subject an identity-index row names, after checking the row's binding to that subject.
    /// - Throws: `integrity` when the row's binding does not verify (it was moved to another subject or forged in the
    ///   file): the look-up fails closed rather than hand out another person's profile.
    static func lookup(_ kind: IdentityKind, _ hash: [UInt8], binder: BlindIndexer, db: Database) throws -> SubjectID? {
        let found = try SQLiteIngestRows.withIdentity(kind, hash, db) { id, binding in
            (SubjectID(rawValue: id), RecordBinding.matches(binding, RecordBinding.identity(binder, hash: hash, kind: kind, subject: SubjectID(rawValue: id))))
        }
        guard let (subject, bound) = found else { return nil }
        guard bound else {
            throw GateError(
                .integrity,
                "an identity-index row is not bound to the subject it names (moved or forged in the database file); nothing was released, run `consentry check`"
            )
        }
        return subject
    }

    private func insertIdentities(_ hashes: [IdentityKind: [UInt8]], subject: SubjectID, db: Database) throws {
        // The caller looked these up first: an e-mail or customer id already present belongs to `subject`.
        for kind in IdentityKind.allCases {
            guard let hash = hashes[kind] else { continue }
            try SQLiteIngestRows.insertIdentity(
                kind, hash: hash, subject: subject.rawValue, source: source.rawValue, at: now,
                binding: RecordBinding.identity(vault.keys.recordBinding, hash: hash, kind: kind, subject: subject), db)
        }
    }

    /// Merges values into an existing subject. Per field, a value from a higher-precedence source wins;
    /// among equal precedence the newer (or equally new) value wins. Returns whether any value changed.
    private func merge(into subject: SubjectID, values: [(spec: FieldSpec, value: String)], observedAt: Int64, db: Database) throws -> Bool {
        guard let row = try vault.subjectRow(subject, db: db) else {
            throw GateError(.integrity, "an identity-index row points to no subject row; run `consentry check`")
        }
        let keyVersion = row.keyVersion
        defer { scratchKey.zero() }
        try vault.unwrapDataKey(of: subject, kekVersion: row.kekVersion, wrapped: row.wrappedKey, into: &scratchKey)
        guard var packed = row.fields.withUnsafeBytes({ PackedFields.decode($0) }) else {
            throw GateError(.integrity, about: subject) { "the stored profile of \($0) is malformed; run `consentry check`" }
        }
        let newRank = schema.rank(of: source)
        var changed = false
        var touched = false
        for (spec, value) in values {
            let ad = Sealing.fieldAssociatedData(subject: subject, field: spec.name, keyVersion: keyVersion)
            if let index = packed.entries.firstIndex(where: { $0.name == spec.name.rawValue }) {
                let old = packed.entries[index]
                let oldRank = schema.rank(of: old.source)
                // A value corrected at the subject's request yields only to a newer observation, whatever its source,
                // so re-importing the stale value from the source system does not undo the rectification.
                if old.source == .rectification {
                    guard observedAt > old.observedAt else { continue }
                } else {
                    guard newRank < oldRank || (newRank == oldRank && observedAt >= old.observedAt) else { continue }
                }
                let oldValue = old.sealed.withUnsafeBytes { Sealing.openString($0, key: scratchKey, associatedData: ad) }
                guard let oldValue else {
                    throw GateError(.integrity, about: subject) { "field `\(spec.name)` of \($0) failed its integrity check; run `consentry check`" }
                }
                touched = true
                if oldValue == value {
                    packed.entries[index].source = source
                    packed.entries[index].observedAt = observedAt
                } else {
                    packed.entries[index] = .init(
                        name: spec.name.rawValue, source: source, observedAt: observedAt,
                        sealed: Sealing.seal(value, key: scratchKey, associatedData: ad, nonces: nonces))
                    changed = true
                }
            } else {
                packed.entries.append(
                    .init(
                        name: spec.name.rawValue, source: source, observedAt: observedAt,
                        sealed: Sealing.seal(value, key: scratchKey, associatedData: ad, nonces: nonces)))
                changed = true
                touched = true
            }
        }
        if touched {
            // updated_at moves only when a value changed, not when only provenance did.
            try SQLiteIngestRows.updateMergedFields(of: subject.rawValue, packed.encoded(), updatedAt: changed ? now : 0, db)
        }
        return changed
    }
}

extension Vault {
    /// Imports profiles given as JSON objects in memory (the HTTP API's batch import), with the same validation,
    /// normalization, minimization, merges, suppression and audit as a file import; rejections name their position.
    public func importProfiles(json records: [Data], source: DataSource, label: String, as principal: Principal) async throws(GateError) -> ImportReport {
        let (actor, role) = (principal.actor, principal.role)
        let audit = try await importAudit(actor: actor, role: role, what: "profiles from \(source.rawValue) (\(label))")
        var report = ImportReport(file: label, kind: "profiles")
        try ingestProfiles(
            records.enumerated().lazy.map { index, data in Self.profileRecord(line: index + 1, text: ArraySlice(data)) }, source: source,
            report: &report, audit: audit)
        return report
    }
}
