/// The result of `audit verify`.
public struct AuditVerification: Sendable, Codable, Equatable {
    /// Entries whose hash and link were checked.
    public var entriesChecked = 0
    /// Checkpoints whose signature and position were checked.
    public var checkpointsChecked = 0
    /// The last sequence number in the log.
    public var lastSequence: Int64 = 0
    /// The sequence of the newest valid checkpoint.
    public var lastCheckpoint: Int64 = 0
    /// Entries after the newest checkpoint (written since; a truncation there cannot be detected until the next checkpoint).
    public var uncheckpointedEntries: Int64 = 0
    /// The first sequence number at which the log is wrong, if any.
    public var firstBadSequence: Int64?
    /// Every problem found, in order.
    public var problems: [String] = []

    /// Whether the log verified.
    public var passed: Bool { problems.isEmpty }

    mutating func problem(_ sequence: Int64, _ text: String) {
        if firstBadSequence == nil || sequence < firstBadSequence! { firstBadSequence = sequence }
        problems.append(text)
    }
}

/// Checks a log against its chain and its signed checkpoints.
public enum AuditVerifier {
    /// Verifies `entries` (in stored order) against `checkpoints` (nil when the checkpoint file is missing).
    ///
    /// Detects an edited entry (its hash no longer matches), a deleted, inserted or reordered entry
    /// (sequence gap or broken link), a truncated tail or a database restored from an older copy (a
    /// checkpoint beyond the end or disagreeing with the log), and an edited or removed checkpoint file.
    ///
    /// - Parameters:
    ///   - witnesses: further checkpoint files (labelled for messages), kept on another volume or host so that a log
    ///     truncated or restored together with `audit/checkpoints` is still detected. Each is checked like the primary
    ///     file; a missing one is a problem.
    ///   - expected: (sequence, hash) pairs recorded outside the vault (`consentry status` prints the newest
    ///     checkpoint); the log must still hold each one.
    public static func verify(
        entries: some Sequence<AuditEntry>, checkpoints: (checkpoints: [(line: Int, checkpoint: Checkpoint)], problems: [String])?,
        witnesses: [(label: String, contents: (checkpoints: [(line: Int, checkpoint: Checkpoint)], problems: [String])?)] = [],
        expected recorded: [(sequence: Int64, hash: String)] = [], publicKey: [UInt8]
    ) -> AuditVerification {
        var report = AuditVerification()
        var expected: Int64 = 1
        var previousHash = AuditEntry.genesisHash
        var hashes: [Int64: String] = [0: AuditEntry.genesisHash]
        for entry in entries {
            report.entriesChecked += 1
            if entry.sequence != expected {
                if entry.sequence > expected {
                    report.problem(expected, "entries \(expected)…\(entry.sequence - 1) are missing (deleted)")
                } else {
                    report.problem(entry.sequence, "entry \(entry.sequence) appears out of order after \(expected - 1) (reordered or inserted)")
                }
            }
            if entry.computedHash() != entry.hash {
                report.problem(entry.sequence, "entry \(entry.sequence) does not match its hash (edited)")
            } else if entry.previousHash != previousHash {
                report.problem(
                    entry.sequence, "entry \(entry.sequence) does not link to the entry before it (inserted, reordered or a neighbour deleted)")
            }
            hashes[entry.sequence] = entry.hash
            previousHash = entry.hash
            report.lastSequence = entry.sequence
            expected = max(expected, entry.sequence) + 1
        }
        for (sequence, hash) in recorded {
            if sequence > report.lastSequence {
                report.problem(
                    report.lastSequence + 1,
                    "the log ends at entry \(report.lastSequence) but entry \(sequence) was recorded outside the vault: the tail was truncated or the database and its checkpoints restored from an older copy"
                )
            } else if hashes[sequence] != hash.lowercased() {
                report.problem(sequence, "entry \(sequence) differs from the hash recorded outside the vault (rewritten, or restored from another copy)")
            }
        }
        guard let checkpoints else {
            report.problem(1, "the checkpoint file is missing (removed?); the log cannot be checked for truncation")
            check(witnesses, against: hashes, publicKey: publicKey, into: &report)
            return report
        }
        check(checkpoints, label: "checkpoint file", against: hashes, publicKey: publicKey, into: &report)
        if checkpoints.checkpoints.isEmpty { report.problem(1, "the checkpoint file is empty (every vault starts with a signed genesis checkpoint)") }
        check(witnesses, against: hashes, publicKey: publicKey, into: &report)
        report.uncheckpointedEntries = max(0, report.lastSequence - report.lastCheckpoint)
        return report
    }

