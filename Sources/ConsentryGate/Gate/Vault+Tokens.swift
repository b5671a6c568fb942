import ConsentryAudit
public import ConsentryCore
import ConsentryCrypto
import ConsentryPolicy
import Foundation
import Synchronization

/// An API token as listed (never its secret).
public struct TokenInfo: Sendable, Codable, Equatable {
    /// The public id (`tok_` and 12 hex digits), also the token's prefix.
    public var id: String
    /// A name for people (the integration it belongs to); recorded as the actor of its requests.
    public var name: String
    /// The role its requests act in.
    public var role: Role
    /// When it was created (RFC 3339).
    public var createdAt: String
    /// When it expires (RFC 3339), if it does.
    public var expiresAt: String?
    /// When it was revoked (RFC 3339).
    public var revokedAt: String?
    /// When it was last used (RFC 3339).
    public var lastUsedAt: String?
}

/// Why a token was refused.
public enum TokenRefusal: String, Sendable, Error {
    /// Not of the form `cns_<id>_<secret>`, unknown, or the secret does not match.
    case invalid
    /// Past its expiry.
    case expired
    /// Revoked.
    case revoked
    /// The token store could not be read (the vault's files failed a check, the disk failed): not the token's fault,
    /// and not an answer about it; ``Vault/knownStorageFault`` or the storage error says why.
    case unavailable
}

