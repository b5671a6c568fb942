import ConsentryAudit
import ConsentryCore
import Foundation
import GRDB

extension Vault {
    /// Runs `items` through `process` in write transactions of ``VaultConfiguration/importBatchSize`` items.
    ///
    /// A batch commits whole or not at all: the report is only updated once its transaction committed, and
    /// a database error stops the import with a message naming the first line of the failed batch.
    /// `process` gets a look-up cache that lives for one transaction only, since between batches another
    /// process may change or erase subjects; for the same reason `beginning` runs at the start of every batch's
    /// transaction, to re-read whatever the import keeps for the batch.
    ///
    /// Items are processed as they arrive, inside the batch's open transaction, rather than collected first: the
    /// profile import prepares records on another thread, and collecting a whole batch before writing any of it
    /// left the writer idle for most of the time the preparer took to fill the next one.
    func inBatches<Item>(
        _ items: some Sequence<Item>, line: (Item) -> Int, report: inout ImportReport, audit template: AuditDraft,
        beginning: (Database) throws -> Void = { _ in },
        _ process: (Item, Database, inout [String: SubjectID], inout ImportReport) throws -> Void,
        counting: (Item, inout ImportReport) -> Void = { _, _ in }
    ) throws(GateError) {
        let batchSize = max(1, configuration.importBatchSize)
        var iterator = items.makeIterator()
        var next = iterator.next()
        while let first = next {
            var batchReport = report
            var count = 0
            do {
                // INVARIANT: nothing half-written. A batch's subjects, their identities and its audit entry
                // commit together or not at all.
                try db.write { db in
                    try refreshKEKs(db)
                    try beginning(db)
                    var cache: [String: SubjectID] = [:]
                    var item: Item? = first
                    while let current = item {
                        batchReport.records += 1
                        counting(current, &batchReport)
                        try process(current, db, &cache, &batchReport)
                        count += 1
                        item = count < batchSize ? iterator.next() : nil
                    }
                    // The batch and its audit entry commit together.
                    var entry = template
                    entry.counts = [
                        "records": count, "inserted": batchReport.inserted - report.inserted,
                        "merged": batchReport.merged - report.merged, "unchanged": batchReport.unchanged - report.unchanged,
                        "duplicates": batchReport.duplicates - report.duplicates, "rejected": batchReport.rejected - report.rejected,
                    ].filter { $0.value != 0 }
                    entry.reasons.append("batch from line \(line(first))")
                    _ = try audit(entry, db: db)
                }
            } catch {
                throw Self.storageError(error, "import the batch starting at line \(line(first)) (earlier batches were committed)")
            }
            report = batchReport
            // A batch cut short by the end of the input was the last one.
            next = count < batchSize ? nil : iterator.next()
            try checkpointIfDue()
        }
    }

    /// Runs `prepare` over `items` on a thread of its own and hands the results to `consume`, in input order, through
    /// a bounded queue: the writer stores records while the next ones are parsed, validated, hashed and sealed, and
    /// memory stays flat whatever the input's size. The preparing thread is stopped and joined before this returns.
    func pipelined<Item, Prepared>(
        _ items: some Sequence<Item>, prepare: @escaping (Item) -> Prepared, _ consume: (AnySequence<Prepared>) throws(GateError) -> Void
    ) throws(GateError) {
        let queue = BoundedQueue<Prepared>(capacity: 4_096)
        // Only the preparing thread touches the input and `prepare` once it has started.
        let work = UncheckedBox((input: AnyIterator(items.makeIterator()), prepare: prepare))
        let producer = Thread {
            while let item = work.value.input.next() {
                guard queue.put(work.value.prepare(item)) else { break }
            }
            queue.close()
        }
        producer.start()
        // Whatever happens below, stop the preparer and wait for it before returning.
        defer { queue.cancelAndDrain() }
        try consume(AnySequence { AnyIterator { queue.take() } })
    }
}
