/// The vault's internal, random identifier of a data subject.
///
/// It is random rather than sequential so that it reveals neither insertion order nor the number of
/// subjects, and it carries no direct identifier. Its text form is `s_` and 16 lower-case hex digits.
///
/// ```swift
/// let id = SubjectID(rawValue: 0x1234)
/// id.description // "s_0000000000001234"
/// ```
public struct SubjectID: Sendable, Hashable, Comparable, CustomStringConvertible, RawRepresentable {
    /// The stored 63-bit value (always positive, so it fits SQLite's INTEGER PRIMARY KEY).
    public let rawValue: Int64

    /// Wraps a stored value.
    public init(rawValue: Int64) { self.rawValue = rawValue }

    /// Parses the text form `s_<16 hex digits>`; returns nil for anything else.
    public init?(_ text: some StringProtocol) {
        guard text.hasPrefix("s_"), text.count == 18, let value = UInt64(text.dropFirst(2), radix: 16),
            value <= UInt64(Int64.max)
        else { return nil }
        self.rawValue = Int64(value)
    }

    /// The text form, `s_` followed by 16 hex digits.
    public var description: String {
        let hex = String(UInt64(bitPattern: rawValue), radix: 16)
        return "s_" + String(repeating: "0", count: max(0, 16 - hex.count)) + hex
    }

    /// The stored value, big-endian, as bound into associated data.
    public var bytes: [UInt8] {
        withUnsafeBytes(of: rawValue.bigEndian) { Array($0) }
    }

    /// Orders by stored value.
    public static func < (lhs: SubjectID, rhs: SubjectID) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A field name as declared in `policies/fields.yaml`: lower-case letters, digits and `_`, starting with a letter.
public struct FieldName: Sendable, Hashable, Comparable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The name as written in policies and import headers.
    public let rawValue: String

    /// Validates a name; returns nil unless it is 1–64 characters of `[a-z0-9_]` starting with a letter.
    public init?(_ text: String) {
        guard Self.isValid(text) else { return nil }
        rawValue = text
    }

    /// Creates a name from a literal known to be valid; invalid literals are a programming error.
    public init(stringLiteral value: String) {
        precondition(Self.isValid(value), "invalid field name literal")
        rawValue = value
    }

    /// Whether `text` is a well-formed field name.
    public static func isValid(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...64).contains(bytes.count), (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(bytes[0]) else { return false }
        return bytes.allSatisfy { b in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || b == UInt8(ascii: "_")
        }
    }

    /// The name itself.
    public var description: String { rawValue }

    /// Orders alphabetically.
    public static func < (lhs: FieldName, rhs: FieldName) -> Bool { lhs.rawValue < rhs.rawValue }
}
