public import Foundation

/// A compiled template: a Liquid-compatible subset (docs/templates.md), checked strictly when it is compiled.
///
/// ```swift
/// let template = try LiquidTemplate(source: "Hello {{ first_name | default: 'there' }}!", format: .html, profileFields: ["first_name"])
/// template.fields  // ["first_name"]: what the gate must release for a render
/// let text = try template.render(["first_name": .string("Ada")])
/// ```
public struct LiquidTemplate: Sendable {
    /// Whether output is HTML-escaped.
    public enum Format: String, Sendable, CaseIterable, Codable {
        /// Every `{{ }}` output is HTML-escaped (unless its last filter is `escape`).
        case html
        /// Output as is (plain-text mail).
        case text
    }

    /// The namespaces a render provides besides profile fields.
    public static let namespaces: Set<String> = ["recommendations", "segments", "campaign"]

    /// The source.
    public let source: String
    /// The format.
    public let format: Format
    /// The profile fields the template reads, sorted: exactly what a render asks the gate for.
    public let fields: [String]
    /// The namespaces (``namespaces``) the template reads: a render fetches the subject's stored segments and
    /// recommendations only for a template that reads them.
    public let namespacesRead: Set<String>
    let nodes: [Node]

    /// Parses and checks `source`: syntax, known filters with the right number of arguments, and that every variable
    /// is a profile field, a loop or assigned variable, or a namespace.
    /// - Throws: ``TemplateError`` with line and column.
    /// - Parameter identifierFields: fields that identify a person (e-mail, phone, customer id). A template may read
    ///   them but not compare them with a literal: the literal would be one person's identifier kept in the template,
    ///   where no erasure reaches it (and a rule about one person is no campaign).
    public init(source: String, format: Format, profileFields: Set<String>, identifierFields: Set<String> = []) throws(TemplateError) {
        self.source = source
        self.format = format
        nodes = try LiquidParser.parse(source)
        var checker = StrictChecker(profileFields: profileFields, identifierFields: identifierFields)
        try checker.check(nodes)
        fields = checker.used.sorted()
        namespacesRead = checker.namespacesRead
    }

    /// Renders with `context` (profile fields and namespaces at the top level). An undefined variable renders empty,
    /// as in Liquid.
    public func render(_ context: [String: LiquidValue], now: Date = Date()) -> String {
        var renderer = Renderer(globals: context, escape: format == .html, now: now)
        var out = ""
        renderer.render(nodes, into: &out)
        return out
    }
}

/// Registration's strict check: every name must be known.
struct StrictChecker {
    let profileFields: Set<String>
    let identifierFields: Set<String>
    var used: Set<String> = []
    var namespacesRead: Set<String> = []
    var assigned: Set<String> = []
    var scopes: [Set<String>] = []

    init(profileFields: Set<String>, identifierFields: Set<String> = []) {
        self.profileFields = profileFields
        self.identifierFields = identifierFields
    }

    mutating func check(_ nodes: [Node]) throws(TemplateError) {
        // Liquid's assign and capture are global to the template, whatever their position.
        collectAssignments(nodes)
        try walk(nodes)
    }

    private mutating func collectAssignments(_ nodes: [Node]) {
        for node in nodes {
            switch node {
            case .assign(let name, _): assigned.insert(name)
            case .capture(let name, let body):
                assigned.insert(name)
                collectAssignments(body)
            case .conditional(let branches, let otherwise):
                for (_, body) in branches { collectAssignments(body) }
                collectAssignments(otherwise)
            case .loop(_, _, _, _, _, let body, let otherwise):
                collectAssignments(body)
                collectAssignments(otherwise)
            default: break
            }
        }
    }

    private mutating func walk(_ nodes: [Node]) throws(TemplateError) {
        for node in nodes {
            switch node {
            case .text: break
            case .output(let expression): try check(expression)
            case .assign(_, let expression): try check(expression)
            case .capture(_, let body): try walk(body)
            case .conditional(let branches, let otherwise):
                for (condition, body) in branches {
                    try check(condition)
                    try walk(body)
                }
                try walk(otherwise)
            case .loop(let variable, let collection, let limit, let offset, _, let body, let otherwise):
                try check(collection)
                if let limit { try check(limit) }
                if let offset { try check(offset) }
                scopes.append([variable, "forloop"])
                try walk(body)
                scopes.removeLast()
                try walk(otherwise)
            }
        }
    }

    private mutating func check(_ condition: Condition) throws(TemplateError) {
        switch condition {
        case .value(let e): try check(e)
        case .compare(let a, _, let b):
            try check(a)
            try check(b)
            for (field, other) in [(a, b), (b, a)] {
                guard case .path(let root, let segments, let at) = field, segments.isEmpty, identifierFields.contains(root),
                    !scopes.contains(where: { $0.contains(root) }), !assigned.contains(root), case .literal(let value) = other,
                    value != .string("")
                else { continue }
                throw TemplateError(
                    line: at.line, column: at.column,
                    "`\(root)` identifies a person: a template may not compare it with a literal (the value would be personal data kept in the template); compare another field, or with `blank`")
            }
        case .and(let a, let b), .or(let a, let b):
            try check(a)
            try check(b)
        case .not(let c): try check(c)
        }
    }

