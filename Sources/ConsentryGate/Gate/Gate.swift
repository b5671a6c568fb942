import ConsentryAudit
public import ConsentryCore
import ConsentryCrypto
public import ConsentryPolicy
import Foundation
import GRDB

/// The result of a gated read of one subject.
public struct GateRead: Sendable {
    /// The decision, with its reasons.
    public let decision: Decision
    /// The released values: only the requested fields, only on permit. Absent fields have no value stored.
    public let values: [FieldName: String]
    /// The subject's audit pseudonym, when the subject exists.
    public let pseudonym: String?
    /// The audit entry that records this read.
    public let auditSequence: Int64
    /// Derived data of the request's purpose (`kind/name` → value), when asked for: memberships of segments defined for
    /// the purpose, and (for `personalization`) the subject's recommendations.
    public var derived: [String: String] = [:]
}

/// One behavioral event as a gated scan hands it out.
public struct BehaviorEvent: Sendable, Hashable {
    /// The type.
    public let type: EventType
    /// When (ms since 1970).
    public let time: Int64
    /// The item.
    public let itemID: String?
    /// The category.
    public let category: String?
    /// The amount.
    public let amount: Double?
    /// The currency.
    public let currency: String?
    /// The campaign.
    public let campaignID: String?

    /// Creates an event (tests and offline evaluation).
    public init(
        type: EventType, time: Int64, itemID: String? = nil, category: String? = nil, amount: Double? = nil, currency: String? = nil,
        campaignID: String? = nil
    ) {
        self.type = type
        self.time = time
        self.itemID = itemID
        self.category = category
        self.amount = amount
        self.currency = currency
        self.campaignID = campaignID
    }
}

/// A subject handed out by a gated scan.
public struct ScanMember: Sendable, Hashable {
    /// The vault's internal random id: the handle for writing derived data back through the gate.
    public let subject: SubjectID
    /// The member pseudonym for the scan's purpose (16 bytes), or empty for an aggregates-only purpose.
    private let member: [UInt8]
    /// The audit pseudonym (16 bytes).
    private let audit: ArraySlice<UInt8>

    init(subject: SubjectID, member: ArraySlice<UInt8>, audit: ArraySlice<UInt8>) {
        self.subject = subject
        self.member = Array(member)
        self.audit = audit
    }

    /// The subject's member pseudonym for the scan's purpose (32 hex digits), or nil when the purpose releases aggregates
    /// only. It is keyed by purpose: the same person has unrelated pseudonyms under two purposes, so results of
    /// different purposes (segment members, say) cannot be joined on it, and none equals the audit log's pseudonym.
    public var pseudonym: String? { member.isEmpty ? nil : Digest.hex(member) }

    /// A stable per-subject key for assignments made inside the package (experiment arms), derived from the audit
    /// pseudonym so that arms assigned before member pseudonyms were keyed by purpose stay as they were. Not for release.
    package var assignmentKey: String { Digest.hex(audit) }
}

/// What a gated scan did. Its `--json` keys are stable.
public struct ScanSummary: Sendable, Codable, Equatable {
    /// Permit or deny of the request itself (role, action, purpose, fields, reason).
    public var decision: Effect
    /// The reasons of a denied request, or the granting rule.
    public var reasons: [String]
    /// Subjects in the vault when the scan started.
    public var subjects = 0
    /// Subjects admitted at the start.
    public var permitted = 0
    /// Subjects excluded at the start, by reason (`consent_missing`, `objection`, …).
    public var excluded: [String: Int] = [:]
    /// Subjects admitted at the start but excluded before their data was read (consent withdrawn meanwhile).
    public var excludedDuringScan: [String: Int] = [:]
    /// Subjects whose values were handed to the caller.
    public var delivered = 0
    /// The audit entries that record the scan.
    public var auditSequences: [Int64] = []

    /// One line for people: "120 delivered; 1,204 excluded: consent_missing".
    public var exclusionSummary: String {
        let all = excluded.merging(excludedDuringScan, uniquingKeysWith: +)
        guard !all.isEmpty else { return "none excluded" }
        return all.sorted { $0.value > $1.value }.map { "\($0.value.formatted()) excluded: \($0.key)" }.joined(separator: "; ")
    }
}

/// A decision with the full trace of how it was reached, for `policy explain`.
public struct Explanation: Sendable, Codable, Equatable {
    /// The decision.
    public var decision: Decision
    /// Each check in order, with its outcome.
    public var trace: [String]
}

