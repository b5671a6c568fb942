import ConsentryAudit
import Foundation

/// Where a vault's records live, as the gate sees it.
///
/// A store holds what the gate hands it and hands it back: ciphertext (sealed fields and derived values), data keys
/// wrapped under a key-encryption key, keyed hashes (blind indexes, pseudonyms, record bindings) and non-personal
/// metadata (ids, times, states, the audit chain). It never holds a key: keys, sealing and opening stay in the gate, so a
/// copy of a store's files or tables without the master key reveals no personal data.
///
/// Transaction bodies are `async`, so that a store reached over a network (PostgreSQL) implements the same protocol as
/// the embedded SQLite file. A body must not start another write of the same store: it would wait for itself.
protocol VaultStore: Sendable {
    /// The store's write transaction, in which the gate's operations read and write.
    associatedtype Transaction: StoreTransaction

    /// The kind of store and where it is, for people (`consentry status`); never a password or a key.
    var description: String { get }

    /// What this store does with the bytes of the records an erasure deletes.
    var erasureGuarantee: ErasureGuarantee { get }

    /// Runs `body` in one write transaction, exclusive of every other write to this store: committed when `body`
    /// returns, rolled back when it throws. A failed commit throws and changes nothing.
    func write<T>(_ body: (Transaction) async throws -> T) async throws -> T

    /// Makes the bytes of rows deleted by committed transactions unrecoverable from the store's own files (for SQLite:
    /// the write-ahead log is truncated, so no old copy of an overwritten page stays in it). Called after erasure and
    /// rectification commit.
    func purgeDeleted() async throws

    /// Fails when the store can no longer be used safely (its files were removed or replaced while it was open); once it
    /// failed it fails for good.
    func checkIntegrityOfFiles() throws(GateError)

    /// The fault ``checkIntegrityOfFiles()`` found earlier, without looking again: cheap enough for every request.
    var knownFault: GateError? { get }

    /// The catalog's definitions of `kind`, by name: the newest version of each, or with `allVersions` every version,
    /// newest first within a name. Read from the last commit, outside any write.
    func catalog(_ kind: CatalogKind, allVersions: Bool) async throws -> [CatalogEntry]

    /// The newest version of the definition `name` of `kind`, or nil. Read from the last commit, outside any write.
    func catalogEntry(_ kind: CatalogKind, named name: String) async throws -> CatalogEntry?

    /// Every API token, oldest first. Read from the last commit.
    func tokens() async throws -> [TokenRecord]

    /// The API token `id`, revoked or not, or nil. Read from the last commit.
    func token(_ id: String) async throws -> TokenRecord?

    /// Records when token `id` was last used: a write of its own, outside any operation (the time decides nothing).
    func recordTokenUse(_ id: String, at time: Int64) async throws

    /// The response recorded for idempotency key hash `keyHash` after `time`, or nil. Read from the last commit.
    func idempotencyRecord(_ keyHash: Data, newerThan time: Int64) async throws -> IdempotencyRecord?

    /// Records a response (replacing one for the same key), and forgets those recorded at or before `oldest`: a write
    /// of its own, after the request it answers committed.
    func storeIdempotencyRecord(_ record: IdempotencyRecord, forgettingBefore oldest: Int64) async throws

    /// Data-subject requests, oldest first, or those in `status` only. Read from the last commit.
    func requests(status: String?) async throws -> [RequestRow]

    /// Request `id`, or nil. Read from the last commit.
    func request(_ id: String) async throws -> RequestRow?

    /// Trigger queue entry `id`, or nil. Read from the last commit.
    func queuedTrigger(_ id: Int64) async throws -> QueuedTriggerRow?

    /// How many records the store holds, when the vault was created and the newest schema migration.
    func census() async throws -> StoreCensus
}

/// One write transaction of a store. Its operations read and write records the gate has sealed or hashed already.
protocol StoreTransaction: AnyObject {
    /// The sequence and hash of the audit log's last entry (0 and the genesis hash for an empty log). A store shared by
    /// several servers locks the head here, so that the entry chained onto it is the next one committed.
    func auditHead() async throws -> (sequence: Int64, hash: String)

    /// Appends one chained entry (its row as ``AuditRow``) and, when it names a subject set, the set's pseudonyms.
    func insertAudit(_ row: AuditRow) async throws

    /// The newest version of the definition `name` of `kind` as this transaction sees it, or nil.
    func catalogEntry(_ kind: CatalogKind, named name: String) async throws -> CatalogEntry?

    /// Adds a version of a definition. Its version must be one more than the newest stored (1 for a new name): a
    /// version already stored fails the transaction rather than replace it.
    func insertCatalogEntry(_ entry: CatalogEntry) async throws

    /// Adds an API token; an id stored already fails the transaction.
    func insertToken(_ token: TokenRecord) async throws

    /// The API token `id` unless it is revoked, as this transaction sees it.
    func activeToken(_ id: String) async throws -> TokenRecord?

    /// Marks token `id` revoked at `time`, with the binding that covers the revocation.
    func revokeToken(_ id: String, at time: Int64, binding: [UInt8]) async throws

