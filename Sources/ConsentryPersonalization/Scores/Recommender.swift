public import ConsentryCore
public import ConsentryGate
import ConsentryPolicy
public import Foundation

/// One recommended item.
public struct Recommendation: Sendable, Codable, Equatable {
    /// The item.
    public var id: String
    /// Its category, when known.
    public var category: String?
    /// The score (similarity-weighted; popularity for fallbacks).
    public var score: Double
    /// `similar`, `popular_in_category` or `popular`.
    public var source: String
}

/// Item-item collaborative filtering over views and purchases (cosine similarity of items' subject vectors).
public struct ItemItemModel: Sendable {
    /// Interaction weight per event type.
    public static let weights: [EventType: Double] = [.view: 1, .cartAdd: 2, .purchase: 3]

    /// item → (item → cosine similarity), only pairs that co-occur.
    let similar: [String: [(String, Double)]]
    /// item → category.
    let categories: [String: String]
    /// Items by popularity (subjects who interacted), most popular first.
    let popular: [(String, Double)]
    /// category → items by popularity.
    let popularByCategory: [String: [(String, Double)]]

    /// Builds the model from each subject's interactions (item → weight).
    public init(_ interactions: [[String: Double]], categories: [String: String], neighbours: Int = 50) {
        var norms: [String: Double] = [:]
        var dots: [String: [String: Double]] = [:]
        var popularity: [String: Double] = [:]
        for items in interactions {
            let list = Array(items)
            for (item, w) in list {
                norms[item, default: 0] += w * w
                popularity[item, default: 0] += 1
            }
            // Subjects with very long histories would dominate the pair count; their first 100 items are enough.
            let bounded = list.count > 100 ? Array(list.sorted { $0.key < $1.key }.prefix(100)) : list
            for i in 0..<bounded.count {
                for j in (i + 1)..<max(i + 1, bounded.count) {
                    let product = bounded[i].value * bounded[j].value
                    dots[bounded[i].key, default: [:]][bounded[j].key, default: 0] += product
                    dots[bounded[j].key, default: [:]][bounded[i].key, default: 0] += product
                }
            }
        }
        var similar: [String: [(String, Double)]] = [:]
        for (item, row) in dots {
            let ni = norms[item]!.squareRoot()
            let scored = row.map { ($0.key, $0.value / (ni * norms[$0.key]!.squareRoot())) }
            similar[item] = Array(scored.sorted { ($0.1, $1.0) > ($1.1, $0.0) }.prefix(neighbours))
        }
        self.similar = similar
        self.categories = categories
        popular = popularity.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { ($0.key, $0.value) }
        var byCategory: [String: [(String, Double)]] = [:]
        for (item, count) in popular { if let c = categories[item] { byCategory[c, default: []].append((item, count)) } }
        popularByCategory = byCategory
    }

    /// Top `count` items for a subject with these interactions, excluding `purchased`: similar items first, then popular
    /// items of the subject's favourite category, then popular items overall.
    public func recommend(_ interactions: [String: Double], purchased: Set<String>, count: Int) -> [Recommendation] {
        var scores: [String: Double] = [:]
        for (item, weight) in interactions {
            for (other, similarity) in similar[item] ?? [] where !purchased.contains(other) && interactions[other] == nil {
                scores[other, default: 0] += weight * similarity
            }
        }
        var out = scores.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(count).map {
            Recommendation(id: $0.key, category: categories[$0.key], score: ($0.value * 1000).rounded() / 1000, source: "similar")
        }
        var taken = Set(out.map(\.id)).union(purchased)
        var categoryWeights: [String: Double] = [:]
        for (item, weight) in interactions { if let c = categories[item] { categoryWeights[c, default: 0] += weight } }
        let favourite = categoryWeights.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key
        for (source, list) in [("popular_in_category", favourite.flatMap { popularByCategory[$0] } ?? []), ("popular", popular)] {
            for (item, popularity) in list where out.count < count && !taken.contains(item) && interactions[item] == nil {
                out.append(Recommendation(id: item, category: categories[item], score: popularity, source: source))
                taken.insert(item)
            }
        }
        return out
    }
}

/// Offline evaluation of recommendations on held-out interactions.
public struct RecommendationEvaluation: Sendable, Codable, Equatable {
    /// Subjects evaluated (those with at least two distinct items).
    public var subjects: Int
    /// Precision@k and recall@k by k (one held-out item per subject: recall@k is the hit rate).
    public var precision: [Int: Double]
    /// Recall@k by k.
    public var recall: [Int: Double]
    /// The same metrics for the popularity baseline (no personalization), for comparison.
    public var popularPrecision: [Int: Double]
}

