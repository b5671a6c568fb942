import Foundation
import GRDB

/// The SQLite store's part of record bindings: the one-time binding of rows written before bindings and ledger heads
/// existed (schema v13, v14), and the walks of every bound row that `consentry check` verifies.
enum SQLiteBindingRows {
    /// Whether the one-time step `key` (`record_bindings`, `ledger_heads`) was done.
    static func isDone(_ key: String, _ db: Database) throws -> Bool {
        try String.fetchOne(db, sql: "SELECT value FROM vault_meta WHERE key = ?", arguments: [key]) != nil
    }

    /// Records that the one-time step `key` was done.
    static func markDone(_ key: String, _ db: Database) throws {
        try db.execute(sql: "INSERT INTO vault_meta (key, value) VALUES (?, '1')", arguments: [key])
    }

    /// One identity-index row.
    struct IdentityRow {
        /// `identity` (unique) or `shared_identity`.
        let table: String
        let hash: [UInt8]
        let kind: String
        let subjectID: Int64
        let binding: Data?
    }

    /// Calls `body` with each identity-index row (unique and shared), or only those without a binding.
    static func forEachIdentity(unboundOnly: Bool, _ db: Database, _ body: (IdentityRow) throws -> Void) throws {
        for table in ["identity", "shared_identity"] {
            let rows = try Row.fetchCursor(db, sql: "SELECT hash, kind, subject_id, binding FROM \(table)" + (unboundOnly ? " WHERE binding IS NULL" : ""))
            while let row = try rows.next() {
                try body(IdentityRow(table: table, hash: [UInt8](row[0] as Data), kind: row[1], subjectID: row[2], binding: row[3]))
            }
        }
    }

    static func setBinding(of row: IdentityRow, _ binding: [UInt8], _ db: Database) throws {
        try db.execute(
            sql: "UPDATE \(row.table) SET binding = ? WHERE hash = ? AND subject_id = ?", arguments: [Data(binding), Data(row.hash), row.subjectID])
    }

    /// Calls `body` with each consent record, or only those without a binding (whose ``ConsentRecordRow/binding`` is
    /// then empty).
    static func forEachConsent(unboundOnly: Bool, _ db: Database, _ body: (ConsentRecordRow) throws -> Void) throws {
        let rows = try Row.fetchCursor(
            db,
            sql: "SELECT id, subject_id, purpose, state, time, source, notice_version, evidence_ref, expires_at, recorded_at, binding FROM consent_record"
                + (unboundOnly ? " WHERE binding IS NULL" : ""))
        while let row = try rows.next() {
            try body(
                ConsentRecordRow(
                    id: row[0], subjectID: row[1], purpose: row[2], state: row[3], time: row[4], source: row[5], noticeVersion: row[6],
                    evidence: row[7], expiresAt: row[8], recordedAt: row[9], binding: (row[10] as Data?).map { [UInt8]($0) } ?? []))
        }
    }

    static func setConsentBinding(_ id: Int64, _ binding: [UInt8], _ db: Database) throws {
        try db.execute(sql: "UPDATE consent_record SET binding = ? WHERE id = ?", arguments: [Data(binding), id])
    }

    /// Calls `body` with each flag record, or only those without a binding.
    static func forEachFlag(unboundOnly: Bool, _ db: Database, _ body: (FlagRecordRow) throws -> Void) throws {
        let rows = try Row.fetchCursor(
            db,
            sql: "SELECT id, subject_id, flag, purpose, value, time, source, recorded_at, binding FROM subject_flag"
                + (unboundOnly ? " WHERE binding IS NULL" : ""))
        while let row = try rows.next() {
            try body(
                FlagRecordRow(
                    id: row[0], subjectID: row[1], flag: row[2], purpose: row[3], value: row[4], time: row[5], source: row[6], recordedAt: row[7],
                    binding: (row[8] as Data?).map { [UInt8]($0) } ?? []))
        }
    }

    static func setFlagBinding(_ id: Int64, _ binding: [UInt8], _ db: Database) throws {
        try db.execute(sql: "UPDATE subject_flag SET binding = ? WHERE id = ?", arguments: [Data(binding), id])
    }

    static func setTokenBinding(_ id: String, _ binding: [UInt8], _ db: Database) throws {
        try db.execute(sql: "UPDATE api_token SET binding = ? WHERE id = ?", arguments: [Data(binding), id])
    }

    /// Calls `body` with each subject's id, stored ledger head, and the count and newest id of its consent and flag
    /// records; or only of the subjects without a head. One grouped pass over each ledger, rather than a count and a
    /// maximum looked up apart for every subject.
    static func forEachLedgerCount(
        missingHeadOnly: Bool, _ db: Database, _ body: (Int64, Data?, (consents: Int64, lastConsent: Int64, flags: Int64, lastFlag: Int64)) throws -> Void
    ) throws {
        let rows = try Row.fetchCursor(
            db,
            sql: """
                SELECT s.id, s.ledger_head, coalesce(c.n, 0), coalesce(c.newest, 0), coalesce(f.n, 0), coalesce(f.newest, 0)
                FROM subject s
                LEFT JOIN (SELECT subject_id, count(*) AS n, max(id) AS newest FROM consent_record GROUP BY subject_id) c ON c.subject_id = s.id
                LEFT JOIN (SELECT subject_id, count(*) AS n, max(id) AS newest FROM subject_flag GROUP BY subject_id) f ON f.subject_id = s.id
                """ + (missingHeadOnly ? " WHERE s.ledger_head IS NULL" : ""))
        while let row = try rows.next() { try body(row[0], row[1], (row[2], row[3], row[4], row[5])) }
    }
}