extension Vault {
    func draft(
        _ request: AccessRequest, _ decision: Decision, subject: String? = nil, subjectSet: [UInt8] = [], counts: [String: Int] = [:],
        consentIDs: [Int64] = [], requestID: String?, under snapshot: PolicySnapshot? = nil
    ) -> AuditDraft {
        AuditDraft(
            actor: request.actor, role: request.role, action: AuditAction(request.action), purpose: request.purpose, subject: subject,
            subjectSet: subjectSet, fields: request.fields.map(\.rawValue), counts: counts, decision: decision.effect,
            reasons: decision.reasons.map(\.description), policyVersion: (snapshot ?? policyNow).version, consentRecordIDs: consentIDs,
            requestID: requestID)
    }

    /// Reads the requested fields of one subject through the gate.
    ///
    /// The decision, the audit entry and the decryption happen in one transaction: the entry is durable
    /// before any value is returned, and if it cannot be written nothing is returned (the call throws).
    /// A denied read returns the decision and no values.
    /// - Throws: ``GateError`` when the audit log or the database cannot be written or read.
    ///
    /// With `includeDerived`, a permitted read also releases the derived data computed for the request's purpose
    /// (see ``GateRead/derived``); derived data of other purposes (profiling scores, say) never leaves this way.
    public func read(
        _ request: AccessRequest, subject reference: SubjectReference, includeDerived: Bool = false, requestID: String? = nil
    ) async throws(GateError) -> GateRead {
        // The caller suspends, holding no thread, while its read waits for the shared commit.
        let result: GateRead
        do {
            result = try await groupCommitter.run(db, readJob(request, reference, includeDerived: includeDerived, requestID: requestID))
        } catch {
            throw Self.storageError(error, "complete the gated read (nothing was released)")
        }
        try checkpointIfDue()
        return result
    }

    /// The work of one gated read inside the shared write transaction.
    private func readJob(
        _ request: AccessRequest, _ reference: SubjectReference, includeDerived: Bool, requestID: String?
    ) -> GroupCommitter.Work {
        // Work that needs no database (the request-level decision, normalizing and hashing the identifier) is
        // done before queueing, so the shared writer thread spends its time only on what needs the transaction.
        // One policy for the whole read: the decision and its audit entry name the same version.
        let snapshot = policyNow
        let authorizedUpFront = snapshot.loaded?.authorize(request)
        let lookup = identityLookup(reference)
        return { [self] db, scratch -> GateRead in
            guard let policy = snapshot.loaded, let authorizedUpFront else {
                let decision = Decision.deny(.policyUnavailable, "run `consentry policy check` on the vault's policies")
                let entry = try audit(draft(request, decision, requestID: requestID, under: snapshot), db: db, fileCheckedAtCommit: true)
                return GateRead(decision: decision, values: [:], pseudonym: nil, auditSequence: entry.sequence)
            }
            let authorized = authorizedUpFront
            guard let subject = try resolve(lookup, db: db) else {
                let decision = authorized.isPermit ? Decision.deny(.subjectNotFound) : authorized
                let entry = try audit(draft(request, decision, requestID: requestID, under: snapshot), db: db, fileCheckedAtCommit: true)
                return GateRead(decision: decision, values: [:], pseudonym: nil, auditSequence: entry.sequence)
            }
            // One read of the row serves the pseudonym now and the decryption after the audit entry.
            guard let row = try subjectRow(subject, db: db) else {
                throw GateError(.integrity, "a subject has no row (its identity points nowhere); run `consentry check`")
            }
            let pseudonym = self.pseudonym(secret: row.auditSecret)
            let derived = try derivedState(of: subject, db: db)
            let decision = policy.decide(request, subject: derived.state)
            let consentIDs = request.purpose.flatMap { derived.recordIDs[$0] }.map { [$0] } ?? []
            // INVARIANT: no audit, no data. The entry is written in this transaction before anything is
            // decrypted, and the caller gets the values only after the transaction commits.
            var readEntry = draft(request, decision, subject: pseudonym, consentIDs: consentIDs, requestID: requestID, under: snapshot)
            if includeDerived { readEntry.reasons.append("with derived data of the purpose") }
            let entry = try audit(readEntry, db: db, fileCheckedAtCommit: true)
            guard decision.isPermit else { return GateRead(decision: decision, values: [:], pseudonym: pseudonym, auditSequence: entry.sequence) }
            var values: [FieldName: String] = [:]
            defer { scratch.zero() }
            let opened = try openFields(request.fields, of: subject, row: row, db: db, scratch: &scratch)
            for (field, value) in zip(request.fields, opened) { if let value { values[field] = value } }
            var result = GateRead(decision: decision, values: values, pseudonym: pseudonym, auditSequence: entry.sequence)
            if includeDerived, let purpose = request.purpose {
                // INVARIANT: derived data leaves only for the purpose it was computed for.
                let keyVersion = row.keyVersion
                try SQLiteReadRows.forEachDerived(of: subject.rawValue, purpose: purpose.rawValue, kinds: DerivedKind.releasedNames, db) { kind, name, sealed in
                    let ad = Sealing.derivedAssociatedData(subject: subject, kind: kind, name: name, keyVersion: keyVersion)
                    guard let value = Sealing.openString(sealed, key: scratch, associatedData: ad) else {
                        throw GateError(.integrity, "derived value `\(kind)/\(name)` of \(subjectLabel(subject, db)) failed its integrity check")
                    }
                    result.derived["\(kind)/\(name)"] = value
                }
            }
            return result
        }
    }

