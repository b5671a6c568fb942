import Foundation

/// Turns template source into nodes. Errors carry line and column.
struct LiquidParser {
    /// A `{{ … }}` or `{% … %}` markup with its position.
    private struct Markup {
        var isTag: Bool
        var content: String
        var at: Position
        /// The content's first character, for positions of tokens inside it.
        var contentAt: Position
    }

    private enum Piece {
        case text(String)
        case markup(Markup)
    }

    private var pieces: [Piece] = []
    private var index = 0
    /// How many blocks (`if`, `unless`, `for`, `capture`) enclose the tag being parsed.
    private var depth = 0
    /// The deepest nesting of blocks, and of an expression, a template may have: parsing, the field check and
    /// rendering recurse over it, so the bound keeps a hostile template from exhausting the stack.
    static let maximumDepth = 256
    /// Blocks whose bodies are parsed strictly by tag name.
    static let blockEnds: [String: Set<String>] = [
        "if": ["elsif", "else", "endif"], "unless": ["elsif", "else", "endunless"], "for": ["else", "endfor"], "capture": ["endcapture"],
    ]

    /// Parses `source`.
    static func parse(_ source: String) throws(TemplateError) -> [Node] {
        var parser = LiquidParser()
        try parser.split(source)
        let (nodes, end) = try parser.parseBlock(until: [])
        if let end { throw TemplateError(line: end.at.line, column: end.at.column, "`\(end.name)` without an opening tag") }
        return nodes
    }

    // MARK: - Splitting text and markup

    private mutating func split(_ source: String) throws(TemplateError) {
        let chars = Array(source)
        var i = 0
        var line = 1, column = 1
        var text = ""
        var trimNext = false

        func advance(to target: Int) {
            ConsentryPersonalization.advance(over: chars, from: &i, to: target, line: &line, column: &column)
        }
        func appendText(_ raw: String, trimLeft: Bool, trimRight: Bool) {
            var t = raw
            if trimLeft { t = String(t.drop { $0.isWhitespace }) }
            if trimRight { t = String(t.reversed().drop { $0.isWhitespace }.reversed()) }
            if !t.isEmpty { pieces.append(.text(t)) }
        }
        /// The index of the first `close` pair at or after `from`, or nil.
        func find(_ close: (Character, Character), from: Int) -> Int? {
            var k = from
            while k + 1 < chars.count {
                if chars[k] == close.0 && chars[k + 1] == close.1 { return k }
                k += 1
            }
            return nil
        }

        while i < chars.count {
            guard chars[i] == "{", i + 1 < chars.count, chars[i + 1] == "{" || chars[i + 1] == "%" else {
                text.append(chars[i])
                advance(to: i + 1)
                continue
            }
            let isTag = chars[i + 1] == "%"
            let start = Position(line: line, column: column)
            var j = i + 2
            let trimLeft = j < chars.count && chars[j] == "-"
            if trimLeft { j += 1 }
            guard let end = find(isTag ? ("%", "}") : ("}", "}"), from: j) else {
                throw TemplateError(line: start.line, column: start.column, "`\(isTag ? "{%" : "{{")` is never closed; add `\(isTag ? "%}" : "}}")`")
            }
            let trimRight = end > j && chars[end - 1] == "-"
            appendText(text, trimLeft: trimNext, trimRight: trimLeft)
            text = ""
            advance(to: j)
            let contentAt = Position(line: line, column: column)
            let content = String(chars[j..<(trimRight ? end - 1 : end)])
            advance(to: end + 2)
            trimNext = trimRight
            let name = content.split(whereSeparator: \.isWhitespace).first.map(String.init) ?? ""
            guard isTag, name == "raw" || name == "comment" else {
                pieces.append(.markup(Markup(isTag: isTag, content: content, at: start, contentAt: contentAt)))
                continue
            }
            // The body of raw and comment is not markup: find the end tag by text, keep (raw) or drop (comment) the body.
            let endName = "end" + name
            var search = i
            var closing: (open: Int, close: Int, trimBefore: Bool, trimAfter: Bool)?
            while let open = find(("{", "%"), from: search) {
                var m = open + 2
                let trimBefore = m < chars.count && chars[m] == "-"
                if trimBefore { m += 1 }
                while m < chars.count && chars[m].isWhitespace { m += 1 }
                if String(chars[m..<min(chars.count, m + endName.count)]) == endName, let close = find(("%", "}"), from: m + endName.count) {
                    let inner = String(chars[(m + endName.count)..<close]).trimmingCharacters(in: .whitespaces)
                    if inner.isEmpty || inner == "-" {
                        closing = (open, close, trimBefore, chars[close - 1] == "-")
                        break
                    }
                }
                search = open + 2
            }
            guard let closing else {
                throw TemplateError(line: start.line, column: start.column, "`\(name)` is never closed; add `{% \(endName) %}`")
            }
            if name == "raw" { appendText(String(chars[i..<closing.open]), trimLeft: trimNext, trimRight: closing.trimBefore) }
            advance(to: closing.close + 2)
            trimNext = closing.trimAfter
        }
        appendText(text, trimLeft: trimNext, trimRight: false)
    }

    // MARK: - Blocks

