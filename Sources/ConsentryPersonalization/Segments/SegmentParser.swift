import ConsentryCore
import Foundation

/// A problem in a segment rule, with where it is and how to fix it.
public struct RuleError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 1-based line (text rules) or 0 (JSON rules).
    public let line: Int
    /// 1-based column, or 0.
    public let column: Int
    /// What is wrong.
    public let message: String

    /// `line L, column C: message` (or the JSON path in the message).
    public var description: String { line > 0 ? "line \(line), column \(column): \(message)" : message }
}

extension RuleValue {
    /// Milliseconds per duration unit: weeks, days, hours, minutes.
    static let durationUnits: [String: Int64] = ["w": 604_800_000, "d": 86_400_000, "h": 3_600_000, "m": 60_000]

    /// The longest duration a rule may name, in days: a hundred years, far past any event history.
    static let longestDurationDays: Int64 = 36_500

    /// `count` units in milliseconds, or nil when `count` is not a whole number from 0 or the duration is longer than
    /// ``longestDurationDays`` (which also keeps the product from overflowing).
    static func durationMillis(_ count: String, unit: Int64) -> Int64? {
        guard let count = Int64(count), count >= 0 else { return nil }
        let (millis, overflow) = count.multipliedReportingOverflow(by: unit)
        guard !overflow, millis <= longestDurationDays * 86_400_000 else { return nil }
        return millis
    }
}

extension SegmentRule {
    /// The deepest nesting of parentheses, `not` and JSON `and`/`or`/`not` a rule may have. Parsing, evaluation and
    /// field checks recurse over the rule; the bound keeps a hostile rule from exhausting the stack.
    public static let maximumDepth = 256

    /// Parses the text form.
    public init(text: String) throws(RuleError) {
        var parser = try RuleParser(text)
        self = try parser.rule()
        try parser.expectEnd()
    }
}

private struct RuleParser {
    enum Token: Equatable {
        case word(String)
        case string(String)
        case number(Double)
        case duration(Int64)
        case symbol(String)
    }

    var tokens: [(Token, Int, Int)] = []
    var index = 0
    /// How many parentheses and `not`s enclose the current position.
    var depth = 0
    let endAt: (Int, Int)

    init(_ text: String) throws(RuleError) {
        let chars = Array(text)
        var i = 0, line = 1, column = 1
        func step() {
            let target = i + 1
            advance(over: chars, from: &i, to: target, line: &line, column: &column)
        }
        while i < chars.count {
            let c = chars[i]
            if c.isWhitespace {
                step()
                continue
            }
            let (l, col) = (line, column)
            if c.isLetter || c == "_" {
                var word = ""
                while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "_" {
                    word.append(chars[i])
                    step()
                }
                tokens.append((.word(word), l, col))
            } else if c.isNumber || (c == "-" && i + 1 < chars.count && chars[i + 1].isNumber) {
                var number = String(c)
                step()
                while i < chars.count, chars[i].isNumber || chars[i] == "." {
                    number.append(chars[i])
                    step()
                }
                if i < chars.count, let unit = RuleValue.durationUnits[String(chars[i])], i + 1 >= chars.count || !(chars[i + 1].isLetter) {
                    step()
                    guard let millis = RuleValue.durationMillis(number, unit: unit) else {
                        throw RuleError(
                            line: l, column: col,
                            message: "a duration is a whole number and a unit, such as `7d`, of at most \(RuleValue.longestDurationDays) days")
                    }
                    tokens.append((.duration(millis), l, col))
                } else {
                    guard let value = Double(number) else { throw RuleError(line: l, column: col, message: "`\(number)` is not a number") }
                    tokens.append((.number(value), l, col))
                }
            } else if c == "\"" || c == "'" {
                var value = ""
                step()
                while i < chars.count, chars[i] != c {
                    if chars[i] == "\\", i + 1 < chars.count { step() }
                    value.append(chars[i])
                    step()
                }
                guard i < chars.count else { throw RuleError(line: l, column: col, message: "a string is never closed; add `\(c)`") }
                step()
                tokens.append((.string(value), l, col))
            } else {
                let two = i + 1 < chars.count ? String(chars[i...i + 1]) : ""
                if ["!=", "<=", ">=", "=="].contains(two) {
                    tokens.append((.symbol(two == "==" ? "=" : two), l, col))
                    step()
                    step()
                } else if "()[],.=<>".contains(c) {
                    tokens.append((.symbol(String(c)), l, col))
                    step()
                } else {
                    throw RuleError(line: l, column: col, message: "unexpected character `\(c)`")
                }
            }
        }
        endAt = (line, column)
    }

