public import ConsentryCore
public import Foundation

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
    /// A signed audit checkpoint is written after this many entries. The default is 1,000.
    public var checkpointEveryEntries: Int64
    /// … or after this many seconds with new entries. The default is 60.
    public var checkpointEverySeconds: Double
    /// Subjects per chunk of a gated scan: consent is re-read for each chunk, so a withdrawal takes effect
    /// for every chunk not yet started. The default is 1,000.
    public var scanChunkSize: Int
    /// Free space the vault's file system must have for the vault to report itself ready (``Vault/diskSpaceProblem()``):
    /// below it, writes may fail part-way through a batch, so a load balancer should send work elsewhere. The default
    /// is 64 MiB.
    public var minimumFreeBytes: Int64
    /// Further files every signed audit checkpoint is appended to, beside `audit/checkpoints`: put them on another
    /// volume or host (a mounted share, a write-once bucket), so that cutting the log's tail together with the vault's
    /// own checkpoint file, or restoring the database and that file together, is still detected by `audit verify`.
    /// The default is none.
    public var witnessFiles: [URL]

    /// Creates a configuration; every parameter has a default.
    public init(
        clock: any WallClock = SystemClock(), importBatchSize: Int = 10_000, maxReportedRejections: Int = 1_000, busyTimeout: Double = 30,
        checkpointEveryEntries: Int64 = 1_000, checkpointEverySeconds: Double = 60, scanChunkSize: Int = 1_000,
        minimumFreeBytes: Int64 = 64 << 20, witnessFiles: [URL] = []
    ) {
        self.witnessFiles = witnessFiles
        self.minimumFreeBytes = max(0, minimumFreeBytes)
        self.clock = clock
        self.checkpointEveryEntries = max(1, checkpointEveryEntries)
        self.checkpointEverySeconds = checkpointEverySeconds
        self.scanChunkSize = max(1, scanChunkSize)
        self.importBatchSize = max(1, importBatchSize)
        self.maxReportedRejections = maxReportedRejections
        self.busyTimeout = busyTimeout
    }
}