extension Vault {
    /// Creates a token for `role`; returns it once (`cns_<id>_<secret>`). Only a keyed hash of the secret is stored.
    /// Needs `key_admin`; audited as `token_admin`.
    public func createToken(name: String, role tokenRole: Role, expiresAt: Int64?, as principal: Principal) async throws(GateError) -> (
        token: String, info: TokenInfo
    ) {
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.count <= 64, trimmed.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw GateError(.invalidInput, "a token name is 1 to 64 letters, digits, `-`, `_` or `.` (it is recorded as the actor of its requests)")
        }
        let id = "tok_" + Digest.hex(SecureRandom.bytes(6))
        let secret = Data(SecureRandom.bytes(32)).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(
            of: "/", with: "_"
        )
        .replacingOccurrences(of: "=", with: "")
        let now = nowMillis
        let request = AccessRequest(actor: principal.actor, role: principal.role, action: .keyAdmin)
        try await perform(request, requestID: principal.requestID, recordedAs: .tokenAdmin, failure: "create the token (nothing was stored)") { scope in
            let secretHash = keys.tokenHashes.hash(tag: 0x60, "\(id)|\(secret)")
            let binding = RecordBinding.token(
                keys.recordBinding, id: id, name: trimmed, role: tokenRole.rawValue, secretHash: secretHash, expiresAt: expiresAt, revokedAt: nil)
            try await scope.tx.insertToken(
                TokenRecord(
                    id: id, name: trimmed, role: tokenRole.rawValue, secretHash: secretHash, createdAt: now, expiresAt: expiresAt, revokedAt: nil,
                    lastUsedAt: nil, binding: binding))
            scope.entry.reasons.append("token \(id) created for role \(tokenRole.rawValue)")
        }
        return (
            "cns_\(id)_\(secret)",
            TokenInfo(
                id: id, name: trimmed, role: tokenRole, createdAt: Normalize.formatTimestamp(millis: now),
                expiresAt: expiresAt.map { Normalize.formatTimestamp(millis: $0) }, revokedAt: nil, lastUsedAt: nil)
        )
    }

    /// Every token (without secrets). Needs `key_admin`.
    public func tokens(as principal: Principal) async throws(GateError) -> [TokenInfo] {
        let (actor, role) = (principal.actor, principal.role)
        _ = try await requireAdministrative(.keyAdmin, actor: actor, role: role, requestID: nil)
        let records: [TokenRecord]
        do { records = try await store.tokens() } catch { throw Self.storageError(error, "list the tokens") }
        return records.compactMap { record in
            guard let tokenRole = Role(rawValue: record.role) else { return nil }
            return TokenInfo(
                id: record.id, name: record.name, role: tokenRole, createdAt: Normalize.formatTimestamp(millis: record.createdAt),
                expiresAt: record.expiresAt.map { Normalize.formatTimestamp(millis: $0) },
                revokedAt: record.revokedAt.map { Normalize.formatTimestamp(millis: $0) },
                lastUsedAt: record.lastUsedAt.map { Normalize.formatTimestamp(millis: $0) })
        }
    }

    /// Revokes a token at once. Needs `key_admin`; audited.
    public func revokeToken(_ id: String, as principal: Principal) async throws(GateError) {
        let request = AccessRequest(actor: principal.actor, role: principal.role, action: .keyAdmin)
        try await perform(request, requestID: principal.requestID, recordedAs: .tokenAdmin, failure: "revoke the token") { scope in
            guard let token = try await scope.tx.activeToken(id) else {
                throw GateError(.notFound, "no active token `\(id.prefix(40))`; `consentry token list` shows them")
            }
            let revokedAt = nowMillis
            let binding = RecordBinding.token(
                keys.recordBinding, id: token.id, name: token.name, role: token.role, secretHash: token.secretHash, expiresAt: token.expiresAt,
                revokedAt: revokedAt)
            try await scope.tx.revokeToken(id, at: revokedAt, binding: binding)
            scope.entry.reasons.append("token \(id) revoked")
        }
        // Dropped after the commit, so that no request can cache the row as it was before.
        tokenCache.remove(id)
    }

    private static let tokenPrefix = Array("cns_tok_".utf8)
    private static let hexDigits = Set("0123456789abcdefABCDEF".utf8)

    /// Checks a presented token in constant time against its stored hash; returns who it speaks for: the actor
    /// `token:<name>`, the token's role and its id.
    public func authenticate(token: String) async -> Result<Principal, TokenRefusal> {
        // cns_tok_<12 hex>_<secret>, read as bytes: every API request passes here.
        let bytes = Array(token.utf8), prefix = Self.tokenPrefix
        guard bytes.count >= prefix.count + 13, bytes.starts(with: prefix), bytes[prefix.count + 12] == UInt8(ascii: "_"),
            bytes[prefix.count..<prefix.count + 12].allSatisfy({ Self.hexDigits.contains($0) })
        else {
            return .failure(.invalid)
        }
        // The hashed text is `tok_<12 hex>|<secret>`, as when the token was created.
        var hashed = Array("tok_".utf8) + bytes[prefix.count..<prefix.count + 12]
        let id = String(decoding: hashed, as: UTF8.self)
        hashed.append(UInt8(ascii: "|"))
        hashed += bytes[(prefix.count + 13)...]
        let presented = keys.tokenHashes.hash(tag: 0x60, bytes: hashed)
        var stored = tokenCache.fresh(id)
        if stored == nil {
            let record: TokenRecord?
            do { record = try await store.token(id) } catch { return .failure(.unavailable) }
            guard let record else {
                tokenCache.remove(id)
                return .failure(.invalid)
            }
            // A row whose binding fails (role raised, expiry lifted or revocation undone in the file) authenticates nothing.
            let token = StoredToken(
                secretHash: record.secretHash, name: record.name, role: Role(rawValue: record.role), revoked: record.revokedAt != nil,
                expiresAt: record.expiresAt,
                bound: RecordBinding.matches(record.binding.map { Data($0) }, RecordBinding.token(keys.recordBinding, record: record)))
            tokenCache.keep(id, token)
            stored = token
        }
        guard let stored, Digest.equal(stored.secretHash, presented), stored.bound, let role = stored.role else { return .failure(.invalid) }
        if stored.revoked { return .failure(.revoked) }
        if let expires = stored.expiresAt, expires <= nowMillis { return .failure(.expired) }
        recordUse(of: id)
        return .success(Principal(actor: "token:" + stored.name, role: role, tokenID: id))
    }

    /// Records when a token was last used (`token list` shows it, so that unused tokens can be found and revoked):
    /// at most once a minute per token, and off the request's path, so a busy token does not add a write per request.
    private func recordUse(of id: String) {
        let now = nowMillis
        let due = tokenUses.withLock { uses -> Bool in
            if let last = uses[id], now - last < 60_000 { return false }
            uses[id] = now
            return true
        }
        guard due else { return }
        let store = self.store
        // A failed write only leaves the time older; it never affects the request.
        Task.detached(priority: .utility) { try? await store.recordTokenUse(id, at: now) }
    }
}

/// A token's stored row, as authentication needs it.
struct StoredToken: Sendable {
    let secretHash: [UInt8]
    let name: String
    let role: Role?
    let revoked: Bool
    let expiresAt: Int64?
    /// Whether the row's binding verified.
    let bound: Bool
}
