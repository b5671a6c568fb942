/// Wraps a personal value so that printing, interpolating or dumping it never reveals it.
///
/// Error messages, log lines and traces may hold a `Redacted` value safely: its description is always
/// `<redacted>`. Code that needs the value reads ``value`` explicitly.
public struct Redacted<Value: Sendable>: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The wrapped value; read it only where the plaintext is really needed.
    public let value: Value

    /// Wraps a value.
    public init(_ value: Value) { self.value = value }

    /// Always `<redacted>`.
    public var description: String { "<redacted>" }
    /// Always `<redacted>`.
    public var debugDescription: String { "<redacted>" }
    /// Hides the value from `dump` and mirrors.
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

extension Redacted: Equatable where Value: Equatable {}
extension Redacted: Hashable where Value: Hashable {}
