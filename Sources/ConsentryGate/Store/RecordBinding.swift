import ConsentryCore
import ConsentryCrypto
import Foundation
import GRDB

/// Keyed MACs that tie rows to their subject and content: an identity-index row to the subject it names, and each
/// consent and flag record to its id, subject and every column that decides, and an API token to its role and state.
///
/// Without them, anyone who can write the database file (no key needed) could move an e-mail's index row to another
/// subject (A's look-up would then return B's profile, A's access request export B, A's erasure erase B) or turn a
/// withdrawal into a confirmation. A look-up checks the binding of the row it uses and fails closed; `consentry check`
/// checks every row; the gate refuses ledger records whose binding does not verify.
enum RecordBinding {
    /// Bytes kept per row.
    static let length = 16

    /// One input of a binding: each is written with a kind byte and a length, so that no two inputs frame alike.
    enum Part {
        case bytes([UInt8])
        case integer(Int64?)
        case text(String?)
    }

    /// The first ``length`` bytes of the keyed hash of `parts` under `tag`.
    private static func mac(_ binder: BlindIndexer, tag: UInt8, _ parts: [Part]) -> [UInt8] {
        var out: [UInt8] = []
        encode(parts, into: &out)
        return Array(binder.hash(tag: tag, bytes: out).prefix(length))
    }

    /// The framing of `parts` (the same bytes ``LedgerVerifier`` writes from raw columns), appended to `out`.
    private static func encode(_ parts: [Part], into out: inout [UInt8]) {
        func append(_ bytes: [UInt8]) {
            withUnsafeBytes(of: UInt32(bytes.count).bigEndian) { out += $0 }
            out += bytes
        }
        for part in parts {
            switch part {
            case .bytes(let bytes):
                out.append(2)
                append(bytes)
            case .integer(let value):
                guard let value else {
                    out.append(0)
                    continue
                }
                out.append(1)
                withUnsafeBytes(of: value.bigEndian) { out += $0 }
            case .text(let text):
                guard let text else {
                    out.append(0)
                    continue
                }
                out.append(3)
                append(Array(text.utf8))
            }
        }
    }

    /// Checks consent records against their bindings straight from the store's buffers: scans check every record of
    /// the vault, and decoding each column into Swift values cost more than the hash. One keyed state and one scratch
    /// buffer serve every row; the bytes framed are those of ``consent(_:id:subject:purpose:state:time:source:noticeVersion:evidence:expiresAt:recordedAt:)``.
    final class LedgerVerifier {
        private let consentHasher: KeyedHasher
        private var buffer: [UInt8] = []
        private var digest: [UInt8] = []

        init(_ binder: BlindIndexer) {
            consentHasher = binder.prefixedHasher(tag: 0x51)
            buffer.reserveCapacity(256)
        }

        private func integer(_ value: Int64?) {
            guard let value else {
                buffer.append(0)
                return
            }
            buffer.append(1)
            withUnsafeBytes(of: value.bigEndian) { buffer += $0 }
        }

        private func text(_ bytes: UnsafeRawBufferPointer?) {
            guard let bytes else {
                buffer.append(0)
                return
            }
            buffer.append(3)
            withUnsafeBytes(of: UInt32(bytes.count).bigEndian) { buffer += $0 }
            buffer += bytes
        }

        /// Whether `record` carries its binding.
        func consentMatches(_ record: ConsentRecordView) -> Bool {
            buffer.removeAll(keepingCapacity: true)
            digest.removeAll(keepingCapacity: true)
            integer(record.id)
            integer(record.subject)
            text(record.purpose)
            text(record.state)
            integer(record.time)
            text(record.source)
            text(record.noticeVersion)
            text(record.evidence)
            integer(record.expiresAt)
            integer(record.recordedAt)
            buffer.withUnsafeBytes { consentHasher.append($0, length: RecordBinding.length, to: &digest) }
            return record.binding.count == digest.count && Digest.equal(Array(record.binding), digest)
        }
    }

