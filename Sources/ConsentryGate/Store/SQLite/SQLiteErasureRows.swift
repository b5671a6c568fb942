import Foundation
import GRDB

/// What an erasure does to the SQLite store: the subject's row and everything that references it, the suppression
/// list, and the records kept for a legal obligation.
enum SQLiteErasureRows {
    /// Tables whose rows belong to a subject; deleting the subject row cascades to them.
    static let subjectTables = ["identity", "shared_identity", "event", "consent_record", "subject_flag", "derived", "trigger_queue", "experiment_outcome"]

    /// Deletes `subject` and, by the cascade, every row that references it; unlinks its requests. Returns the rows
    /// deleted per table (`subject` for the row itself) and the ids of the requests that named it.
    static func erase(_ subject: Int64, _ db: Database) throws -> (deleted: [String: Int], requests: [String]) {
        var deleted: [String: Int] = [:]
        for table in subjectTables {
            deleted[table] = try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table) WHERE subject_id = ?", arguments: [subject]) ?? 0
        }
        try db.execute(sql: "DELETE FROM subject WHERE id = ?", arguments: [subject])
        deleted["subject"] = db.changesCount
        return (deleted, try SQLiteRequestRows.detach(subject: subject, db))
    }

    /// The tables that still hold a row referencing `subject` (`subject` for its own row), for `verify-erasure`.
    static func references(to subject: Int64, _ db: Database) throws -> [String] {
        var referencing: [String] = []
        for table in subjectTables + ["dsr_request"] {
            if try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table) WHERE subject_id = ?", arguments: [subject]) ?? 0 > 0 {
                referencing.append(table)
            }
        }
        if try Int.fetchOne(db, sql: "SELECT count(*) FROM subject WHERE id = ?", arguments: [subject]) ?? 0 > 0 { referencing.append("subject") }
        return referencing
    }

    /// Enters a keyed hash of an erased identifier on the suppression list (once).
    static func suppress(_ hash: Data, kind: String, at time: Int64, _ db: Database) throws {
        try db.execute(sql: "INSERT OR IGNORE INTO suppression (hash, kind, created_at) VALUES (?, ?, ?)", arguments: [hash, kind, time])
    }

    /// The subject's purchases, oldest first.
    static func purchases(of subject: Int64, _ db: Database) throws -> [PurchaseRecord] {
        try Row.fetchAll(
            db, sql: "SELECT time, item_id, category, amount, currency FROM event WHERE subject_id = ? AND type = 'purchase' ORDER BY time",
            arguments: [subject]
        ).map { PurchaseRecord(time: $0[0], itemID: $0[1], category: $0[2], amount: $0[3], currency: $0[4]) }
    }

    static func retain(_ record: RetainedRecord, _ db: Database) throws {
        try db.cachedStatement(sql: "INSERT INTO retained_record (kind, reason, retain_until, data, created_at) VALUES (?, ?, ?, ?, ?)")
            .execute(arguments: [record.kind, record.reason, record.retainUntil, record.data, record.createdAt])
    }
}
