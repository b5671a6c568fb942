import ConsentryAudit
import ConsentryCore
import GRDB

extension Vault {
    /// Runs `items` through `process` in write transactions of ``VaultConfiguration/importBatchSize`` items.
    ///
    /// A batch commits whole or not at all: the report is only updated once its transaction committed, and
    /// a database error stops the import with a message naming the first line of the failed batch.
    /// `process` gets a look-up cache that lives for one transaction only, since between batches another
    /// process may change or erase subjects.
    func inBatches<Item>(
        _ items: some Sequence<Item>, line: (Item) -> Int, report: inout ImportReport, audit template: AuditDraft,
        _ process: (Item, Database, inout [String: SubjectID], inout ImportReport) throws -> Void,
        counting: (Item, inout ImportReport) -> Void = { _, _ in }
    ) throws(VaultError) {
        var batch: [Item] = []
        batch.reserveCapacity(min(configuration.importBatchSize, 100_000))
        func flush(_ report: inout ImportReport) throws(VaultError) {
            guard let first = batch.first else { return }
            var batchReport = report
            do {
                // INVARIANT: nothing half-written. A batch's subjects, their identities and its audit entry
                // commit together or not at all.
                try db.write { db in
                    try refreshKEKs(db)
                    var cache: [String: SubjectID] = [:]
                    for item in batch { try process(item, db, &cache, &batchReport) }
                    // The batch and its audit entry commit together.
                    var entry = template
                    entry.counts = [
                        "records": batch.count, "inserted": batchReport.inserted - report.inserted,
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
            batch.removeAll(keepingCapacity: true)
            try checkpointIfDue()
        }
        for item in items {
            report.records += 1
            counting(item, &report)
            batch.append(item)
            if batch.count >= configuration.importBatchSize { try flush(&report) }
        }
        try flush(&report)
    }
}
