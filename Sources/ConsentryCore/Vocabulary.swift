/// The frozen vocabulary of Consentry: the names that policies, the store and the audit log share.
///
/// Every raw value here is persisted or written into policy files, so it is frozen: renaming a case in
/// code must never change the string that is stored.

/// Why personal data is processed. Each purpose has a legal basis and a set of fields in the policy.
public enum Purpose: String, Sendable, Hashable, CaseIterable, Codable, Comparable {
    /// Transactional messages needed to deliver the service (order confirmations, password resets).
    case service
    /// Marketing e-mail.
    case emailMarketing = "email_marketing"
    /// Personalizing content of messages the subject receives.
    case personalization
    /// Scores, models and clusters about the subject.
    case profiling
    /// Aggregate statistics only.
    case analytics
    /// Sale or sharing of personal information (CCPA/CPRA).
    case saleShare = "sale_share"

    /// Orders purposes by their stored name, so that listings are stable.
    public static func < (lhs: Purpose, rhs: Purpose) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The lawful basis a purpose relies on (GDPR Art. 6).
public enum LegalBasis: String, Sendable, Hashable, CaseIterable, Codable {
    /// The subject agreed (Art. 6(1)(a)).
    case consent
    /// Needed to perform a contract with the subject (Art. 6(1)(b)).
    case contract
    /// The controller's legitimate interest, balanced against the subject's (Art. 6(1)(f)).
    case legitimateInterest = "legitimate_interest"
    /// Required by law (Art. 6(1)(c)).
    case legalObligation = "legal_obligation"
}

/// What kind of personal data a field holds; policies grant purposes access by field, and classes drive defaults.
public enum FieldClass: String, Sendable, Hashable, CaseIterable, Codable {
    /// Identifies the subject directly (customer id, name).
    case identifier
    /// A way to reach the subject (e-mail, phone).
    case contact
    /// Describes the subject (birth date, city, language).
    case demographic
    /// What the subject did (derived from events).
    case behavioral
    /// Purchases and money.
    case transactional
    /// Computed about the subject (scores, segments).
    case derived
    /// Special-category data (GDPR Art. 9): health, religion, ethnicity, sexual orientation, biometrics, precise location.
    case special
}

/// The value type of a profile field; ingest validates and normalizes values by it.
public enum FieldType: String, Sendable, Hashable, CaseIterable, Codable {
    /// Free text, trimmed.
    case string
    /// An e-mail address, case-folded and validated.
    case email
    /// A phone number, normalized to E.164 (`+` and digits).
    case phone
    /// A calendar date, ISO 8601 `YYYY-MM-DD`.
    case date
    /// A point in time, RFC 3339 / ISO 8601 with a zone.
    case datetime
    /// A decimal number.
    case number
    /// A whole number.
    case integer
    /// `true` or `false`.
    case boolean
    /// An ISO 3166-1 alpha-2 country code, upper-cased.
    case country
    /// An ISO 4217 currency code, upper-cased.
    case currency
}

/// Who is acting; each role is allowed a set of actions per purpose by the policy.
public enum Role: String, Sendable, Hashable, CaseIterable, Codable {
    /// Operates the deployment.
    case admin
    /// Runs audits and data-subject requests.
    case complianceOfficer = "compliance_officer"
    /// Feeds data into the vault.
    case dataEngineer = "data_engineer"
    /// Builds segments and campaigns.
    case marketer
    /// Works with aggregates.
    case analyst
    /// A campaign platform calling the API.
    case campaignService = "campaign_service"
}

/// What an actor does with personal data or with the vault.
public enum Action: String, Sendable, Hashable, CaseIterable, Codable {
    /// Bring profiles or events into the vault.
    case `import`
    /// Read one subject's profile fields.
    case readProfile = "read_profile"
    /// Evaluate a segment over subjects.
    case segment
    /// Compute scores, models or clusters.
    case score
    /// Compute product recommendations.
    case recommend
    /// Render a personalized template.
    case render
    /// Export a subject's data.
    case export
    /// Erase a subject.
    case erase
    /// Correct a subject's data.
    case rectify
    /// Record consent, restriction, objection or opt-out.
    case consentWrite = "consent_write"
    /// Read the audit log and its reports.
    case auditRead = "audit_read"
    /// Change the policy.
    case policyAdmin = "policy_admin"
    /// Rotate or manage keys.
    case keyAdmin = "key_admin"
    /// Manage data-subject requests.
    case dsrManage = "dsr_manage"
    /// Register personalization templates (each bound to a purpose).
    case templateAdmin = "template_admin"
}

/// Where a record came from.
public enum DataSource: String, Sendable, Hashable, CaseIterable, Codable {
    /// The customer-relationship system.
    case crm
    /// Website forms and tracking.
    case web
    /// Point of sale.
    case pos
    /// The HTTP API.
    case api
    /// Synthetic demo data.
    case demo
    /// A correction made at the subject's request (a rectification request).
    case rectification
}

/// The state a consent record sets for one subject and purpose.
public enum ConsentState: String, Sendable, Hashable, CaseIterable, Codable {
    /// Consent given.
    case granted
    /// Consent taken back.
    case withdrawn
    /// Double opt-in started, not yet confirmed.
    case pending
    /// Double opt-in confirmed.
    case confirmed
}

/// The kinds of behavioral event the vault accepts.
public enum EventType: String, Sendable, Hashable, CaseIterable, Codable {
    /// A product page was viewed.
    case view
    /// An item was put in the cart.
    case cartAdd = "cart_add"
    /// An item was taken out of the cart.
    case cartRemove = "cart_remove"
    /// An order was placed.
    case purchase
    /// A message was sent to the subject.
    case emailSent = "email_sent"
    /// The subject opened a message.
    case emailOpen = "email_open"
    /// The subject clicked a link in a message.
    case emailClick = "email_click"
    /// The subject unsubscribed.
    case unsubscribe
}

extension CaseIterable where Self: RawRepresentable, RawValue == String {
    /// The stored names of all cases joined for an error message, e.g. "`crm`, `web`, `pos`".
    public static var choiceList: String {
        allCases.map { "`\($0.rawValue)`" }.joined(separator: ", ")
    }
}

/// The identifiers a subject can be looked up by; each has a blind index.
public enum IdentityKind: String, Sendable, Hashable, CaseIterable, Codable {
    /// A normalized e-mail address.
    case email
    /// A normalized E.164 phone number.
    case phone
    /// A source system's customer id.
    case customerID = "customer_id"

