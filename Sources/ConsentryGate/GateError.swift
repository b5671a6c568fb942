import ConsentryCore

/// An error from the gate: opening the vault, a denied or failed operation, importing, rotating keys or checking.
///
/// Messages are one line, lower-case, name files, lines and fields, and never contain personal values. Errors compare
/// equal when their codes do, so callers match them on the static values as they match GRDB's `DatabaseError`:
///
/// ```swift
/// do { _ = try vault.read(request, subject: .email(address)) }
/// catch GateError.denied { … }
/// ```
public struct GateError: Error, Sendable, CustomStringConvertible, Equatable {
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
    public private(set) var message: String

    /// The subject an integrity or key error is about, for the gate to name by its audit pseudonym.
    let subject: SubjectID?
    /// The message with the subject named as given; nil when the error names no subject.
    private let naming: (@Sendable (String) -> String)?

    /// Creates an error (the package's modules only; callers match on the static values).
    package init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
        self.subject = nil
        self.naming = nil
    }

    /// An error about one subject. Messages never carry the vault's internal subject id: the message says "a subject"
    /// until the gate, which can compute the audit pseudonym, names it with ``naming(_:)``.
    init(_ code: Code, about subject: SubjectID, _ message: @escaping @Sendable (String) -> String) {
        self.code = code
        self.message = message("a subject")
        self.subject = subject
        self.naming = message
    }

    /// The same error with its subject named `label` (`subject 3f2a…`, the audit pseudonym).
    func naming(_ label: String) -> GateError {
        guard let naming else { return self }
        var named = self
        named.message = naming(label)
        return named
    }

    /// The message.
    public var description: String { message }

    /// Matches an error against a code, for `catch let error as GateError where .notFound ~= error`.
    public static func ~= (code: Code, error: GateError) -> Bool { error.code == code }

    /// Errors are equal when their codes are: the message is for people, the code for programs.
    public static func == (lhs: GateError, rhs: GateError) -> Bool { lhs.code == rhs.code }

    /// Matches any error against one of the static values, for `catch GateError.denied`.
    public static func ~= (pattern: GateError, error: any Error) -> Bool { (error as? GateError)?.code == pattern.code }

    /// There is no vault at the given path, or no subject, request or definition of the name given.
    public static let notFound = GateError(.notFound, "not found")
    /// A vault, or a definition of that name, already exists.
    public static let alreadyExists = GateError(.alreadyExists, "already exists")
    /// The input cannot be used (a file, a body, a rule, a template); nothing was changed.
    public static let invalidInput = GateError(.invalidInput, "invalid input")
    /// Stored data failed an integrity check.
    public static let integrity = GateError(.integrity, "integrity check failed")
    /// A key could not be loaded or unwrapped.
    public static let key = GateError(.key, "key unavailable")
    /// The policy files could not be loaded.
    public static let policy = GateError(.policy, "policy unavailable")
    /// The database could not be read or written.
    public static let storage = GateError(.storage, "storage failed")
    /// The database was written by a newer release or is not a Consentry vault.
    public static let incompatible = GateError(.incompatible, "incompatible vault")
    /// The gate denied the operation.
    public static let denied = GateError(.denied, "denied")
}
