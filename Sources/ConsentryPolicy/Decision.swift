public import ConsentryCore

/// A request to act on personal data, as the gate sees it.
public struct AccessRequest: Sendable, Hashable {
    /// Who is acting (a user or token name); recorded, not used to decide.
    public var actor: String
    /// The actor's role.
    public var role: Role
    /// What the actor wants to do.
    public var action: Action
    /// Why; required for data actions, ignored for administrative ones.
    public var purpose: Purpose?
    /// The fields the caller declares it will read.
    public var fields: [FieldName]
    /// A stated reason, where the role must give one (for example a support agent reading a profile).
    public var reason: String?

    /// Creates a request.
    public init(actor: String, role: Role, action: Action, purpose: Purpose? = nil, fields: [FieldName] = [], reason: String? = nil) {
        self.actor = actor
        self.role = role
        self.action = action
        self.purpose = purpose
        self.fields = fields
        self.reason = reason
    }
}

/// The consent state of one subject for one purpose, derived from the consent ledger.
public enum ConsentStatus: String, Sendable, Hashable, CaseIterable, Codable {
    /// No record.
    case none
    /// Granted.
    case granted
    /// Double opt-in started, not confirmed.
    case pending
    /// Double opt-in confirmed.
    case confirmed
    /// Withdrawn after being given.
    case withdrawn
    /// Given with an expiry that has passed.
    case expired

    /// The statuses by packed code (see ``SubjectState``), in declaration order.
    static let byCode: [ConsentStatus] = allCases

    /// The packed code: the position in declaration order.
    @inline(__always)
    var code: Int {
        switch self {
        case .none: 0
        case .granted: 1
        case .pending: 2
        case .confirmed: 3
        case .withdrawn: 4
        case .expired: 5
        }
    }
}

/// Everything about one subject that decisions depend on.
public struct SubjectState: Sendable, Hashable {
    /// Consent status per purpose, three bits each at `Purpose.ordinal * 3`: packed so that a scan over a
    /// million subjects allocates nothing per subject.
    var consentBits: UInt32 = 0
    /// Processing is restricted (GDPR Art. 18).
    public var restricted: Bool
    /// Purposes the subject objected to (GDPR Art. 21), one bit per `Purpose.ordinal`.
    var objectionMask: UInt8 = 0

    /// Purposes the subject objected to (GDPR Art. 21).
    public var objections: Set<Purpose> {
        get { Set(Purpose.allCases.filter { objectionMask & (1 << UInt8($0.ordinal)) != 0 }) }
        set { objectionMask = newValue.reduce(0) { $0 | (1 << UInt8($1.ordinal)) } }
    }

    /// Whether the subject objected to `purpose`.
    @inline(__always)
    public func objected(to purpose: Purpose) -> Bool { objectionMask & (1 << UInt8(purpose.ordinal)) != 0 }
    /// The subject opted out of sale and sharing (CCPA/CPRA).
    public var saleOptOut: Bool
    /// A Global Privacy Control signal was received for the subject.
    public var globalPrivacyControl: Bool
    /// The subject limited the use of sensitive personal information (CPRA): special-category fields are
    /// released only to purposes necessary for the service (contract or legal obligation).
    public var limitSensitive: Bool = false

    /// A subject with no consents and no flags.
    public init(
        consents: [Purpose: ConsentStatus] = [:], restricted: Bool = false, objections: Set<Purpose> = [], saleOptOut: Bool = false,
        globalPrivacyControl: Bool = false, limitSensitive: Bool = false
    ) {
        self.limitSensitive = limitSensitive
        self.restricted = restricted
        self.objectionMask = objections.reduce(0) { $0 | (1 << UInt8($1.ordinal)) }
        self.saleOptOut = saleOptOut
        self.globalPrivacyControl = globalPrivacyControl
        for (purpose, status) in consents { setConsent(status, for: purpose) }
    }

    /// The consent status for `purpose`.
    @inline(__always)
    public func consent(_ purpose: Purpose) -> ConsentStatus {
        ConsentStatus.byCode[Int((consentBits >> UInt32(purpose.ordinal * 3)) & 7)]
    }

    /// Sets the consent status for `purpose`.
    @inline(__always)
    public mutating func setConsent(_ status: ConsentStatus, for purpose: Purpose) {
        let shift = UInt32(purpose.ordinal * 3)
        consentBits = consentBits & ~(7 << shift) | (UInt32(status.code) << shift)
    }
}

extension Policy {
    /// Whether any of `fields` is of class `special` (GDPR Art. 9, CPRA sensitive personal information).
    public func touchesSpecialCategory(_ fields: [FieldName]) -> Bool {
        fields.contains { fieldIndex[$0].map(specialFields.contains) ?? false }
    }