    /// The binding of an identity-index row (`identity` or `shared_identity`).
    static func identity(_ binder: BlindIndexer, hash: some Collection<UInt8>, kind: IdentityKind, subject: SubjectID) -> [UInt8] {
        mac(binder, tag: 0x50, [.bytes(Array(hash)), .text(kind.rawValue), .integer(subject.rawValue)])
    }

    /// The binding of a consent record.
    static func consent(
        _ binder: BlindIndexer, id: Int64, subject: Int64, purpose: String, state: String, time: Int64, source: String, noticeVersion: String?,
        evidence: String?, expiresAt: Int64?, recordedAt: Int64
    ) -> [UInt8] {
        mac(
            binder, tag: 0x51,
            [
                .integer(id), .integer(subject), .text(purpose), .text(state), .integer(time), .text(source), .text(noticeVersion), .text(evidence),
                .integer(expiresAt), .integer(recordedAt),
            ])
    }

    /// The binding of a flag record.
    static func flag(
        _ binder: BlindIndexer, id: Int64, subject: Int64, flag: String, purpose: String, value: Int64, time: Int64, source: String,
        recordedAt: Int64
    ) -> [UInt8] {
        mac(
            binder, tag: 0x52,
            [.integer(id), .integer(subject), .text(flag), .text(purpose), .integer(value), .integer(time), .text(source), .integer(recordedAt)])
    }

    /// The binding of an API token row: its id, name, role, secret hash, expiry and revocation, so that a role raised,
    /// an expiry lifted or a revocation undone in the file makes the token fail.
    static func token(
        _ binder: BlindIndexer, id: String, name: String, role: String, secretHash: some Collection<UInt8>, expiresAt: Int64?, revokedAt: Int64?
    ) -> [UInt8] {
        mac(binder, tag: 0x53, [.text(id), .text(name), .text(role), .bytes(Array(secretHash)), .integer(expiresAt), .integer(revokedAt)])
    }

    /// The binding a token record should carry.
    static func token(_ binder: BlindIndexer, record: TokenRecord) -> [UInt8] {
        token(
            binder, id: record.id, name: record.name, role: record.role, secretHash: record.secretHash, expiresAt: record.expiresAt,
            revokedAt: record.revokedAt)
    }

    /// A subject's ledger head: how many consent and flag records it has and the newest id of each, kept in the subject
    /// row and bound to it. The records are bound one by one, so an edit shows in the record itself; a record deleted
    /// from the file shows only here, as a count or a newest id the ledger no longer has.
    struct LedgerHead: Equatable {
        var consents: Int64 = 0
        var lastConsent: Int64 = 0
        var flags: Int64 = 0
        var lastFlag: Int64 = 0

        /// Stored bytes: the four numbers (big-endian) and then the binding.
        static let storedLength = 32 + RecordBinding.length

        /// The head after `consent` or `flag` (a new record's id) was appended.
        func appending(consent: Int64? = nil, flag: Int64? = nil) -> LedgerHead {
            var next = self
            if let consent {
                next.consents += 1
                next.lastConsent = consent
            }
            if let flag {
                next.flags += 1
                next.lastFlag = flag
            }
            return next
        }
    }

    private static func headBinding(_ binder: BlindIndexer, subject: Int64, _ head: LedgerHead) -> [UInt8] {
        mac(
            binder, tag: 0x54,
            [.integer(subject), .integer(head.consents), .integer(head.lastConsent), .integer(head.flags), .integer(head.lastFlag)])
    }

