import ConsentryAudit
import Foundation
import GRDB
import Synchronization

/// The embedded store: one SQLite file (`vault.sqlite`) in write-ahead-log mode, on this host.
///
/// It owns everything that is SQLite's alone: creating the file (16 KB pages, WAL), the settings every connection must
/// hold (`synchronous=FULL`, `secure_delete=ON`, foreign keys), the migrations, the check that the database files are
/// still the ones it opened (``StorageFiles``), truncating the write-ahead log after an erasure, and the translation of
/// SQLite's errors into messages that say what to do.
final class SQLiteStore: VaultStore {
    /// The database file's name inside a vault directory.
    static let fileName = "vault.sqlite"
    /// The writer connection's page cache, in KiB.
    static let writerCacheKiB = 131_072

    /// The connection pool: one writer, several readers.
    let pool: DatabasePool
    /// The database file's path.
    let path: String
    /// The database, -wal and -shm files as they were when the store opened.
    let files: StorageFiles

    var description: String { "SQLite file \(path)" }
    var erasureGuarantee: ErasureGuarantee { .sqlite }

    private init(pool: DatabasePool, path: String) {
        self.pool = pool
        self.path = path
        self.files = StorageFiles(databasePath: path)
    }

    /// Creates the database file in `directory` (mode 0600, 16 KB pages, WAL); the caller has checked that none exists.
    static func createFile(in directory: URL) throws(GateError) {
        let url = directory.appendingPathComponent(fileName)
        // Pre-create the database file 0600: SQLite gives -wal and -shm the same mode.
        guard FileManager.default.createFile(atPath: url.path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
            throw GateError(.storage, "could not create `\(url.path)`; check that the directory is writable")
        }
        // 16 KB pages: a quarter of the write calls for imports and checkpoints than SQLite's default 4 KB. The page
        // size can only be chosen before the database turns to WAL, so it is set here, before the pool opens it.
        do {
            let setup = try DatabaseQueue(path: url.path)
            try setup.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; PRAGMA user_version = 1")
            }
            try setup.close()
        } catch {
            throw storageError(error, "create the vault database")
        }
    }

    /// Whether `directory` holds a vault database.
    static func exists(in directory: URL) -> Bool {
        FileManager.default.fileExists(atPath: directory.appendingPathComponent(fileName).path)
    }

    /// Opens the database in `directory`, asserts its settings and applies the migrations.
    static func open(in directory: URL, busyTimeout: TimeInterval) throws(GateError) -> SQLiteStore {
        let path = directory.appendingPathComponent(fileName).path
        // Every use of a vault writes its audit entry, so even reading needs write access; say so plainly rather than
        // SQLite's "unable to open database file".
        for candidate in [directory.path, path] where access(candidate, W_OK) != 0 {
            throw GateError(
                .storage,
                "the vault at `\(directory.path)` is read-only for this user (`\(URL(fileURLWithPath: candidate).lastPathComponent)` is not writable); every command writes its audit entry, even one that only reads, so give write access or copy the vault to a writable place"
            )
        }
        do {
            let pool = try DatabasePool(path: path, configuration: configuration(busyTimeout: busyTimeout))
            // GRDB switches the writer to synchronous=NORMAL when it enables WAL, after prepareDatabase ran;
            // a committed import must survive power loss, so put FULL back and check that it holds.
            let writerSynchronous = try pool.writeWithoutTransaction { db -> Int? in
                try db.execute(sql: "PRAGMA synchronous = FULL")
                // Imports insert into indexes keyed by random hashes: a larger page cache keeps them in memory,
                // and a larger checkpoint threshold makes fewer, bigger checkpoints.
                try db.execute(sql: "PRAGMA cache_size = -\(writerCacheKiB); PRAGMA wal_autocheckpoint = 8192")
                return try Int.fetchOne(db, sql: "PRAGMA synchronous")
            }
            guard writerSynchronous == 2 else { throw GateError(.storage, "the database writer refused synchronous=FULL") }
            try Schema.migrator.migrate(pool)
            let mode = try pool.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") }
            guard mode == "wal" else { throw GateError(.storage, "the database is not in WAL mode; the vault cannot guarantee crash safety") }
            return SQLiteStore(pool: pool, path: path)
        } catch let error as GateError {
            throw error
        } catch {
            throw storageError(error, "open the vault database")
        }
    }

    /// Per-connection settings, asserted on every connection: a connection that does not end up with them is refused
    /// rather than used.
    private static func configuration(busyTimeout: TimeInterval) -> Configuration {
        var config = Configuration()
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(busyTimeout)
        config.label = "consentry-vault"
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL; PRAGMA secure_delete = ON; PRAGMA foreign_keys = ON")
            let synchronous = try Int.fetchOne(db, sql: "PRAGMA synchronous")
            let secureDelete = try Int.fetchOne(db, sql: "PRAGMA secure_delete")
            let foreignKeys = try Int.fetchOne(db, sql: "PRAGMA foreign_keys")
            guard synchronous == 2, secureDelete == 1, foreignKeys == 1 else {
                throw GateError(
                    .storage, "the database connection refused the required settings (synchronous=FULL, secure_delete=ON, foreign_keys=ON)")
            }
        }
        return config
    }

    // MARK: - Transactions

    /// Runs `body` in one write transaction on the writer connection.
    ///
    /// The transaction holds GRDB's writer queue from `BEGIN IMMEDIATE` to the commit, and `body` runs *on* that queue's
    /// thread: the transaction is the task executor `body` prefers (``SQLiteTransaction``), so each of its steps, and
    /// the code between them, runs there in order. A body that suspends therefore never waits for one of Swift's
    /// cooperative threads while it holds the writer, and a synchronous writer that blocks a cooperative thread waiting
    /// for the writer cannot stall it: the body goes on, commits and lets the writer go.
    func write<T>(_ body: (SQLiteTransaction) async throws -> T) async throws -> T {
        let transaction = SQLiteTransaction()
        pool.asyncWriteWithoutTransaction { db in transaction.serve(db) }
        return try await withTaskExecutorPreference(transaction) {
            // Everything up to the commit runs on the writer's thread, the commit's wait included: the transaction
            // ends on that thread, and only then does the task leave it.
            do {
                try transaction.checkOpened()
                let value = try await body(transaction)
                try await transaction.finish(commit: true)
                return value
            } catch {
                // A failed commit has rolled back already; finishing again only releases the writer.
                try? await transaction.finish(commit: false)
                throw error
            }
        }
    }

    /// Runs `work` on a reader connection (a snapshot of the last commit) without holding the caller's thread while it
    /// waits for one; for the reads whose statements have not moved behind the store protocol yet.
    func read<R>(_ work: (Database) throws -> R) async throws -> R {
        try await withoutActuallyEscaping(work) { work in
            // GRDB may keep its closure after calling it; the box lets go of `work` before the caller is woken, so
            // that nothing holds the borrowed closure once `read` returns.
            let box = UncheckedBox<((Database) throws -> R)?>(work)
            return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<UncheckedBox<R>, any Error>) in
                pool.asyncRead { opened in
                    let result = Result { UncheckedBox(try box.value!(try opened.get())) }
                    box.value = nil
                    continuation.resume(with: result)
                }
            }.value
        }
    }

    func purgeDeleted() async throws {
        try await pool.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
    }

    func checkIntegrityOfFiles() throws(GateError) { try files.check() }

    func catalog(_ kind: CatalogKind, allVersions: Bool) async throws -> [CatalogEntry] {
        try await read { try SQLiteCatalogRows.all(kind, allVersions: allVersions, $0) }
    }

    func catalogEntry(_ kind: CatalogKind, named name: String) async throws -> CatalogEntry? {
        try await read { try SQLiteCatalogRows.latest(kind, name, $0) }
    }

    func tokens() async throws -> [TokenRecord] { try await read { try SQLiteTokenRows.all($0) } }

    func token(_ id: String) async throws -> TokenRecord? { try await read { try SQLiteTokenRows.token(id, activeOnly: false, $0) } }

    func recordTokenUse(_ id: String, at time: Int64) async throws {
        try await write { tx in try tx.run { try SQLiteTokenRows.recordUse(id, at: time, $0) } }
    }

    func idempotencyRecord(_ keyHash: Data, newerThan time: Int64) async throws -> IdempotencyRecord? {
        try await read { try SQLiteIdempotencyRows.record(keyHash, newerThan: time, $0) }
    }

    func storeIdempotencyRecord(_ record: IdempotencyRecord, forgettingBefore oldest: Int64) async throws {
        try await write { tx in try tx.run { try SQLiteIdempotencyRows.store(record, forgettingBefore: oldest, $0) } }
    }

    func requests(status: String?) async throws -> [RequestRow] { try await read { try SQLiteRequestRows.all(status: status, $0) } }

    func request(_ id: String) async throws -> RequestRow? { try await read { try SQLiteRequestRows.request(id, $0) } }

    func queuedTrigger(_ id: Int64) async throws -> QueuedTriggerRow? { try await read { try SQLiteQueueRows.entry(id, $0) } }

    func census() async throws -> StoreCensus { try await read { try SQLiteCensus.census($0) } }

    var knownFault: GateError? { files.known }

    // MARK: - Errors

    /// A storage error that says what could not be done and what to do; SQLite's codes for a full disk, a read-only
    /// file, a damaged file and a held lock get their own words. No statement argument (no value) is ever part of it.
    static func storageError(_ error: any Error, _ doing: String) -> GateError {
        if let gateError = error as? GateError { return gateError }
        if let dbError = error as? DatabaseError {
            // GRDB leaves statement arguments out of its description, so no value leaks here.
            let reason = dbError.message ?? "SQLite error \(dbError.resultCode.rawValue)"
            switch dbError.resultCode {
            case .SQLITE_FULL: return GateError(.storage, "could not \(doing): the disk is full; free space and retry (nothing was half-written)")
            case .SQLITE_READONLY: return GateError(.storage, "could not \(doing): the vault is read-only; check the files' permissions")
            case .SQLITE_CORRUPT, .SQLITE_NOTADB: return GateError(.integrity, "could not \(doing): the database file is damaged or not a vault")
            case .SQLITE_BUSY, .SQLITE_LOCKED:
                return GateError(.storage, "could not \(doing): another process holds the vault; retry when it is done")
            default: return GateError(.storage, "could not \(doing): \(reason)")
            }
        }
        return GateError(.storage, "could not \(doing): \(error)")
    }
}

