import Foundation
import GRDB

/// API tokens in the SQLite store: `api_token`.
enum SQLiteTokenRows {
    private static let columns = "id, name, role, secret_hash, created_at, expires_at, revoked_at, last_used_at, binding"

    static func insert(_ token: TokenRecord, _ db: Database) throws {
        try db.execute(
            sql: "INSERT INTO api_token (\(columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            arguments: [
                token.id, token.name, token.role, Data(token.secretHash), token.createdAt, token.expiresAt, token.revokedAt, token.lastUsedAt,
                token.binding.map { Data($0) },
            ])
    }

    /// The token `id`, or nil; with `activeOnly`, nil for a revoked one too.
    static func token(_ id: String, activeOnly: Bool, _ db: Database) throws -> TokenRecord? {
        try Row.fetchOne(
            db, sql: "SELECT \(columns) FROM api_token WHERE id = ?\(activeOnly ? " AND revoked_at IS NULL" : "")", arguments: [id]
        ).map(record)
    }

    /// Every token, oldest first.
    static func all(_ db: Database) throws -> [TokenRecord] {
        try Row.fetchAll(db, sql: "SELECT \(columns) FROM api_token ORDER BY created_at, id").map(record)
    }

    static func revoke(_ id: String, at time: Int64, binding: [UInt8], _ db: Database) throws {
        try db.execute(sql: "UPDATE api_token SET revoked_at = ?, binding = ? WHERE id = ?", arguments: [time, Data(binding), id])
    }

    static func recordUse(_ id: String, at time: Int64, _ db: Database) throws {
        try db.execute(sql: "UPDATE api_token SET last_used_at = ? WHERE id = ?", arguments: [time, id])
    }

    private static func record(_ row: Row) -> TokenRecord {
        TokenRecord(
            id: row["id"], name: row["name"], role: row["role"], secretHash: [UInt8](row["secret_hash"] as Data), createdAt: row["created_at"],
            expiresAt: row["expires_at"], revokedAt: row["revoked_at"], lastUsedAt: row["last_used_at"],
            binding: (row["binding"] as Data?).map { [UInt8]($0) })
    }
}
