import ConsentryAudit
public import ConsentryCore
import ConsentryCrypto
import ConsentryPolicy
import Foundation
import GRDB
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
            try scope.db.execute(
                sql: "INSERT INTO api_token (id, name, role, secret_hash, created_at, expires_at, binding) VALUES (?, ?, ?, ?, ?, ?, ?)",
                arguments: [id, trimmed, tokenRole.rawValue, Data(secretHash), now, expiresAt, Data(binding)])
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
    public func tokens(as principal: Principal) throws(GateError) -> [TokenInfo] {
        let (actor, role) = (principal.actor, principal.role)
        _ = try requireAdministrative(.keyAdmin, actor: actor, role: role, requestID: nil)
        do {
            return try db.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM api_token ORDER BY created_at").compactMap { row in
                    guard let tokenRole = Role(rawValue: row["role"]) else { return nil }
                    return TokenInfo(
                        id: row["id"], name: row["name"], role: tokenRole, createdAt: Normalize.formatTimestamp(millis: row["created_at"]),
                        expiresAt: (row["expires_at"] as Int64?).map { Normalize.formatTimestamp(millis: $0) },
                        revokedAt: (row["revoked_at"] as Int64?).map { Normalize.formatTimestamp(millis: $0) },
                        lastUsedAt: (row["last_used_at"] as Int64?).map { Normalize.formatTimestamp(millis: $0) })
                }
            }
        } catch {
            throw Self.storageError(error, "list the tokens")
        }
    }

    /// Revokes a token at once. Needs `key_admin`; audited.
    public func revokeToken(_ id: String, as principal: Principal) async throws(GateError) {
        let request = AccessRequest(actor: principal.actor, role: principal.role, action: .keyAdmin)
        try await perform(request, requestID: principal.requestID, recordedAs: .tokenAdmin, failure: "revoke the token") { scope in
            guard
                let row = try Row.fetchOne(
                    scope.db, sql: "SELECT \(RecordBinding.tokenColumns) FROM api_token WHERE id = ? AND revoked_at IS NULL", arguments: [id])
            else {
                throw GateError(.notFound, "no active token `\(id.prefix(40))`; `consentry token list` shows them")
            }
            let revokedAt = nowMillis
            let binding = RecordBinding.token(
                keys.recordBinding, id: row[0], name: row[1], role: row[2], secretHash: [UInt8](row[3] as Data), expiresAt: row[4],
                revokedAt: revokedAt)
            try scope.db.execute(sql: "UPDATE api_token SET revoked_at = ?, binding = ? WHERE id = ?", arguments: [revokedAt, Data(binding), id])
            scope.entry.reasons.append("token \(id) revoked")
        }
        // Dropped after the commit, so that no request can cache the row as it was before.
        tokenCache.remove(id)
    }

    private static let tokenPrefix = Array("cns_tok_".utf8)
    private static let hexDigits = Set("0123456789abcdefABCDEF".utf8)

    /// Checks a presented token in constant time against its stored hash; returns who it speaks for: the actor
    /// `token:<name>`, the token's role and its id.
    public func authenticate(token: String) -> Result<Principal, TokenRefusal> {
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
        let stored: StoredToken?
        do {
            stored = try tokenCache.value(id) { () throws(GateError) -> StoredToken? in
                do {
                    return try db.read { db in
                        try Row.fetchOne(db, sql: "SELECT \(RecordBinding.tokenColumns) FROM api_token WHERE id = ?", arguments: [id]).map { row in
                            // A row whose binding fails (role raised, expiry lifted or revocation undone in the file) authenticates nothing.
                            StoredToken(
                                secretHash: [UInt8](row[3] as Data), name: row[1], role: Role(rawValue: row[2]), revoked: (row[5] as Int64?) != nil,
                                expiresAt: row[4], bound: RecordBinding.matches(row[6], RecordBinding.token(keys.recordBinding, row: row)))
                        }
                    }
                } catch {
                    throw Self.storageError(error, "read the token")
                }
            }
        } catch {
            return .failure(.unavailable)
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
        DispatchQueue.global(qos: .utility).async { [self] in
            // A failed write only leaves the time older; it never affects the request.
            try? db.write { try $0.execute(sql: "UPDATE api_token SET last_used_at = ? WHERE id = ?", arguments: [now, id]) }
        }
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
