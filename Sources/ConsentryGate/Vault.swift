import ConsentryAudit
import ConsentryCore
public import ConsentryCrypto
public import ConsentryPolicy
public import Foundation
import GRDB
import Synchronization

/// An encrypted profile vault: a directory holding `vault.sqlite`, `keys/`, `policies/`, `audit/` and `exports/`.
///
/// Profile values are sealed per subject with the subject's own data key; look-ups go through blind
/// indexes. Plaintext reads are internal to this module: the gate (its only public door to personal
/// data) is built on them, and no other module can reach them.
///
/// ```swift
/// let vault = try Vault.create(at: URL(fileURLWithPath: "vault"), policies: URL(fileURLWithPath: "policies"))
/// let report = try vault.importProfiles(from: URL(fileURLWithPath: "crm.csv"), source: .crm, format: .csv)
/// ```
public final class Vault: Sendable {
    /// The vault directory.
    public let directory: URL
    /// The field schema loaded from the vault's `policies/fields.yaml`.
    public var schema: FieldSchema { policyNow.schema }
    /// A BLAKE2b hash of the vault's policy files; recorded in every audit entry.
    public var policyVersion: String { policyNow.version }
    /// The vault's policy, or why it failed to load; while it fails, the gate denies everything.
    public var policy: Result<Policy, PolicyError> { policyNow.policy }
    /// The loaded policy, or nil when it failed to load (every decision then denies).
    var loadedPolicy: Policy? { policyNow.loaded }
    /// The policy files as last loaded; ``reloadPolicyIfChanged()`` swaps it whole while a server runs.
    private let policyState: Mutex<PolicySnapshot>
    /// Held while the policy files are reloaded, so that two reloads do not audit the same change twice.
    private let policyReload = Mutex<Void>(())
    /// The policy in force now. A decision takes it once and uses it throughout, so that the rules it applies and the
    /// version its audit entry records are the same even while a reload swaps the policy.
    var policyNow: PolicySnapshot { policyState.withLock { $0 } }
    /// The newest checkpoint written (sequence and time), so that cadence is kept across calls.
    let checkpointState = Mutex<(sequence: Int64, time: Int64)>((0, 0))
    /// The newest audit sequence this process appended (a hint for the checkpoint cadence).
    let appendedSequence = Mutex<Int64>(0)
    /// Shares write transactions (and their fsync) between concurrent gated reads.
    let groupCommitter: GroupCommitter
    /// API tokens by id, so that authenticating a request does not read the database each time (see ``HotCache``).
    let tokenCache = HotCache<StoredToken>(ttl: 1)
    /// When this process last recorded each token's use (see `recordUse(of:)`).
    let tokenUses = Mutex<[String: Int64]>([:])
    /// Registered templates by name, for the same reason.
    let templateCache = HotCache<StoredTemplate>(ttl: 1)
    /// Idempotency keys of requests running now (keyed hashes), so that a concurrent retry is told to wait.
    let idempotencyInFlight = Mutex<Set<Data>>([])
    /// Where the vault's records live (see ``VaultStore``).
    let store: SQLiteStore
    /// The database file's path; it and its -wal and -shm files are checked against their identities at open before
    /// every audit entry (after the commit, for gated reads that share one).
    public var databasePath: String { store.path }
    /// The store's connection pool, for the operations whose statements have not moved behind the store protocol yet.
    var db: DatabasePool { store.pool }
    /// The kind of store and where it is (`consentry status`).
    public var storeDescription: String { store.description }
    /// What the store guarantees about the bytes of erased records.
    public var erasureGuarantee: ErasureGuarantee { store.erasureGuarantee }
    let keys: VaultKeys
    let configuration: VaultConfiguration
    var clock: any WallClock { configuration.clock }

    /// The database file inside a vault directory.
    public static let databaseFileName = SQLiteStore.fileName
    /// The master key file, relative to the vault directory.
    public static let masterKeyPath = "keys/master.key"

    private init(
        directory: URL, store: SQLiteStore, keys: VaultKeys, schema: FieldSchema, policy: Result<Policy, PolicyError>, policyVersion: String,
        configuration: VaultConfiguration
    ) {
        self.directory = directory
        self.policyState = Mutex(PolicySnapshot(schema: schema, version: policyVersion, policy: policy))
        self.store = store
        let files = store.files
        // Checked once per shared commit, after it and before any read of the batch returns: an entry committed to a
        // file that is no longer the vault's is no entry, and no value leaves on it.
        self.groupCommitter = GroupCommitter { () throws(GateError) in try files.check() }
        self.keys = keys
        self.configuration = configuration
    }

