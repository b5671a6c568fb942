/// An API token as a store keeps it: the public id, the name, the role, a keyed hash of the secret (never the secret),
/// its times and the record binding that ties the row's deciding columns to the vault's keys.
struct TokenRecord: Sendable, Equatable {
    /// The public id (`tok_` and 12 hex digits).
    let id: String
    /// The name, recorded as the actor of its requests.
    let name: String
    /// The role's raw value, as bound (a role unknown to this version authenticates nothing).
    let role: String
    /// The keyed hash of `id|secret`.
    let secretHash: [UInt8]
    /// When it was created (ms).
    let createdAt: Int64
    /// When it expires (ms), if it does.
    let expiresAt: Int64?
    /// When it was revoked (ms).
    let revokedAt: Int64?
    /// When it was last used (ms); not bound, it decides nothing.
    let lastUsedAt: Int64?
    /// The record binding (``RecordBinding/token(_:id:name:role:secretHash:expiresAt:revokedAt:)``); nil in a row
    /// written before bindings and not bound since.
    let binding: [UInt8]?
}
