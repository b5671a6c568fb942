import ConsentryCore
import Foundation
import GRDB

/// The catalog's rows in the SQLite store: `catalog`, one row per version of a definition.
enum SQLiteCatalogRows {
    private static let columns = "kind, name, version, purpose, role, body, defined_by, defined_at"

    /// The newest version of `name` of `kind`, or nil.
    static func latest(_ kind: CatalogKind, _ name: String, _ db: Database) throws -> CatalogEntry? {
        try Row.fetchOne(
            db, sql: "SELECT \(columns) FROM catalog WHERE kind = ? AND name = ? ORDER BY version DESC LIMIT 1",
            arguments: [kind.rawValue, name]
        ).map(entry)
    }

    /// Every definition of `kind` by name: the newest version of each, or every version newest first within a name.
    static func all(_ kind: CatalogKind, allVersions: Bool, _ db: Database) throws -> [CatalogEntry] {
        let sql =
            allVersions
            ? "SELECT \(columns) FROM catalog WHERE kind = ? ORDER BY name, version DESC"
            : """
            SELECT \(columns) FROM catalog c WHERE kind = ?
                AND version = (SELECT max(version) FROM catalog WHERE kind = c.kind AND name = c.name) ORDER BY name
            """
        return try Row.fetchAll(db, sql: sql, arguments: [kind.rawValue]).map(entry)
    }

    /// Inserts a version; the primary key (kind, name, version) refuses a version stored already.
    static func insert(_ entry: CatalogEntry, _ db: Database) throws {
        try db.execute(
            sql: "INSERT INTO catalog (\(columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            arguments: [
                entry.kind.rawValue, entry.name, entry.version, entry.purpose.rawValue, entry.role?.rawValue,
                String(decoding: entry.body, as: UTF8.self), entry.definedBy, entry.definedAt,
            ])
    }

    private static func entry(_ row: Row) throws -> CatalogEntry {
        let kind: String = row["kind"], name: String = row["name"]
        guard let purpose = Purpose(rawValue: row["purpose"]) else {
            throw GateError(.integrity, "the stored \(kind) `\(name)` names an unknown purpose; define it again")
        }
        var role: Role?
        if let raw = row["role"] as String? {
            guard let known = Role(rawValue: raw) else {
                throw GateError(.integrity, "the stored \(kind) `\(name)` names an unknown role; define it again")
            }
            role = known
        }
        return CatalogEntry(
            kind: CatalogKind(rawValue: kind), name: name, version: row["version"], purpose: purpose, role: role,
            body: Data((row["body"] as String).utf8), definedBy: row["defined_by"], definedAt: row["defined_at"])
    }
}