    /// Decides a request without looking at any subject: role, action, purpose, fields and reason.
    ///
    /// Pure and cheap; bulk operations call it once and then ``admit(_:purpose:)`` per subject.
    public func authorize(_ request: AccessRequest) -> Decision {
        var reasons: [DecisionReason] = []
        var rule = ""
        let a = Self.actions.count, p = Self.purposeCount
        let base = (request.role.ordinal * a + request.action.ordinal) * (p + 1)
        // INVARIANT: deny by default, deny on error.
        // The final decision is a table (after Cedar, except that an error denies rather than skipping):
        //   any failed check                → deny, with every failed check as a reason
        //   no failed check, a granting rule → permit, with the rule as the reason
        //   no granting rule                 → deny (deny by default)
        if request.action.isAdministrative {
            if let granting = self.rule(request.role, request.action, nil) {
                rule = granting
            } else {
                reasons.append(DecisionReason(.noRule, noRuleText[base + p]))
            }
        } else if let purpose = request.purpose {
            if let spec = purposeTable[purpose.ordinal] {
                if let granting = self.rule(request.role, request.action, purpose) {
                    rule = granting
                } else {
                    reasons.append(DecisionReason(.noRule, noRuleText[base + purpose.ordinal]))
                }
                if spec.aggregatesOnly && request.action.releasesIndividualData {
                    reasons.append(DecisionReason(.aggregatesOnly, aggregatesOnlyText[purpose.ordinal]))
                }
                let allowed = purposeFields[purpose.ordinal]
                for field in request.fields {
                    guard let index = fieldIndex[field] else {
                        reasons.append(DecisionReason(.unknownField, "`\(field)`"))
                        continue
                    }
                    if !allowed.contains(index) {
                        reasons.append(DecisionReason(.fieldNotAllowed, fieldNotAllowedText[purpose.ordinal * schema.fields.count + index]))
                    }
                }
            } else {
                reasons.append(DecisionReason(.purposeUndeclared, "`\(purpose.rawValue)`"))
            }
        } else {
            reasons.append(DecisionReason(.purposeRequired, "`\(request.action.rawValue)` needs a purpose"))
        }
        if reasonRequired(request.role, request.action), Normalize.trimmed(request.reason ?? "").isEmpty {
            reasons.append(DecisionReason(.reasonMissing, reasonMissingText[request.role.ordinal * a + request.action.ordinal]))
        }
        return reasons.isEmpty ? Decision(.permit, [DecisionReason(.granted, rule)]) : Decision(.deny, reasons)
    }

    /// Decides whether one subject's data may be used for `purpose`: consent, restriction, objection,
    /// opt-out and Global Privacy Control. Returns nil when admitted, else the first reason to exclude.
    @inline(__always)
    /// `sensitive` says whether the request reads a special-category field (see ``touchesSpecialCategory(_:)``).
    public func admit(_ state: SubjectState, purpose: Purpose, sensitive: Bool = false) -> DecisionReason.Code? {
        guard let spec = purposeTable[purpose.ordinal] else { return .purposeUndeclared }
        if state.restricted && !spec.allowedWhenRestricted { return .restricted }
        if sensitive && state.limitSensitive && !spec.necessaryForService { return .sensitiveLimited }
        if spec.objectable && state.objected(to: purpose) { return .objection }
        if spec.saleOrShare {
            if state.saleOptOut { return .optOut }
            if state.globalPrivacyControl { return .globalPrivacyControl }
        }
        switch (spec.consent, state.consent(purpose)) {
        case (.none, _): return nil
        case (.explicit, .granted), (.explicit, .confirmed), (.doubleOptIn, .confirmed): return nil
        case (_, .withdrawn): return .consentWithdrawn
        case (_, .expired): return .consentExpired
        case (.doubleOptIn, .granted), (_, .pending): return .consentUnconfirmed
        case (_, .none): return .consentMissing
        }
    }

    /// The full decision for one subject: the request checks, then (for data actions) the subject's state.
    public func decide(_ request: AccessRequest, subject: SubjectState?) -> Decision {
        let authorized = authorize(request)
        guard !request.action.isAdministrative, let purpose = request.purpose, let subject else { return authorized }
        guard let code = admit(subject, purpose: purpose, sensitive: touchesSpecialCategory(request.fields)) else { return authorized }
        let reason = DecisionReason(code, purposeText[purpose.ordinal])
        return authorized.isPermit ? Decision(.deny, [reason]) : Decision(.deny, authorized.reasons + [reason])
    }
}
