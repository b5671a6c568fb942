/// Who is asking: the caller every gate operation is decided for and audited under.
///
/// The command line makes one from `--actor` and `--as`; the API from the bearer token (its name is the actor,
/// its role the role, its id the token id) and the request's `X-Request-ID`.
///
/// ```swift
/// let officer = Principal(actor: "dana", role: .complianceOfficer)
/// ```
public struct Principal: Sendable, Hashable {
    /// Who is acting, as recorded in the audit log (`dana`, `token:campaigns`).
    public var actor: String
    /// The role whose grants apply.
    public var role: Role
    /// The API token the request came with, when it came over the API.
    public var tokenID: String?
    /// The caller's request id, recorded in every audit entry of the operation.
    public var requestID: String?

    /// Creates a principal.
    public init(actor: String, role: Role, tokenID: String? = nil, requestID: String? = nil) {
        self.actor = actor
        self.role = role
        self.tokenID = tokenID
        self.requestID = requestID
    }

    /// The vault itself, for work no person asked for (imports from scheduled jobs, demo data): `system` as `admin`.
    public static let system = Principal(actor: "system", role: .admin)

    /// The vault's own operator on the command line: the `admin` role.
    public static func administrator(_ actor: String) -> Principal { Principal(actor: actor, role: .admin) }
}
