import ConsentryCore
import Foundation

/// Splits and initializations repeat run to run.
typealias SeededRandom = SplitMix64

/// Per-feature standardization (zero mean, unit variance), fitted on training data.
struct Standardizer: Codable, Equatable {
    var means: [Double]
    var scales: [Double]

    init(fitting rows: [[Double]]) {
        let n = Double(max(1, rows.count)), width = rows.first?.count ?? 0
        means = (0..<width).map { j in rows.reduce(0) { $0 + $1[j] } / n }
        scales = (0..<width).map { j in
            let m = rows.reduce(0) { $0 + $1[j] } / n
            let variance = rows.reduce(0) { $0 + ($1[j] - m) * ($1[j] - m) } / n
            return variance > 1e-12 ? variance.squareRoot() : 1
        }
    }

    func apply(_ row: [Double]) -> [Double] { zip(zip(row, means), scales).map { ($0.0 - $0.1) / $1 } }
}

/// Binary logistic regression trained by full-batch gradient descent with L2 regularization.
struct LogisticRegression: Codable, Equatable {
    var weights: [Double]
    var bias: Double

    static func sigmoid(_ z: Double) -> Double { z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z)) }

    func probability(_ x: [Double]) -> Double { Self.sigmoid(zip(weights, x).reduce(bias) { $0 + $1.0 * $1.1 }) }

    static func train(_ xs: [[Double]], _ ys: [Bool], iterations: Int = 400, rate: Double = 0.5, l2: Double = 1e-3) -> LogisticRegression {
        let width = xs.first?.count ?? 0
        var model = LogisticRegression(weights: [Double](repeating: 0, count: width), bias: 0)
        let n = Double(max(1, xs.count))
        for _ in 0..<iterations {
            var gradient = [Double](repeating: 0, count: width)
            var biasGradient = 0.0
            for (x, y) in zip(xs, ys) {
                let error = model.probability(x) - (y ? 1 : 0)
                for j in 0..<width { gradient[j] += error * x[j] }
                biasGradient += error
            }
            for j in 0..<width { model.weights[j] -= rate * (gradient[j] / n + l2 * model.weights[j]) }
            model.bias -= rate * biasGradient / n
        }
        return model
    }
}

/// Binary classification metrics.
enum Metrics {
    /// ROC-AUC by the rank-sum formula (ties count half).
    static func auc(_ scores: [Double], _ labels: [Bool]) -> Double {
        let positives = labels.filter { $0 }.count, negatives = labels.count - positives
        guard positives > 0, negatives > 0 else { return 0.5 }
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var ranks = [Double](repeating: 0, count: scores.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let rank = Double(i + j) / 2 + 1
            for k in i...j { ranks[order[k]] = rank }
            i = j + 1
        }
        let positiveRanks = zip(ranks, labels).filter { $0.1 }.reduce(0) { $0 + $1.0 }
        return (positiveRanks - Double(positives) * Double(positives + 1) / 2) / (Double(positives) * Double(negatives))
    }

    /// Precision and recall at a probability threshold.
    static func precisionRecall(_ scores: [Double], _ labels: [Bool], threshold: Double) -> (precision: Double, recall: Double) {
        var tp = 0, fp = 0, fn = 0
        for (s, y) in zip(scores, labels) {
            if s >= threshold { if y { tp += 1 } else { fp += 1 } } else if y { fn += 1 }
        }
        return (tp + fp == 0 ? 0 : Double(tp) / Double(tp + fp), tp + fn == 0 ? 0 : Double(tp) / Double(tp + fn))
    }
}

/// K-Means with k-means++ initialization, and the silhouette score to choose k.
struct KMeans {
    var centroids: [[Double]]

    @inline(__always)
    static func distance2(_ a: [Double], _ b: [Double]) -> Double {
        var total = 0.0
        for j in 0..<min(a.count, b.count) {
            let d = a[j] - b[j]
            total += d * d
        }
        return total
    }

    func assign(_ x: [Double]) -> Int {
        var best = 0, bestDistance = Double.infinity
        for (i, c) in centroids.enumerated() {
            let d = Self.distance2(x, c)
            if d < bestDistance { (best, bestDistance) = (i, d) }
        }
        return best
    }

    static func fit(_ xs: [[Double]], k: Int, seed: UInt64, iterations: Int = 50) -> KMeans {
        var rng = SeededRandom(seed: seed)
        var centroids = [xs[rng.below(xs.count)]]
        while centroids.count < k {
            let weights = xs.map { x in centroids.map { distance2(x, $0) }.min()! }
            let total = weights.reduce(0, +)
            guard total > 0 else { break }
            var pick = Double(rng.next() % 1_000_000) / 1_000_000 * total
            var index = 0
            for (i, w) in weights.enumerated() {
                pick -= w
                if pick <= 0 {
                    index = i
                    break
                }
            }
            centroids.append(xs[index])
        }
        var model = KMeans(centroids: centroids)
        for _ in 0..<iterations {
            var sums = [[Double]](repeating: [Double](repeating: 0, count: xs[0].count), count: model.centroids.count)
            var counts = [Int](repeating: 0, count: model.centroids.count)
            for x in xs {
                let c = model.assign(x)
                counts[c] += 1
                for j in 0..<x.count { sums[c][j] += x[j] }
            }
            let next = sums.enumerated().map { c, sum in counts[c] == 0 ? model.centroids[c] : sum.map { $0 / Double(counts[c]) } }
            if next == model.centroids { break }
            model.centroids = next
        }
        return model
    }

    /// Mean silhouette over `xs` (callers pass a sample: it is quadratic).
    func silhouette(_ xs: [[Double]]) -> Double {
        let labels = xs.map(assign)
        guard Set(labels).count > 1 else { return 0 }
        var total = 0.0
        for (i, x) in xs.enumerated() {
            var sums = [Double](repeating: 0, count: centroids.count), counts = [Int](repeating: 0, count: centroids.count)
            for (j, y) in xs.enumerated() where j != i {
                sums[labels[j]] += Self.distance2(x, y).squareRoot()
                counts[labels[j]] += 1
            }
            let own = labels[i]
            guard counts[own] > 0 else { continue }
            let a = sums[own] / Double(counts[own])
            let b = (0..<centroids.count).filter { $0 != own && counts[$0] > 0 }.map { sums[$0] / Double(counts[$0]) }.min() ?? a
            total += max(a, b) > 0 ? (b - a) / max(a, b) : 0
        }
        return total / Double(xs.count)
    }
}