    /// Request `id` as this transaction sees it, or nil.
    func request(_ id: String) async throws -> RequestRow?

    /// The id of the request opened with idempotency key `key`, or nil.
    func requestID(idempotencyKey key: String) async throws -> String?

    /// Adds a request; an id or idempotency key stored already fails the transaction.
    func insertRequest(_ request: RequestRow) async throws

    /// Replaces the stored request `request.id` with `request`.
    func updateRequest(_ request: RequestRow) async throws

    /// Deletes the sealed identifiers of requests closed before `identifierCutoff` and the requests closed before
    /// `recordCutoff`: how many lost their identifiers, and the ids of those deleted.
    func expireRequests(identifiersClosedBefore identifierCutoff: Int64, recordsClosedBefore recordCutoff: Int64, now: Int64) async throws
        -> (shredded: Int, deleted: [String])

    /// Whether an occurrence (its keyed hash) is queued already.
    func triggerOccurrenceQueued(_ occurrence: Data) async throws -> Bool

    /// Queues a fired trigger (its `id` and `acknowledgedAt` are the store's to set).
    func enqueueTrigger(_ entry: QueuedTriggerRow) async throws

    /// The oldest `limit` unacknowledged entries of `trigger`, each with its subject's keys.
    func pendingTriggers(_ trigger: String, limit: Int) async throws -> [(QueuedTriggerRow, SubjectKeys)]

    /// The trigger queue entries of one subject, oldest first (for its export).
    func triggerEntries(ofSubject subject: Int64) async throws -> [QueuedTriggerRow]

    /// Marks entry `id` handled at `time`; false when it was handled already or is gone.
    func acknowledgeTrigger(_ id: Int64, at time: Int64) async throws -> Bool

    /// Records an experiment outcome; false when one with its key is recorded already.
    func recordOutcome(_ outcome: OutcomeRow) async throws -> Bool

    /// Every outcome of `experiment`, oldest first.
    func outcomes(ofExperiment experiment: String) async throws -> [OutcomeRow]

    /// Whether `subject` has a derived value `kind/name`.
    func derivedExists(subject: Int64, kind: String, name: String) async throws -> Bool

    /// Every stored value of `kind/name`, each with its subject's keys.
    func derivedValues(kind: String, name: String) async throws -> [SealedDerived]

    /// Every key-encryption key (wrapped), by version.
    func keks() async throws -> [KEKRecord]

    /// Adds a key-encryption key; a version stored already fails the transaction.
    func insertKEK(_ kek: KEKRecord) async throws

    /// Marks the active key-encryption key retiring and makes `next` the active one.
    func rotateKEK(to next: KEKRecord) async throws

    /// Deletes the retiring key-encryption keys (no data key may still use them: the caller checked).
    func deleteRetiringKEKs() async throws

    /// The wrapped data keys of the `limit` subjects after subject `after`, by id.
    func dataKeys(after: Int64, limit: Int) async throws -> [WrappedDataKey]

    /// Replaces a subject's wrapped data key (and the KEK version it is wrapped under).
    func rewrapDataKey(_ key: WrappedDataKey) async throws

    /// How many data keys are wrapped under a KEK other than `version`.
    func dataKeysNotUnder(_ version: UInt32) async throws -> Int

    /// Deletes `subject` and every record that references it (its wrapped data key and pseudonym secret go with its
    /// row), and unlinks the requests that named it: the records deleted per kind, and those requests' ids.
    func eraseSubject(_ subject: Int64) async throws -> (deleted: [String: Int], requests: [String])

    /// Enters a keyed hash of an erased identifier on the suppression list (once).
    func suppress(_ hash: Data, kind: String, at time: Int64) async throws

    /// The subject's purchases, oldest first (what a retention rule may keep).
    func purchases(of subject: Int64) async throws -> [PurchaseRecord]

    /// Keeps a record for a legal obligation, with no link to any subject.
    func retain(_ record: RetainedRecord) async throws
}

/// What a store keeps of one audit entry: the entry's columns and the pseudonyms of its subject set.
struct AuditRow: Sendable {
    /// The chained entry.
    let entry: AuditEntry
    /// Its list and map columns as the chain hashed them.
    let columns: AuditColumns
    /// The subject set's pseudonyms, concatenated (16 bytes each), or empty.
    let subjectSet: [UInt8]
}

/// What a store guarantees about the bytes of the records an erasure deletes, and so which checks `verify-erasure` can
/// make of it.
public struct ErasureGuarantee: Sendable, Codable, Equatable {
    /// The guarantee, in a sentence (`consentry status`, the erasure verification's report).
    public let summary: String
    /// Whether the store's files are on this host, so that `verify-erasure` can scan their raw bytes for the erased
    /// identifiers. A networked store's pages are on its server; the scan does not apply there.
    public let rawFilesScannable: Bool

    /// The SQLite store: `secure_delete` overwrites freed content with zeros, and the write-ahead log is truncated
    /// after each erasure commits, so that no old copy of a page stays in it.
    static let sqlite = ErasureGuarantee(
        summary: "secure delete (freed pages overwritten with zeros) and the write-ahead log truncated after each erasure",
        rawFilesScannable: true)
}
