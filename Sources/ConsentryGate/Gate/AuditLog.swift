import ConsentryAudit
import ConsentryCore
import ConsentryCrypto
import Foundation
import GRDB
import Synchronization

/// The vault's audit sink: appends chained entries inside the caller's transaction, so that an operation
/// and its audit entry commit together or not at all (invariant 3).
struct DatabaseAuditSink: AuditSink {
    let db: Database

    mutating func append(_ draft: AuditDraft, time: Int64) throws -> AuditEntry {
        let row = Self.chain(draft, onto: try SQLiteAuditRows.head(db), time: time)
        try SQLiteAuditRows.insert(row, db)
        return row.entry
    }

    /// The row of `draft` chained onto the log's last entry.
    static func chain(_ draft: AuditDraft, onto head: (sequence: Int64, hash: String), time: Int64) -> AuditRow {
        let (entry, columns) = AuditEntry.chained(
            draft, sequence: head.sequence + 1, time: time, previousHash: head.hash,
            subjectSetDigest: AuditEntry.digest(ofSubjectSet: draft.subjectSet))
        return AuditRow(entry: entry, columns: columns, subjectSet: draft.subjectSet)
    }
}

extension Vault {
    /// The file signed checkpoints are appended to.
    var checkpointFile: CheckpointFile { CheckpointFile(url: directory.appendingPathComponent("audit/checkpoints")) }

    /// The witness files (``VaultConfiguration/witnessFiles``), which receive every checkpoint too.
    var witnessFiles: [CheckpointFile] { configuration.witnessFiles.map(CheckpointFile.init(url:)) }

    /// The public key that verifies checkpoints and receipts (hex), also written to `audit/signing.pub`.
    public var signingPublicKey: String { Digest.hex(keys.signer.publicKey) }

    /// Appends `draft` inside the caller's transaction.
    /// - Parameter fileCheckedAtCommit: the caller's transaction is a group commit, which checks the database file
    ///   once after committing (see ``GroupCommitter``), so the check before the entry is left out.
    func audit(_ draft: AuditDraft, db: Database, fileCheckedAtCommit: Bool = false) throws -> AuditEntry {
        // INVARIANT: no audit, no data. An entry written to a file that is no longer the vault's is no entry.
        if !fileCheckedAtCommit { try checkDatabaseFile() }
        var sink = DatabaseAuditSink(db: db)
        let entry = try sink.append(draft, time: nowMillis)
        appendedSequence.withLock { $0 = max($0, entry.sequence) }
        return entry
    }

    /// Appends an audit entry in a transaction of its own (for events with no other effect).
    @discardableResult
    func auditAlone(_ draft: AuditDraft) async throws(GateError) -> AuditEntry {
        let entry: AuditEntry
        do { entry = try await store.write { tx in try tx.run { try audit(draft, db: $0) } } } catch {
            throw Self.storageError(error, "write the audit log (nothing was done)")
        }
        try checkpointIfDue()
        return entry
    }

    /// Records an event of the vault itself, not an operation of a principal (its creation, a policy loaded at open or
    /// on reload), in a transaction of its own. Opening a vault is synchronous, so this is the one entry written outside
    /// the operations' template; nothing is decided or released with it.
    @discardableResult
    func recordSystemEvent(_ draft: AuditDraft) throws(GateError) -> AuditEntry {
        let entry: AuditEntry
        do { entry = try db.write { try audit(draft, db: $0) } } catch { throw Self.storageError(error, "write the audit log (nothing was done)") }
        try checkpointIfDue()
        return entry
    }

    /// The pseudonym of a subject in the audit log: a keyed hash of its per-subject secret, as 32 hex digits.
    func pseudonym(secret: Data?) -> String {
        pseudonym(secret: [UInt8](secret ?? Data()))
    }

    /// ``pseudonym(secret:)`` from a subject's row.
    func pseudonym(secret: [UInt8]) -> String {
        Digest.hex(pseudonymBytes(secret: secret))
    }

    /// The pseudonym as its 16 bytes.
    func pseudonymBytes(secret: Data?) -> ArraySlice<UInt8> {
        pseudonymBytes(secret: [UInt8](secret ?? Data()))
    }

