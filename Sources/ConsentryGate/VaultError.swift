/// An error from the vault: opening, importing, rotating keys or checking.
///
/// Messages are one line, lower-case, name files, lines and fields, and never contain personal values.
public struct VaultError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is; stable for callers that branch on it.
    public enum Code: String, Sendable, Hashable {
        /// There is no vault at the given path.
        case notFound = "not_found"
        /// A vault already exists where one was to be created.
        case alreadyExists = "already_exists"
        /// An input file cannot be used at all (not UTF-8, empty, bad header); nothing was changed.
        case invalidInput = "invalid_input"
        /// Stored data failed an integrity check.
        case integrity
        /// A key could not be loaded or unwrapped.
        case key
        /// The policy files could not be loaded.
        case policy
        /// The database could not be read or written.
        case storage
        /// The database was written by a newer release or is not a Consentry vault.
        case incompatible
        /// The policy gate denied the operation; the message gives the reasons.
        case denied
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

    /// Matches an error against a code, for `catch let error as VaultError where .notFound ~= error`.
    public static func ~= (code: Code, error: VaultError) -> Bool { error.code == code }
}
