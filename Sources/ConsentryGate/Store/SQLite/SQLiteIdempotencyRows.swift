import Foundation
import GRDB

/// Recorded idempotent responses in the SQLite store: `idempotency_key`.
enum SQLiteIdempotencyRows {
    static func record(_ keyHash: Data, newerThan time: Int64, _ db: Database) throws -> IdempotencyRecord? {
        try Row.fetchOne(
            db, sql: "SELECT key_hash, request_hash, status, response, created_at FROM idempotency_key WHERE key_hash = ? AND created_at > ?",
            arguments: [keyHash, time]
        ).map { row in
            IdempotencyRecord(keyHash: row[0], requestHash: row[1], status: row[2], response: row[3], createdAt: row[4])
        }
    }

    static func store(_ record: IdempotencyRecord, forgettingBefore oldest: Int64, _ db: Database) throws {
        try db.execute(sql: "DELETE FROM idempotency_key WHERE created_at <= ?", arguments: [oldest])
        try db.execute(
            sql: "INSERT OR REPLACE INTO idempotency_key (key_hash, request_hash, status, response, created_at) VALUES (?, ?, ?, ?, ?)",
            arguments: [record.keyHash, record.requestHash, record.status, record.response, record.createdAt])
    }
}
