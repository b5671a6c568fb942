public import ConsentryCore
public import ConsentryGate
import ConsentryPolicy
public import Foundation

/// Metrics of a trained propensity model, on its held-out test set.
public struct PropensityReport: Sendable, Codable, Equatable {
    /// The stored model version.
    public var version: Int
    /// Subjects in the train, validation and test sets (70/15/15 by subject id).
    public var train: Int
    /// Validation subjects.
    public var validation: Int
    /// Test subjects.
    public var test: Int
    /// Share of test subjects who purchased in the label window.
    public var positiveRate: Double
    /// ROC-AUC on the test set.
    public var auc: Double
    /// Precision on the test set at the threshold chosen on validation (best F1).
    public var precision: Double
    /// Recall on the test set at that threshold.
    public var recall: Double
    /// The threshold.
    public var threshold: Double
    /// Subjects scored with the model (stored as `score/propensity`).
    public var scored: Int
    /// Subjects the gate excluded, by reason.
    public var excluded: [String: Int]
}

/// Clusters chosen by silhouette.
public struct ClusterReport: Sendable, Codable, Equatable {
    /// The stored model version.
    public var version: Int
    /// The chosen number of clusters.
    public var k: Int
    /// Silhouette score per k tried.
    public var silhouettes: [Int: Double]
    /// Cluster label → subjects.
    public var sizes: [String: Int]
    /// Subjects clustered (stored as `score/cluster`).
    public var scored: Int
    /// Subjects the gate excluded, by reason.
    public var excluded: [String: Int]
}

/// Models under `profiling`: a purchase-propensity logistic regression and K-Means clusters on RFM and engagement.
/// Both read events through the gate (consent and objections apply), store versions with metrics, and store each
/// subject's result as sealed derived data.
public struct ModelDesk: Sendable {
    /// The vault.
    public let vault: Vault
    /// Who acts.
    public let principal: Principal
    /// Who acts, as recorded in the audit log.
    public var actor: String { principal.actor }
    /// The role (`score` for `profiling`).
    public var role: Role { principal.role }

    /// Creates a desk.
    public init(vault: Vault, as principal: Principal) {
        self.vault = vault
        self.principal = principal
    }

    static let day: Int64 = 86_400_000
    /// Feature names, in order.
    public static let propensityFeatures = [
        "log_purchases", "log_revenue", "days_since_purchase", "log_views", "log_cart_adds", "log_email_engagement", "log_engagement",
        "days_since_event",
    ]

    /// Features of a subject at `cutoff`, from events in the 60 days before it.
    static func features(_ events: [BehaviorEvent], cutoff: Int64) -> [Double] {
        let start = cutoff - 60 * day
        var purchases = 0.0, revenue = 0.0, views = 0.0, carts = 0.0, mail = 0.0
        var lastPurchase: Int64?, lastEvent: Int64?
        var window: [(type: EventType, time: Int64)] = []
        for e in events where e.time >= start && e.time < cutoff {
            window.append((e.type, e.time))
            lastEvent = max(lastEvent ?? e.time, e.time)
            switch e.type {
            case .purchase:
                purchases += 1
                revenue += e.amount ?? 0
                lastPurchase = max(lastPurchase ?? e.time, e.time)
            case .view: views += 1
            case .cartAdd: carts += 1
            case .emailOpen, .emailClick: mail += 1
            default: break
            }
        }
        let engagement = Engagement().score(window, now: cutoff)
        return [
            log1p(purchases), log1p(revenue), lastPurchase.map { Double(cutoff - $0) / Double(day) } ?? 60, log1p(views), log1p(carts), log1p(mail),
            log1p(engagement), lastEvent.map { Double(cutoff - $0) / Double(day) } ?? 60,
        ]
    }

    var request: AccessRequest { AccessRequest(actor: actor, role: role, action: .score, purpose: .profiling) }

