import Foundation

/// A value inside a template: what a variable holds, a literal, or a filter's result. Follows Liquid's data model.
public enum LiquidValue: Sendable, Equatable {
    /// Nothing: an undefined variable or `nil`. Renders empty and is falsy.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A whole number.
    case int(Int)
    /// A decimal number.
    case double(Double)
    /// Text.
    case string(String)
    /// A list.
    case array([LiquidValue])
    /// A mapping of keys to values.
    case object([String: LiquidValue])

    /// Liquid truthiness: only `nil` and `false` are false.
    var isTruthy: Bool {
        switch self {
        case .null, .bool(false): false
        default: true
        }
    }

    /// Empty string, array or object (Liquid's `empty`).
    var isEmpty: Bool {
        switch self {
        case .string(let s): s.isEmpty
        case .array(let a): a.isEmpty
        case .object(let o): o.isEmpty
        default: false
        }
    }

    /// Liquid's `blank`: nil, false, empty, or only whitespace.
    var isBlank: Bool {
        switch self {
        case .null, .bool(false): true
        case .string(let s): s.allSatisfy(\.isWhitespace)
        default: isEmpty
        }
    }

    /// The text this value renders as.
    var text: String {
        switch self {
        case .null: ""
        case .bool(let b): b ? "true" : "false"
        case .int(let i): String(i)
        case .double(let d): Self.format(d)
        case .string(let s): s
        case .array(let a): a.map(\.text).joined()
        case .object: ""
        }
    }

    /// Ruby's Float#to_s for the common range: an integral value keeps `.0`.
    static func format(_ d: Double) -> String {
        guard d.isFinite else { return d.isNaN ? "NaN" : (d > 0 ? "Infinity" : "-Infinity") }
        if d == d.rounded(), abs(d) < 1e16 { return String(format: "%.1f", d) }
        return "\(d)"
    }

    /// Liquid's number conversion: numbers as they are, numeric text parsed, anything else 0.
    var number: LiquidValue {
        switch self {
        case .int, .double: return self
        case .string(let s):
            let t = s.trimmingCharacters(in: .whitespaces)
            if let i = Int(t) { return .int(i) }
            if let d = Double(t), t.range(of: #"^-?\d+(\.\d+)?$"#, options: .regularExpression) != nil { return .double(d) }
            return .int(0)
        default: return .int(0)
        }
    }

    var doubleValue: Double {
        switch number {
        case .int(let i): Double(i)
        case .double(let d): d
        default: 0
        }
    }

    /// Converts JSON (from `JSONSerialization`) into a value: a preview context or stored data.
    public init(json: Any?) {
        switch json {
        case nil, is NSNull: self = .null
        case let n as NSNumber:
            // JSON booleans arrive as a distinct NSNumber subclass; `is Bool` would also match 0 and 1.
            if String(describing: type(of: n)) == "__NSCFBoolean" {
                self = .bool(n.boolValue)
            } else if n.stringValue.contains(".") || n.stringValue.contains("e") {
                self = .double(n.doubleValue)
            } else {
                self = .int(n.intValue)
            }
        case let s as String: self = .string(s)
        case let a as [Any]: self = .array(a.map { LiquidValue(json: $0) })
        case let o as [String: Any]: self = .object(o.mapValues { LiquidValue(json: $0) })
        default: self = .null
        }
    }
}
