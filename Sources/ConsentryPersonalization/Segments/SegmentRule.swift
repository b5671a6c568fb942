public import ConsentryCore
import Foundation

/// A segment rule: which subjects belong, from profile attributes, behavioral events, the engagement score and other
/// segments. Written as text (`event(view, category = "running").within(7d) and not event(purchase).within(7d)`) or
/// as JSON; see docs/segments.md.
public indirect enum SegmentRule: Sendable, Equatable {
    /// Both hold.
    case and([SegmentRule])
    /// Either holds.
    case or([SegmentRule])
    /// Does not hold.
    case not(SegmentRule)
    /// A profile attribute (or `engagement`) compared with a value.
    case attribute(name: String, op: RuleOperator, value: [RuleValue])
    /// A condition on the subject's events.
    case event(EventCondition)
    /// Membership of another segment.
    case segment(String)

    /// The engagement score's name in rules.
    public static let engagement = "engagement"
}

/// Comparison operators in rules.
public enum RuleOperator: String, Sendable, Equatable, CaseIterable {
    case equal = "=", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">=", `in`
}

/// A literal in a rule: text, a number, or a duration in milliseconds.
public enum RuleValue: Sendable, Equatable {
    case text(String)
    case number(Double)
    case duration(Int64)

    var text: String {
        switch self {
        case .text(let s): s
        case .number(let n): n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : String(n)
        case .duration(let ms): RuleValue.durationText(ms)
        }
    }

    static func durationText(_ ms: Int64) -> String {
        for (unit, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000)] where ms % size == 0 {
            return "\(ms / size)\(unit)"
        }
        return "\(ms / 60_000)m"
    }
}

/// `event(type, field op value, …)` with an optional window and metric.
public struct EventCondition: Sendable, Equatable {
    /// What is measured over the matching events.
    public enum Metric: Sendable, Equatable {
        /// At least one matching event.
        case exists
        /// The number of matching events compared with a number.
        case count(RuleOperator, Double)
        /// The sum of their amounts compared with a number.
        case sum(RuleOperator, Double)
        /// The time since the newest matching event compared with a duration (no event: infinitely long ago).
        case since(RuleOperator, Int64)
    }

    /// The event type.
    public var type: EventType
    /// Conditions on the event's own fields (`category`, `item_id`, `campaign_id`, `currency`, `amount`).
    public var filters: [(field: String, op: RuleOperator, value: RuleValue)]
    /// Only events within this long before now (ms), if set.
    public var within: Int64?
    /// The measure.
    public var metric: Metric

    /// Creates a condition.
    public init(type: EventType, filters: [(field: String, op: RuleOperator, value: RuleValue)] = [], within: Int64? = nil, metric: Metric = .exists)
    {
        self.type = type
        self.filters = filters
        self.within = within
        self.metric = metric
    }

    public static func == (a: EventCondition, b: EventCondition) -> Bool {
        a.type == b.type && a.within == b.within && a.metric == b.metric && a.filters.count == b.filters.count
            && zip(a.filters, b.filters).allSatisfy { $0.field == $1.field && $0.op == $1.op && $0.value == $1.value }
    }

    /// The fields an event filter may name.
    public static let fields: Set<String> = ["category", "item_id", "campaign_id", "currency", "amount"]
}

extension SegmentRule {
    /// The profile fields the rule reads (not `engagement`, which is computed from events).
    public var profileFields: [String] {
        var out: Set<String> = []
        visit { if case .attribute(let name, _, _) = $0, name != Self.engagement { out.insert(name) } }
        return out.sorted()
    }

    /// Segments the rule refers to.
    public var segmentReferences: [String] {
        var out: Set<String> = []
        visit { if case .segment(let name) = $0 { out.insert(name) } }
        return out.sorted()
    }

    /// Whether the rule looks at events (including through `engagement`).
    public var readsEvents: Bool {
        var reads = false
        visit {
            if case .event = $0 { reads = true }
            if case .attribute(Self.engagement, _, _) = $0 { reads = true }
        }
        return reads
    }

    /// How far back events must be read (ms), or nil for the whole history.
    public var eventHorizon: Int64? {
        var horizon: Int64? = 0
        visit { rule in
            switch rule {
            case .event(let condition):
                if case .since = condition.metric { horizon = nil }
                if let within = condition.within, let h = horizon { horizon = max(h, within) } else if condition.within == nil { horizon = nil }
            case .attribute(Self.engagement, _, _):
                if let h = horizon { horizon = max(h, Engagement.horizon) }
            default: break
            }
        }
        return horizon
    }

    func visit(_ body: (SegmentRule) -> Void) {
        body(self)
        switch self {
        case .and(let rules), .or(let rules): for rule in rules { rule.visit(body) }
        case .not(let rule): rule.visit(body)
        default: break
        }
    }

    /// The canonical text form.
    public var text: String { render(top: true) }

    private func render(top: Bool) -> String {
        switch self {
        case .and(let rules): return group(rules.map { $0.render(top: false) }.joined(separator: " and "), top)
        case .or(let rules): return group(rules.map { $0.render(top: false) }.joined(separator: " or "), top)
        case .not(let rule): return "not " + rule.render(top: false)
        case .attribute(let name, let op, let values):
            if op == .in { return "\(name) in [\(values.map(Self.literal).joined(separator: ", "))]" }
            return "\(name) \(op.rawValue) \(values.first.map(Self.literal) ?? "\"\"")"
        case .segment(let name): return "segment(\(name))"
        case .event(let c):
            var text = "event(\(c.type.rawValue)" + c.filters.map { ", \($0.field) \($0.op.rawValue) \(Self.literal($0.value))" }.joined() + ")"
            if let within = c.within { text += ".within(\(RuleValue.durationText(within)))" }
            switch c.metric {
            case .exists: break
            case .count(let op, let n): text += ".count \(op.rawValue) \(RuleValue.number(n).text)"
            case .sum(let op, let n): text += ".sum \(op.rawValue) \(RuleValue.number(n).text)"
            case .since(let op, let d): text += ".since \(op.rawValue) \(RuleValue.durationText(d))"
            }
            return text
        }
    }

    private func group(_ text: String, _ top: Bool) -> String { top ? text : "(\(text))" }

    static func literal(_ value: RuleValue) -> String {
        switch value {
        case .text(let s): return "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        default: return value.text
        }
    }
}

/// The engagement score: weighted events with exponential time decay.
public struct Engagement: Sendable, Equatable, Codable {
    /// Weight per event type (default: open 1, click 3, cart_add 5, purchase 10; others 0).
    public var weights: [String: Double]
    /// Half-life of an event's weight, in days.
    public var halfLifeDays: Double

    /// The defaults.
    public init(weights: [String: Double] = ["email_open": 1, "email_click": 3, "cart_add": 5, "purchase": 10], halfLifeDays: Double = 30) {
        self.weights = weights
        self.halfLifeDays = halfLifeDays
    }

    /// Events older than this (a year) add less than 0.03% of their weight and are not read.
    public static let horizon: Int64 = 365 * 86_400_000

    /// The score of `events` at `now` (ms).
    public func score(_ events: some Sequence<(type: EventType, time: Int64)>, now: Int64) -> Double {
        var total = 0.0
        for event in events {
            guard let weight = weights[event.type.rawValue], weight != 0 else { continue }
            let ageDays = max(0, Double(now - event.time) / 86_400_000)
            guard ageDays * 86_400_000 <= Double(Self.horizon) else { continue }
            total += weight * pow(0.5, ageDays / halfLifeDays)
        }
        return total
    }
}
