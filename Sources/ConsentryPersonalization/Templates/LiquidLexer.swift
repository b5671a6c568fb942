/// Tokens inside `{{ … }}` and `{% … %}`, and the expression grammar over them.
struct ExpressionLexer {
    enum Token: Equatable {
        case identifier(String)
        case string(String)
        case number(LiquidValue)
        case punctuation(String)
    }

    private var tokens: [(Token, Position)] = []
    private var index = 0
    private let end: Position
    /// How deep the expression being read nests (ranges, `[ ]` keys, `and`/`or` chains); parsing and evaluation recurse
    /// over it, so it is bounded by ``LiquidParser/maximumDepth``.
    private var depth = 0

    /// Enters one level of nesting, or fails when the expression is too deep.
    private mutating func nest(at: Position) throws(TemplateError) {
        guard depth < LiquidParser.maximumDepth else {
            throw TemplateError(
                line: at.line, column: at.column,
                "the expression nests deeper than \(LiquidParser.maximumDepth) levels (conditions joined by `and`/`or`, ranges, `[ ]`); split it")
        }
        depth += 1
    }

    init(_ text: String, at start: Position) throws(TemplateError) {
        let chars = Array(text)
        var i = 0
        var line = start.line, column = start.column
        func position() -> Position { Position(line: line, column: column) }
        func step(_ n: Int = 1) {
            let target = i + n
            advance(over: chars, from: &i, to: target, line: &line, column: &column)
        }
        while i < chars.count {
            let c = chars[i]
            if c.isWhitespace {
                step()
                continue
            }
            let at = position()
            if c.isLetter || c == "_" {
                var word = ""
                while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "_" || chars[i] == "-" || chars[i] == "?" {
                    word.append(chars[i])
                    step()
                }
                tokens.append((.identifier(word), at))
            } else if c.isNumber || (c == "-" && i + 1 < chars.count && chars[i + 1].isNumber) {
                var number = String(c)
                step()
                while i < chars.count, chars[i].isNumber || (chars[i] == "." && i + 1 < chars.count && chars[i + 1].isNumber) {
                    number.append(chars[i])
                    step()
                }
                if number.contains(".") {
                    tokens.append((.number(.double(Double(number) ?? 0)), at))
                } else {
                    guard let value = Int(number) else {
                        throw TemplateError(line: at.line, column: at.column, "number `\(number.prefix(30))` is too large")
                    }
                    tokens.append((.number(.int(value)), at))
                }
            } else if c == "\"" || c == "'" {
                var value = ""
                step()
                while i < chars.count, chars[i] != c {
                    value.append(chars[i])
                    step()
                }
                guard i < chars.count else { throw TemplateError(line: at.line, column: at.column, "a string is never closed; add `\(c)`") }
                step()
                tokens.append((.string(value), at))
            } else {
                let two = i + 1 < chars.count ? String(chars[i...i + 1]) : ""
                if ["==", "!=", "<>", "<=", ">=", ".."].contains(two) {
                    tokens.append((.punctuation(two == "<>" ? "!=" : two), at))
                    step(2)
                } else if "|:,.[]()=<>".contains(c) {
                    tokens.append((.punctuation(String(c)), at))
                    step()
                } else {
                    throw TemplateError(line: at.line, column: at.column, "unexpected character `\(c)`")
                }
            }
        }
        end = position()
    }

    var atEnd: Bool { index >= tokens.count }
    private var current: (Token, Position)? { index < tokens.count ? tokens[index] : nil }
    private var here: Position { current?.1 ?? end }

    func error(_ message: String) -> TemplateError { TemplateError(line: here.line, column: here.column, message) }

    mutating func expectEnd() throws(TemplateError) {
        if let (token, _) = current { throw error("unexpected \(Self.describe(token)); remove it or close the tag") }
    }

    static func describe(_ token: Token) -> String {
        switch token {
        case .identifier(let s): "`\(s.prefix(40))`"
        case .string: "a string"
        case .number: "a number"
        case .punctuation(let p): "`\(p)`"
        }
    }

