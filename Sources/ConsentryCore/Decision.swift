/// Permit or deny.
public enum Effect: String, Sendable, Hashable, Codable, CaseIterable {
    /// The request may proceed.
    case permit
    /// The request must not proceed.
    case deny
}

/// A machine-readable reason behind a decision. Codes are frozen: they are stored in the audit log.
public struct DecisionReason: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The reason codes.
    public enum Code: String, Sendable, Hashable, Codable, CaseIterable {
        /// A rule of the policy grants the request (detail names the rule).
        case granted
        /// No rule grants this role this action for this purpose.
        case noRule = "no_rule"
        /// A data action without a purpose.
        case purposeRequired = "purpose_required"
        /// The purpose is not declared in the policy.
        case purposeUndeclared = "purpose_undeclared"
        /// A requested field is not declared in the schema.
        case unknownField = "unknown_field"
        /// A requested field is not allowed for the purpose.
        case fieldNotAllowed = "field_not_allowed"
        /// The purpose releases aggregates only, and the action releases individual data.
        case aggregatesOnly = "aggregates_only"
        /// The role must state a reason for this action and did not.
        case reasonMissing = "reason_missing"
        /// The purpose needs consent and there is none.
        case consentMissing = "consent_missing"
        /// The purpose needs a confirmed double opt-in; it is only pending or unconfirmed.
        case consentUnconfirmed = "consent_unconfirmed"
        /// Consent was withdrawn.
        case consentWithdrawn = "consent_withdrawn"
        /// Consent expired.
        case consentExpired = "consent_expired"
        /// Processing is restricted (GDPR Art. 18).
        case restricted
        /// The subject objected to this purpose (GDPR Art. 21).
        case objection
        /// The subject opted out of sale and sharing (CCPA).
        case optOut = "opt_out_sale_share"
        /// A Global Privacy Control signal counts as an opt-out of sale and sharing.
        case globalPrivacyControl = "gpc"
        /// The subject limited the use of sensitive personal information (CPRA) and the request reads a special-category field.
        case sensitiveLimited = "sensitive_limited"
        /// The policy could not be loaded: everything is denied.
        case policyUnavailable = "policy_unavailable"
        /// The subject does not exist.
        case subjectNotFound = "subject_not_found"
    }

    /// The code.
    public let code: Code
    /// Detail for people: the rule, the field or the purpose involved (never personal data).
    public let detail: String

    /// Creates a reason.
    public init(_ code: Code, _ detail: String = "") {
        self.code = code
        self.detail = detail
    }

    /// `code (detail)`.
    public var description: String { detail.isEmpty ? code.rawValue : "\(code.rawValue) (\(detail))" }
}

/// The outcome of a decision, with every reason behind it.
public struct Decision: Sendable, Hashable, Codable {
    /// Permit or deny.
    public let effect: Effect
    /// Why: the granting rule for a permit; every failed check for a deny.
    public let reasons: [DecisionReason]

    /// Creates a decision.
    public init(_ effect: Effect, _ reasons: [DecisionReason]) {
        self.effect = effect
        self.reasons = reasons
    }

    /// Whether the request may proceed.
    public var isPermit: Bool { effect == .permit }

    /// A deny with one reason.
    public static func deny(_ code: DecisionReason.Code, _ detail: String = "") -> Decision { Decision(.deny, [DecisionReason(code, detail)]) }
}
