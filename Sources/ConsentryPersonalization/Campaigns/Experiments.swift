public import ConsentryCore
public import ConsentryGate
import ConsentryPolicy
import Foundation

/// The report of an experiment: rates per arm with 95% confidence intervals, and a significance test on conversion.
public struct ExperimentReport: Sendable, Codable, Equatable {
    /// One arm's figures.
    public struct Arm: Sendable, Codable, Equatable {
        /// The arm (`holdout` for the held-out group).
        public var name: String
        /// Subjects assigned.
        public var recipients: Int
        /// Subjects sent to.
        public var sent: Int
        /// Openers / sent (or / recipients when no sends were recorded), with its 95% Wilson interval.
        public var openRate: Double
        /// Its interval.
        public var openInterval: [Double]
        /// Clickers / sent.
        public var clickRate: Double
        /// Its interval.
        public var clickInterval: [Double]
        /// Converters / recipients.
        public var conversionRate: Double
        /// Its interval.
        public var conversionInterval: [Double]
        /// Revenue / recipients.
        public var revenuePerRecipient: Double
        /// Its 95% normal interval.
        public var revenueInterval: [Double]
    }

    /// The experiment.
    public var experiment: String
    /// Arms in definition order, then the holdout.
    public var arms: [Arm]
    /// `two_proportion_z` (two arms) or `chi_squared` (more), on conversion across the arms (not the holdout).
    public var test: String
    /// The statistic.
    public var statistic: Double
    /// The p-value.
    public var pValue: Double
    /// Whether p < 0.05.
    public var significant: Bool
}

/// Experiments: deterministic assignment, outcomes, and reports with significance.
public struct ExperimentDesk: Sendable {
    /// The vault.
    public let vault: Vault
    /// Who acts.
    public let principal: Principal
    /// Who acts, as recorded in the audit log.
    public var actor: String { principal.actor }
    /// The role (`segment` for the experiment's purpose; outcome imports need `import`).
    public var role: Role { principal.role }

    /// Creates a desk.
    public init(vault: Vault, as principal: Principal) {
        self.vault = vault
        self.principal = principal
    }

    /// The arm for a subject: a hash of (experiment, pseudonym) mapped to [0, 1); below the holdout share → `holdout`,
    /// else the arms by weight. The same subject always gets the same arm.
    public static func arm(experiment: ExperimentDefinition, pseudonym: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "\(experiment.name)|\(pseudonym)".utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        hash ^= hash >> 33
        hash = hash &* 0xff51_afd7_ed55_8ccd
        hash ^= hash >> 33
        let u = Double(hash >> 11) / Double(UInt64(1) << 53)
        if u < experiment.holdout { return "holdout" }
        let rest = (u - experiment.holdout) / (1 - experiment.holdout)
        let total = experiment.arms.reduce(0) { $0 + $1.weight }
        var cumulative = 0.0
        for arm in experiment.arms {
            cumulative += arm.weight / total
            if rest < cumulative { return arm.name }
        }
        return experiment.arms.last!.name
    }

    /// Creates an experiment.
    public func create(name: String, purpose: Purpose, arms: [ExperimentDefinition.Arm], holdout: Double) async throws(GateError) -> ExperimentDefinition {
        let definition = ExperimentDefinition(name: name, purpose: purpose, arms: arms, holdout: holdout, role: role)
        try await vault.createExperiment(definition, actor: actor)
        return definition
    }

    func load(_ name: String) async throws(GateError) -> ExperimentDefinition {
        guard let experiment = try await vault.experiment(name) else { throw GateError(.notFound, "no experiment `\(name.prefix(64))`") }
        return experiment
    }

    /// Assigns every subject the gate admits for the experiment's purpose (consent, flags); earlier assignments stay.
    /// - Returns: new assignments per arm.
    public func assign(_ name: String) async throws(GateError) -> [String: Int] {
        let experiment = try await load(name)
        var arms: [SubjectID: String] = [:]
        let summary = try await vault.scan(AccessRequest(actor: actor, role: role, action: .segment, purpose: experiment.purpose), requestID: principal.requestID) { member, _ in
            arms[member.subject] = Self.arm(experiment: experiment, pseudonym: member.assignmentKey)
        }
        guard summary.decision == .permit else { throw GateError(.denied, "denied: " + summary.reasons.joined(separator: "; ")) }
        _ = try await vault.storeAssignments(experiment, arms, as: principal)
        return arms.values.reduce(into: [:]) { $0[$1, default: 0] += 1 }
    }

    /// Records outcomes.
    public func record(_ name: String, _ outcomes: [ExperimentOutcome]) async throws(GateError) -> (
        recorded: Int, duplicates: Int, rejected: [(Int, String)]
    ) {
        try await vault.recordOutcomes(try load(name), outcomes, as: principal)
    }

