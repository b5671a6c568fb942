import Foundation
import GRDB

/// Key-encryption keys (`kek`) and subjects' wrapped data keys in the SQLite store.
enum SQLiteKeyRows {
    /// Every KEK, by version.
    static func keks(_ db: Database) throws -> [KEKRecord] {
        try Row.fetchAll(db.cachedStatement(sql: "SELECT version, wrapped, state, created_at FROM kek ORDER BY version")).map { row in
            KEKRecord(
                version: UInt32(truncatingIfNeeded: row[0] as Int64), wrapped: row[1], active: (row[2] as String) == "active", createdAt: row[3])
        }
    }

    static func insert(_ kek: KEKRecord, _ db: Database) throws {
        try db.execute(
            sql: "INSERT INTO kek (version, wrapped, state, created_at) VALUES (?, ?, ?, ?)",
            arguments: [Int64(kek.version), kek.wrapped, kek.active ? "active" : "retiring", kek.createdAt])
    }

    /// Marks the active KEK retiring and installs `next` as the active one.
    static func rotate(to next: KEKRecord, _ db: Database) throws {
        try db.execute(sql: "UPDATE kek SET state = 'retiring' WHERE state = 'active'")
        try insert(next, db)
    }

    static func deleteRetiring(_ db: Database) throws {
        try db.execute(sql: "DELETE FROM kek WHERE state = 'retiring'")
    }

    /// The wrapped data keys of the `limit` subjects after `after`, by id.
    static func dataKeys(after: Int64, limit: Int, _ db: Database) throws -> [WrappedDataKey] {
        try Row.fetchAll(
            db, sql: "SELECT id, kek_version, wrapped_key FROM subject WHERE id > ? ORDER BY id LIMIT ?", arguments: [after, limit]
        ).map { WrappedDataKey(subjectID: $0[0], kekVersion: UInt32(truncatingIfNeeded: $0[1] as Int64), wrappedKey: $0[2]) }
    }

    static func rewrap(_ key: WrappedDataKey, _ db: Database) throws {
        try db.cachedStatement(sql: "UPDATE subject SET kek_version = ?, wrapped_key = ? WHERE id = ?").execute(
            arguments: [Int64(key.kekVersion), key.wrappedKey, key.subjectID])
    }

    static func dataKeysNotUnder(_ version: UInt32, _ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT count(*) FROM subject WHERE kek_version <> ?", arguments: [Int64(version)]) ?? 0
    }

    /// Sets a vault metadata value (`created_at`, `format`) unless one is set.
    static func setMetadata(_ key: String, _ value: String, _ db: Database) throws {
        try db.execute(sql: "INSERT OR IGNORE INTO vault_meta (key, value) VALUES (?, ?)", arguments: [key, value])
    }
}
