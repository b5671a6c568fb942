import ConsentryCrypto
import Foundation
import GRDB

/// Runs concurrent gated reads in shared write transactions, so that many audit entries share one fsync.
///
/// Reads are queued; one drainer at a time takes every read queued so far, runs each in its own savepoint of
/// one transaction, commits, and completes each read. Results are released only after the commit: no read
/// returns data before its audit entry is durable. A read that fails (its savepoint rolls back) fails alone;
/// a failed commit fails the batch, and so does a failed `verify` after the commit (the vault checks there, once
/// per batch, that its database file is still the one it opened).
///
/// Waiting callers hold no thread: each job has its own completion, so a commit wakes exactly the callers it
/// finished (no broadcast), and callers suspend instead of blocking. Batches run on the committer's own queue.
final class GroupCommitter: @unchecked Sendable {
    // @unchecked: `queue`, `draining` and `largestBatch` are only touched under `lock`; a job's `staged` and
    // `scratchKey` only by the single drainer.
    typealias Work = (Database, inout SecretBytes) throws -> GateRead
    typealias Completion = @Sendable (Result<GateRead, any Error>) -> Void

    private final class Job {
        let work: Work
        let completion: Completion
        var staged: Result<GateRead, any Error>?
        init(_ work: @escaping Work, _ completion: @escaping Completion) {
            self.work = work
            self.completion = completion
        }
    }

    private let lock = NSLock()
    private var queue: [Job] = []
    private var draining = false
    private var largest = 0
    private let drainQueue = DispatchQueue(label: "consentry.group-commit")
    /// The batches' scratch key, allocated once: locked memory costs an mmap, mprotect and munmap (and a TLB
    /// shootdown on every core) per allocation. Each read zeroes it after use, and each batch again. Only the
    /// drainer (one at a time) touches it.
    private var scratchKey: SecretBytes?
    private let verify: @Sendable () throws -> Void

    /// - Parameter verify: runs after each commit, before any read of the batch returns; when it throws, every
    ///   read of the batch fails with its error.
    init(verify: @escaping @Sendable () throws -> Void) { self.verify = verify }

    /// Reads committed together at most so far, for the benchmark's report; not used for decisions.
    var largestBatch: Int { lock.withLock { largest } }

    /// Runs `work` in a shared transaction; suspends (holding no thread) until its commit.
    func run(_ pool: DatabasePool, _ work: @escaping Work) async throws -> GateRead {
        try await withCheckedThrowingContinuation { continuation in
            submit(pool, work) { continuation.resume(with: $0) }
        }
    }

    private func submit(_ pool: DatabasePool, _ work: @escaping Work, completion: @escaping Completion) {
        let lead = lock.withLock { () -> Bool in
            queue.append(Job(work, completion))
            defer { draining = true }
            return !draining
        }
        guard lead else { return }
        drainQueue.async { self.drainOnce(pool) }
    }

    /// Commits one batch; while more reads are queued, hands the next batch to the committer's queue.
    private func drainOnce(_ pool: DatabasePool) {
        let batch = lock.withLock { () -> [Job] in
            defer { queue.removeAll(keepingCapacity: true) }
            largest = max(largest, queue.count)
            return queue
        }
        commit(batch, pool)
        let more = lock.withLock { () -> Bool in
            if queue.isEmpty { draining = false }
            return draining
        }
        if more { drainQueue.async { self.drainOnce(pool) } }
    }

    private func commit(_ batch: [Job], _ pool: DatabasePool) {
        let outcome = Result<Void, any Error> {
            if scratchKey == nil { scratchKey = try SecretBytes(count: Sealing.keyLength) }
            defer { scratchKey!.zero() }
            try pool.write { db in
                for job in batch {
                    // A savepoint per read, so a failing read rolls back alone. Cached statements: GRDB's
                    // `inSavepoint` compiles its SQL on every call, which showed in profiles of the API.
                    try db.cachedStatement(sql: "SAVEPOINT gate_read").execute()
                    do {
                        job.staged = .success(try job.work(db, &scratchKey!))
                        try db.cachedStatement(sql: "RELEASE SAVEPOINT gate_read").execute()
                    } catch {
                        job.staged = .failure(error)
                        try db.cachedStatement(sql: "ROLLBACK TO SAVEPOINT gate_read").execute()
                        try db.cachedStatement(sql: "RELEASE SAVEPOINT gate_read").execute()
                    }
                }
            }
            try verify()
        }
        for job in batch {
            switch (outcome, job.staged) {
            case (.success, let staged?): job.completion(staged)
            // The read's own error (say, the disk is full) explains more than the failed commit that follows it.
            case (.failure, .failure(let error)?): job.completion(.failure(error))
            case (.failure(let error), _): job.completion(.failure(error))
            case (.success, nil): job.completion(.failure(CancellationError()))
            }
        }
    }
}