/// Recommendations through the gate, under `personalization`, stored as derived data `recommendation/top`.
public struct RecommendationDesk: Sendable {
    /// The vault.
    public let vault: Vault
    /// Who acts.
    public let principal: Principal
    /// Who acts, as recorded in the audit log.
    public var actor: String { principal.actor }
    /// The role (needs `recommend` for `personalization`; the default policy grants it to `campaign_service`).
    public var role: Role { principal.role }

    /// Creates a desk.
    public init(vault: Vault, as principal: Principal) {
        self.vault = vault
        self.principal = principal
    }

    /// What a run did.
    public struct Run: Sendable, Codable, Equatable {
        /// Permit or deny.
        public var decision: Effect
        /// Reasons of a deny, or the granting rule.
        public var reasons: [String]
        /// Subjects with stored recommendations.
        public var stored: Int
        /// Subjects the gate excluded, by reason.
        public var excluded: [String: Int]
        /// Items in the model.
        public var items: Int
        /// The offline evaluation, when asked for.
        public var evaluation: RecommendationEvaluation?
    }

    struct History {
        var interactions: [String: Double] = [:]
        var purchased: Set<String> = []
        /// Items in the order of their last interaction.
        var sequence: [String] = []
    }

    /// Computes top-`count` recommendations for every admitted subject from the last year of views, cart adds and
    /// purchases; stores them (JSON) as `recommendation/top`. With `evaluate`, first measures Precision@k and Recall@k
    /// by holding out each subject's most recent item.
    public func run(count: Int = 5, evaluate: Bool = false, now: Date = Date()) async throws(GateError) -> Run {
        let request = AccessRequest(actor: actor, role: role, action: .recommend, purpose: .personalization)
        var histories: [SubjectID: History] = [:]
        var categories: [String: String] = [:]
        let since = Int64(now.timeIntervalSince1970 * 1000) - 365 * 86_400_000
        let summary = try await vault.scanBehavior(request, eventsSince: since, requestID: principal.requestID) { member, _, events in
            var history = History()
            for e in events {
                guard let item = e.itemID, let weight = ItemItemModel.weights[e.type] else { continue }
                history.interactions[item, default: 0] += weight
                if e.type == .purchase { history.purchased.insert(item) }
                if let c = e.category { categories[item] = c }
                history.sequence.removeAll { $0 == item }
                history.sequence.append(item)
            }
            if !history.interactions.isEmpty { histories[member.subject] = history }
        }
        var run = Run(
            decision: summary.decision, reasons: summary.reasons, stored: 0,
            excluded: summary.excluded.merging(summary.excludedDuringScan, uniquingKeysWith: +), items: categories.count, evaluation: nil)
        guard summary.decision == .permit else { return run }
        if evaluate { run.evaluation = Self.evaluate(Array(histories.values), categories: categories, ks: [5, 10]) }
        let model = ItemItemModel(histories.values.map(\.interactions), categories: categories)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var values: [SubjectID: String] = [:]
        for (subject, history) in histories {
            let items = model.recommend(history.interactions, purchased: history.purchased, count: count)
            values[subject] = (try? encoder.encode(items)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
        }
        run.stored = try await vault.writeDerived(request, kind: "recommendation", name: "top", values: values, replaceAll: true, requestID: principal.requestID).written
        return run
    }

    /// Leave-last-out: each subject's most recent item is hidden, the model is trained on everything else.
    static func evaluate(_ histories: [History], categories: [String: String], ks: [Int]) -> RecommendationEvaluation {
        var training: [[String: Double]] = []
        var cases: [(History, String)] = []
        for h in histories {
            guard h.sequence.count >= 2, let held = h.sequence.last else {
                training.append(h.interactions)
                continue
            }
            var rest = h
            rest.interactions[held] = nil
            rest.purchased.remove(held)
            rest.sequence.removeLast()
            training.append(rest.interactions)
            cases.append((rest, held))
        }
        let model = ItemItemModel(training, categories: categories)
        let maxK = ks.max() ?? 10
        var hits = [Int: Int](), popularHits = [Int: Int]()
        let popular = model.popular.map(\.0)
        for (history, held) in cases {
            let ranked = model.recommend(history.interactions, purchased: history.purchased, count: maxK).map(\.id)
            let baseline = popular.filter { history.interactions[$0] == nil && !history.purchased.contains($0) }.prefix(maxK)
            for k in ks {
                if ranked.prefix(k).contains(held) { hits[k, default: 0] += 1 }
                if baseline.prefix(k).contains(held) { popularHits[k, default: 0] += 1 }
            }
        }
        let n = Double(max(1, cases.count))
        var evaluation = RecommendationEvaluation(subjects: cases.count, precision: [:], recall: [:], popularPrecision: [:])
        for k in ks {
            evaluation.precision[k] = Double(hits[k] ?? 0) / (n * Double(k))
            evaluation.recall[k] = Double(hits[k] ?? 0) / n
            evaluation.popularPrecision[k] = Double(popularHits[k] ?? 0) / (n * Double(k))
        }
        return evaluation
    }
}
