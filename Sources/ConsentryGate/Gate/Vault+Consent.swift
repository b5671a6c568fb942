import ConsentryAudit
public import ConsentryCore
import ConsentryPolicy
import Foundation
import GRDB

/// A change to the consent ledger.
public struct ConsentChange: Sendable, Hashable {
    /// The purpose consented to (or withdrawn from).
    public var purpose: Purpose
    /// The new state.
    public var state: ConsentState
    /// Where it came from: `form`, `import`, `api`, `preference_centre`, …
    public var source: String
    /// The version of the privacy notice the subject saw.
    public var noticeVersion: String?
    /// A reference to the evidence (a form submission id, a signed document).
    public var evidence: String?
    /// When the consent expires, in milliseconds since 1970.
    public var expiresAt: Int64?

    /// Creates a change.
    public init(purpose: Purpose, state: ConsentState, source: String, noticeVersion: String? = nil, evidence: String? = nil, expiresAt: Int64? = nil)
    {
        self.purpose = purpose
        self.state = state
        self.source = source
        self.noticeVersion = noticeVersion
        self.evidence = evidence
        self.expiresAt = expiresAt
    }
}

/// A subject's consent history and flags, as `consent show` prints them.
public struct ConsentHistory: Sendable, Codable, Equatable {
    /// The subject's audit pseudonym.
    public var subject: String
    /// Ledger records, oldest first.
    public var records: [ConsentRecordInfo]
    /// Current status per purpose.
    public var current: [String: String]
    /// Current flags: `restriction`, `opt_out_sale_share`, `gpc`, `objection:<purpose>`.
    public var flags: [String]
}

extension Vault {
    /// Authorizes an administrative action or throws `denied`, auditing the denial.
    func requireAdministrative(_ action: Action, actor: String, role: Role, requestID: String?) async throws(GateError) -> Decision {
        try await require(AccessRequest(actor: actor, role: role, action: action), requestID: requestID)
    }

    /// Authorizes a request (role, action, purpose, fields) or throws `denied`, auditing the denial.
    func require(_ request: AccessRequest, requestID: String?) async throws(GateError) -> Decision {
        let decision = decide(request)
        guard decision.isPermit else { try await refuse(request, decision, requestID: requestID) }
        return decision
    }

    /// Audits a denied request (recorded as `action` when given) and throws `denied` with the decision's reasons.
    func refuse(_ request: AccessRequest, _ decision: Decision, as action: AuditAction? = nil, requestID: String?) async throws(GateError)
        -> Never
    {
        try await auditAlone(denial(request, decision, as: action, requestID: requestID))
        throw Self.denied(decision)
    }

    /// The audit entry of a denial.
    func denial(
        _ request: AccessRequest, _ decision: Decision, as action: AuditAction?, requestID: String?, under snapshot: PolicySnapshot? = nil
    ) -> AuditDraft {
        var entry = draft(request, decision, requestID: requestID, under: snapshot)
        if let action { entry.action = action }
        return entry
    }

    /// The error a denial throws, with the decision's reasons.
    static func denied(_ decision: Decision) -> GateError {
        GateError(.denied, "denied: " + decision.reasons.map(\.description).joined(separator: "; "))
    }

    /// Appends a consent record for one subject. A withdrawal takes effect for every later decision,
    /// including chunks of a scan that is already running.
    /// - Returns: the new record's id.
    /// - Throws: ``GateError`` `denied` when the role may not write consent, `notFound` for an unknown subject,
    ///   `invalidInput` for a consent on a purpose that does not rest on consent or a confirmation without a pending opt-in.
    @discardableResult
    public func recordConsent(
        _ change: ConsentChange, subject reference: SubjectReference, as principal: Principal
    ) async throws(GateError) -> Int64 {
        let (actor, role, requestID) = (principal.actor, principal.role, principal.requestID)
        let request = AccessRequest(actor: actor, role: role, action: .consentWrite, purpose: change.purpose)
        // The grant is decided first: a role without it learns nothing about the purposes' legal bases.
        let grant = decide(AccessRequest(actor: actor, role: role, action: .consentWrite))
        if grant.isPermit, loadedPolicy?.purposes[change.purpose]?.legalBasis != .consent {
            throw GateError(.invalidInput, "purpose `\(change.purpose.rawValue)` does not rest on consent, so it takes no consent records")
        }
        return try await perform(request, requestID: requestID, decision: grant, failure: "record the consent (nothing was written)") { scope -> Int64 in
            let db = scope.db
            guard let subject = try resolve(reference, db: db) else {
                throw GateError(.notFound, "no subject matches; check the e-mail address or customer id")
            }
            if change.state == .confirmed {
                let last = try SQLiteLedgerRows.lastConsentState(subject: subject.rawValue, purpose: change.purpose.rawValue, db)
                guard last == ConsentState.pending.rawValue else {
                    throw GateError(
                        .invalidInput, "there is no pending double opt-in for `\(change.purpose.rawValue)` to confirm; record `pending` first")
                }
            }
            let id = try appendConsent(
                subject: subject, purpose: change.purpose, state: change.state, time: nowMillis, source: change.source,
                noticeVersion: change.noticeVersion, evidence: change.evidence, expiresAt: change.expiresAt, db: db)
            scope.entry.subject = self.pseudonym(secret: try auditSecret(of: subject, db: db))
            scope.entry.counts = [change.state.rawValue: 1]
            scope.entry.consentRecordIDs = [id]
            scope.entry.reasons.append("source: \(change.source)")
            return id
        }
    }