    /// The report.
    public func report(_ name: String) async throws(GateError) -> ExperimentReport {
        let experiment = try await load(name)
        let counts = try await vault.experimentCounts(experiment, as: principal)
        var arms: [ExperimentReport.Arm] = []
        for armName in experiment.arms.map(\.name) + ["holdout"] {
            guard let c = counts[armName] else { continue }
            let sent = c.reached["send"] ?? 0
            let base = sent > 0 ? sent : c.assigned
            let n = Double(max(1, c.assigned))
            let mean = c.revenue / n
            let variance = max(0, c.revenueSquares / n - mean * mean)
            let margin = 1.96 * (variance / n).squareRoot()
            arms.append(
                ExperimentReport.Arm(
                    name: armName, recipients: c.assigned, sent: sent, openRate: Stats.rate(c.reached["open"] ?? 0, base),
                    openInterval: Stats.wilson(c.reached["open"] ?? 0, base), clickRate: Stats.rate(c.reached["click"] ?? 0, base),
                    clickInterval: Stats.wilson(c.reached["click"] ?? 0, base), conversionRate: Stats.rate(c.reached["conversion"] ?? 0, c.assigned),
                    conversionInterval: Stats.wilson(c.reached["conversion"] ?? 0, c.assigned), revenuePerRecipient: mean,
                    revenueInterval: [max(0, mean - margin), mean + margin]))
        }
        let tested = arms.filter { $0.name != "holdout" }
        let successes = tested.map { Int(($0.conversionRate * Double($0.recipients)).rounded()) }
        let totals = tested.map(\.recipients)
        let (test, statistic, p) = tested.count == 2 ? Stats.twoProportion(successes, totals) : Stats.chiSquared(successes, totals)
        return ExperimentReport(experiment: name, arms: arms, test: test, statistic: statistic, pValue: p, significant: p < 0.05)
    }
}

/// Statistics for experiment reports.
enum Stats {
    static func rate(_ k: Int, _ n: Int) -> Double { n == 0 ? 0 : Double(k) / Double(n) }

    /// The 95% Wilson score interval of k successes in n.
    static func wilson(_ k: Int, _ n: Int) -> [Double] {
        guard n > 0 else { return [0, 0] }
        let z = 1.96, p = Double(k) / Double(n), nn = Double(n)
        let centre = (p + z * z / (2 * nn)) / (1 + z * z / nn)
        let half = z * ((p * (1 - p) + z * z / (4 * nn)) / nn).squareRoot() / (1 + z * z / nn)
        return [max(0, centre - half), min(1, centre + half)]
    }

    /// Two-sided two-proportion z-test.
    static func twoProportion(_ k: [Int], _ n: [Int]) -> (String, Double, Double) {
        guard n[0] > 0, n[1] > 0 else { return ("two_proportion_z", 0, 1) }
        let p1 = Double(k[0]) / Double(n[0]), p2 = Double(k[1]) / Double(n[1])
        let pooled = Double(k[0] + k[1]) / Double(n[0] + n[1])
        let se = (pooled * (1 - pooled) * (1 / Double(n[0]) + 1 / Double(n[1]))).squareRoot()
        guard se > 0 else { return ("two_proportion_z", 0, 1) }
        let z = (p1 - p2) / se
        return ("two_proportion_z", z, erfc(abs(z) / 2.0.squareRoot()))
    }

    /// Chi-squared test of independence on a k×2 table (success, failure per arm).
    static func chiSquared(_ k: [Int], _ n: [Int]) -> (String, Double, Double) {
        let total = Double(n.reduce(0, +)), successes = Double(k.reduce(0, +))
        guard total > 0, successes > 0, successes < total, k.count >= 2 else { return ("chi_squared", 0, 1) }
        var chi = 0.0
        for (ki, ni) in zip(k, n) where ni > 0 {
            let expectedSuccess = Double(ni) * successes / total, expectedFailure = Double(ni) * (total - successes) / total
            chi += pow(Double(ki) - expectedSuccess, 2) / expectedSuccess + pow(Double(ni - ki) - expectedFailure, 2) / expectedFailure
        }
        return ("chi_squared", chi, upperGamma(Double(k.count - 1) / 2, chi / 2))
    }

    /// The regularized upper incomplete gamma Q(a, x) (series below a + 1, continued fraction above).
    static func upperGamma(_ a: Double, _ x: Double) -> Double {
        guard x > 0 else { return 1 }
        let lnGammaA = Double.logGammaOf(a)
        if x < a + 1 {
            var sum = 1 / a, term = 1 / a, ap = a
            for _ in 0..<500 {
                ap += 1
                term *= x / ap
                sum += term
                if abs(term) < abs(sum) * 1e-14 { break }
            }
            return max(0, 1 - sum * exp(-x + a * log(x) - lnGammaA))
        }
        var b = x + 1 - a, c = 1 / 1e-300, d = 1 / b, h = d
        for i in 1..<500 {
            let an = -Double(i) * (Double(i) - a)
            b += 2
            d = an * d + b
            if abs(d) < 1e-300 { d = 1e-300 }
            c = b + an / c
            if abs(c) < 1e-300 { c = 1e-300 }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < 1e-14 { break }
        }
        return min(1, exp(-x + a * log(x) - lnGammaA) * h)
    }
}

extension Double {
    /// ln Γ(x) for x > 0 (Lanczos approximation), avoiding the platform's overloaded `lgamma`.
    static func logGammaOf(_ x: Double) -> Double {
        let g = 7.0
        let c = [
            0.999_999_999_999_809_93, 676.520_368_121_885_1, -1259.139_216_722_402_8, 771.323_428_777_653_13, -176.615_029_162_140_59,
            12.507_343_278_686_905, -0.138_571_095_265_720_12, 9.984_369_578_019_571_6e-6, 1.505_632_735_149_311_6e-7,
        ]
        if x < 0.5 { return log(Double.pi / abs(sin(Double.pi * x))) - logGammaOf(1 - x) }
        let y = x - 1
        var a = c[0]
        let t = y + g + 0.5
        for i in 1..<9 { a += c[i] / (y + Double(i)) }
        return 0.5 * log(2 * Double.pi) + (y + 0.5) * log(t) - t + log(a)
    }
}
