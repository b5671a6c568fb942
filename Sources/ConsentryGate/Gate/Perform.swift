import ConsentryAudit
import ConsentryCore
import ConsentryPolicy
import GRDB

/// A refusal found inside an operation's work (a subject whose state denies it, say): thrown from the work, it rolls
/// the transaction back and is audited by ``Vault/perform(_:requestID:recordedAs:decision:failure:_:)`` like a denial
/// found before the work began.
struct Refusal: Error {
    /// The request as refused (its purpose and fields may be narrower than the operation's).
    let request: AccessRequest
    /// The denying decision, with its reasons.
    let decision: Decision
}

/// How an operation ended: done, or refused, its denial audited (the entry appended for it).
enum Performed<T> {
    /// The work committed; with the entry appended (nil when the work cleared ``OperationScope/records``).
    case done(T, AuditEntry?)
    /// The operation was denied, before the work or by a ``Refusal`` from it; nothing of the work is kept.
    case refused(Decision, AuditEntry)
}

/// What an operation's work sees inside its transaction, and the audit entry it fills in.
struct OperationScope {
    /// The store's transaction: the work's reads and writes go through its typed records.
    let tx: SQLiteTransaction
    /// The transaction's connection, for the work whose statements have not moved behind the store's records yet.
    /// Valid in the work, which runs on the transaction's thread (``SQLiteTransaction``).
    let db: Database
    /// The permit the operation runs under.
    let decision: Decision
    /// The policy it was decided under: work that decides more (each subject of a scan) decides under the same one.
    let snapshot: PolicySnapshot
    /// The entry appended when the work returns, in the same transaction: the work adds reasons, counts, a subject
    /// or a subject set.
    var entry: AuditDraft
    /// Whether the entry is appended at the end. Work that released and changed nothing (an empty queue read) clears it;
    /// ``recordNow()`` clears it because the entry is then already in.
    var records = true
    /// Whether the write-ahead log is truncated after the commit, so that no old copy of a page the work overwrote or
    /// freed stays in it (rectification, erasure).
    var truncatesLog = false
    /// Whether a checkpoint is written after the commit even when none is due (an erasure: its record leaves at once).
    var forcesCheckpoint = false
    /// Appends an entry in this transaction.
    let append: (AuditDraft, Database) throws -> AuditEntry
    /// The operation's entry, once ``recordNow()`` appended it.
    private(set) var recorded: AuditEntry?

    /// Appends the operation's entry now, before the work hands anything out (an export streams to its sink after
    /// it), or because the result cites its sequence (an erasure receipt). It is not appended again at the end.
    @discardableResult
    mutating func recordNow() throws -> AuditEntry {
        let entry = try append(self.entry, db)
        recorded = entry
        records = false
        return entry
    }

    /// Appends another entry in the same transaction: a step of a data-subject request next to the operation's own.
    @discardableResult
    func record(_ draft: AuditDraft) throws -> AuditEntry { try append(draft, db) }
}

extension Vault {
    /// The decision for `request` under the policy in force. A policy that does not load denies, with the reason.
    func decide(_ request: AccessRequest, under snapshot: PolicySnapshot? = nil) -> Decision {
        (snapshot ?? policyNow).loaded?.authorize(request) ?? .deny(.policyUnavailable, "run `consentry policy check` on the vault's policies")
    }

    /// Performs one gate operation, the same way every time:
    /// authorize → open the transaction → do the work → append the audit entry in the same transaction → commit →
    /// write a checkpoint when one is due.
    ///
    /// A denial — by the policy, by a policy that does not load, or a ``Refusal`` thrown by the work — is audited in a
    /// transaction of its own and thrown as ``GateError/denied`` with its reasons; the work's effects roll back. Any
    /// other failure, the audit write's included, rolls everything back and is thrown as a storage error that says
    /// what could not be done (`failure`).
    ///
    /// - Parameters:
    ///   - request: what is asked (role, action, purpose, fields); its decision is taken here unless `decision` is
    ///     given (an operation whose grant is decided in steps).
    ///   - action: the audit action recorded, when it is not the request's action.
    ///   - failure: what could not be done, for the storage error (`"define the trigger (nothing was stored)"`).
    func perform<T>(
        _ request: AccessRequest, requestID: String?, recordedAs action: AuditAction? = nil, decision given: Decision? = nil,
        failure: String, _ work: (inout OperationScope) async throws -> T
    ) async throws(GateError) -> T {
        try await performRecorded(request, requestID: requestID, recordedAs: action, decision: given, failure: failure, work).value
    }