    /// Parses nodes until a tag named in `ends`; returns the nodes and that end tag (name, arguments, position).
    private mutating func parseBlock(until ends: Set<String>) throws(TemplateError) -> (
        [Node], (name: String, rest: String, at: Position, contentAt: Position)?
    ) {
        var nodes: [Node] = []
        while index < pieces.count {
            let piece = pieces[index]
            index += 1
            switch piece {
            case .text(let text): nodes.append(.text(text))
            case .markup(let markup) where !markup.isTag:
                var lexer = try ExpressionLexer(markup.content, at: markup.contentAt)
                guard !lexer.atEnd else {
                    throw TemplateError(line: markup.at.line, column: markup.at.column, "empty `{{ }}`; put a variable inside")
                }
                let expression = try lexer.filteredExpression()
                try lexer.expectEnd()
                nodes.append(.output(expression))
            case .markup(let markup):
                let trimmed = markup.content.drop { $0.isWhitespace }
                let name = String(trimmed.prefix { !$0.isWhitespace })
                let rest = String(trimmed.dropFirst(name.count))
                let restAt = Position(
                    line: markup.contentAt.line, column: markup.contentAt.column + (markup.content.count - trimmed.count) + name.count)
                if ends.contains(name) { return (nodes, (name, rest, markup.at, restAt)) }
                nodes.append(try parseTag(name, rest, at: markup.at, restAt: restAt))
            }
        }
        return (nodes, nil)
    }

    private mutating func parseTag(_ name: String, _ rest: String, at: Position, restAt: Position) throws(TemplateError) -> Node {
        if Self.blockEnds[name] != nil {
            guard depth < Self.maximumDepth else {
                throw TemplateError(
                    line: at.line, column: at.column, "blocks nest deeper than \(Self.maximumDepth) levels (`if`, `unless`, `for`, `capture`); flatten the template")
            }
            depth += 1
        }
        defer { if Self.blockEnds[name] != nil { depth -= 1 } }
        switch name {
        case "if", "unless":
            var branches: [(Condition, [Node])] = []
            var otherwise: [Node] = []
            var lexer = try ExpressionLexer(rest, at: restAt)
            var condition = try lexer.condition()
            try lexer.expectEnd()
            if name == "unless" { condition = .not(condition) }
            while true {
                let (body, end) = try parseBlock(until: Self.blockEnds[name]!)
                guard let end else { throw TemplateError(line: at.line, column: at.column, "`\(name)` is never closed; add `{% end\(name) %}`") }
                switch end.name {
                case "elsif":
                    branches.append((condition, body))
                    var next = try ExpressionLexer(end.rest, at: end.contentAt)
                    condition = try next.condition()
                    try next.expectEnd()
                case "else":
                    branches.append((condition, body))
                    let (elseBody, close) = try parseBlock(until: ["end\(name)"])
                    guard close != nil else {
                        throw TemplateError(line: at.line, column: at.column, "`\(name)` is never closed; add `{% end\(name) %}`")
                    }
                    otherwise = elseBody
                    return .conditional(branches: branches, otherwise: otherwise)
                default:
                    branches.append((condition, body))
                    return .conditional(branches: branches, otherwise: otherwise)
                }
            }
        case "for":
            var lexer = try ExpressionLexer(rest, at: restAt)
            let variable = try lexer.identifier("a loop variable after `for`")
            try lexer.keyword("in")
            let collection = try lexer.primary()
            var limit: Expression?, offset: Expression?, reversed = false
            while !lexer.atEnd {
                let word = try lexer.identifier("`limit:`, `offset:` or `reversed`")
                switch word {
                case "reversed": reversed = true
                case "limit", "offset":
                    try lexer.punctuation(":")
                    let value = try lexer.primary()
                    if word == "limit" { limit = value } else { offset = value }
                default: throw lexer.error("unknown loop option `\(word)`; use `limit:`, `offset:` or `reversed`")
                }
                _ = lexer.skip(",")
            }
            let (body, end) = try parseBlock(until: ["else", "endfor"])
            guard let end else { throw TemplateError(line: at.line, column: at.column, "`for` is never closed; add `{% endfor %}`") }
            var otherwise: [Node] = []
            if end.name == "else" {
                let (elseBody, close) = try parseBlock(until: ["endfor"])
                guard close != nil else { throw TemplateError(line: at.line, column: at.column, "`for` is never closed; add `{% endfor %}`") }
                otherwise = elseBody
            }
            return .loop(
                variable: variable, collection: collection, limit: limit, offset: offset, reversed: reversed, body: body, otherwise: otherwise)
        case "assign":
            var lexer = try ExpressionLexer(rest, at: restAt)
            let variable = try lexer.identifier("a variable name after `assign`")
            try lexer.punctuation("=")
            let value = try lexer.filteredExpression()
            try lexer.expectEnd()
            return .assign(variable, value)
        case "capture":
            var lexer = try ExpressionLexer(rest, at: restAt)
            let variable = try lexer.identifier("a variable name after `capture`")
            try lexer.expectEnd()
            let (body, end) = try parseBlock(until: ["endcapture"])
            guard end != nil else { throw TemplateError(line: at.line, column: at.column, "`capture` is never closed; add `{% endcapture %}`") }
            return .capture(variable, body)
        case "":
            throw TemplateError(line: at.line, column: at.column, "empty `{% %}`; put a tag inside")
        case "elsif", "else", "endif", "endunless", "endfor", "endcapture", "endraw", "endcomment":
            throw TemplateError(line: at.line, column: at.column, "`\(name)` without an opening tag")
        default:
            throw TemplateError(
                line: at.line, column: at.column,
                "unknown tag `\(name.prefix(40))`; supported: if, elsif, else, unless, for, assign, capture, comment, raw")
        }
    }
}