    /// Trains the propensity to purchase within 30 days: features at (now − 30 days), label = a purchase since; splits
    /// subjects 70/15/15 by id, picks the threshold with the best F1 on validation, reports test metrics, stores the
    /// model version, then scores every admitted subject on its features now.
    public func trainPropensity(now: Date = Date()) async throws(GateError) -> PropensityReport {
        let nowMillis = Int64(now.timeIntervalSince1970 * 1000)
        let cutoff = nowMillis - 30 * Self.day
        var rows: [(id: SubjectID, past: [Double], label: Bool, current: [Double])] = []
        let summary = try await vault.scanBehavior(request, eventsSince: cutoff - 60 * Self.day, requestID: principal.requestID) { member, _, events in
            let label = events.contains { $0.type == .purchase && $0.time >= cutoff && $0.time <= nowMillis }
            rows.append((member.subject, Self.features(events, cutoff: cutoff), label, Self.features(events, cutoff: nowMillis + 1)))
        }
        let excluded = summary.excluded.merging(summary.excludedDuringScan, uniquingKeysWith: +)
        guard summary.decision == .permit else { throw GateError(.denied, "denied: " + summary.reasons.joined(separator: "; ")) }
        // The split is by a hash of the random subject id: stable run to run, independent of the data.
        func bucket(_ id: SubjectID) -> Int { Int(((UInt64(bitPattern: id.rawValue) &* 0x9E37_79B9_7F4A_7C15) >> 33) % 100) }
        let train = rows.filter { bucket($0.id) < 70 }, validation = rows.filter { (70..<85).contains(bucket($0.id)) }
        let test = rows.filter { bucket($0.id) >= 85 }
        guard train.count >= 20, test.count >= 5, Set(train.map(\.label)).count == 2 else {
            throw GateError(
                .invalidInput,
                "too little data to train: \(rows.count) subjects with profiling consent, of whom \(rows.filter(\.label).count) purchased")
        }
        let scaler = Standardizer(fitting: train.map(\.past))
        let model = LogisticRegression.train(train.map { scaler.apply($0.past) }, train.map(\.label))
        let validationScores = validation.map { model.probability(scaler.apply($0.past)) }
        var threshold = 0.5, bestF1 = -1.0
        for candidate in stride(from: 0.05, through: 0.95, by: 0.05) {
            let (p, r) = Metrics.precisionRecall(validationScores, validation.map(\.label), threshold: candidate)
            let f1 = p + r == 0 ? 0 : 2 * p * r / (p + r)
            if f1 > bestF1 { (bestF1, threshold) = (f1, candidate) }
        }
        let testScores = test.map { model.probability(scaler.apply($0.past)) }
        let auc = Metrics.auc(testScores, test.map(\.label))
        let (precision, recall) = Metrics.precisionRecall(testScores, test.map(\.label), threshold: threshold)
        var report = PropensityReport(
            version: 0, train: train.count, validation: validation.count, test: test.count,
            positiveRate: Double(test.filter(\.label).count) / Double(test.count), auc: auc, precision: precision, recall: recall,
            threshold: threshold, scored: 0, excluded: excluded)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let metrics = (try? encoder.encode(report)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        let parameters =
            (try? encoder.encode(["features": Self.propensityFeatures] as [String: [String]])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        let weights =
            (try? encoder.encode(PropensityParameters(model: model, scaler: scaler))).map { String(decoding: $0, as: UTF8.self) } ?? parameters
        report.version = try await vault.storeModel(
            name: "propensity", purpose: .profiling, metrics: metrics, parameters: weights, as: principal
        ).version
        var values: [SubjectID: String] = [:]
        for row in rows { values[row.id] = String(format: "%.4f", model.probability(scaler.apply(row.current))) }
        report.scored = try await vault.writeDerived(request, kind: "score", name: "propensity", values: values, replaceAll: true, requestID: principal.requestID).written
        return report
    }

    struct PropensityParameters: Codable {
        var model: LogisticRegression
        var scaler: Standardizer
        var features = ModelDesk.propensityFeatures
    }

    /// Clusters admitted subjects on recency, frequency, monetary value and engagement (log-scaled, standardized) with
    /// K-Means for k = 2…8, keeps the k with the best silhouette (on a sample of up to 1,000), labels each cluster by
    /// its centroid, stores the model and each subject's label as `score/cluster`.
    public func cluster(now: Date = Date(), seed: UInt64 = 2026) async throws(GateError) -> ClusterReport {
        let nowMillis = Int64(now.timeIntervalSince1970 * 1000)
        var ids: [SubjectID] = []
        var raw: [[Double]] = []
        let summary = try await vault.scanBehavior(request, eventsSince: nowMillis - 365 * Self.day, requestID: principal.requestID) { member, _, events in
            var purchases = 0.0, revenue = 0.0
            var last: Int64?
            for e in events where e.type == .purchase {
                purchases += 1
                revenue += e.amount ?? 0
                last = max(last ?? e.time, e.time)
            }
            let recency = last.map { Double(nowMillis - $0) / Double(Self.day) } ?? 365
            let engagement = Engagement().score(events.lazy.map { ($0.type, $0.time) }, now: nowMillis)
            ids.append(member.subject)
            raw.append([log1p(recency), log1p(purchases), log1p(revenue), log1p(engagement)])
        }
        guard summary.decision == .permit else { throw GateError(.denied, "denied: " + summary.reasons.joined(separator: "; ")) }
        guard raw.count >= 10 else { throw GateError(.invalidInput, "too few subjects with profiling consent to cluster (\(raw.count))") }
        let scaler = Standardizer(fitting: raw)
        let xs = raw.map(scaler.apply)
        var rng = SeededRandom(seed: seed)
        let sample = xs.count <= 1000 ? xs : (0..<1000).map { _ in xs[rng.below(xs.count)] }
        var best: (k: Int, model: KMeans, score: Double)?
        var silhouettes: [Int: Double] = [:]
        for k in 2...min(8, xs.count - 1) {
            let model = KMeans.fit(xs, k: k, seed: seed &+ UInt64(k))
            let score = model.silhouette(sample)
            silhouettes[k] = (score * 1000).rounded() / 1000
            if score > (best?.score ?? -2) { best = (k, model, score) }
        }
        let chosen = best!
        let labels = Self.labels(chosen.model.centroids)
        var values: [SubjectID: String] = [:]
        var sizes: [String: Int] = [:]
        for (id, x) in zip(ids, xs) {
            let label = labels[chosen.model.assign(x)]
            values[id] = label
            sizes[label, default: 0] += 1
        }
        var report = ClusterReport(
            version: 0, k: chosen.k, silhouettes: silhouettes, sizes: sizes, scored: 0,
            excluded: summary.excluded.merging(summary.excludedDuringScan, uniquingKeysWith: +))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let metrics = (try? encoder.encode(report)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        let parameters = (try? encoder.encode(["centroids": chosen.model.centroids])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        report.version = try await vault.storeModel(
            name: "clusters", purpose: .profiling, metrics: metrics, parameters: parameters, as: principal
        ).version
        report.scored = try await vault.writeDerived(request, kind: "score", name: "cluster", values: values, replaceAll: true, requestID: principal.requestID).written
        return report
    }

    /// Names clusters by what stands out in their centroid (standardized recency, frequency, value, engagement).
    static func labels(_ centroids: [[Double]]) -> [String] {
        var seen: [String: Int] = [:]
        return centroids.map { c in
            var words: [String] = []
            if c[0] < -0.5 { words.append("recent") } else if c[0] > 0.5 { words.append("lapsed") }
            if c[1] > 0.5 { words.append("frequent") }
            if c[2] > 0.5 { words.append("high_value") } else if c[2] < -0.5 && c[1] < -0.5 { words.append("non_buyers") }
            if c[3] > 0.5 { words.append("engaged") } else if c[3] < -0.5 { words.append("quiet") }
            var label = words.isEmpty ? "average" : words.joined(separator: "_")
            seen[label, default: 0] += 1
            if seen[label]! > 1 { label += "_\(seen[label]!)" }
            return label
        }
    }
}
