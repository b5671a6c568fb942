import ConsentryCore
import Foundation
import GRDB

/// The statements of the gated read, the scan and the explanation in the SQLite store: whether a subject exists, its
/// pseudonym secret, the walk of every subject's pseudonym secret that a scan decides over, the behavioral events a
/// scan hands out, and the derived values a read releases.
enum SQLiteReadRows {
    /// Whether subject `id` has a row.
    static func subjectExists(_ id: Int64, _ db: Database) throws -> Bool {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT id FROM subject WHERE id = ?"), arguments: [id]) != nil
    }

    /// The secret behind the subject's audit pseudonym, or nil.
    static func auditSecret(of subject: Int64, _ db: Database) throws -> Data? {
        try Data.fetchOne(db.cachedStatement(sql: "SELECT audit_secret FROM subject WHERE id = ?"), arguments: [subject])
    }

    /// Calls `body` with the id and pseudonym secret of every subject, or of those in `only` (ids ascending), in id
    /// order. The secret's bytes are SQLite's, valid during the call only. Every subject is walked through the narrow
    /// index on the secret rather than the wide rows.
    static func forEachPseudonymSecret(only: [Int64]?, _ db: Database, _ body: (Int64, UnsafeRawBufferPointer) throws -> Void) throws {
        if let only {
            // A few subjects (an incremental update): one look-up each, through one cached statement.
            let query = try RawQuery(db, "SELECT id, audit_secret FROM subject WHERE id = ?")
            for id in only {
                query.reset()
                query.bind(1, id)
                if try query.step() { try query.withBytes(1) { try body(query.int64(0), $0) } }
            }
            return
        }
        let query = try RawQuery(db, "SELECT id, audit_secret FROM subject INDEXED BY subject_audit_secret ORDER BY id")
        while try query.step() {
            try query.withBytes(1) { try body(query.int64(0), $0) }
        }
    }

    /// Calls `body` with each behavioral event since `since` (ms) of the subjects `low…high`, by subject, time and id.
    /// Events of a type this build does not know are skipped.
    static func forEachEvent(
        subjects low: Int64, _ high: Int64, since: Int64, _ db: Database, _ body: (Int64, BehaviorEvent) throws -> Void
    ) throws {
        let rows = try Row.fetchCursor(
            db.cachedStatement(
                sql: """
                    SELECT subject_id, type, time, item_id, category, amount, currency, campaign_id FROM event
                    WHERE subject_id BETWEEN ? AND ? AND time >= ? ORDER BY subject_id, time, id
                    """), arguments: [low, high, since])
        while let row = try rows.next() {
            guard let type = EventType(rawValue: row[1]) else { continue }
            try body(
                row[0],
                BehaviorEvent(type: type, time: row[2], itemID: row[3], category: row[4], amount: row[5], currency: row[6], campaignID: row[7]))
        }
    }

    /// Calls `body` with each derived value (kind, name, sealed bytes valid during the call) of `subject` whose kind is
    /// one of `kinds` and that was computed for `purpose`.
    static func forEachDerived(
        of subject: Int64, purpose: String, kinds: [String], _ db: Database, _ body: (String, String, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        guard !kinds.isEmpty else { return }
        let query = try RawQuery(
            db,
            "SELECT kind, name, sealed FROM derived WHERE subject_id = ? AND purpose = ? AND kind IN (\(kinds.map { _ in "?" }.joined(separator: ", ")))"
        )
        query.bind(1, subject)
        query.bind(2, purpose)
        for (offset, kind) in kinds.enumerated() { query.bind(Int32(offset + 3), kind) }
        while try query.step() {
            try query.withBytes(2) { try body(query.text(0) ?? "", query.text(1) ?? "", $0) }
        }
    }
}