    /// Scans every subject for a purpose through the gate, handing `body` each admitted subject (its id and
    /// audit pseudonym) and the requested fields' values (in `request.fields` order). The input of segments and scores.
    ///
    /// The request is decided once; then each subject's consent and flags. One audit entry with the admitted
    /// subject set is committed before any value is handed out. Subjects are then read in chunks, and each
    /// chunk re-reads consent, so a withdrawal committed during the scan excludes the subject from every chunk
    /// not yet read; such late exclusions are recorded in a second entry. Excluded subjects are never decrypted.
    public func scan(_ request: AccessRequest, requestID: String? = nil, _ body: (ScanMember, [String?]) throws -> Void) async throws(GateError)
        -> ScanSummary
    {
        try await gatedScan(request, only: nil, eventsSince: nil, requestID: requestID) { member, values, _ in try body(member, values) }
    }

    /// A gated scan that also hands out each admitted subject's behavioral events since `eventsSince` (ms; nil: all),
    /// oldest first, optionally limited to the subjects in `only` (incremental segment updates). Decided, audited and
    /// re-checked per chunk exactly as ``scan(_:requestID:_:)``; events of excluded subjects are never handed out.
    public func scanBehavior(
        _ request: AccessRequest, eventsSince: Int64?, only: Set<SubjectID>? = nil, requestID: String? = nil,
        _ body: (ScanMember, [String?], [BehaviorEvent]) throws -> Void
    ) async throws(GateError) -> ScanSummary {
        try await gatedScan(request, only: only, eventsSince: eventsSince ?? Int64.min, requestID: requestID, body)
    }

