import ConsentryCrypto
import Foundation
import GRDB

/// Runs concurrent gated reads in shared write transactions, so that many audit entries share one fsync.
///
/// Leader/follower: a caller that finds no transaction running becomes the leader, takes every read
/// queued so far, runs each in its own savepoint of one transaction, commits, and hands every caller its
/// result. Results are released only after the commit: no read returns data before its audit entry is
/// durable. A read that fails (its savepoint rolls back) fails alone; a failed commit fails the batch.
final class GroupCommitter: @unchecked Sendable {
    // @unchecked: `queue`, `leaderActive` and each job's `result` are only touched under `condition`.
    private final class Job {
        let work: (Database, inout SecretBytes) throws -> GateRead
        var staged: Result<GateRead, any Error>?
        var result: Result<GateRead, any Error>?
        init(_ work: @escaping (Database, inout SecretBytes) throws -> GateRead) { self.work = work }
    }

    private let condition = NSCondition()
    private var queue: [Job] = []
    private var leaderActive = false
    /// Reads committed together, for the benchmark's report; not used for decisions.
    private(set) var largestBatch = 0

    /// Runs `work` in a shared transaction; `work` gets a scratch key in locked memory, allocated once per batch.
    func run(_ pool: DatabasePool, _ work: @escaping (Database, inout SecretBytes) throws -> GateRead) throws -> GateRead {
        let job = Job(work)
        condition.lock()
        queue.append(job)
        while job.result == nil {
            if leaderActive {
                condition.wait()
                continue
            }
            leaderActive = true
            let batch = queue
            queue.removeAll()
            largestBatch = max(largestBatch, batch.count)
            condition.unlock()
            let outcome = Result<Void, any Error> {
                var scratch = try SecretBytes(count: Sealing.keyLength)
                try pool.write { db in
                    for job in batch {
                        do {
                            var value: GateRead?
                            try db.inSavepoint {
                                value = try job.work(db, &scratch)
                                return .commit
                            }
                            job.staged = .success(value!)
                        } catch {
                            job.staged = .failure(error)
                        }
                    }
                }
            }
            condition.lock()
            for job in batch {
                switch (outcome, job.staged) {
                case (.success, let staged): job.result = staged
                // The read's own error (say, the disk is full) explains more than the failed commit that follows it.
                case (.failure, .failure(let error)?): job.result = .failure(error)
                case (.failure(let error), _): job.result = .failure(error)
                }
            }
            leaderActive = false
            condition.broadcast()
        }
        condition.unlock()
        return try job.result!.get()
    }
}