    /// The bytes stored in `subject.ledger_head` for `head`.
    static func sealHead(_ binder: BlindIndexer, subject: Int64, _ head: LedgerHead) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(LedgerHead.storedLength)
        for value in [head.consents, head.lastConsent, head.flags, head.lastFlag] { withUnsafeBytes(of: value.bigEndian) { out += $0 } }
        return out + headBinding(binder, subject: subject, head)
    }

    /// The head stored for `subject`, or nil when it is missing, malformed or its binding fails (edited, moved from
    /// another subject or forged in the file).
    static func openHead(_ binder: BlindIndexer, subject: Int64, _ stored: Data?) -> LedgerHead? {
        guard let stored, stored.count == LedgerHead.storedLength else { return nil }
        let bytes = [UInt8](stored)
        func number(_ at: Int) -> Int64 { bytes[at..<at + 8].reduce(Int64(0)) { $0 << 8 | Int64($1) } }
        let head = LedgerHead(consents: number(0), lastConsent: number(8), flags: number(16), lastFlag: number(24))
        return Digest.equal(Array(bytes[32...]), headBinding(binder, subject: subject, head)) ? head : nil
    }

    /// The binding a consent record should carry.
    static func consent(_ binder: BlindIndexer, record r: ConsentRecordRow) -> [UInt8] {
        consent(
            binder, id: r.id, subject: r.subjectID, purpose: r.purpose, state: r.state, time: r.time, source: r.source, noticeVersion: r.noticeVersion,
            evidence: r.evidence, expiresAt: r.expiresAt, recordedAt: r.recordedAt)
    }

    /// The binding a flag record should carry.
    static func flag(_ binder: BlindIndexer, record r: FlagRecordRow) -> [UInt8] {
        flag(binder, id: r.id, subject: r.subjectID, flag: r.flag, purpose: r.purpose, value: r.value, time: r.time, source: r.source, recordedAt: r.recordedAt)
    }

    /// Whether a stored binding equals the expected one (constant time).
    static func matches(_ stored: [UInt8], _ expected: [UInt8]) -> Bool {
        stored.count == length && Digest.equal(stored, expected)
    }

    /// Whether a stored binding, as the store's buffer holds it, equals the expected one (constant time).
    static func matches(_ stored: UnsafeRawBufferPointer, _ expected: [UInt8]) -> Bool {
        stored.count == length && Digest.equal(Array(stored), expected)
    }

    /// Whether a stored binding equals the expected one (constant time).
    static func matches(_ stored: Data?, _ expected: [UInt8]) -> Bool {
        guard let stored, stored.count == length else { return false }
        return Digest.equal([UInt8](stored), expected)
    }
}

extension Vault {
    /// Binds the rows written before bindings existed (a vault upgraded to schema v13), once: the first open after the
    /// upgrade does it and records that in `vault_meta`. From then on every row is bound when it is written, and a row
    /// without a binding (inserted in the file) is never bound, so `check` reports it.
    func bindUnboundRecords() throws(GateError) {
        let binder = keys.recordBinding
        do {
            // A read first: every open passes here, and taking the write lock each time would queue `status` behind a
            // busy server.
            guard try !db.read({ try SQLiteBindingRows.isDone("record_bindings", $0) && SQLiteBindingRows.isDone("ledger_heads", $0) }) else {
                return
            }
            try db.write { db in
                try fillLedgerHeads(db)
                guard try !SQLiteBindingRows.isDone("record_bindings", db) else { return }
                try SQLiteBindingRows.markDone("record_bindings", db)
                // Collected first, then bound: rows are not updated under the cursor that walks them.
                var identities: [SQLiteBindingRows.IdentityRow] = []
                try SQLiteBindingRows.forEachIdentity(unboundOnly: true, db) { identities.append($0) }
                for row in identities {
                    guard let kind = IdentityKind(rawValue: row.kind) else { continue }
                    try SQLiteBindingRows.setBinding(
                        of: row, RecordBinding.identity(binder, hash: row.hash, kind: kind, subject: SubjectID(rawValue: row.subjectID)), db)
                }
                var consents: [ConsentRecordRow] = []
                try SQLiteBindingRows.forEachConsent(unboundOnly: true, db) { consents.append($0) }
                for record in consents { try SQLiteBindingRows.setConsentBinding(record.id, RecordBinding.consent(binder, record: record), db) }
                for token in try SQLiteTokenRows.all(db) where token.binding == nil {
                    try SQLiteBindingRows.setTokenBinding(token.id, RecordBinding.token(binder, record: token), db)
                }
                var flags: [FlagRecordRow] = []
                try SQLiteBindingRows.forEachFlag(unboundOnly: true, db) { flags.append($0) }
                for record in flags { try SQLiteBindingRows.setFlagBinding(record.id, RecordBinding.flag(binder, record: record), db) }
            }
        } catch {
            throw Self.storageError(error, "bind the identity and ledger rows written before schema v13")
        }
    }