    mutating func skip(_ punctuation: String) -> Bool {
        guard case (.punctuation(punctuation), _)? = current else { return false }
        index += 1
        return true
    }

    mutating func punctuation(_ p: String) throws(TemplateError) {
        guard skip(p) else { throw error("expected `\(p)`" + (current.map { " but found \(Self.describe($0.0))" } ?? "")) }
    }

    mutating func identifier(_ what: String) throws(TemplateError) -> String {
        guard case (.identifier(let name), _)? = current else { throw error("expected \(what)") }
        index += 1
        return name
    }

    mutating func keyword(_ word: String) throws(TemplateError) {
        guard case (.identifier(word), _)? = current else { throw error("expected `\(word)`") }
        index += 1
    }

    /// `expression (| filter (: argument (, argument)*)?)*`
    mutating func filteredExpression() throws(TemplateError) -> FilteredExpression {
        let base = try primary()
        var filters: [FilterCall] = []
        while skip("|") {
            let at = here
            let name = try identifier("a filter name after `|`")
            var arguments: [Expression] = []
            if skip(":") {
                repeat {
                    // Keyword arguments (`allow_false: true`) are read and passed by position.
                    if case (.identifier, _)? = current, index + 1 < tokens.count, tokens[index + 1].0 == .punctuation(":") { index += 2 }
                    arguments.append(try primary())
                } while skip(",")
            }
            filters.append(FilterCall(name: name, arguments: arguments, at: at))
        }
        return FilteredExpression(base: base, filters: filters)
    }

    /// A literal, a variable path, or a range.
    mutating func primary() throws(TemplateError) -> Expression {
        guard let (token, at) = current else { throw error("expected a value") }
        try nest(at: at)
        defer { depth -= 1 }
        index += 1
        switch token {
        case .string(let s): return .literal(.string(s))
        case .number(let n): return .literal(n)
        case .punctuation("("):
            let low = try primary()
            try punctuation("..")
            let high = try primary()
            try punctuation(")")
            return .range(low, high)
        case .punctuation("["):
            // `[ "key" ]` at the root: a variable named by a string.
            let key = try primary()
            try punctuation("]")
            guard case .literal(.string(let name)) = key else {
                throw TemplateError(line: at.line, column: at.column, "expected a quoted name inside `[ ]`")
            }
            return .path(root: name, segments: try segments(), at: at)
        case .identifier(let word):
            switch word {
            case "true": return .literal(.bool(true))
            case "false": return .literal(.bool(false))
            case "nil", "null": return .literal(.null)
            case "empty": return .empty
            case "blank": return .blank
            default: return .path(root: word, segments: try segments(), at: at)
            }
        case .punctuation(let p): throw TemplateError(line: at.line, column: at.column, "expected a value but found `\(p)`")
        }
    }

    private mutating func segments() throws(TemplateError) -> [PathSegment] {
        var segments: [PathSegment] = []
        while true {
            if skip(".") {
                segments.append(.key(try identifier("a property name after `.`")))
            } else if case (.punctuation("["), _)? = current {
                index += 1
                segments.append(.index(try primary()))
                try punctuation("]")
            } else {
                return segments
            }
        }
    }

    /// `comparison ((and|or) condition)?`, grouped from the right as Liquid does.
    mutating func condition() throws(TemplateError) -> Condition {
        try nest(at: here)
        defer { depth -= 1 }
        let left = try comparison()
        if case (.identifier("and"), _)? = current {
            index += 1
            return .and(left, try condition())
        }
        if case (.identifier("or"), _)? = current {
            index += 1
            return .or(left, try condition())
        }
        return left
    }

    private mutating func comparison() throws(TemplateError) -> Condition {
        let left = try primary()
        let op: Comparison?
        switch current?.0 {
        case .punctuation(let p)?: op = Comparison(rawValue: p)
        case .identifier("contains")?: op = .contains
        default: op = nil
        }
        guard let op else { return .value(left) }
        index += 1
        return .compare(left, op, try primary())
    }
}
