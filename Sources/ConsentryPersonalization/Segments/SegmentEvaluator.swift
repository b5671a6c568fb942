import ConsentryCore
public import ConsentryGate

/// Evaluates rules for one subject at a time: profile values, events (oldest first) and a fixed `now`.
public struct SegmentEvaluator: Sendable {
    /// The evaluation time (ms since 1970).
    public let now: Int64
    /// How engagement is scored.
    public let engagement: Engagement
    /// Rules of the segments a rule may refer to, by name.
    public let segments: [String: SegmentRule]

    /// Creates an evaluator.
    public init(now: Int64, engagement: Engagement = Engagement(), segments: [String: SegmentRule] = [:]) {
        self.now = now
        self.engagement = engagement
        self.segments = segments
    }

    /// Whether the subject belongs. A missing profile value makes every comparison on it false.
    public func holds(_ rule: SegmentRule, profile: [String: String], events: [BehaviorEvent]) -> Bool {
        var cache: Double?
        return holds(rule, profile, events, &cache, depth: 0)
    }

    private func holds(_ rule: SegmentRule, _ profile: [String: String], _ events: [BehaviorEvent], _ score: inout Double?, depth: Int) -> Bool {
        switch rule {
        case .and(let rules):
            for r in rules where !holds(r, profile, events, &score, depth: depth) { return false }
            return true
        case .or(let rules):
            for r in rules where holds(r, profile, events, &score, depth: depth) { return true }
            return false
        case .not(let r): return !holds(r, profile, events, &score, depth: depth)
        case .segment(let name):
            // Definitions reject cycles; the depth bound keeps a damaged store from recursing forever.
            guard depth < 32, let referenced = segments[name] else { return false }
            return holds(referenced, profile, events, &score, depth: depth + 1)
        case .attribute(let name, let op, let values):
            if name == SegmentRule.engagement {
                if score == nil { score = engagement.score(events.lazy.map { ($0.type, $0.time) }, now: now) }
                return values.contains { Self.compare(number: score!, op == .in ? .equal : op, $0) }
            }
            guard let value = profile[name] else { return false }
            if op == .in { return values.contains { Self.compare(text: value, .equal, $0) } }
            return Self.compare(text: value, op, values[0])
        case .event(let condition): return holds(condition, events)
        }
    }

    private func holds(_ c: EventCondition, _ events: [BehaviorEvent]) -> Bool {
        let start = c.within.map { now - $0 } ?? Int64.min
        var count = 0.0, sum = 0.0
        var newest: Int64?
        for e in events where e.type == c.type && e.time >= start && matches(e, c.filters) {
            count += 1
            sum += e.amount ?? 0
            newest = max(newest ?? e.time, e.time)
        }
        switch c.metric {
        case .exists: return count > 0
        case .count(let op, let n): return Self.compare(count, op, n)
        case .sum(let op, let n): return Self.compare(sum, op, n)
        case .since(let op, let d):
            guard let newest else { return op == .greater || op == .greaterOrEqual || op == .notEqual }
            return Self.compare(Double(now - newest), op, Double(d))
        }
    }

    private func matches(_ e: BehaviorEvent, _ filters: [(field: String, op: RuleOperator, value: RuleValue)]) -> Bool {
        for f in filters {
            let ok: Bool
            switch f.field {
            case "amount": ok = e.amount.map { Self.compare(number: $0, f.op, f.value) } ?? false
            case "category": ok = e.category.map { Self.compare(text: $0, f.op, f.value) } ?? false
            case "item_id": ok = e.itemID.map { Self.compare(text: $0, f.op, f.value) } ?? false
            case "campaign_id": ok = e.campaignID.map { Self.compare(text: $0, f.op, f.value) } ?? false
            case "currency": ok = e.currency.map { Self.compare(text: $0, f.op, f.value) } ?? false
            default: ok = false
            }
            if !ok { return false }
        }
        return true
    }

    static func compare(_ a: Double, _ op: RuleOperator, _ b: Double) -> Bool {
        switch op {
        case .equal, .in: a == b
        case .notEqual: a != b
        case .less: a < b
        case .lessOrEqual: a <= b
        case .greater: a > b
        case .greaterOrEqual: a >= b
        }
    }

    static func compare(number: Double, _ op: RuleOperator, _ value: RuleValue) -> Bool {
        switch value {
        case .number(let n): compare(number, op, n)
        case .text(let t): Double(t).map { compare(number, op, $0) } ?? false
        case .duration: false
        }
    }

    /// Text against a value: numerically when both are numbers, else by text (dates `YYYY-MM-DD` order correctly).
    static func compare(text: String, _ op: RuleOperator, _ value: RuleValue) -> Bool {
        if case .number(let n) = value {
            guard let x = Double(text) else { return false }
            return compare(x, op, n)
        }
        let other = value.text
        switch op {
        case .equal, .in: return text == other
        case .notEqual: return text != other
        case .less: return text < other
        case .lessOrEqual: return text <= other
        case .greater: return text > other
        case .greaterOrEqual: return text >= other
        }
    }
}
