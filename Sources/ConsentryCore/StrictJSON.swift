/// A strict parser for one JSON value, used for JSON Lines input and HTTP request bodies. It rejects what RFC 8259
/// rejects (trailing commas, comments, control characters in strings, lone surrogates, `NaN`), duplicate keys, numbers
/// beyond the range of a double (`1e400`) and nesting deeper than a bound, and it never recurses deeper than that bound.
public struct StrictJSON {
    /// A parsed JSON value; numbers keep their text so that no precision is lost before validation.
    public enum Value: Equatable, Sendable {
        case string(String)
        case number(String)
        case bool(Bool)
        case null
        case array([Value])
        case object([(String, Value)])

        /// Structural equality; object members compare in order.
        public static func == (lhs: Value, rhs: Value) -> Bool {
            switch (lhs, rhs) {
            case (.string(let a), .string(let b)), (.number(let a), .number(let b)): a == b
            case (.bool(let a), .bool(let b)): a == b
            case (.null, .null): true
            case (.array(let a), .array(let b)): a == b
            case (.object(let a), .object(let b)): a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
            default: false
            }
        }
    }

    /// Where and why the text is not acceptable JSON. Never holds a value from the text.
    public struct SyntaxError: Error, Sendable {
        /// The 1-based byte position of the problem in the parsed text.
        public let column: Int
        /// What is wrong, lower-case.
        public let reason: String
        /// The RFC 6901 pointer of the member or element being read, such as `/profiles/2/email`; a key that is not
        /// a field name (it may be data, such as an e-mail address) appears as `*`.
        public let pointer: String
    }

    /// The deepest nesting accepted unless the caller names another.
    public static let maximumDepth = 32

    private let bytes: ArraySlice<UInt8>
    private var index: Int
    private let depthLimit: Int
    /// The keys and indexes from the root to the value being read, for error pointers.
    private var path: [String] = []

    /// Parses `bytes` as exactly one JSON value with optional surrounding white space.
    /// - Parameter maximumDepth: the deepest nesting of arrays and objects accepted.
    public static func parse(_ bytes: ArraySlice<UInt8>, maximumDepth: Int = Self.maximumDepth) throws(SyntaxError) -> Value {
        var parser = StrictJSON(bytes: bytes, index: bytes.startIndex, depthLimit: maximumDepth)
        parser.skipSpace()
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.index == bytes.endIndex else { throw parser.fail("unexpected text after the JSON value") }
        return value
    }

    private func fail(_ reason: String) -> SyntaxError {
        // Field names and indexes hold no `~` or `/`, so the segments need no RFC 6901 escaping.
        let pointer = path.map { "/" + $0 }.joined()
        return SyntaxError(column: index - bytes.startIndex + 1, reason: reason, pointer: pointer)
    }

    private mutating func skipSpace() {
        while index < bytes.endIndex, [UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"), UInt8(ascii: "\n")].contains(bytes[index]) {
            index += 1
        }
    }

    private mutating func value(depth: Int) throws(SyntaxError) -> Value {
        guard depth < depthLimit else { throw fail("nested deeper than \(depthLimit) levels") }
        guard index < bytes.endIndex else { throw fail("unexpected end of line, a value was expected") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw fail("unexpected character, a JSON value was expected")
        }
    }

    private mutating func literal(_ word: String) throws(SyntaxError) {
        for expected in word.utf8 {
            guard index < bytes.endIndex, bytes[index] == expected else { throw fail("invalid literal, expected `\(word)`") }
            index += 1
        }
    }

