import Foundation

/// A data-subject request as a store keeps it. It holds no personal data in clear: the requester's identifiers (and
/// after an erasure the subject's former id) are sealed by the gate under the request key; the code is a keyed hash.
struct RequestRow: Sendable, Equatable {
    var id: String
    var type: String
    var regime: String
    var status: String
    /// The subject the identifiers matched, while it exists and the request is open.
    var subjectID: Int64?
    /// ``SealedRequestData``, sealed; nil once the identifier retention ended.
    var identifiers: Data?
    var receivedAt: Int64
    var confirmDueAt: Int64?
    var dueAt: Int64
    var extendedDueAt: Int64?
    var extensionReason: String?
    var rejectionReason: String?
    /// The keyed hash of the outstanding verification code.
    var codeHash: Data?
    var codeExpiresAt: Int64?
    var codeAttempts: Int
    var verifiedAt: Int64?
    var completedAt: Int64?
    var outcome: String?
    var receipt: String?
    var exportFile: String?
    /// The caller's key for opening it at most once.
    var idempotencyKey: String?
    var updatedAt: Int64
}