    var current: Token? { index < tokens.count ? tokens[index].0 : nil }

    func error(_ message: String) -> RuleError {
        let (line, column) = index < tokens.count ? (tokens[index].1, tokens[index].2) : endAt
        return RuleError(line: line, column: column, message: message)
    }

    mutating func expectEnd() throws(RuleError) {
        if current != nil { throw error("unexpected text; join conditions with `and` or `or`") }
    }

    mutating func take(_ token: Token) -> Bool {
        guard current == token else { return false }
        index += 1
        return true
    }

    mutating func expect(_ symbol: String) throws(RuleError) {
        guard take(.symbol(symbol)) else { throw error("expected `\(symbol)`") }
    }

    mutating func rule() throws(RuleError) -> SegmentRule {
        var terms = [try conjunction()]
        while take(.word("or")) { terms.append(try conjunction()) }
        return terms.count == 1 ? terms[0] : .or(terms)
    }

    mutating func conjunction() throws(RuleError) -> SegmentRule {
        var terms = [try unary()]
        while take(.word("and")) { terms.append(try unary()) }
        return terms.count == 1 ? terms[0] : .and(terms)
    }

    mutating func unary() throws(RuleError) -> SegmentRule {
        let nests = current == .word("not") || current == .symbol("(")
        if nests {
            guard depth < SegmentRule.maximumDepth else {
                throw error("the rule nests deeper than \(SegmentRule.maximumDepth) levels of parentheses and `not`; write it flatter")
            }
            depth += 1
        }
        defer { if nests { depth -= 1 } }
        if take(.word("not")) { return .not(try unary()) }
        if take(.symbol("(")) {
            let inner = try rule()
            try expect(")")
            return inner
        }
        guard case .word(let word)? = current else { throw error("expected a condition: an attribute comparison, `event(…)` or `segment(…)`") }
        index += 1
        switch word {
        case "event": return .event(try event())
        case "segment":
            try expect("(")
            guard case .word(let name)? = current else { throw error("expected a segment name") }
            index += 1
            try expect(")")
            return .segment(name)
        default:
            let op = try comparison()
            if op == .in {
                try expect("[")
                var values: [RuleValue] = []
                repeat { values.append(try literal()) } while take(.symbol(","))
                try expect("]")
                return .attribute(name: word, op: .in, value: values)
            }
            return .attribute(name: word, op: op, value: [try literal()])
        }
    }

    mutating func comparison() throws(RuleError) -> RuleOperator {
        switch current {
        case .symbol(let s)? where RuleOperator(rawValue: s) != nil:
            index += 1
            return RuleOperator(rawValue: s)!
        case .word("in")?:
            index += 1
            return .in
        default: throw error("expected a comparison: =, !=, <, <=, >, >= or in")
        }
    }

    mutating func literal() throws(RuleError) -> RuleValue {
        switch current {
        case .string(let s)?:
            index += 1
            return .text(s)
        case .number(let n)?:
            index += 1
            return .number(n)
        case .duration(let d)?:
            index += 1
            return .duration(d)
        default: throw error("expected a value: a quoted string, a number or a duration such as `7d`")
        }
    }

