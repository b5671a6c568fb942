import Foundation
import Synchronization

/// The identities (device and inode) of a vault's `vault.sqlite`, `-wal` and `-shm` files as this process opened them.
///
/// SQLite's locks are POSIX record locks, which belong to the process: if anything in this process opens and closes
/// one of the files, or another process deletes or replaces them, another process can believe it holds the last
/// connection, checkpoint, and unlink the -wal and -shm this process goes on writing to. Commits then land in files
/// no other connection will ever read. The identities are compared before every audit entry (after each group commit)
/// and every second in a server; the first difference poisons the vault for good, so that every later operation
/// fails closed with the same truthful error instead of serving from orphaned files.
final class StorageFiles: Sendable {
    private let paths: [(name: String, path: String)]
    /// The identity of each file, taken at open (or when first seen, for a -wal or -shm not yet created then).
    private let identities: Mutex<[(device: UInt64, inode: UInt64)?]>
    private let fault = Mutex<GateError?>(nil)

    init(databasePath: String) {
        paths = [("database", databasePath), ("write-ahead log", databasePath + "-wal"), ("shared-memory index", databasePath + "-shm")]
        identities = Mutex(paths.map { Self.identity($0.path) })
    }

    static func identity(_ path: String) -> (device: UInt64, inode: UInt64)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (UInt64(info.st_dev), UInt64(info.st_ino))
    }

    /// The fault found so far, without looking at the files again (cheap enough for every request).
    var known: GateError? { fault.withLock { $0 } }

    /// Throws the vault's fault, finding it first when a file's identity changed.
    func check() throws(GateError) {
        if let known = fault.withLock({ $0 }) { throw known }
        let changed = identities.withLock { identities -> String? in
            for (index, file) in paths.enumerated() {
                let now = Self.identity(file.path)
                guard let opened = identities[index] else {
                    // Only the database must exist from the start; SQLite creates the other two on first use.
                    if index == 0 { return file.name }
                    identities[index] = now
                    continue
                }
                guard let now, now == opened else { return file.name }
            }
            return nil
        }
        guard let changed else { return }
        let error = GateError(
            .storage,
            "the vault's \(changed) file was removed or replaced while this process had the vault open (another process deleted it, or the files were copied or moved); nothing was released, and this process refuses every operation: stop it, run `consentry check`, and start it again"
        )
        fault.withLock { if $0 == nil { $0 = error } }
        throw fault.withLock { $0 ?? error }
    }
}