    /// ``perform(_:requestID:recordedAs:decision:failure:_:)``, also returning the audit entry appended (nil when the
    /// work cleared ``OperationScope/records``), for results that cite it.
    func performRecorded<T>(
        _ request: AccessRequest, requestID: String?, recordedAs action: AuditAction? = nil, decision given: Decision? = nil,
        failure: String, _ work: (inout OperationScope) async throws -> T
    ) async throws(GateError) -> (value: T, entry: AuditEntry?) {
        switch try await performOutcome(request, requestID: requestID, recordedAs: action, decision: given, failure: failure, work) {
        case .done(let value, let entry): return (value, entry)
        case .refused(let decision, _): throw Self.denied(decision)
        }
    }

    /// The template itself: ``perform(_:requestID:recordedAs:decision:failure:_:)`` returning a refusal (audited) as a
    /// value, for operations whose callers get a denial as an answer rather than an error (a scan's summary).
    func performOutcome<T>(
        _ request: AccessRequest, requestID: String?, recordedAs action: AuditAction? = nil, decision given: Decision? = nil,
        failure: String, _ work: (inout OperationScope) async throws -> T
    ) async throws(GateError) -> Performed<T> {
        // One policy for the operation: the decision and the version its entry records are the same even while a
        // reload swaps the policy.
        let snapshot = policyNow
        let decision = given ?? decide(request, under: snapshot)
        // INVARIANT: deny by default and on error; every denial is audited, through this one path.
        guard decision.isPermit else {
            return .refused(decision, try await auditAlone(denial(request, decision, as: action, requestID: requestID, under: snapshot)))
        }
        let result: (value: T, entry: AuditEntry?, truncate: Bool, force: Bool)
        do {
            result = try await store.write { tx -> (T, AuditEntry?, Bool, Bool) in
                let db = try tx.run { $0 }
                var scope = OperationScope(
                    tx: tx, db: db, decision: decision, snapshot: snapshot,
                    entry: draft(request, decision, requestID: requestID, under: snapshot),
                    append: { [self] draft, db in try audit(draft, db: db) })
                if let action { scope.entry.action = action }
                let value = try await work(&scope)
                // INVARIANT: no audit, no data. The entry commits with the work or neither does.
                let entry = scope.records ? try audit(scope.entry, db: db) : scope.recorded
                return (value, entry, scope.truncatesLog, scope.forcesCheckpoint)
            }
            if result.truncate { try await store.purgeDeleted() }
        } catch let refusal as Refusal {
            return .refused(
                refusal.decision, try await auditAlone(denial(refusal.request, refusal.decision, as: action, requestID: requestID, under: snapshot)))
        } catch {
            throw Self.storageError(error, failure)
        }
        try checkpointIfDue(force: result.force)
        return .done(result.value, result.entry)
    }

    /// Performs a gate operation that reads without changing anything and must not hold the writer while it reads (audit
    /// verification, queries, reports, exports of the log): authorize → read → append the audit entry (the count of what
    /// was read, filled in by `record`) → checkpoint when due. The entry is committed before the result is returned, so
    /// the rule "no audit, no data" holds; a denial takes the same path as in ``perform(_:requestID:recordedAs:decision:failure:_:)``.
    ///
    /// - Parameter unrecorded: when given, an entry the log does not take is reported into the result (by this
    ///   closure) instead of failing the operation. Audit verification and the integrity check use it: a damaged vault
    ///   may not take an entry, and the report of what is wrong must still reach the operator.
    func performRead<T>(
        _ request: AccessRequest, requestID: String?, recordedAs action: AuditAction? = nil, failure: String,
        unrecorded: ((inout T, GateError) -> Void)? = nil, read: (Database) throws -> T, record: (inout AuditDraft, T) -> Void
    ) async throws(GateError) -> T {
        let snapshot = policyNow
        let decision = decide(request, under: snapshot)
        guard decision.isPermit else { try await refuse(request, decision, as: action, requestID: requestID) }
        var value: T
        do { value = try await store.read { try read($0) } } catch { throw Self.storageError(error, failure) }
        var entry = draft(request, decision, requestID: requestID, under: snapshot)
        if let action { entry.action = action }
        record(&entry, value)
        do {
            try await auditAlone(entry)
        } catch {
            guard let unrecorded else { throw error }
            unrecorded(&value, error)
        }
        return value
    }
}
