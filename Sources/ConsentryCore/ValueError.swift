/// A value that failed validation or normalization.
///
/// The message says what is wrong and how to fix it; it never repeats the value itself, because the
/// value may be personal data.
public struct ValueError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, lower-case, one line, without the offending value.
    public let message: String

    /// Creates an error with a message that must not contain the offending value.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { message }
}
