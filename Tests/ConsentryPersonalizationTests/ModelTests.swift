import ConsentryAudit
import ConsentryCore
import ConsentryGate
import ConsentryPolicy
import ConsentryTesting
import Foundation
import Testing

@testable import ConsentryPersonalization

@Suite("models")
struct ModelTests {
    @Test("ROC-AUC by ranks, with ties; precision and recall at a threshold")
    func metrics() {
        #expect(Metrics.auc([0.1, 0.2, 0.3, 0.4], [false, false, true, true]) == 1)
        #expect(Metrics.auc([0.4, 0.3, 0.2, 0.1], [false, false, true, true]) == 0)
        #expect(Metrics.auc([0.5, 0.5, 0.5, 0.5], [false, true, false, true]) == 0.5)
        #expect(Metrics.auc([0.1, 0.6, 0.4, 0.9], [false, false, true, true]) == 0.75)
        let (p, r) = Metrics.precisionRecall([0.9, 0.8, 0.3, 0.2], [true, false, true, false], threshold: 0.5)
        #expect(p == 0.5 && r == 0.5)
    }

    @Test("logistic regression learns a separable rule; K-Means finds planted clusters and silhouette prefers the true k")
    func learners() {
        var rng = SeededRandom(seed: 7)
        func unit() -> Double { Double(rng.next() % 1_000_000) / 1_000_000 }
        let xs = (0..<400).map { _ in [unit() * 2 - 1, unit() * 2 - 1] }
        let ys = xs.map { $0[0] + 0.5 * $0[1] > 0 }
        let model = LogisticRegression.train(xs, ys, iterations: 600, rate: 1)
        #expect(Metrics.auc(xs.map(model.probability), ys) > 0.98)
        let centres = [[0.0, 0.0], [6.0, 6.0], [0.0, 6.0]]
        let points = (0..<300).map { i in centres[i % 3].map { $0 + unit() - 0.5 } }
        let scores = (2...5).map { k in KMeans.fit(points, k: k, seed: 1).silhouette(points) }
        #expect(scores.firstIndex(of: scores.max()!)! + 2 == 3)
    }

    /// The demo generator plants a signal: profiles with more activity before the cut-off buy more after it.
    @Test("on demo data the propensity model beats chance by a clear margin, and clusters are chosen by silhouette")
    func demoQuality() async throws {
        let vault = try TestSupport.makeVault()
        // Subject ids are random, so the 70/15/15 split differs run to run: enough subjects keep the test set's AUC
        // within a few standard errors (about 0.035 here) of the true value (about 0.76).
        _ = try await vault.loadDemoData(DemoOptions(profiles: 6_000, seed: 7, eventsPerProfile: 12))
        let desk = ModelDesk(vault: vault, as: Principal(actor: "al", role: .analyst))
        let report = try await desk.trainPropensity(now: TestSupport.fixedNow)
        #expect(report.auc > 0.62, "test ROC-AUC \(report.auc) is not above chance by the stated margin (0.12)")
        #expect(report.train > report.validation && report.validation > 0 && report.test > 0)
        #expect(report.scored == report.train + report.validation + report.test)
        #expect(report.excluded["consent_missing", default: 0] > 0, "subjects without profiling consent are never modelled")
        let clusters = try await desk.cluster(now: TestSupport.fixedNow)
        #expect((2...8).contains(clusters.k) && clusters.silhouettes[clusters.k] == clusters.silhouettes.values.max())
        #expect(clusters.sizes.values.reduce(0, +) == clusters.scored)
        let models = try await vault.models()
        #expect(models.map(\.name).sorted() == ["clusters", "propensity"] && models.allSatisfy { $0.metrics.contains("\"") })
        await #expect(throws: GateError.denied, "a marketer may not score for profiling") {
            try await ModelDesk(vault: vault, as: Principal(actor: "m", role: .marketer)).cluster()
        }
    }
}
