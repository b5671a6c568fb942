import Foundation
import GRDB

/// The SQLite store's record counts and metadata (``StoreCensus``).
enum SQLiteCensus {
    static func census(_ db: Database) throws -> StoreCensus {
        func count(_ table: String) throws -> Int { try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)") ?? 0 }
        return StoreCensus(
            subjects: try count("subject"), identities: try count("identity") + count("shared_identity"), events: try count("event"),
            consentRecords: try count("consent_record"), derivedRecords: try count("derived"), keks: try count("kek"),
            createdAt: try String.fetchOne(db, sql: "SELECT value FROM vault_meta WHERE key = 'created_at'").flatMap(Int64.init),
            schemaVersion: try String.fetchOne(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid DESC LIMIT 1"))
    }
}