    private mutating func check(_ expression: FilteredExpression) throws(TemplateError) {
        try check(expression.base)
        for filter in expression.filters {
            guard let arity = LiquidFilters.arity[filter.name] else {
                throw TemplateError(
                    line: filter.at.line, column: filter.at.column,
                    "unknown filter `\(filter.name.prefix(40))`; supported: \(LiquidFilters.arity.keys.sorted().joined(separator: ", "))")
            }
            guard arity.contains(filter.arguments.count) else {
                throw TemplateError(
                    line: filter.at.line, column: filter.at.column,
                    "`\(filter.name)` takes \(arity.lowerBound == arity.upperBound ? "\(arity.lowerBound)" : "\(arity.lowerBound) to \(arity.upperBound)") arguments, not \(filter.arguments.count)"
                )
            }
            for argument in filter.arguments { try check(argument) }
        }
    }

    private mutating func check(_ expression: Expression) throws(TemplateError) {
        switch expression {
        case .literal, .empty, .blank: break
        case .range(let a, let b):
            try check(a)
            try check(b)
        case .path(let root, let segments, let at):
            for case .index(let inner) in segments { try check(inner) }
            if scopes.contains(where: { $0.contains(root) }) || assigned.contains(root) { return }
            if LiquidTemplate.namespaces.contains(root) {
                namespacesRead.insert(root)
                return
            }
            guard profileFields.contains(root) else {
                throw TemplateError(
                    line: at.line, column: at.column,
                    "`\(root.prefix(40))` is not a profile field, a loop or assigned variable, or one of \(LiquidTemplate.namespaces.sorted().joined(separator: ", "))"
                )
            }
            used.insert(root)
        }
    }
}

/// Evaluates nodes against a context.
struct Renderer {
    var globals: [String: LiquidValue]
    let escape: Bool
    let now: Date
    /// Loop frames, innermost last: the loop variable's value and the position for `forloop`, built lazily.
    var frames: [(variable: String, item: LiquidValue, index: Int, length: Int)] = []

    init(globals: [String: LiquidValue], escape: Bool, now: Date) {
        self.globals = globals
        self.escape = escape
        self.now = now
    }

    mutating func render(_ nodes: [Node], into out: inout String) {
        for node in nodes {
            switch node {
            case .text(let text): out += text
            case .output(let expression):
                let value = evaluate(expression)
                // An output whose last filter is `escape` is already escaped; anything else is escaped in HTML templates.
                if escape && expression.filters.last?.name != "escape" {
                    out += LiquidFilters.escapeHTML(value.text)
                } else {
                    out += value.text
                }
            case .assign(let name, let expression): globals[name] = evaluate(expression)
            case .capture(let name, let body):
                var captured = ""
                render(body, into: &captured)
                globals[name] = .string(captured)
            case .conditional(let branches, let otherwise):
                if let branch = branches.first(where: { holds($0.0) }) {
                    render(branch.1, into: &out)
                } else {
                    render(otherwise, into: &out)
                }
            case .loop(let variable, let collection, let limit, let offset, let reversed, let body, let otherwise):
                var items: [LiquidValue]
                switch evaluate(collection) {
                case .array(let a): items = a
                case .object(let o): items = o.sorted { $0.key < $1.key }.map { .array([.string($0.key), $0.value]) }
                case .string(let s) where !s.isEmpty: items = [.string(s)]
                default: items = []
                }
                let start = offset.map { max(0, Int(evaluate($0).doubleValue)) } ?? 0
                items = Array(items.dropFirst(start))
                if let limit { items = Array(items.prefix(max(0, Int(evaluate(limit).doubleValue)))) }
                if reversed { items.reverse() }
                guard !items.isEmpty else {
                    render(otherwise, into: &out)
                    continue
                }
                for (i, item) in items.enumerated() {
                    frames.append((variable, item, i, items.count))
                    render(body, into: &out)
                    frames.removeLast()
                }
            }
        }
    }

    func lookup(_ name: String) -> LiquidValue {
        for frame in frames.reversed() where frame.variable == name { return frame.item }
        if name == "forloop", let frame = frames.last {
            return .object([
                "index": .int(frame.index + 1), "index0": .int(frame.index), "rindex": .int(frame.length - frame.index),
                "rindex0": .int(frame.length - frame.index - 1), "first": .bool(frame.index == 0), "last": .bool(frame.index == frame.length - 1),
                "length": .int(frame.length),
            ])
        }
        return globals[name] ?? .null
    }

