/// Dense positions of vocabulary cases, for table look-ups on hot paths (the decision function).
/// They follow declaration order and are not persisted: stored forms use the raw values.
extension Purpose {
    /// The case's position in `allCases` (not persisted).
    @inline(__always)
    public var ordinal: Int {
        switch self {
        case .service: 0
        case .emailMarketing: 1
        case .personalization: 2
        case .profiling: 3
        case .analytics: 4
        case .saleShare: 5
        }
    }
}

extension Role {
    /// The case's position in `allCases` (not persisted).
    @inline(__always)
    public var ordinal: Int {
        switch self {
        case .admin: 0
        case .complianceOfficer: 1
        case .dataEngineer: 2
        case .marketer: 3
        case .analyst: 4
        case .campaignService: 5
        }
    }
}

extension Action {
    /// The case's position in `allCases` (not persisted).
    @inline(__always)
    public var ordinal: Int {
        switch self {
        case .`import`: 0
        case .readProfile: 1
        case .segment: 2
        case .score: 3
        case .recommend: 4
        case .render: 5
        case .export: 6
        case .erase: 7
        case .rectify: 8
        case .consentWrite: 9
        case .auditRead: 10
        case .policyAdmin: 11
        case .keyAdmin: 12
        case .dsrManage: 13
        case .templateAdmin: 14
        }
    }
}
