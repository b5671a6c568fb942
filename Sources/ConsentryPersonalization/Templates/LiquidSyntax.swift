/// A problem in a template, with where it is (1-based line and column) and what to do.
public struct TemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The line.
    public let line: Int
    /// The column.
    public let column: Int
    /// What is wrong and how to fix it; never a value from a profile.
    public let message: String

    /// Creates an error.
    public init(line: Int, column: Int, _ message: String) {
        self.line = line
        self.column = column
        self.message = message
    }

    /// `line L, column C: message`.
    public var description: String { "line \(line), column \(column): \(message)" }
}

/// A position in the template source.
struct Position: Sendable, Equatable {
    var line: Int
    var column: Int
}

/// One part of a variable path: `.name` or `[expression]`.
enum PathSegment: Sendable {
    case key(String)
    case index(Expression)
}

/// An expression: a literal, a variable path, or a range `(a..b)`.
indirect enum Expression: Sendable {
    case literal(LiquidValue)
    case path(root: String, segments: [PathSegment], at: Position)
    case range(Expression, Expression)
    /// The special literals `empty` and `blank`, which compare by emptiness.
    case empty
    case blank
}

/// A filter application: `| name: arg, arg`.
struct FilterCall: Sendable {
    var name: String
    var arguments: [Expression]
    var at: Position
    /// The filter, resolved once when parsed (nil: unknown, which the strict check reports).
    var filter: LiquidFilter?

    init(name: String, arguments: [Expression], at: Position) {
        self.name = name
        self.arguments = arguments
        self.at = at
        filter = LiquidFilter(rawValue: name)
    }
}

/// The supported filters.
enum LiquidFilter: String, Sendable, CaseIterable {
    case `default`, upcase, downcase, capitalize, escape, truncate, date, plus, minus, times, round, size, first, last, join, money
}

/// An expression with filters.
struct FilteredExpression: Sendable {
    var base: Expression
    var filters: [FilterCall]
}

/// A comparison operator.
enum Comparison: String, Sendable {
    case equal = "==", notEqual = "!=", less = "<", greater = ">", lessOrEqual = "<=", greaterOrEqual = ">=", contains
}

/// A condition: Liquid evaluates `and`/`or` from the right, with no precedence between them.
indirect enum Condition: Sendable {
    case value(Expression)
    case compare(Expression, Comparison, Expression)
    case and(Condition, Condition)
    case or(Condition, Condition)
    /// `unless`: the first condition negated (later `elsif` branches are not).
    case not(Condition)
}

/// A parsed template node.
indirect enum Node: Sendable {
    case text(String)
    case output(FilteredExpression)
    case conditional(branches: [(Condition, [Node])], otherwise: [Node])
    case loop(variable: String, collection: Expression, limit: Expression?, offset: Expression?, reversed: Bool, body: [Node], otherwise: [Node])
    case assign(String, FilteredExpression)
    case capture(String, [Node])
}
