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

    /// A body that suspends holds the writer until it is done (see ``writeInOneStep(_:)`` for why the gate's
    /// operations use one-step writes while synchronous writers remain).
    func write<T>(_ body: (SQLiteTransaction) async throws -> T) async throws -> T {
        let transaction = SQLiteTransaction()
        // The transaction runs on GRDB's writer queue, which it holds until the body is done: the body's statements are
        // handed to that queue one by one, so the connection is only ever used there, and every other write (group
        // commits included) waits for this one, as it would for a synchronous write.
        pool.asyncWriteWithoutTransaction { db in transaction.serve(db) }
        do {
            let value = try await body(transaction)
            try await transaction.finish(commit: true)
            return value
        } catch {
            // A failed commit has rolled back already; finishing again only releases the writer.
            try? await transaction.finish(commit: false)
            throw error
        }
    }

    /// Runs `work` in one write transaction on the writer connection, without holding the caller's thread while it waits
    /// for the writer: committed when `work` returns, rolled back when it throws.
    ///
    /// Unlike ``write(_:)``, the writer is never held across a suspension. That matters while some of the gate's writes
    /// are still synchronous and block the thread they run on: a body suspended while it holds the writer needs a
    /// cooperative thread to resume, and a synchronous writer blocked on a cooperative thread waits for that body — with
    /// every cooperative thread blocked so, neither goes on. Operations whose statements have not moved behind the store
    /// protocol run their work this way, as one step.
    func writeInOneStep<R>(_ work: (Database) throws -> R) async throws -> R {
        try await withoutActuallyEscaping(work) { work in
            let box = UncheckedBox<((Database) throws -> R)?>(work)
            return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<UncheckedBox<R>, any Error>) in
                pool.asyncWriteWithoutTransaction { db in
                    let result = Result {
                        var value: R?
                        try db.inTransaction(.immediate) {
                            value = try box.value!(db)
                            return .commit
                        }
                        return UncheckedBox(value!)
                    }
                    box.value = nil
                    continuation.resume(with: result)
                }
            }.value
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

/// One write transaction of the SQLite store, open on GRDB's writer queue while an asynchronous body runs.
///
/// The body hands each step to the writer queue (``run(_:)``) and waits for it without holding a thread; the queue runs
/// the steps in order inside one `BEGIN IMMEDIATE` transaction and ends it with a commit or a rollback when the body is
/// done. The connection is never touched outside the writer queue.
final class SQLiteTransaction: StoreTransaction, @unchecked Sendable {
    // @unchecked: `steps` is only touched under `lock`; a step's closure runs on the writer queue while its caller is
    // suspended waiting for it, so what it captures is never used from two threads at once.
    private enum Step {
        /// A statement or several; it gets the connection, or why the transaction could not open, and returns what wakes
        /// its caller, which the queue calls once it let go of the step (the step borrows the caller's closure).
        case run((Result<Database, any Error>) -> () -> Void)
        case finish(commit: Bool, done: (Result<Void, any Error>) -> Void)
    }

    private let lock = NSLock()
    private var steps: [Step] = []
    private let ready = DispatchSemaphore(value: 0)

    /// The writer queue's side: opens the transaction, runs the steps as they come, and commits or rolls back.
    fileprivate func serve(_ db: Database) {
        var opened: Result<Database, any Error> = .success(db)
        do { try db.execute(sql: "BEGIN IMMEDIATE TRANSACTION") } catch { opened = .failure(error) }
        while true {
            ready.wait()
            var wake: (() -> Void)?
            switch lock.withLock({ steps.removeFirst() }) {
            case .run(let work): wake = work(opened)
            case .finish(let commit, let done):
                if case .failure(let error) = opened { return done(.failure(error)) }
                do {
                    try db.execute(sql: commit ? "COMMIT TRANSACTION" : "ROLLBACK TRANSACTION")
                    done(.success(()))
                } catch {
                    // SQLite rolls back a commit it cannot complete; make sure nothing stays open either way.
                    if db.isInsideTransaction { try? db.execute(sql: "ROLLBACK TRANSACTION") }
                    done(.failure(error))
                }
                return
            }
            wake?()
        }
    }

    private func post(_ step: Step) {
        lock.withLock { steps.append(step) }
        ready.signal()
    }

    /// Runs `work` on the writer connection inside this transaction and returns its result.
    func run<R>(_ work: (Database) throws -> R) async throws -> R {
        try await withoutActuallyEscaping(work) { work in
            let box = UncheckedBox(work)
            return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<UncheckedBox<R>, any Error>) in
                post(
                    .run { opened in
                        let result = Result { UncheckedBox(try box.value(try opened.get())) }
                        return { continuation.resume(with: result) }
                    })
            }.value
        }
    }

    fileprivate func finish(commit: Bool) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            post(.finish(commit: commit) { continuation.resume(with: $0) })
        }
    }

    func auditHead() async throws -> (sequence: Int64, hash: String) {
        try await run { try SQLiteAuditRows.head($0) }
    }

    func insertAudit(_ row: AuditRow) async throws {
        try await run { try SQLiteAuditRows.insert(row, $0) }
    }
}