    private func gatedScan(
        _ request: AccessRequest, only: Set<SubjectID>?, eventsSince: Int64?, requestID: String?,
        _ body: (ScanMember, [String?], [BehaviorEvent]) throws -> Void
    ) async throws(GateError) -> ScanSummary {
        var summary = ScanSummary(decision: .permit, reasons: [])
        var admitted: [Int64] = []
        var pseudonyms: [UInt8] = []
        var members: [UInt8] = []
        var releasesMembers = false
        var states: [Int64: DerivedState] = [:]
        var seen: (consent: Int64, flag: Int64) = (0, 0)
        // Pass 1: decide every subject and record the admitted set before anything is decrypted, as one operation.
        // INVARIANT: no audit, no data; and minimization: only admitted subjects are ever opened (pass 2's `include`).
        let outcome = try await performOutcome(request, requestID: requestID, failure: "complete the gated scan") {
            scope -> (Policy, Purpose, Decision, PolicySnapshot) in
            // One policy for the whole scan: it is one decision, and every entry it writes names the same version.
            guard let policy = scope.snapshot.loaded, let purpose = request.purpose else {
                throw Refusal(request: request, decision: .deny(.purposeRequired))
            }
            summary.reasons = scope.decision.reasons.map(\.description)
            let sensitive = policy.touchesSpecialCategory(request.fields)
            // Member pseudonyms are keyed by purpose (a tag per purpose), and an aggregates-only purpose hands out none.
            releasesMembers = !(policy.purposes[purpose]?.aggregatesOnly ?? true)
            let db = scope.db
            let ids = only.map { $0.map(\.rawValue).sorted() }
            if let ids {
                // A few subjects (an incremental update): their ledgers and rows only, not the whole vault.
                for id in ids {
                    let newest = try applyLedger(db, from: id, to: id, after: (0, 0), withRecordIDs: false, to: &states)
                    seen = (max(seen.consent, newest.consent), max(seen.flag, newest.flag))
                }
            } else {
                seen = try applyLedger(db, from: 1, to: Int64.max, after: (0, 0), withRecordIDs: false, to: &states)
            }
            let hasher = keys.auditPseudonyms.prefixedHasher(tag: 0x20)
            let memberHasher = keys.auditPseudonyms.prefixedHasher(tag: Self.memberPseudonymTag(purpose))
            try SQLiteReadRows.forEachPseudonymSecret(only: ids, db) { id, secret in
                summary.subjects += 1
                if let reason = policy.admit(states[id]?.state ?? SubjectState(), purpose: purpose, sensitive: sensitive) {
                    summary.excluded[reason.rawValue, default: 0] += 1
                } else {
                    admitted.append(id)
                    hasher.append(secret, length: AuditEntry.pseudonymLength, to: &pseudonyms)
                    if releasesMembers { memberHasher.append(secret, length: AuditEntry.pseudonymLength, to: &members) }
                }
            }
            summary.permitted = admitted.count
            scope.entry.counts = summary.excluded.reduce(into: ["permitted": admitted.count, "subjects": summary.subjects]) {
                $0["excluded.\($1.key)"] = $1.value
            }
            scope.entry.subjectSet = pseudonyms
            return (policy, purpose, scope.decision, scope.snapshot)
        }
        let policy: Policy, purpose: Purpose, authorized: Decision, snapshot: PolicySnapshot
        switch outcome {
        case .refused(let decision, let entry):
            return ScanSummary(decision: .deny, reasons: decision.reasons.map(\.description), auditSequences: [entry.sequence])
        case .done(let chosen, let entry):
            (policy, purpose, authorized, snapshot) = chosen
            if let entry { summary.auditSequences.append(entry.sequence) }
        }
        let sensitive = policy.touchesSpecialCategory(request.fields)
        do {
            // Pass 2: read admitted subjects chunk by chunk, re-checking consent for each chunk.
            var reader = SubjectReader(fields: request.fields, vault: self)
            var scratch = try SecretBytes(count: Sealing.keyLength)
            var start = 0
            while start < admitted.count {
                let chunk = admitted[start..<min(admitted.count, start + configuration.scanChunkSize)]
                start += chunk.count
                try await store.read { db in
                    // Only records appended since pass 1 can change a decision (the ledgers are append-only). The
                    // watermark stays at pass 1: records arrive in any subject order, so a later chunk may need a
                    // record older than one an earlier chunk applied.
                    _ = try applyLedger(db, from: chunk.first!, to: chunk.last!, after: seen, withRecordIDs: false, to: &states)
                    // `chunk` and the rows are both in id order: walk them in step instead of hashing ids.
                    var stillAdmitted = [Bool](repeating: false, count: chunk.count)
                    for (offset, id) in chunk.enumerated() {
                        if let reason = policy.admit(states[id]?.state ?? SubjectState(), purpose: purpose, sensitive: sensitive) {
                            summary.excludedDuringScan[reason.rawValue, default: 0] += 1
                        } else {
                            stillAdmitted[offset] = true
                        }
                    }
                    var cursor = 0
                    let chunkStart = start - chunk.count
                    var events: [Int64: [BehaviorEvent]] = [:]
                    if let eventsSince {
                        try SQLiteReadRows.forEachEvent(subjects: chunk.first!, chunk.last!, since: eventsSince, db) { subject, event in
                            events[subject, default: []].append(event)
                        }
                    }
                    try reader.open(
                        db, scratch: &scratch, .ids(chunk.first!...chunk.last!),
                        include: { subject in
                            while cursor < chunk.count && chunk[chunk.startIndex + cursor] < subject.rawValue { cursor += 1 }
                            return cursor < chunk.count && chunk[chunk.startIndex + cursor] == subject.rawValue && stillAdmitted[cursor]
                        }
                    ) { subject, values in
                        summary.delivered += 1
                        let offset = (chunkStart + cursor) * AuditEntry.pseudonymLength
                        let range = offset..<offset + AuditEntry.pseudonymLength
                        try body(
                            ScanMember(subject: subject, member: releasesMembers ? members[range] : [], audit: pseudonyms[range]), values,
                            events[subject.rawValue] ?? [])
                    }
                }
            }
        } catch let error as GateError {
            throw error
        } catch {
            throw Self.storageError(error, "complete the gated scan")
        }
        if !summary.excludedDuringScan.isEmpty {
            var counts = summary.excludedDuringScan.reduce(into: ["delivered": summary.delivered]) { $0["excluded_during_scan.\($1.key)"] = $1.value }
            counts["permitted_at_start"] = summary.permitted
            let entry = try await auditAlone(draft(request, authorized, counts: counts, requestID: requestID, under: snapshot))
            summary.auditSequences.append(entry.sequence)
        }
        return summary
    }