/// One write transaction of the SQLite store, open on GRDB's writer queue while an asynchronous body runs, and the
/// task executor that body runs on.
///
/// GRDB runs ``serve(_:)`` on its writer queue: it opens the transaction and then runs the jobs of the body's task, as
/// they are enqueued, on that thread, until the body posts the end; then it commits or rolls back and returns the queue
/// to GRDB. The body's statements (``run(_:)``) therefore run inline on the writer connection, on the thread GRDB
/// allows it on. Jobs that arrive after the end (the task resuming to leave the transaction) go to Swift's global
/// executor.
final class SQLiteTransaction: StoreTransaction, TaskExecutor, @unchecked Sendable {
    // @unchecked: `items` and `closed` are only touched under `lock`; `opened` and `thread` are written by `serve` before
    // it runs the first job and read by jobs it runs, on the same thread.
    private enum Item {
        case job(UnownedJob)
        case finish(commit: Bool, done: (Result<Void, any Error>) -> Void)
    }

    private let lock = NSLock()
    private var items: [Item] = []
    private var closed = false
    private let ready = DispatchSemaphore(value: 0)
    private var opened: Result<Database, any Error> = .failure(GateError(.storage, "the write transaction has not begun"))
    private var thread: pthread_t?

    func enqueue(_ job: consuming ExecutorJob) {
        lock.lock()
        if closed {
            lock.unlock()
            globalConcurrentExecutor.enqueue(job)
            return
        }
        items.append(.job(UnownedJob(job)))
        lock.unlock()
        ready.signal()
    }