    /// `forloop.<key>` without building the object.
    func forloop(_ key: String) -> LiquidValue? {
        guard let frame = frames.last else { return nil }
        switch key {
        case "index": return .int(frame.index + 1)
        case "index0": return .int(frame.index)
        case "rindex": return .int(frame.length - frame.index)
        case "rindex0": return .int(frame.length - frame.index - 1)
        case "first": return .bool(frame.index == 0)
        case "last": return .bool(frame.index == frame.length - 1)
        case "length": return .int(frame.length)
        default: return nil
        }
    }

    func evaluate(_ expression: FilteredExpression) -> LiquidValue {
        var value = evaluate(expression.base)
        for call in expression.filters {
            guard let filter = call.filter else { continue }
            value = LiquidFilters.apply(filter, value, call.arguments.isEmpty ? [] : call.arguments.map(evaluate), now: now)
        }
        return value
    }

    func evaluate(_ expression: Expression) -> LiquidValue {
        switch expression {
        case .literal(let v): return v
        case .empty: return .string("")
        case .blank: return .string("")
        case .range(let a, let b):
            let low = Int(evaluate(a).doubleValue), high = Int(evaluate(b).doubleValue)
            // Bounded: a range is for small loops, not a way to allocate memory.
            guard high >= low, high - low < 100_000 else { return .array([]) }
            return .array((low...high).map { .int($0) })
        case .path(let root, let segments, _):
            if root == "forloop", segments.count == 1, case .key(let key) = segments[0], !frames.contains(where: { $0.variable == "forloop" }),
                let value = forloop(key)
            {
                return value
            }
            var value = lookup(root)
            for segment in segments {
                switch segment {
                case .key(let key): value = property(value, key)
                case .index(let inner):
                    let index = evaluate(inner)
                    switch (value, index) {
                    case (.array(let a), .int(let i)):
                        let position = i < 0 ? a.count + i : i
                        value = a.indices.contains(position) ? a[position] : .null
                    case (.object(let o), _): value = o[index.text] ?? .null
                    default: value = .null
                    }
                }
            }
            return value
        }
    }

    func property(_ value: LiquidValue, _ key: String) -> LiquidValue {
        switch (value, key) {
        case (.object(let o), _): return o[key] ?? (key == "size" ? .int(o.count) : .null)
        case (.array(let a), "size"): return .int(a.count)
        case (.array(let a), "first"): return a.first ?? .null
        case (.array(let a), "last"): return a.last ?? .null
        case (.string(let s), "size"): return .int(s.count)
        default: return .null
        }
    }

    func holds(_ condition: Condition) -> Bool {
        switch condition {
        case .value(let e): return evaluate(e).isTruthy
        case .not(let c): return !holds(c)
        case .and(let a, let b): return holds(a) && holds(b)
        case .or(let a, let b): return holds(a) || holds(b)
        case .compare(let a, let op, let b): return compare(a, op, b)
        }
    }

    private func compare(_ a: Expression, _ op: Comparison, _ b: Expression) -> Bool {
        // `x == empty` and `x == blank` compare by emptiness.
        if case .empty = b { return emptiness(evaluate(a), op, \.isEmpty) }
        if case .blank = b { return emptiness(evaluate(a), op, \.isBlank) }
        if case .empty = a { return emptiness(evaluate(b), op, \.isEmpty) }
        if case .blank = a { return emptiness(evaluate(b), op, \.isBlank) }
        let left = evaluate(a), right = evaluate(b)
        switch op {
        case .equal: return Self.equal(left, right)
        case .notEqual: return !Self.equal(left, right)
        case .contains:
            switch left {
            case .string(let s): return right != .null && s.contains(right.text)
            case .array(let items): return items.contains { Self.equal($0, right) }
            case .object(let o): return o[right.text] != nil
            default: return false
            }
        case .less, .greater, .lessOrEqual, .greaterOrEqual:
            guard let order = Self.order(left, right) else { return false }
            switch op {
            case .less: return order < 0
            case .greater: return order > 0
            case .lessOrEqual: return order <= 0
            default: return order >= 0
            }
        }
    }

    private func emptiness(_ value: LiquidValue, _ op: Comparison, _ test: (LiquidValue) -> Bool) -> Bool {
        switch op {
        case .equal: return test(value)
        case .notEqual: return !test(value)
        default: return false
        }
    }

    static func equal(_ a: LiquidValue, _ b: LiquidValue) -> Bool {
        switch (a, b) {
        case (.int(let x), .double(let y)): return Double(x) == y
        case (.double(let x), .int(let y)): return x == Double(y)
        default: return a == b
        }
    }

    /// Numbers with numbers, text with text; anything else does not compare.
    static func order(_ a: LiquidValue, _ b: LiquidValue) -> Int? {
        switch (a, b) {
        case (.int, .int), (.int, .double), (.double, .int), (.double, .double):
            let x = a.doubleValue, y = b.doubleValue
            return x < y ? -1 : (x > y ? 1 : 0)
        case (.string(let x), .string(let y)): return x < y ? -1 : (x > y ? 1 : 0)
        default: return nil
        }
    }
}
