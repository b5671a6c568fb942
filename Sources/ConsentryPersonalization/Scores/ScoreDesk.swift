public import ConsentryCore
public import ConsentryGate
import ConsentryPolicy
public import Foundation

/// What a scoring run did.
public struct ScoreRun: Sendable, Codable, Equatable {
    /// The score (`engagement`, `rfm`).
    public var score: String
    /// Permit or deny of the run.
    public var decision: Effect
    /// Why a run was denied, or the granting rule.
    public var reasons: [String]
    /// Subjects scored and stored.
    public var scored: Int
    /// Subjects the gate excluded, by reason (an objection to profiling among them).
    public var excluded: [String: Int]
    /// A distribution for people: quantiles of the score, or counts per RFM label.
    public var distribution: [String: Double]
}

/// Scores about subjects, computed under the purpose `profiling` through the gate and stored as sealed derived data
/// (`score/engagement`, `score/rfm`, `score/rfm_label`): exported with the subject, erased with it, and never computed
/// for a subject who objected to profiling or has not consented to it.
public struct ScoreDesk: Sendable {
    /// The vault.
    public let vault: Vault
    /// Who acts.
    public let principal: Principal
    /// Who acts, as recorded in the audit log.
    public var actor: String { principal.actor }
    /// The role (needs `score` for `profiling`; the default policy grants it to `analyst`).
    public var role: Role { principal.role }

    /// Creates a desk.
    public init(vault: Vault, as principal: Principal) {
        self.vault = vault
        self.principal = principal
    }

    var request: AccessRequest { AccessRequest(actor: actor, role: role, action: .score, purpose: .profiling) }

    /// Scans every admitted subject with its events since `since` (ms) and hands each to `body`.
    func scan(since: Int64?, _ body: (SubjectID, [BehaviorEvent]) -> Void) async throws(GateError) -> ScanSummary {
        try await vault.scanBehavior(request, eventsSince: since, requestID: principal.requestID) { member, _, events in body(member.subject, events) }
    }

    func finish(_ name: String, _ summary: ScanSummary, _ values: [String: [SubjectID: String]], distribution: [String: Double]) async throws(GateError)
        -> ScoreRun
    {
        var run = ScoreRun(
            score: name, decision: summary.decision, reasons: summary.reasons, scored: 0,
            excluded: summary.excluded.merging(summary.excludedDuringScan, uniquingKeysWith: +), distribution: distribution)
        guard summary.decision == .permit else { return run }
        for (key, stored) in values.sorted(by: { $0.key < $1.key }) {
            let write = try await vault.writeDerived(request, kind: "score", name: key, values: stored, replaceAll: true, requestID: principal.requestID)
            run.scored = max(run.scored, write.written)
        }
        return run
    }

    /// The engagement score of every admitted subject (weights per event type, halved every `halfLifeDays`).
    public func engagement(_ engagement: Engagement = Engagement(), now: Date = Date()) async throws(GateError) -> ScoreRun {
        let nowMillis = Int64(now.timeIntervalSince1970 * 1000)
        var scores: [SubjectID: Double] = [:]
        let summary = try await scan(since: nowMillis - Engagement.horizon) { subject, events in
            scores[subject] = engagement.score(events.lazy.map { ($0.type, $0.time) }, now: nowMillis)
        }
        let sorted = scores.values.sorted()
        func quantile(_ q: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * q))] }
        return try await finish(
            "engagement", summary, ["engagement": scores.mapValues { String(format: "%.2f", $0) }],
            distribution: ["p25": quantile(0.25), "median": quantile(0.5), "p75": quantile(0.75), "p90": quantile(0.9), "max": sorted.last ?? 0])
    }

    /// One subject's recency (days since the last purchase), frequency (purchases) and monetary value (sum of amounts).
    public struct RFMInput: Sendable, Equatable {
        /// Days since the last purchase.
        public var recencyDays: Double
        /// Number of purchases.
        public var frequency: Int
        /// Sum of purchase amounts.
        public var monetary: Double
    }

    /// Quintile scores 1–5 (5 best: most recent, most frequent, highest value) and a label, for subjects with purchases.
    public static func rfm(_ inputs: [SubjectID: RFMInput]) -> [SubjectID: (r: Int, f: Int, m: Int, label: String)] {
        let ids = inputs.keys.sorted()
        func quintiles(_ key: (RFMInput) -> Double, higherIsBetter: Bool) -> [SubjectID: Int] {
            // Ties share the quintile of their first position, so equal values always get equal scores.
            let ordered = ids.sorted { (key(inputs[$0]!), $0) < (key(inputs[$1]!), $1) }
            var result: [SubjectID: Int] = [:]
            var firstIndex: [Double: Int] = [:]
            for (i, id) in ordered.enumerated() {
                let value = key(inputs[id]!)
                let position = firstIndex[value] ?? i
                firstIndex[value] = position
                let q = min(5, position * 5 / max(1, ordered.count) + 1)
                result[id] = higherIsBetter ? q : 6 - q
            }
            return result
        }
        let r = quintiles({ $0.recencyDays }, higherIsBetter: false)
        let f = quintiles({ Double($0.frequency) }, higherIsBetter: true)
        let m = quintiles({ $0.monetary }, higherIsBetter: true)
        var out: [SubjectID: (Int, Int, Int, String)] = [:]
        for id in ids {
            let (rs, fs, ms) = (r[id]!, f[id]!, m[id]!)
            out[id] = (rs, fs, ms, label(r: rs, f: fs, m: ms))
        }
        return out
    }

    /// Labels from the usual RFM grid.
    static func label(r: Int, f: Int, m: Int) -> String {
        switch (r, f, m) {
        case (4...5, 4...5, 4...5): "champions"
        case (3...5, 4...5, _): "loyal"
        case (5, 1, _): "new"
        case (4...5, 1...3, _): "promising"
        case (1...2, 4...5, _): "cant_lose"
        case (2...3, 2...3, _): "needs_attention"
        case (1...2, 2...3, _): "at_risk"
        case (1, 1, _): "lost"
        default: "hibernating"
        }
    }

    /// RFM quintiles and labels of every admitted subject with at least one purchase.
    public func rfm(now: Date = Date()) async throws(GateError) -> ScoreRun {
        let nowMillis = Int64(now.timeIntervalSince1970 * 1000)
        var inputs: [SubjectID: RFMInput] = [:]
        let summary = try await scan(since: nil) { subject, events in
            var newest: Int64?
            var count = 0
            var sum = 0.0
            for e in events where e.type == .purchase {
                count += 1
                sum += e.amount ?? 0
                newest = max(newest ?? e.time, e.time)
            }
            if let newest { inputs[subject] = RFMInput(recencyDays: Double(nowMillis - newest) / 86_400_000, frequency: count, monetary: sum) }
        }
        let scores = Self.rfm(inputs)
        var labels: [String: Double] = [:]
        for (_, s) in scores { labels[s.label, default: 0] += 1 }
        return try await finish(
            "rfm", summary,
            ["rfm": scores.mapValues { "\($0.r)\($0.f)\($0.m)" }, "rfm_label": scores.mapValues(\.label)], distribution: labels)
    }
}