    /// ``pseudonymBytes(secret:)`` from a subject's row.
    func pseudonymBytes(secret: [UInt8]) -> ArraySlice<UInt8> {
        keys.auditPseudonyms.hash(tag: 0x20, bytes: secret).prefix(AuditEntry.pseudonymLength)
    }

    /// Signs a checkpoint of the log's current end when at least `everyEntries` entries or `everySeconds`
    /// seconds have passed since the last one (or always, with `force`). Called after commits and at shutdown.
    public func checkpointIfDue(force: Bool = false) throws(GateError) {
        // Cheap test first, without touching the database: most calls are not due.
        let known = appendedSequence.withLock { $0 }
        let cadence = checkpointState.withLock { $0 }
        if !force && known - cadence.sequence < configuration.checkpointEveryEntries
            && nowMillis - cadence.time < Int64(configuration.checkpointEverySeconds * 1000)
        {
            return
        }
        // The log's end is read while the checkpoint file is locked, so that checkpoints written by several
        // processes are appended in the order of the sequences they cover.
        var written: Checkpoint?
        do {
            try checkpointFile.appendExclusively { () throws -> Checkpoint? in
                let last = try db.read { try SQLiteAuditRows.head($0) }
                let sequence = last.sequence
                let previous = checkpointState.withLock { $0 }
                let newest = checkpointFile.newest()?.sequence ?? 0
                let now = nowMillis
                guard sequence > max(previous.sequence, newest) else { return nil }
                guard
                    force || sequence - previous.sequence >= configuration.checkpointEveryEntries
                        || now - previous.time >= Int64(configuration.checkpointEverySeconds * 1000)
                else { return nil }
                checkpointState.withLock { $0 = (sequence, now) }
                let checkpoint = Checkpoint(sequence: sequence, hash: last.hash, time: now, signer: keys.signer)
                written = checkpoint
                return checkpoint
            }
            // Each witness gets the same checkpoint, unless it already holds a newer one (another process wrote it).
            if let written {
                for witness in witnessFiles {
                    try witness.appendExclusively { (witness.newest()?.sequence ?? -1) < written.sequence ? written : nil }
                }
            }
        } catch {
            throw GateError(.storage, error.message)
        }
    }

    /// Gives every configured witness file that has no checkpoint yet one of the log's current end, so that a newly
    /// configured witness holds something to verify against from the start.
    func initializeWitnesses() throws(GateError) {
        guard witnessFiles.contains(where: { $0.newest() == nil }) else { return }
        do {
            let last = try db.read { try SQLiteAuditRows.head($0) }
            let checkpoint = Checkpoint(sequence: last.sequence, hash: last.hash, time: nowMillis, signer: keys.signer)
            for witness in witnessFiles where witness.newest() == nil {
                try witness.appendExclusively { witness.newest() == nil ? checkpoint : nil }
            }
        } catch let error as AuditError {
            throw GateError(.storage, error.message)
        } catch {
            throw Self.storageError(error, "read the end of the audit log for a witness checkpoint")
        }
    }

    /// Reads the newest checkpoint (at open) so that cadence continues across processes.
    func loadCheckpointState() {
        let newest = checkpointFile.newest()
        checkpointState.withLock { $0 = (newest?.sequence ?? 0, newest?.time ?? 0) }
    }

    /// Writes the genesis checkpoint and the public key of a new vault.
    func initializeAuditFiles() throws(GateError) {
        do {
            try checkpointFile.append(Checkpoint(sequence: 0, hash: AuditEntry.genesisHash, time: nowMillis, signer: keys.signer))
            try Data((signingPublicKey + "\n").utf8).write(to: directory.appendingPathComponent("audit/signing.pub"))
        } catch let error as AuditError {
            throw GateError(.storage, error.message)
        } catch {
            throw GateError(.storage, "could not write `audit/signing.pub`: \(error.localizedDescription)")
        }
    }
}

extension Vault {
    /// How an error message names a subject: by its audit pseudonym, which the operator can look up in the audit log,
    /// never by the vault's internal random id. Read on the caller's connection; a subject with no row (or whose row
    /// cannot be read) is named as such.
    func subjectLabel(_ subject: SubjectID, _ db: Database) -> String {
        guard let secret = (try? auditSecret(of: subject, db: db)) ?? nil else { return "a subject with no stored row" }
        return "subject \(pseudonym(secret: secret))"
    }
}
