/// An error from key handling or sealing. Messages name subjects and fields, never values or key bytes.
public struct CryptoError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is; stable for callers that branch on it.
    public enum Code: String, Sendable, Hashable {
        /// A sealed value or wrapped key failed authentication: tampered, moved or opened with the wrong key.
        case integrity
        /// The master key could not be found or read.
        case keyUnavailable = "key_unavailable"
        /// The master key file has permissions that let others read it.
        case keyPermissions = "key_permissions"
        /// The master key has the wrong length or encoding.
        case keyFormat = "key_format"
        /// Secure memory or the random source failed.
        case system
    }

    /// The kind of failure.
    public let code: Code
    /// One line, lower-case, saying what happened and what to do.
    public let message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }
}