    /// Sets or clears a flag (restriction, objection to a purpose, opt-out of sale/sharing, GPC) for one subject.
    public func recordFlag(
        _ flag: SubjectFlag, purpose: Purpose? = nil, on: Bool, subject reference: SubjectReference, source: String, as principal: Principal
    ) async throws(GateError) {
        let (actor, role, requestID) = (principal.actor, principal.role, principal.requestID)
        if flag == .objection && purpose == nil { throw GateError(.invalidInput, "an objection names the purpose objected to; give the purpose") }
        if flag != .objection && purpose != nil {
            throw GateError(.invalidInput, "`\(flag.rawValue)` applies to every purpose; give no purpose")
        }
        let request = AccessRequest(actor: actor, role: role, action: .consentWrite, purpose: purpose)
        try await perform(request, requestID: requestID, recordedAs: .flagWrite, failure: "record the flag (nothing was written)") { scope in
            let db = scope.db
            guard let subject = try resolve(reference, db: db) else {
                throw GateError(.notFound, "no subject matches; check the e-mail address or customer id")
            }
            let now = nowMillis
            // The id is chosen inside the write transaction so that the binding covers it (the ledger is append-only).
            let id = try SQLiteLedgerRows.nextFlagID(db)
            let binding = RecordBinding.flag(
                keys.recordBinding, id: id, subject: subject.rawValue, flag: flag.rawValue, purpose: purpose?.rawValue ?? "", value: on ? 1 : 0,
                time: now, source: source, recordedAt: now)
            try SQLiteLedgerRows.insertFlag(
                FlagRecordRow(
                    id: id, subjectID: subject.rawValue, flag: flag.rawValue, purpose: purpose?.rawValue ?? "", value: on ? 1 : 0, time: now,
                    source: source, recordedAt: now, binding: binding), db)
            try advanceLedgerHead(of: subject, flag: id, db: db)
            scope.entry.subject = self.pseudonym(secret: try auditSecret(of: subject, db: db))
            scope.entry.reasons += ["\(flag.rawValue): \(on ? "set" : "cleared")", "source: \(source)"]
        }
    }

    /// A subject's consent ledger and flags, for roles that write consent or manage requests. Audited.
    public func consentHistory(subject reference: SubjectReference, as principal: Principal) async throws(GateError)
        -> ConsentHistory
    {
        let (actor, role, requestID) = (principal.actor, principal.role, principal.requestID)
        let request = AccessRequest(actor: actor, role: role, action: .consentWrite)
        // Roles that write consent or manage data-subject requests may read it.
        let writeDecision = decide(request)
        let manageDecision = decide(AccessRequest(actor: actor, role: role, action: .dsrManage))
        // Denied by both, the refusal gives the consent-write grant's reasons.
        let decision = writeDecision.isPermit ? writeDecision : manageDecision.isPermit ? manageDecision : writeDecision
        return try await perform(request, requestID: requestID, recordedAs: .consentRead, decision: decision, failure: "read the consent history") {
            scope -> ConsentHistory in
            let db = scope.db
            guard let subject = try resolve(reference, db: db) else {
                throw GateError(.notFound, "no subject matches; check the e-mail address or customer id")
            }
            let pseudonym = self.pseudonym(secret: try auditSecret(of: subject, db: db))
            let records = try consentRecords(db, subject)
            let state = try derivedState(of: subject, db: db).state
            scope.entry.subject = pseudonym
            scope.entry.consentRecordIDs = records.map(\.id)
            let current = Dictionary(uniqueKeysWithValues: Purpose.allCases.map { ($0.rawValue, state.consent($0).rawValue) })
            return ConsentHistory(subject: pseudonym, records: records, current: current, flags: flagNames(state))
        }
    }
}