    /// Gives every subject of a vault from before ledger heads (schema v14) the head of the ledger it has, once, as
    /// ``bindUnboundRecords()`` does for bindings: from then on a subject without a head was changed in the file.
    private func fillLedgerHeads(_ db: Database) throws {
        guard try !SQLiteBindingRows.isDone("ledger_heads", db) else { return }
        try SQLiteBindingRows.markDone("ledger_heads", db)
        var heads: [(Int64, RecordBinding.LedgerHead)] = []
        try SQLiteBindingRows.forEachLedgerCount(missingHeadOnly: true, db) { subject, _, n in
            heads.append((subject, RecordBinding.LedgerHead(consents: n.consents, lastConsent: n.lastConsent, flags: n.flags, lastFlag: n.lastFlag)))
        }
        for (subject, head) in heads {
            try SQLiteLedgerRows.setLedgerHead(of: subject, RecordBinding.sealHead(keys.recordBinding, subject: subject, head), db)
        }
    }

    /// Moves a subject's ledger head past a record just appended, in the record's transaction. A head that fails its
    /// binding stops the write: the ledger was changed in the file, and a new record on top would hide that.
    func advanceLedgerHead(of subject: SubjectID, consent: Int64? = nil, flag: Int64? = nil, db: Database) throws {
        let stored = try SQLiteLedgerRows.ledgerHead(of: subject.rawValue, db)
        guard let head = RecordBinding.openHead(keys.recordBinding, subject: subject.rawValue, stored) else { throw Self.unboundLedger }
        try SQLiteLedgerRows.setLedgerHead(
            of: subject.rawValue, RecordBinding.sealHead(keys.recordBinding, subject: subject.rawValue, head.appending(consent: consent, flag: flag)), db)
    }

    /// How many subjects' ledgers differ from their heads (for `consentry check`): a consent or flag record deleted from
    /// the file, or a head edited, removed or copied from another subject.
    func ledgerHeadMismatches(_ db: Database) throws -> Int {
        let binder = keys.recordBinding
        var bad = 0
        try SQLiteBindingRows.forEachLedgerCount(missingHeadOnly: false, db) { subject, stored, n in
            let actual = RecordBinding.LedgerHead(consents: n.consents, lastConsent: n.lastConsent, flags: n.flags, lastFlag: n.lastFlag)
            if RecordBinding.openHead(binder, subject: subject, stored) != actual { bad += 1 }
        }
        return bad
    }

    /// Rows whose binding does not verify, per table (for `consentry check`): moved, edited or forged in the file.
    func unboundRecords(_ db: Database) throws -> [String: Int] {
        let binder = keys.recordBinding
        var bad: [String: Int] = [:]
        try SQLiteBindingRows.forEachIdentity(unboundOnly: false, db) { row in
            let ok =
                IdentityKind(rawValue: row.kind).map {
                    RecordBinding.matches(row.binding, RecordBinding.identity(binder, hash: row.hash, kind: $0, subject: SubjectID(rawValue: row.subjectID)))
                } ?? false
            if !ok { bad[row.table, default: 0] += 1 }
        }
        try SQLiteBindingRows.forEachConsent(unboundOnly: false, db) { record in
            if !RecordBinding.matches(record.binding, RecordBinding.consent(binder, record: record)) { bad["consent_record", default: 0] += 1 }
        }
        try SQLiteBindingRows.forEachFlag(unboundOnly: false, db) { record in
            if !RecordBinding.matches(record.binding, RecordBinding.flag(binder, record: record)) { bad["subject_flag", default: 0] += 1 }
        }
        for token in try SQLiteTokenRows.all(db) where !RecordBinding.matches(token.binding ?? [], RecordBinding.token(binder, record: token)) {
            bad["api_token", default: 0] += 1
        }
        return bad
    }
}
