import ConsentryAudit
import ConsentryCore
import ConsentryPolicy
import Foundation
import GRDB

/// A summary of a vault without any personal data: counts, key and schema versions.
///
/// The `--json` output of `consentry status` is this structure; its keys are stable.
public struct VaultStatus: Sendable, Codable, Equatable {
    /// The vault directory.
    public var path: String
    /// The store that holds the vault's records, and where (`SQLite file …/vault.sqlite`).
    public var store: String
    /// What the store guarantees about the bytes of erased records.
    public var erasureGuarantee: String
    /// Data subjects held.
    public var subjects: Int
    /// Blind-index entries (e-mail, phone, customer id).
    public var identities: Int
    /// Behavioral events.
    public var events: Int
    /// Consent ledger records.
    public var consentRecords: Int
    /// Derived-data records (segments, scores, recommendations).
    public var derivedRecords: Int
    /// The key-encryption-key version new data keys are wrapped with.
    public var keyVersion: Int
    /// Whether a key rotation was interrupted and still has data keys to re-wrap.
    public var keyRotationPending: Bool
    /// The newest applied database migration.
    public var schemaVersion: String
    /// A hash of the vault's policy files.
    public var policyVersion: String
    /// The fields declared in the vault's field schema.
    public var declaredFields: Int
    /// When the vault was created (RFC 3339).
    public var createdAt: String?
    /// The newest signed audit checkpoint as `SEQUENCE:HASH`: record it outside the vault (a ticket, another host) and
    /// pass it to `audit verify --expect` later, so that a log restored together with its checkpoint file is caught.
    public var newestCheckpoint: String?
    /// The witness files checkpoints are also written to.
    public var witnessFiles: [String]
}

extension Vault {
    /// Counts and versions; reads no personal data.
    public func status() throws(GateError) -> VaultStatus {
        do {
            return try db.read { db in
                func count(_ table: String) throws -> Int { try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)") ?? 0 }
                let created = try String.fetchOne(db, sql: "SELECT value FROM vault_meta WHERE key = 'created_at'").flatMap(Int64.init)
                let migrations = try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid")
                return VaultStatus(
                    path: directory.path, store: store.description, erasureGuarantee: store.erasureGuarantee.summary, subjects: try count("subject"), identities: try count("identity") + count("shared_identity"),
                    events: try count("event"),
                    consentRecords: try count("consent_record"), derivedRecords: try count("derived"), keyVersion: Int(keys.activeVersion),
                    keyRotationPending: try count("kek") > 1, schemaVersion: migrations.last ?? "none", policyVersion: policyVersion,
                    declaredFields: schema.fields.count, createdAt: created.map { Normalize.formatTimestamp(millis: $0) },
                    newestCheckpoint: checkpointFile.newest().map { "\($0.sequence):\($0.hash)" }, witnessFiles: witnessFiles.map(\.url.path))
            }
        } catch {
            throw Self.storageError(error, "read the vault status")
        }
    }
}
