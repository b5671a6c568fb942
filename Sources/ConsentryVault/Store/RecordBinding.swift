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

    private static func field(_ bytes: some Collection<UInt8>, into out: inout [UInt8]) {
        withUnsafeBytes(of: UInt32(bytes.count).bigEndian) { out += $0 }
        out += bytes
    }

    private static func field(_ value: Int64?, into out: inout [UInt8]) {
        guard let value else {
            out.append(0)
            return
        }
        out.append(1)
        withUnsafeBytes(of: value.bigEndian) { out += $0 }
    }

    private static func field(_ text: String?, into out: inout [UInt8]) {
        guard let text else {
            out.append(0)
            return
        }
        out.append(1)
        field(Array(text.utf8), into: &out)
    }

    /// The binding of an identity-index row (`identity` or `shared_identity`).
    static func identity(_ binder: BlindIndexer, hash: some Collection<UInt8>, kind: IdentityKind, subject: SubjectID) -> [UInt8] {
        var bytes: [UInt8] = []
        field(hash, into: &bytes)
        field(kind.rawValue, into: &bytes)
        field(subject.rawValue, into: &bytes)
        return Array(binder.hash(tag: 0x50, bytes: bytes).prefix(length))
    }

    /// The binding of a consent record.
    static func consent(
        _ binder: BlindIndexer, id: Int64, subject: Int64, purpose: String, state: String, time: Int64, source: String, noticeVersion: String?,
        evidence: String?, expiresAt: Int64?, recordedAt: Int64
    ) -> [UInt8] {
        var bytes: [UInt8] = []
        field(id, into: &bytes)
        field(subject, into: &bytes)
        field(purpose, into: &bytes)
        field(state, into: &bytes)
        field(time, into: &bytes)
        field(source, into: &bytes)
        field(noticeVersion, into: &bytes)
        field(evidence, into: &bytes)
        field(expiresAt, into: &bytes)
        field(recordedAt, into: &bytes)
        return Array(binder.hash(tag: 0x51, bytes: bytes).prefix(length))
    }

    /// The binding of a flag record.
    static func flag(
        _ binder: BlindIndexer, id: Int64, subject: Int64, flag: String, purpose: String, value: Int64, time: Int64, source: String,
        recordedAt: Int64
    ) -> [UInt8] {
        var bytes: [UInt8] = []
        field(id, into: &bytes)
        field(subject, into: &bytes)
        field(flag, into: &bytes)
        field(purpose, into: &bytes)
        field(value, into: &bytes)
        field(time, into: &bytes)
        field(source, into: &bytes)
        field(recordedAt, into: &bytes)
        return Array(binder.hash(tag: 0x52, bytes: bytes).prefix(length))
    }

    /// The binding of an API token row: its id, name, role, secret hash, expiry and revocation, so that a role raised,
    /// an expiry lifted or a revocation undone in the file makes the token fail.
    static func token(
        _ binder: BlindIndexer, id: String, name: String, role: String, secretHash: some Collection<UInt8>, expiresAt: Int64?, revokedAt: Int64?
    ) -> [UInt8] {
        var bytes: [UInt8] = []
        field(id, into: &bytes)
        field(name, into: &bytes)
        field(role, into: &bytes)
        field(secretHash, into: &bytes)
        field(expiresAt, into: &bytes)
        field(revokedAt, into: &bytes)
        return Array(binder.hash(tag: 0x53, bytes: bytes).prefix(length))
    }

    static let tokenColumns = "id, name, role, secret_hash, expires_at, revoked_at, binding"

    /// The binding a token row (selected with ``tokenColumns``) should carry.
    static func token(_ binder: BlindIndexer, row: Row) -> [UInt8] {
        token(binder, id: row[0], name: row[1], role: row[2], secretHash: [UInt8](row[3] as Data), expiresAt: row[4], revokedAt: row[5])
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
    func bindUnboundRecords() throws(VaultError) {
        let binder = keys.recordBinding
        do {
            try db.write { db in
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
                    try db.execute(sql: "UPDATE api_token SET binding = ? WHERE id = ?", arguments: [Data(RecordBinding.token(binder, row: row)), row[0]])
                }
                for row in try Row.fetchAll(db, sql: "SELECT \(RecordBinding.flagColumns) FROM subject_flag WHERE binding IS NULL") {
                    try db.execute(sql: "UPDATE subject_flag SET binding = ? WHERE id = ?", arguments: [Data(RecordBinding.flag(binder, row: row)), row[0]])
                }
            }
        } catch {
            throw Self.storageError(error, "bind the identity and ledger rows written before schema v13")
        }
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
                        RecordBinding.matches(row[3], RecordBinding.identity(binder, hash: [UInt8](row[0] as Data), kind: $0, subject: SubjectID(rawValue: row[2])))
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
