/// An error from the audit log. Without an audit entry no data is released: callers fail closed on it.
public struct AuditError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public enum Code: String, Sendable, Hashable {
        /// The log or the checkpoint file cannot be written.
        case unwritable
        /// The log failed verification.
        case tampered
    }

    /// The kind of failure.
    public let code: Code
    /// What happened and what to do.
    public let message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }
}