    private static func check(
        _ witnesses: [(label: String, contents: (checkpoints: [(line: Int, checkpoint: Checkpoint)], problems: [String])?)],
        against hashes: [Int64: String], publicKey: [UInt8], into report: inout AuditVerification
    ) {
        for (label, contents) in witnesses {
            guard let contents, !contents.checkpoints.isEmpty else {
                report.problem(report.lastSequence + 1, "the witness file `\(label)` is missing or empty (removed, or not written yet)")
                continue
            }
            check(contents, label: "witness file `\(label)`", against: hashes, publicKey: publicKey, into: &report)
        }
    }

    /// Checks one checkpoint file's signatures, order and agreement with the log.
    private static func check(
        _ file: (checkpoints: [(line: Int, checkpoint: Checkpoint)], problems: [String]), label: String, against hashes: [Int64: String],
        publicKey: [UInt8], into report: inout AuditVerification
    ) {
        for problem in file.problems { report.problem(report.lastSequence + 1, label == "checkpoint file" ? problem : "\(label): \(problem)") }
        var last: Int64 = -1
        for (line, checkpoint) in file.checkpoints {
            report.checkpointsChecked += 1
            guard checkpoint.isValid(publicKey: publicKey) else {
                report.problem(checkpoint.sequence, "\(label) line \(line) has an invalid signature (edited)")
                continue
            }
            if checkpoint.sequence < last { report.problem(checkpoint.sequence, "\(label) line \(line) goes backwards (edited)") }
            last = max(last, checkpoint.sequence)
            if checkpoint.sequence > report.lastSequence {
                report.problem(
                    report.lastSequence + 1,
                    "the log ends at entry \(report.lastSequence) but a checkpoint\(label == "checkpoint file" ? "" : " in the \(label)") covers entry \(checkpoint.sequence): the tail was truncated or the database restored from an older copy"
                )
            } else if let hash = hashes[checkpoint.sequence], hash != checkpoint.hash {
                report.problem(checkpoint.sequence, "entry \(checkpoint.sequence) differs from the checkpoint taken of it (rewritten)")
            } else {
                report.lastCheckpoint = max(report.lastCheckpoint, checkpoint.sequence)
            }
        }
    }
}

/// Where audit entries are written. The vault's sink writes inside the operation's own transaction; the
/// in-memory sink serves tests.
public protocol AuditSink {
    /// Chains and stores `draft`, returning the stored entry.
    /// - Throws: when the entry cannot be written; the caller then releases nothing.
    mutating func append(_ draft: AuditDraft, time: Int64) throws -> AuditEntry
}

/// An audit sink that keeps entries in memory, for tests.
public struct InMemoryAuditSink: AuditSink {
    /// The entries written so far.
    public private(set) var entries: [AuditEntry] = []
    /// The subject sets of bulk entries by sequence.
    public private(set) var subjectSets: [Int64: [UInt8]] = [:]

    /// An empty log.
    public init() {}

    /// Chains and keeps `draft`.
    public mutating func append(_ draft: AuditDraft, time: Int64) throws -> AuditEntry {
        let entry = AuditEntry.chain(
            draft, sequence: Int64(entries.count + 1), time: time, previousHash: entries.last?.hash ?? AuditEntry.genesisHash,
            subjectSetDigest: AuditEntry.digest(ofSubjectSet: draft.subjectSet))
        entries.append(entry)
        if !draft.subjectSet.isEmpty { subjectSets[entry.sequence] = draft.subjectSet }
        return entry
    }
}