    /// Creates a new vault at `directory`.
    ///
    /// - Parameters:
    ///   - directory: where to create it; must not hold a vault already.
    ///   - policies: the policy directory to copy into the vault (its `*.yaml` files and README).
    ///   - masterKey: a master key supplied by the operator (from `CONSENTRY_MASTER_KEY`); when nil a new
    ///     one is generated into `keys/master.key` with mode 0600.
    ///   - configuration: settings of the opened vault.
    /// - Throws: ``GateError`` when the directory holds a vault, the policy is invalid, or files cannot be written.
    public static func create(
        at directory: URL, policies: URL, masterKey: consuming SecretBytes? = nil, configuration: VaultConfiguration = VaultConfiguration()
    ) throws(GateError) -> Vault {
        let fm = FileManager.default
        if SQLiteStore.exists(in: directory) {
            throw GateError(.alreadyExists, "a vault already exists at `\(directory.path)`; choose another `--vault` or remove it first")
        }
        // Validate the policy before anything is written, so a bad policy leaves no half-made vault.
        do { _ = try Policy.load(directory: policies) } catch {
            throw GateError(.policy, "the policy in `\(policies.path)` is invalid:\n\(error.description)")
        }
        do {
            for sub in ["", "keys", "audit", "exports", "policies"] {
                try fm.createDirectory(
                    at: directory.appendingPathComponent(sub), withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            }
            for name in try fm.contentsOfDirectory(atPath: policies.path) where name.hasSuffix(".yaml") || name == "README.md" {
                let target = directory.appendingPathComponent("policies").appendingPathComponent(name)
                try? fm.removeItem(at: target)
                try fm.copyItem(at: policies.appendingPathComponent(name), to: target)
                // The vault's files are the operator's alone, like the directory that holds them.
                try fm.setAttributes([.posixPermissions: 0o600], ofItemAtPath: target.path)
            }
        } catch {
            throw GateError(.storage, "could not create the vault directory `\(directory.path)`: \(error.localizedDescription)")
        }
        let master: SecretBytes
        do {
            if let supplied = masterKey.take() {
                master = supplied
            } else {
                master = try MasterKey.create(at: directory.appendingPathComponent(masterKeyPath))
            }
        } catch { throw GateError(.key, error.message) }
        try SQLiteStore.createFile(in: directory)
        return try open(directory: directory, master: master, configuration: configuration, creating: true)
    }

    /// Opens the vault at `directory`.
    ///
    /// - Parameters:
    ///   - masterKey: the master key from `CONSENTRY_MASTER_KEY`; when nil it is read from `keys/master.key`,
    ///     which must not be readable by group or others.
    /// - Throws: ``GateError`` with code `notFound` when there is no vault, `key` when the key is missing or
    ///   wrong, `policy` when the vault's policy files are invalid, `storage` when the database cannot be opened.
    public static func open(
        at directory: URL, masterKey: consuming SecretBytes? = nil, configuration: VaultConfiguration = VaultConfiguration()
    ) throws(GateError) -> Vault {
        guard SQLiteStore.exists(in: directory) else {
            throw GateError(
                .notFound, "no vault at `\(directory.path)`; create one with `consentry init --vault \(directory.path)` or pass `--vault`")
        }
        let master: SecretBytes
        do {
            if let supplied = masterKey.take() {
                master = supplied
            } else {
                master = try MasterKey.load(from: directory.appendingPathComponent(masterKeyPath))
            }
        } catch { throw GateError(.key, error.message) }
        return try open(directory: directory, master: master, configuration: configuration, creating: false)
    }

    private static func open(directory: URL, master: consuming SecretBytes, configuration: VaultConfiguration, creating: Bool) throws(GateError)
        -> Vault
    {
        let policyDirectory = directory.appendingPathComponent("policies")
        let schema: FieldSchema
        do { schema = try FieldSchema.load(directory: policyDirectory) } catch {
            throw GateError(.policy, "the vault's policy in `\(policyDirectory.path)` is invalid:\n\(error.description)")
        }
        let keys: VaultKeys
        do { keys = try VaultKeys(master: master) } catch { throw GateError(.key, error.message) }
        _ = consume master
        let store = try SQLiteStore.open(in: directory, busyTimeout: configuration.busyTimeout)
        let policy = Result<Policy, PolicyError> { () throws(PolicyError) in try Policy.load(directory: policyDirectory) }
        let vault = Vault(
            directory: directory, store: store, keys: keys, schema: schema, policy: policy, policyVersion: versionOfPolicy(at: policyDirectory),
            configuration: configuration)
        if creating {
            try vault.createFirstKEK()
            try vault.initializeAuditFiles()
        }
        try vault.loadKEKs()
        try vault.bindUnboundRecords()
        try vault.sealExperimentArms()
        vault.loadCheckpointState()
        try vault.initializeWitnesses()
        try vault.recordPolicyIfChanged(creating: creating)
        return vault
    }

    static func storageError(_ error: any Error, _ doing: String) -> GateError { SQLiteStore.storageError(error, doing) }

    /// The policy version of a directory: the first 16 hex digits of BLAKE2b over its `*.yaml` files (names and contents).
    public static func versionOfPolicy(at directory: URL) -> String {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
        var material: [UInt8] = []
        for name in names {
            let bytes = [UInt8](FileManager.default.contents(atPath: directory.appendingPathComponent(name).path) ?? Data())
            material += Array(name.utf8) + [0] + Array(String(bytes.count).utf8) + [0] + bytes
        }
        return String(Digest.hex(Digest.blake2b(material)).prefix(16))
    }

    /// Loads the vault's policy files again when they changed since they were last loaded, puts them in force for every
    /// decision from then on, and audits the change (`policy_loaded`). Returns the new version, or nil when nothing
    /// changed. A long-running process (`consentry serve`) calls it every second; one-shot commands load the files
    /// when they open the vault.
    ///
    /// Files that fail to load put a failed policy in force: the gate then denies every request
    /// (`policy_unavailable`) until the files are fixed, and the failure is in the audit log. The field schema stays
    /// the last one that loaded, since stored data was validated against it.
    /// - Throws: ``GateError`` when the audit entry of the change cannot be written (the new policy is in force).
    @discardableResult
    public func reloadPolicyIfChanged() throws(GateError) -> String? {
        try policyReload.withLock { _ throws(GateError) -> String? in
            let directory = self.directory.appendingPathComponent("policies")
            var version = Self.versionOfPolicy(at: directory)
            let current = policyNow
            guard version != current.version else { return nil }
            var policy = Result<Policy, PolicyError> { () throws(PolicyError) in try Policy.load(directory: directory) }
            // The files may change again while they are read (an editor saving in steps): load until the version
            // before and after the load agree, so that the version audited names the rules put in force.
            for _ in 0..<3 {
                let after = Self.versionOfPolicy(at: directory)
                if after == version { break }
                version = after
                policy = Result<Policy, PolicyError> { () throws(PolicyError) in try Policy.load(directory: directory) }
            }
            let schema = (try? policy.get())?.schema ?? current.schema
            policyState.withLock { $0 = PolicySnapshot(schema: schema, version: version, policy: policy) }
            try recordPolicyIfChanged(creating: false)
            return version
        }
    }

    /// Audits the policy version whenever it differs from the one last recorded (a new vault, or edited files).
    private func recordPolicyIfChanged(creating: Bool) throws(GateError) {
        let snapshot = policyNow
        let (policy, policyVersion) = (snapshot.policy, snapshot.version)
        let recorded: String?
        do {
            recorded = try db.read { try SQLiteMaintenanceRows.lastRecordedPolicyVersion($0) }
        } catch { throw Self.storageError(error, "read the audit log") }
        guard recorded != policyVersion else { return }
        var reasons: [String] = []
        if case .failure(let error) = policy { reasons = error.diagnostics.filter { $0.severity == .error }.prefix(20).map(\.description) }
        if creating {
            try recordSystemEvent(AuditDraft(actor: "system", role: nil, action: .vaultCreated, decision: .permit, policyVersion: policyVersion))
        }
        try recordSystemEvent(
            AuditDraft(
                actor: "system", role: nil, action: .policyLoaded, decision: reasons.isEmpty ? .permit : .deny,
                reasons: reasons.isEmpty ? ["loaded"] : ["policy_unavailable"] + reasons, policyVersion: policyVersion))
    }

    /// Fails when the database file or its -wal or -shm file was removed or replaced since the vault was opened; once
    /// it failed, it fails for the rest of the vault's life (see ``StorageFiles``).
    func checkDatabaseFile() throws(GateError) {
        try store.checkIntegrityOfFiles()
    }

    /// Why this vault can no longer be used safely (its database files were removed or replaced while it was open), or
    /// nil while they are the files it opened. Checks the files now; a long-running server calls it every second and on
    /// readiness probes, so that a fault is found even while no request writes.
    public func storageFault() -> GateError? {
        do throws(GateError) {
            try store.checkIntegrityOfFiles()
            return nil
        } catch { return error }
    }

    /// Why the vault's file system is too full to take writes safely (less free space than
    /// ``VaultConfiguration/minimumFreeBytes``), or nil when it has room.
    public func diskSpaceProblem() -> GateError? {
        var info = statvfs()
        guard statvfs(directory.path, &info) == 0 else {
            return GateError(.storage, "the free space of the vault's file system cannot be read; check that `\(directory.path)` exists")
        }
        let free = Int64(info.f_bavail) * Int64(info.f_frsize)
        guard free < configuration.minimumFreeBytes else { return nil }
        return GateError(
            .storage,
            "the vault's file system has \(free >> 20) MiB free, less than the \(configuration.minimumFreeBytes >> 20) MiB needed to take writes safely; free space on it"
        )
    }

    /// The fault ``storageFault()`` or any audit entry found earlier, without looking at the files again; cheap enough
    /// for every request.
    public var knownStorageFault: GateError? { store.knownFault }

    var nowMillis: Int64 { Int64((clock.now().timeIntervalSince1970 * 1000).rounded()) }

    // MARK: - Key-encryption keys

    private func createFirstKEK() throws(GateError) {
        do {
            let kek = try SecretBytes.random(count: Sealing.keyLength)
            let wrapped = keys.wrapKEK(kek, version: 1, nonces: NonceSource(blockNonces: 1))
            let now = nowMillis
            try db.write { db in
                try SQLiteKeyRows.insert(KEKRecord(version: 1, wrapped: Data(wrapped), active: true, createdAt: now), db)
                try SQLiteKeyRows.setMetadata("created_at", String(now), db)
                try SQLiteKeyRows.setMetadata("format", "1", db)
            }
        } catch let error as CryptoError {
            throw GateError(.key, error.message)
        } catch {
            throw Self.storageError(error, "store the first key-encryption key")
        }
    }

    /// Reads and unwraps every stored KEK; fails when the master key does not open them.
    func loadKEKs() throws(GateError) {
        let records: [KEKRecord]
        do { records = try db.read { try SQLiteKeyRows.keks($0) } } catch { throw Self.storageError(error, "read the key-encryption keys") }
        try installKEKs(records)
    }

    /// Unwraps the data key of `subject`, wrapped under key-encryption key `kekVersion`, into `scratch`.
    /// - Throws: `key` when that KEK is not held, `integrity` when the wrapped key does not open (tampered or moved).
    func unwrapDataKey(of subject: SubjectID, kekVersion: UInt32, wrapped: some ContiguousBytes, into scratch: inout SecretBytes) throws(GateError) {
        guard let kek = keys.kek(kekVersion) else {
            throw GateError(.key, about: subject) { "\($0) is wrapped under key-encryption key version \(kekVersion), which the vault does not hold" }
        }
        let ad = Sealing.wrapAssociatedData(subject: subject, kekVersion: kekVersion)
        guard wrapped.withUnsafeBytes({ Sealing.unwrap($0, kek: kek.key, associatedData: ad, into: &scratch) }) else {
            throw GateError(.integrity, about: subject) { "the data key of \($0) failed its integrity check (tampered or moved)" }
        }
    }

    /// Makes sure the KEKs held in memory match the stored ones, inside the caller's transaction: another
    /// process may have rotated the keys since this vault was opened. Call it before wrapping or unwrapping.
    func refreshKEKs(_ db: Database) throws {
        let records = try SQLiteKeyRows.keks(db)
        let active = records.first(where: \.active)?.version
        if active == keys.activeVersion, records.allSatisfy({ keys.kek($0.version) != nil }) { return }
        try installKEKs(records)
    }

    private func installKEKs(_ records: [KEKRecord]) throws(GateError) {
        var unwrapped: [UInt32: KeyBox] = [:]
        var active: UInt32 = 0
        for record in records {
            let box: KeyBox?
            do { box = try keys.unwrapKEK([UInt8](record.wrapped), version: record.version) } catch { throw GateError(.key, error.message) }
            guard let box else {
                throw GateError(
                    .key,
                    "the master key does not open key-encryption key version \(record.version); check CONSENTRY_MASTER_KEY or `\(Self.masterKeyPath)` (or the key table was tampered with)"
                )
            }
            unwrapped[record.version] = box
            if record.active { active = record.version }
        }
        guard active > 0 else { throw GateError(.key, "the vault has no active key-encryption key; the key table is damaged") }
        keys.install(unwrapped, active: active)
    }
}

/// One load of a vault's policy files: the field schema, the version (hash of the files) and the policy or why it
/// failed to load. Immutable; a reload replaces it whole.
final class PolicySnapshot: Sendable {
    let schema: FieldSchema
    let version: String
    let policy: Result<Policy, PolicyError>
    /// The loaded policy, or nil when it failed to load. Stored, not unwrapped from ``policy`` on each use: every
    /// gated read consults it, and each unwrap copied the whole policy.
    let loaded: Policy?

    init(schema: FieldSchema, version: String, policy: Result<Policy, PolicyError>) {
        self.schema = schema
        self.version = version
        self.policy = policy
        self.loaded = try? policy.get()
    }
}
