import Foundation

/// A response recorded for an `Idempotency-Key`, as a store keeps it: keyed hashes of the key (with its caller) and of
/// the request body, and the response (an import report: counts, positions and reasons, never personal data).
struct IdempotencyRecord: Sendable, Equatable {
    /// The keyed hash of `caller|key`.
    let keyHash: Data
    /// The keyed hash of the request body.
    let requestHash: Data
    /// The HTTP status of the first response.
    let status: Int
    /// Its JSON body.
    let response: Data
    /// When it was recorded (ms).
    let createdAt: Int64
}
