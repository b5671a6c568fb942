public import ConsentryCore

/// Settings of an open vault. Every setting has a default; reading the environment is the CLI's job.
public struct VaultConfiguration: Sendable {
    /// The source of "now" for time stamps. The default is the system clock.
    public var clock: any WallClock
    /// Records committed per import transaction; a crash loses at most the batch in flight, never part
    /// of a record. Larger batches write each index page fewer times (blind indexes are keyed by random
    /// hashes, so every batch touches pages all over them). The default is 10,000.
    public var importBatchSize: Int
    /// Rejections kept in an import report; later ones are only counted. The default is 1,000.
    public var maxReportedRejections: Int
    /// How long a writer waits for another process's write to finish, in seconds. The default is 30.
    public var busyTimeout: Double

    /// Creates a configuration; every parameter has a default.
    public init(clock: any WallClock = SystemClock(), importBatchSize: Int = 10_000, maxReportedRejections: Int = 1_000, busyTimeout: Double = 30) {
        self.clock = clock
        self.importBatchSize = max(1, importBatchSize)
        self.maxReportedRejections = maxReportedRejections
        self.busyTimeout = busyTimeout
    }
}