    mutating func event() throws(RuleError) -> EventCondition {
        try expect("(")
        guard case .word(let typeName)? = current else {
            throw error("expected an event type: \(EventType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let type = EventType(rawValue: typeName) else {
            throw error("unknown event type `\(typeName.prefix(40))`; use one of \(EventType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        index += 1
        var condition = EventCondition(type: type)
        while take(.symbol(",")) {
            guard case .word(let field)? = current, EventCondition.fields.contains(field) else {
                throw error("an event filter names one of \(EventCondition.fields.sorted().joined(separator: ", "))")
            }
            index += 1
            let op = try comparison()
            guard op != .in else { throw error("event filters compare with =, !=, <, <=, >, >=") }
            condition.filters.append((field, op, try literal()))
        }
        try expect(")")
        while take(.symbol(".")) {
            guard case .word(let method)? = current else { throw error("expected `within(…)`, `count`, `sum` or `since`") }
            index += 1
            switch method {
            case "within":
                try expect("(")
                guard case .duration(let d)? = current else { throw error("`within` takes a duration such as `7d`") }
                index += 1
                try expect(")")
                condition.within = d
            case "count", "sum":
                let op = try comparison()
                guard op != .in, case .number(let n)? = current else { throw error("`\(method)` is compared with a number, as in `.\(method) >= 3`") }
                index += 1
                condition.metric = method == "count" ? .count(op, n) : .sum(op, n)
            case "since":
                let op = try comparison()
                guard op != .in, case .duration(let d)? = current else { throw error("`since` is compared with a duration, as in `.since > 30d`") }
                index += 1
                condition.metric = .since(op, d)
            default: throw error("unknown event measure `\(method.prefix(40))`; use `within(…)`, `count`, `sum` or `since`")
            }
        }
        return condition
    }
}

// MARK: - JSON

extension SegmentRule {
    /// Parses the JSON form (docs/segments.md). Errors name the JSON path.
    public init(json: Any) throws(RuleError) { self = try Self.decode(json, path: "$", depth: 0) }

    private static func fail(_ path: String, _ message: String) -> RuleError { RuleError(line: 0, column: 0, message: "\(path): \(message)") }

    private static func decode(_ json: Any, path: String, depth: Int) throws(RuleError) -> SegmentRule {
        guard depth < maximumDepth else { throw fail(path, "the rule nests deeper than \(maximumDepth) levels; write it flatter") }
        guard let object = json as? [String: Any], object.count == 1 || object["field"] != nil, let key = object.keys.sorted().first else {
            throw fail(path, "a rule is an object with one of `and`, `or`, `not`, `event`, `segment`, or `field`/`op`/`value`")
        }
        if object["field"] != nil {
            guard let name = object["field"] as? String, let opText = object["op"] as? String, let op = RuleOperator(rawValue: opText),
                let value = object["value"]
            else { throw fail(path, "a comparison is {\"field\": name, \"op\": one of = != < <= > >= in, \"value\": …}") }
            let values = op == .in ? (value as? [Any] ?? []) : [value]
            guard !values.isEmpty else { throw fail(path + ".value", "`in` takes a non-empty list") }
            var decoded: [RuleValue] = []
            for (i, item) in values.enumerated() { decoded.append(try literal(item, path: path + ".value" + (op == .in ? "[\(i)]" : ""))) }
            return .attribute(name: name, op: op, value: decoded)
        }
        switch key {
        case "and", "or":
            guard let items = object[key] as? [Any], !items.isEmpty else { throw fail(path + ".\(key)", "expected a non-empty list of rules") }
            var rules: [SegmentRule] = []
            for (i, item) in items.enumerated() { rules.append(try decode(item, path: "\(path).\(key)[\(i)]", depth: depth + 1)) }
            return key == "and" ? .and(rules) : .or(rules)
        case "not": return .not(try decode(object["not"]!, path: path + ".not", depth: depth + 1))
        case "segment":
            guard let name = object["segment"] as? String else { throw fail(path + ".segment", "expected a segment name") }
            return .segment(name)
        case "event":
            guard let e = object["event"] as? [String: Any], let typeName = e["type"] as? String, let type = EventType(rawValue: typeName) else {
                throw fail(path + ".event", "expected {\"type\": one of \(EventType.allCases.map(\.rawValue).joined(separator: ", ")), …}")
            }
            var condition = EventCondition(type: type)
            for (i, filter) in (e["where"] as? [[String: Any]] ?? []).enumerated() {
                let p = "\(path).event.where[\(i)]"
                guard let field = filter["field"] as? String, EventCondition.fields.contains(field), let opText = filter["op"] as? String,
                    let op = RuleOperator(rawValue: opText), op != .in, let value = filter["value"]
                else { throw fail(p, "expected {\"field\": one of \(EventCondition.fields.sorted().joined(separator: ", ")), \"op\", \"value\"}") }
                condition.filters.append((field, op, try literal(value, path: p + ".value")))
            }
            if let within = e["within"] {
                guard case .duration(let d) = try literal(within, path: path + ".event.within") else {
                    throw fail(path + ".event.within", "expected a duration such as \"7d\"")
                }
                condition.within = d
            }
            for metric in ["count", "sum", "since"] {
                guard let m = e[metric] else { continue }
                guard let spec = m as? [String: Any], let opText = spec["op"] as? String, let op = RuleOperator(rawValue: opText), op != .in,
                    let value = spec["value"]
                else { throw fail("\(path).event.\(metric)", "expected {\"op\": …, \"value\": …}") }
                let decoded = try literal(value, path: "\(path).event.\(metric).value")
                switch (metric, decoded) {
                case ("count", .number(let n)): condition.metric = .count(op, n)
                case ("sum", .number(let n)): condition.metric = .sum(op, n)
                case ("since", .duration(let d)): condition.metric = .since(op, d)
                default: throw fail("\(path).event.\(metric).value", metric == "since" ? "expected a duration such as \"30d\"" : "expected a number")
                }
            }
            return .event(condition)
        default: throw fail(path, "unknown rule key `\(key.prefix(40))`")
        }
    }

    private static func literal(_ value: Any, path: String) throws(RuleError) -> RuleValue {
        if let n = value as? NSNumber, String(describing: type(of: n)) != "__NSCFBoolean" { return .number(n.doubleValue) }
        if let s = value as? String {
            if let last = s.last, let unit = RuleValue.durationUnits[String(last)], Int64(s.dropLast()) != nil {
                guard let millis = RuleValue.durationMillis(String(s.dropLast()), unit: unit) else {
                    throw fail(path, "a duration is a whole number and a unit, such as \"7d\", of at most \(RuleValue.longestDurationDays) days")
                }
                return .duration(millis)
            }
            return .text(s)
        }
        throw fail(path, "expected a string, a number or a duration")
    }

    /// The JSON form.
    public var json: Any {
        func literal(_ v: RuleValue) -> Any {
            switch v {
            case .text(let s): return s
            case .number(let n): return n == n.rounded() && abs(n) < 1e15 ? Int64(n) as Any : n as Any
            case .duration(let d): return RuleValue.durationText(d)
            }
        }
        switch self {
        case .and(let rules): return ["and": rules.map(\.json)]
        case .or(let rules): return ["or": rules.map(\.json)]
        case .not(let rule): return ["not": rule.json]
        case .segment(let name): return ["segment": name]
        case .attribute(let name, let op, let values):
            return ["field": name, "op": op.rawValue, "value": op == .in ? values.map(literal) as Any : literal(values[0])]
        case .event(let c):
            var e: [String: Any] = ["type": c.type.rawValue]
            if !c.filters.isEmpty { e["where"] = c.filters.map { ["field": $0.field, "op": $0.op.rawValue, "value": literal($0.value)] } }
            if let within = c.within { e["within"] = RuleValue.durationText(within) }
            switch c.metric {
            case .exists: break
            case .count(let op, let n): e["count"] = ["op": op.rawValue, "value": literal(.number(n))]
            case .sum(let op, let n): e["sum"] = ["op": op.rawValue, "value": literal(.number(n))]
            case .since(let op, let d): e["since"] = ["op": op.rawValue, "value": RuleValue.durationText(d)]
            }
            return ["event": e]
        }
    }
}