    private mutating func number() throws(SyntaxError) -> String {
        let start = index
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        func digits(_ p: inout StrictJSON) -> Int {
            var count = 0
            while p.index < p.bytes.endIndex, p.bytes[p.index] >= UInt8(ascii: "0"), p.bytes[p.index] <= UInt8(ascii: "9") {
                p.index += 1; count += 1
            }
            return count
        }
        let intStart = index
        let intDigits = digits(&self)
        guard intDigits > 0 else { throw fail("invalid number") }
        guard !(intDigits > 1 && bytes[intStart] == UInt8(ascii: "0")) else { throw fail("invalid number: leading zeros are not allowed") }
        if index < bytes.endIndex, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard digits(&self) > 0 else { throw fail("invalid number: digits must follow `.`") }
        }
        if index < bytes.endIndex, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.endIndex, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits(&self) > 0 else { throw fail("invalid number: digits must follow the exponent") }
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        guard Double(text)?.isFinite == true else { throw fail("number out of range: JSON numbers here must fit a double") }
        return text
    }

    private mutating func hex4() throws(SyntaxError) -> UInt32 {
        guard index + 4 <= bytes.endIndex else { throw fail("invalid `\\u` escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[index]
            let digit: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw fail("invalid `\\u` escape")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    private mutating func string() throws(SyntaxError) -> String {
        index += 1
        var out: [UInt8] = []
        while true {
            guard index < bytes.endIndex else { throw fail("unterminated string") }
            let c = bytes[index]
            index += 1
            switch c {
            case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
            case 0..<0x20: throw fail("control character inside a string; escape it")
            case UInt8(ascii: "\\"):
                guard index < bytes.endIndex else { throw fail("unterminated escape") }
                let e = bytes[index]
                index += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(8)
                case UInt8(ascii: "f"): out.append(12)
                case UInt8(ascii: "n"): out.append(10)
                case UInt8(ascii: "r"): out.append(13)
                case UInt8(ascii: "t"): out.append(9)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard index + 2 <= bytes.endIndex, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            throw fail("lone surrogate in `\\u` escape")
                        }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail("lone surrogate in `\\u` escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw fail("lone surrogate in `\\u` escape")
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw fail("invalid `\\u` escape") }
                    out += Array(String(Character(unicode)).utf8)
                default: throw fail("invalid escape `\\\(Character(Unicode.Scalar(e)))`")
                }
            default: out.append(c)
            }
        }
    }

    private mutating func array(depth: Int) throws(SyntaxError) -> Value {
        index += 1
        var items: [Value] = []
        skipSpace()
        if index < bytes.endIndex, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
        while true {
            skipSpace()
            path.append(String(items.count))
            items.append(try value(depth: depth + 1))
            path.removeLast()
            skipSpace()
            guard index < bytes.endIndex else { throw fail("unterminated array") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
            throw fail("expected `,` or `]` in array")
        }
    }

    /// Names a duplicate key only when it is a field name: in objects keyed by data (an e-mail address, say) the key is data.
    private static func duplicateKey(_ key: String) -> String {
        FieldName.isValid(key) ? "duplicate key `\(key)`" : "duplicate key"
    }

    private mutating func object(depth: Int) throws(SyntaxError) -> Value {
        index += 1
        var members: [(String, Value)] = []
        // Objects here are small: a linear duplicate check is cheaper than hashing every key.
        var keys: Set<String>?
        skipSpace()
        if index < bytes.endIndex, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
        while true {
            skipSpace()
            guard index < bytes.endIndex, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a quoted key") }
            let key = try string()
            path.append(FieldName.isValid(key) ? key : "*")
            defer { path.removeLast() }
            if members.count >= 16 {
                if keys == nil { keys = Set(members.map(\.0)) }
                guard keys!.insert(key).inserted else { throw fail(Self.duplicateKey(key)) }
            } else {
                guard !members.contains(where: { $0.0 == key }) else { throw fail(Self.duplicateKey(key)) }
            }
            skipSpace()
            guard index < bytes.endIndex, bytes[index] == UInt8(ascii: ":") else { throw fail("expected `:` after a key") }
            index += 1
            skipSpace()
            members.append((key, try value(depth: depth + 1)))
            skipSpace()
            guard index < bytes.endIndex else { throw fail("unterminated object") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
            throw fail("expected `,` or `}` in object")
        }
    }
}
