import ConsentryAudit
import ConsentryCore
import ConsentryPolicy
import Foundation

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
    public func status() async throws(GateError) -> VaultStatus {
        let census: StoreCensus
        do { census = try await store.census() } catch { throw Self.storageError(error, "read the vault status") }
        return VaultStatus(
            path: directory.path, store: store.description, erasureGuarantee: store.erasureGuarantee.summary, subjects: census.subjects,
            identities: census.identities, events: census.events, consentRecords: census.consentRecords, derivedRecords: census.derivedRecords,
            keyVersion: Int(keys.activeVersion), keyRotationPending: census.keks > 1, schemaVersion: census.schemaVersion ?? "none",
            policyVersion: policyVersion, declaredFields: schema.fields.count, createdAt: census.createdAt.map { Normalize.formatTimestamp(millis: $0) },
            newestCheckpoint: checkpointFile.newest().map { "\($0.sequence):\($0.hash)" }, witnessFiles: witnessFiles.map(\.url.path))
    }
}