    /// The one-byte tag that separates the kinds inside blind-index input (frozen).
    public var tag: UInt8 {
        switch self {
        case .email: 1
        case .phone: 2
        case .customerID: 3
        }
    }
}

/// The kinds of data-subject request. Stored names are frozen.
public enum RequestType: String, Sendable, Hashable, CaseIterable, Codable {
    /// Access to the data held (GDPR Art. 15, CCPA right to know, LGPD Art. 18 II).
    case access
    /// A machine-readable copy to take elsewhere (GDPR Art. 20, LGPD Art. 18 V).
    case portability
    /// Erasure (GDPR Art. 17, CCPA right to delete, LGPD Art. 18 VI).
    case erasure
    /// Correction of inaccurate data (GDPR Art. 16, CPRA right to correct, LGPD Art. 18 III).
    case rectification
    /// Restriction of processing (GDPR Art. 18).
    case restriction
    /// Objection to processing for profiling or direct marketing (GDPR Art. 21, LGPD Art. 18 § 2).
    case objection
    /// Opt-out of sale and sharing (CCPA/CPRA).
    case optOutSaleShare = "opt_out_sale_share"
    /// Limit the use of sensitive personal information (CPRA).
    case limitSensitive = "limit_sensitive"
}

/// The law a request is made under; it sets the deadlines.
public enum Regime: String, Sendable, Hashable, CaseIterable, Codable {
    /// EU/EEA General Data Protection Regulation.
    case gdpr
    /// California Consumer Privacy Act as amended by the CPRA.
    case ccpa
    /// Brazil's Lei Geral de Proteção de Dados.
    case lgpd
}

/// Where a data-subject request stands. Stored names are frozen.
public enum RequestStatus: String, Sendable, Hashable, CaseIterable, Codable {
    /// Opened; no verification code issued yet.
    case received
    /// A verification code was issued and not yet entered.
    case verifying
    /// The requester proved control of the address on file.
    case verified
    /// Fulfilment started (an export or erasure was interrupted and may be retried).
    case inProgress = "in_progress"
    /// The deadline was extended (with a reason); work goes on.
    case extended
    /// Answered.
    case completed
    /// Refused, with a reason.
    case rejected

    /// Whether the request is closed (completed or rejected).
    public var isClosed: Bool { self == .completed || self == .rejected }
}