    /// The writer queue's side: opens the transaction, runs the body's jobs as they come, and commits or rolls back.
    fileprivate func serve(_ db: Database) {
        thread = pthread_self()
        do {
            try db.execute(sql: "BEGIN IMMEDIATE TRANSACTION")
            opened = .success(db)
        } catch {
            opened = .failure(error)
        }
        let executor = asUnownedTaskExecutor()
        while true {
            ready.wait()
            switch lock.withLock({ items.removeFirst() }) {
            case .job(let job): job.runSynchronously(on: executor)
            case .finish(let commit, let done):
                var outcome: Result<Void, any Error> = .success(())
                if case .success = opened {
                    do {
                        try db.execute(sql: commit ? "COMMIT TRANSACTION" : "ROLLBACK TRANSACTION")
                    } catch {
                        // SQLite rolls back a commit it cannot complete; make sure nothing stays open either way.
                        if db.isInsideTransaction { try? db.execute(sql: "ROLLBACK TRANSACTION") }
                        outcome = .failure(error)
                    }
                } else if case .failure(let error) = opened {
                    outcome = .failure(error)
                }
                opened = .failure(Self.outside)
                let late = lock.withLock { () -> [Item] in
                    closed = true
                    defer { items = [] }
                    return items
                }
                // The task's next job arrives when `done` resumes it, after `closed`: it goes to the global executor.
                done(outcome)
                for case .job(let job) in late { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
                return
            }
        }
    }

    /// A step handed to the transaction from another thread, or after it ended.
    private static let outside = GateError(.storage, "a store step ran outside its write transaction; nothing was written")

    /// Throws why the transaction could not begin (the database is locked by another process, say).
    fileprivate func checkOpened() throws { _ = try connection() }

    private func connection() throws -> Database {
        // A step outside the transaction's thread would use the connection where GRDB does not allow it: refuse it.
        guard let thread, pthread_equal(thread, pthread_self()) != 0 else { throw Self.outside }
        return try opened.get()
    }

    fileprivate func finish(commit: Bool) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            lock.withLock { items.append(.finish(commit: commit) { continuation.resume(with: $0) }) }
            ready.signal()
        }
    }

    /// Runs `work` on the writer connection inside this transaction and returns its result. It runs inline: the body
    /// that calls it runs on the transaction's thread.
    func run<R>(_ work: (Database) throws -> R) throws -> R {
        try work(try connection())
    }

    func auditHead() async throws -> (sequence: Int64, hash: String) {
        try run { try SQLiteAuditRows.head($0) }
    }

    func insertAudit(_ row: AuditRow) async throws {
        try run { try SQLiteAuditRows.insert(row, $0) }
    }

    func catalogEntry(_ kind: CatalogKind, named name: String) async throws -> CatalogEntry? {
        try run { try SQLiteCatalogRows.latest(kind, name, $0) }
    }

    func insertCatalogEntry(_ entry: CatalogEntry) async throws {
        try run { try SQLiteCatalogRows.insert(entry, $0) }
    }

    func insertToken(_ token: TokenRecord) async throws { try run { try SQLiteTokenRows.insert(token, $0) } }

    func activeToken(_ id: String) async throws -> TokenRecord? { try run { try SQLiteTokenRows.token(id, activeOnly: true, $0) } }

    func revokeToken(_ id: String, at time: Int64, binding: [UInt8]) async throws {
        try run { try SQLiteTokenRows.revoke(id, at: time, binding: binding, $0) }
    }

    func request(_ id: String) async throws -> RequestRow? { try run { try SQLiteRequestRows.request(id, $0) } }

    func requestID(idempotencyKey key: String) async throws -> String? { try run { try SQLiteRequestRows.requestID(idempotencyKey: key, $0) } }

    func insertRequest(_ request: RequestRow) async throws { try run { try SQLiteRequestRows.insert(request, $0) } }

    func updateRequest(_ request: RequestRow) async throws { try run { try SQLiteRequestRows.update(request, $0) } }

    func expireRequests(identifiersClosedBefore identifierCutoff: Int64, recordsClosedBefore recordCutoff: Int64, now: Int64) async throws
        -> (shredded: Int, deleted: [String])
    {
        try run { try SQLiteRequestRows.expire(identifiersClosedBefore: identifierCutoff, recordsClosedBefore: recordCutoff, now: now, $0) }
    }

    func triggerOccurrenceQueued(_ occurrence: Data) async throws -> Bool { try run { try SQLiteQueueRows.occurrenceQueued(occurrence, $0) } }

    func enqueueTrigger(_ entry: QueuedTriggerRow) async throws { try run { try SQLiteQueueRows.enqueue(entry, $0) } }

    func pendingTriggers(_ trigger: String, limit: Int) async throws -> [(QueuedTriggerRow, SubjectKeys)] {
        try run { try SQLiteQueueRows.pending(trigger, limit: limit, $0) }
    }

    func triggerEntries(ofSubject subject: Int64) async throws -> [QueuedTriggerRow] {
        try run { try SQLiteQueueRows.entries(ofSubject: subject, $0) }
    }

    func acknowledgeTrigger(_ id: Int64, at time: Int64) async throws -> Bool { try run { try SQLiteQueueRows.acknowledge(id, at: time, $0) } }

    func recordOutcome(_ outcome: OutcomeRow) async throws -> Bool { try run { try SQLiteQueueRows.recordOutcome(outcome, $0) } }

    func outcomes(ofExperiment experiment: String) async throws -> [OutcomeRow] { try run { try SQLiteQueueRows.outcomes(of: experiment, $0) } }

    func derivedExists(subject: Int64, kind: String, name: String) async throws -> Bool {
        try run { try SQLiteSubjectRows.derivedExists(subject: subject, kind: kind, name: name, $0) }
    }

    func derivedValues(kind: String, name: String) async throws -> [SealedDerived] {
        try run { try SQLiteSubjectRows.derivedValues(kind: kind, name: name, $0) }
    }

    func keks() async throws -> [KEKRecord] { try run { try SQLiteKeyRows.keks($0) } }

    func insertKEK(_ kek: KEKRecord) async throws { try run { try SQLiteKeyRows.insert(kek, $0) } }

    func rotateKEK(to next: KEKRecord) async throws { try run { try SQLiteKeyRows.rotate(to: next, $0) } }

    func deleteRetiringKEKs() async throws { try run { try SQLiteKeyRows.deleteRetiring($0) } }

    func dataKeys(after: Int64, limit: Int) async throws -> [WrappedDataKey] { try run { try SQLiteKeyRows.dataKeys(after: after, limit: limit, $0) } }

    func rewrapDataKey(_ key: WrappedDataKey) async throws { try run { try SQLiteKeyRows.rewrap(key, $0) } }

    func dataKeysNotUnder(_ version: UInt32) async throws -> Int { try run { try SQLiteKeyRows.dataKeysNotUnder(version, $0) } }

    func eraseSubject(_ subject: Int64) async throws -> (deleted: [String: Int], requests: [String]) {
        try run { try SQLiteErasureRows.erase(subject, $0) }
    }

    func suppress(_ hash: Data, kind: String, at time: Int64) async throws { try run { try SQLiteErasureRows.suppress(hash, kind: kind, at: time, $0) } }

    func purchases(of subject: Int64) async throws -> [PurchaseRecord] { try run { try SQLiteErasureRows.purchases(of: subject, $0) } }

    func retain(_ record: RetainedRecord) async throws { try run { try SQLiteErasureRows.retain(record, $0) } }
}
