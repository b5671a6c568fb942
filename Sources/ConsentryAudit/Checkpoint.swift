public import ConsentryCrypto
public import Foundation

/// A signed statement that the audit log held `sequence` entries ending in `hash` at `time`.
///
/// Checkpoints are appended to `<vault>/audit/checkpoints`, outside the database, one per line:
/// `v1 <sequence> <hash> <time-ms> <base64 Ed25519 signature>`. A database that is truncated or restored
/// from an older copy no longer reaches the newest checkpoint, and `audit verify` says so.
public struct Checkpoint: Sendable, Equatable, Codable {
    /// The sequence number of the last entry covered (0 for the empty log).
    public var sequence: Int64
    /// That entry's hash (the genesis hash for the empty log).
    public var hash: String
    /// When the checkpoint was written, in milliseconds since 1970.
    public var time: Int64
    /// The Ed25519 signature over ``message``.
    public var signature: [UInt8]

    /// The signed bytes.
    public var message: [UInt8] { Array("consentry-checkpoint-v1\n\(sequence)\n\(hash)\n\(time)".utf8) }

    /// Creates and signs a checkpoint.
    public init(sequence: Int64, hash: String, time: Int64, signer: Signer) {
        self.sequence = sequence
        self.hash = hash
        self.time = time
        self.signature = []
        self.signature = signer.sign(message)
    }

    init(sequence: Int64, hash: String, time: Int64, signature: [UInt8]) {
        self.sequence = sequence
        self.hash = hash
        self.time = time
        self.signature = signature
    }

    /// The line written to the checkpoint file.
    public var line: String { "v1 \(sequence) \(hash) \(time) \(Data(signature).base64EncodedString())" }

    /// Parses a checkpoint line; nil when it is malformed.
    public init?(line: String) {
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "v1", let sequence = Int64(parts[1]), sequence >= 0, parts[2].count == 64,
            parts[2].allSatisfy({ $0.isHexDigit && !$0.isUppercase }), let time = Int64(parts[3]),
            let signature = Data(base64Encoded: String(parts[4]))
        else { return nil }
        self.init(sequence: sequence, hash: String(parts[2]), time: time, signature: [UInt8](signature))
    }

    /// Whether the signature is valid under `publicKey`.
    public func isValid(publicKey: [UInt8]) -> Bool { Signer.verify(signature, of: message, publicKey: publicKey) }
}

/// The append-only checkpoint file.
public struct CheckpointFile: Sendable {
    /// Where it is.
    public let url: URL

    /// A checkpoint file at `url`.
    public init(url: URL) { self.url = url }

    /// Appends one checkpoint and flushes it to disk (the file is created 0600 if absent).
    public func append(_ checkpoint: Checkpoint) throws(AuditError) {
        try appendExclusively { checkpoint }
    }

    /// Holds an exclusive lock on the file while `make` builds the checkpoint (typically from the log's current
    /// end) and it is appended, so that checkpoints written by several processes never go backwards.
    /// `make` returns nil when there is nothing to checkpoint.
    public func appendExclusively(_ make: () throws -> Checkpoint?) throws(AuditError) {
        let fd = open(url.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AuditError(.unwritable, "cannot write the checkpoint file `\(url.path)`: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { throw AuditError(.unwritable, "cannot lock the checkpoint file `\(url.path)`") }
        defer { flock(fd, LOCK_UN) }
        let made: Checkpoint?
        do { made = try make() } catch { throw AuditError(.unwritable, "cannot read the end of the audit log for a checkpoint") }
        guard let checkpoint = made else { return }
        let bytes = Array((checkpoint.line + "\n").utf8)
        guard write(fd, bytes, bytes.count) == bytes.count, fsync(fd) == 0 else {
            throw AuditError(.unwritable, "cannot write the checkpoint file `\(url.path)`: \(String(cString: strerror(errno)))")
        }
    }

    /// The newest well-formed checkpoint, read from the end of the file only (the file grows for the vault's
    /// whole life); nil when there is none.
    public func newest() -> Checkpoint? {
        guard let handle = FileHandle(forReadingAtPath: url.path) else { return nil }
        defer { try? handle.close() }
        guard let size = try? handle.seekToEnd(), size > 0 else { return nil }
        let window: UInt64 = 4096
        try? handle.seek(toOffset: size > window ? size - window : 0)
        guard let data = try? handle.readToEnd() else { return nil }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").reversed().lazy.compactMap { Checkpoint(line: String($0)) }.first
    }

    /// Reads every checkpoint; nil when the file does not exist. A malformed line is returned as a problem.
    public func read() -> (checkpoints: [(line: Int, checkpoint: Checkpoint)], problems: [String])? {
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        var result: [(Int, Checkpoint)] = []
        var problems: [String] = []
        for (index, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard !line.isEmpty else { continue }
            if let checkpoint = Checkpoint(line: String(line)) {
                result.append((index + 1, checkpoint))
            } else {
                problems.append("checkpoint file line \(index + 1) is malformed (edited?)")
            }
        }
        return (result, problems)
    }
}
