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

    /// Checks consent records against their bindings straight from a statement's columns: scans check every record of
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

        private func integer(_ query: borrowing RawQuery, _ index: Int32) {
            guard !query.isNull(index) else {
                buffer.append(0)
                return
            }
            buffer.append(1)
            withUnsafeBytes(of: query.int64(index).bigEndian) { buffer += $0 }
        }

        private func text(_ query: borrowing RawQuery, _ index: Int32) {
            guard !query.isNull(index) else {
                buffer.append(0)
                return
            }
            buffer.append(3)
            query.withText(index) { bytes in
                withUnsafeBytes(of: UInt32(bytes.count).bigEndian) { buffer += $0 }
                buffer += bytes
            }
        }

        /// Whether the current row of a query selecting, from column `first` on, `id, subject_id, purpose, state, time,
        /// source, notice_version, evidence_ref, expires_at, recorded_at, binding` carries its binding.
        func consentMatches(_ query: borrowing RawQuery, from first: Int32) -> Bool {
            buffer.removeAll(keepingCapacity: true)
            digest.removeAll(keepingCapacity: true)
            integer(query, first)
            integer(query, first + 1)
            text(query, first + 2)
            text(query, first + 3)
            integer(query, first + 4)
            text(query, first + 5)
            text(query, first + 6)
            text(query, first + 7)
            integer(query, first + 8)
            integer(query, first + 9)
            buffer.withUnsafeBytes { consentHasher.append($0, length: RecordBinding.length, to: &digest) }
            return query.blobEquals(first + 10, digest)
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

    static let tokenColumns = "id, name, role, secret_hash, expires_at, revoked_at, binding"

    /// The binding a token record should carry.
    static func token(_ binder: BlindIndexer, record: TokenRecord) -> [UInt8] {
        token(
            binder, id: record.id, name: record.name, role: record.role, secretHash: record.secretHash, expiresAt: record.expiresAt,
            revokedAt: record.revokedAt)
    }

    /// The binding a token row (selected with ``tokenColumns``) should carry.
    static func token(_ binder: BlindIndexer, row: Row) -> [UInt8] {
        token(binder, id: row[0], name: row[1], role: row[2], secretHash: [UInt8](row[3] as Data), expiresAt: row[4], revokedAt: row[5])
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

    static let consentColumns = "id, subject_id, purpose, state, time, source, notice_version, evidence_ref, expires_at, recorded_at, binding"
    static let flagColumns = "id, subject_id, flag, purpose, value, time, source, recorded_at, binding"

    /// The binding a consent row (selected with ``consentColumns``) should carry.
    static func consent(_ binder: BlindIndexer, row: Row) -> [UInt8] {
        consent(
            binder, id: row[0], subject: row[1], purpose: row[2], state: row[3], time: row[4], source: row[5], noticeVersion: row[6],
            evidence: row[7], expiresAt: row[8], recordedAt: row[9])
    }

    /// The binding a flag row (selected with ``flagColumns``) should carry.
    static func flag(_ binder: BlindIndexer, row: Row) -> [UInt8] {
        flag(binder, id: row[0], subject: row[1], flag: row[2], purpose: row[3], value: row[4], time: row[5], source: row[6], recordedAt: row[7])
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
        let done = "SELECT count(*) FROM vault_meta WHERE key IN ('record_bindings', 'ledger_heads')"
        do {
            // A read first: every open passes here, and taking the write lock each time would queue `status` behind a
            // busy server.
            guard try db.read({ try Int.fetchOne($0, sql: done) }) != 2 else { return }
            try db.write { db in
                try fillLedgerHeads(db)
                guard try String.fetchOne(db, sql: "SELECT value FROM vault_meta WHERE key = 'record_bindings'") == nil else { return }
                try db.execute(sql: "INSERT INTO vault_meta (key, value) VALUES ('record_bindings', '1')")
                for table in ["identity", "shared_identity"] {
                    let rows = try Row.fetchAll(db, sql: "SELECT hash, kind, subject_id FROM \(table) WHERE binding IS NULL")
                    for row in rows {
                        guard let kind = IdentityKind(rawValue: row[1]) else { continue }
                        let hash = [UInt8](row[0] as Data)
                        let binding = RecordBinding.identity(binder, hash: hash, kind: kind, subject: SubjectID(rawValue: row[2]))
                        try db.execute(
                            sql: "UPDATE \(table) SET binding = ? WHERE hash = ? AND subject_id = ?", arguments: [Data(binding), Data(hash), row[2]])
                    }
                }
                for row in try Row.fetchAll(db, sql: "SELECT \(RecordBinding.consentColumns) FROM consent_record WHERE binding IS NULL") {
                    try db.execute(
                        sql: "UPDATE consent_record SET binding = ? WHERE id = ?", arguments: [Data(RecordBinding.consent(binder, row: row)), row[0]])
                }
                for row in try Row.fetchAll(db, sql: "SELECT \(RecordBinding.tokenColumns) FROM api_token WHERE binding IS NULL") {
                    try db.execute(
                        sql: "UPDATE api_token SET binding = ? WHERE id = ?", arguments: [Data(RecordBinding.token(binder, row: row)), row[0]])
                }
                for row in try Row.fetchAll(db, sql: "SELECT \(RecordBinding.flagColumns) FROM subject_flag WHERE binding IS NULL") {
                    try db.execute(
                        sql: "UPDATE subject_flag SET binding = ? WHERE id = ?", arguments: [Data(RecordBinding.flag(binder, row: row)), row[0]])
                }
            }
        } catch {
            throw Self.storageError(error, "bind the identity and ledger rows written before schema v13")
        }
    }

    /// Gives every subject of a vault from before ledger heads (schema v14) the head of the ledger it has, once, as
    /// ``bindUnboundRecords()`` does for bindings: from then on a subject without a head was changed in the file.
    private func fillLedgerHeads(_ db: Database) throws {
        guard try String.fetchOne(db, sql: "SELECT value FROM vault_meta WHERE key = 'ledger_heads'") == nil else { return }
        try db.execute(sql: "INSERT INTO vault_meta (key, value) VALUES ('ledger_heads', '1')")
        let rows = try Row.fetchAll(db, sql: Self.ledgerCountsSQL + " WHERE s.ledger_head IS NULL")
        for row in rows {
            let head = RecordBinding.LedgerHead(consents: row[2], lastConsent: row[3], flags: row[4], lastFlag: row[5])
            try db.execute(
                sql: "UPDATE subject SET ledger_head = ? WHERE id = ?",
                arguments: [Data(RecordBinding.sealHead(keys.recordBinding, subject: row[0], head)), row[0]])
        }
    }

    /// Per subject: id, stored head, and the count and newest id of its consent and flag records.
    /// One grouped pass over each ledger, rather than a count and a maximum looked up apart for every subject.
    private static let ledgerCountsSQL = """
        SELECT s.id, s.ledger_head, coalesce(c.n, 0), coalesce(c.newest, 0), coalesce(f.n, 0), coalesce(f.newest, 0)
        FROM subject s
        LEFT JOIN (SELECT subject_id, count(*) AS n, max(id) AS newest FROM consent_record GROUP BY subject_id) c ON c.subject_id = s.id
        LEFT JOIN (SELECT subject_id, count(*) AS n, max(id) AS newest FROM subject_flag GROUP BY subject_id) f ON f.subject_id = s.id
        """

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
        let rows = try Row.fetchCursor(db, sql: Self.ledgerCountsSQL)
        while let row = try rows.next() {
            let actual = RecordBinding.LedgerHead(consents: row[2], lastConsent: row[3], flags: row[4], lastFlag: row[5])
            if RecordBinding.openHead(binder, subject: row[0], row[1]) != actual { bad += 1 }
        }
        return bad
    }

    /// Rows whose binding does not verify, per table (for `consentry check`): moved, edited or forged in the file.
    func unboundRecords(_ db: Database) throws -> [String: Int] {
        let binder = keys.recordBinding
        var bad: [String: Int] = [:]
        for table in ["identity", "shared_identity"] {
            let rows = try Row.fetchCursor(db, sql: "SELECT hash, kind, subject_id, binding FROM \(table)")
            while let row = try rows.next() {
                let kind = IdentityKind(rawValue: row[1])
                let ok =
                    kind.map {
                        RecordBinding.matches(
                            row[3], RecordBinding.identity(binder, hash: [UInt8](row[0] as Data), kind: $0, subject: SubjectID(rawValue: row[2])))
                    } ?? false
                if !ok { bad[table, default: 0] += 1 }
            }
        }
        let consent = try Row.fetchCursor(db, sql: "SELECT \(RecordBinding.consentColumns) FROM consent_record")
        while let row = try consent.next() {
            if !RecordBinding.matches(row[10], RecordBinding.consent(binder, row: row)) { bad["consent_record", default: 0] += 1 }
        }
        let flags = try Row.fetchCursor(db, sql: "SELECT \(RecordBinding.flagColumns) FROM subject_flag")
        while let row = try flags.next() {
            if !RecordBinding.matches(row[8], RecordBinding.flag(binder, row: row)) { bad["subject_flag", default: 0] += 1 }
        }
        let tokens = try Row.fetchCursor(db, sql: "SELECT \(RecordBinding.tokenColumns) FROM api_token")
        while let row = try tokens.next() {
            if !RecordBinding.matches(row[6], RecordBinding.token(binder, row: row)) { bad["api_token", default: 0] += 1 }
        }
        return bad
    }
}