    /// The hash tag of member pseudonyms for `purpose`: one per purpose, apart from the audit pseudonym's 0x20.
    static func memberPseudonymTag(_ purpose: Purpose) -> UInt8 { 0x40 + UInt8(purpose.ordinal) }

    /// Explains the decision for a request (and, when given, one subject) step by step. The explanation is
    /// itself audited; it releases no personal data.
    public func explain(_ request: AccessRequest, subject reference: SubjectReference? = nil, requestID: String? = nil) async throws(GateError)
        -> Explanation
    {
        let snapshot = policyNow
        var trace: [String] = []
        let decision: Decision
        var pseudonym: String?
        if case .failure(let error) = snapshot.policy {
            trace.append("policy: failed to load (\(error.diagnostics.filter { $0.severity == .error }.count) errors) → deny")
            decision = Decision.deny(.policyUnavailable, "run `consentry policy check` on the vault's policies")
        } else if let policy = snapshot.loaded {
            trace.append("policy: version \(snapshot.version)")
            let authorized = policy.authorize(request)
            trace += policy.trace(request)
            var state: SubjectState?
            // A request the policy refuses never consults the subject: the answer is the same whether or not the person
            // exists, and no consent state or flag is shown to a role that may not act on it.
            if reference != nil && !authorized.isPermit {
                trace.append("subject: not looked up (the request is denied before any subject is consulted)")
            } else if let reference {
                do {
                    (pseudonym, state) = try await store.read { db -> (String?, SubjectState?) in
                        guard let subject = try resolve(reference, db: db) else { return (nil, nil) }
                        return (self.pseudonym(secret: try auditSecret(of: subject, db: db)), try derivedState(of: subject, db: db).state)
                    }
                } catch { throw Self.storageError(error, "read the subject's consent state") }
                if let state, let purpose = request.purpose, !request.action.isAdministrative {
                    // The trace names no pseudonym: it would link this answer to segment runs and audit reports.
                    trace.append(
                        "subject: consent for `\(purpose.rawValue)` is `\(state.consent(purpose).rawValue)`"
                            + ", restricted: \(state.restricted), objected: \(state.objected(to: purpose)), opt-out: \(state.saleOptOut), gpc: \(state.globalPrivacyControl)"
                            + ", limit-sensitive: \(state.limitSensitive)"
                    )
                    let admitted = policy.admit(state, purpose: purpose, sensitive: policy.touchesSpecialCategory(request.fields))
                    trace.append("subject rules → " + (admitted.map { "deny (\($0.rawValue))" } ?? "admit"))
                } else if state == nil {
                    trace.append("subject: not found → deny")
                }
            }
            if reference != nil && (state == nil || !authorized.isPermit) {
                decision = authorized.isPermit ? .deny(.subjectNotFound) : authorized
            } else {
                decision = policy.decide(request, subject: state)
            }
        } else {
            decision = Decision.deny(.policyUnavailable)
        }
        trace.append("decision: \(decision.effect.rawValue)")
        var explainDraft = draft(request, decision, subject: pseudonym, requestID: requestID, under: snapshot)
        explainDraft.action = .policyExplain
        try await auditAlone(explainDraft)
        return Explanation(decision: decision, trace: trace)
    }
}

extension Policy {
    /// The request-level checks of ``authorize(_:)`` as readable steps.
    func trace(_ request: AccessRequest) -> [String] {
        var steps = [
            "request: actor `\(request.actor)`, role `\(request.role.rawValue)`, action `\(request.action.rawValue)`, purpose "
                + (request.purpose.map { "`\($0.rawValue)`" } ?? "none") + ", fields "
                + (request.fields.isEmpty ? "none" : request.fields.map { "`\($0)`" }.joined(separator: ", "))
        ]
        if let purpose = request.purpose, let spec = purposes[purpose] {
            steps.append(
                "purpose `\(purpose.rawValue)`: legal basis `\(spec.legalBasis.rawValue)`, consent `\(spec.consent.rawValue)`, fields "
                    + spec.fields.map { "`\($0)`" }.joined(separator: ", "))
        }
        let decision = authorize(request)
        if decision.isPermit {
            steps.append("rule: \(decision.reasons.first?.detail ?? "") → permit")
        } else {
            for reason in decision.reasons { steps.append("check failed: \(reason.description) → deny") }
        }
        return steps
    }
}
