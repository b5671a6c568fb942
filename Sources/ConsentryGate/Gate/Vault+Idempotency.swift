import ConsentryCrypto
public import Foundation
import Synchronization

/// A response recorded for an idempotency key: what a retry with the same key and body gets back.
public struct IdempotentResponse: Sendable, Equatable {
    /// The HTTP status of the first response.
    public let status: Int
    /// Its JSON body (import reports: counts, positions and reasons, never personal data).
    public let body: Data

    /// Creates a recorded response.
    public init(status: Int, body: Data) {
        self.status = status
        self.body = body
    }
}

/// What an idempotency key says about a request before it runs.
public enum IdempotencyCheck: Sendable, Equatable {
    /// The key is new: run the request, then ``Vault/finishIdempotent(_:response:)``.
    case new(IdempotencyClaim)
    /// The same key and body were answered before: send this again and do nothing else.
    case replay(IdempotentResponse)
    /// The key was used with a different body.
    case mismatch
    /// A request with this key is still running.
    case inFlight
}

/// A claimed idempotency key, released by ``Vault/finishIdempotent(_:response:)``.
public struct IdempotencyClaim: Sendable, Equatable {
    let keyHash: Data
    let requestHash: Data
}

extension Vault {
    /// How long a recorded response is replayed.
    public static let idempotencyWindowMillis: Int64 = 24 * 3_600_000

    /// Checks an `Idempotency-Key` of caller `scope` (the token's name, so callers never see each other's
    /// responses) for a request with `body`; claims the key when it is new.
    /// - Throws: ``GateError`` `invalidInput` for a key that is not 1 to 128 visible ASCII characters.
    public func beginIdempotent(key: String, scope: String, body: some Collection<UInt8>) async throws(GateError) -> IdempotencyCheck {
        guard !key.isEmpty, key.utf8.count <= 128, key.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw GateError(.invalidInput, "the Idempotency-Key must be 1 to 128 visible ASCII characters, such as a UUID")
        }
        let claim = IdempotencyClaim(
            keyHash: Data(keys.tokenHashes.hash(tag: 0x61, "\(scope)|\(key)")),
            requestHash: Data(keys.tokenHashes.hash(tag: 0x62, bytes: Array(body))))
        guard idempotencyInFlight.withLock({ $0.insert(claim.keyHash).inserted }) else { return .inFlight }
        let stored: IdempotencyRecord?
        do { stored = try await store.idempotencyRecord(claim.keyHash, newerThan: nowMillis - Self.idempotencyWindowMillis) } catch {
            release(claim)
            throw Self.storageError(error, "read the idempotency key")
        }
        guard let stored else { return .new(claim) }
        release(claim)
        guard stored.requestHash == claim.requestHash else { return .mismatch }
        return .replay(IdempotentResponse(status: stored.status, body: stored.response))
    }

    /// Records the response to a claimed key (nil: the request failed and may be retried with the key), releases
    /// the claim, and forgets responses older than the window.
    public func finishIdempotent(_ claim: IdempotencyClaim, response: IdempotentResponse?) async {
        defer { release(claim) }
        guard let response else { return }
        let now = nowMillis
        // A failure to record leaves the import committed and the key unrecorded: a retry would import again,
        // which event ids and the merge rule make harmless.
        try? await store.storeIdempotencyRecord(
            IdempotencyRecord(keyHash: claim.keyHash, requestHash: claim.requestHash, status: response.status, response: response.body, createdAt: now),
            forgettingBefore: now - Self.idempotencyWindowMillis)
    }

    private func release(_ claim: IdempotencyClaim) {
        _ = idempotencyInFlight.withLock { $0.remove(claim.keyHash) }
    }
}
