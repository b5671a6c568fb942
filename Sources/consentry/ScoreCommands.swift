import ArgumentParser
import ConsentryCore
import ConsentryGate
import ConsentryPersonalization
import Foundation

/// `consentry score …`: scores under the purpose `profiling`.
struct ScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score", abstract: "Scores about subjects under `profiling`, stored as sealed derived data. See docs/scores.md.",
        subcommands: [EngagementScore.self, RFMScore.self])

    struct RoleOption: ParsableArguments {
        @Option(name: .customLong("as"), help: "The role (needs `score` for profiling; default: analyst).") var role = "analyst"
    }

    static func report(_ run: ScoreRun, json: Bool) throws {
        guard run.decision == .permit else {
            Output.error("denied: " + run.reasons.joined(separator: "; "))
            throw ExitCode(2)
        }
        if json {
            Output.printJSON(run)
            return
        }
        print("\(run.score): \(run.scored.formatted()) subjects scored")
        print("excluded by the gate: \(Output.exclusions(run.excluded))")
        for (key, value) in run.distribution.sorted(by: { $0.key < $1.key }) {
            print(
                "  \(key.padding(toLength: 16, withPad: " ", startingAt: 0)) \(value == value.rounded() ? String(Int(value)) : String(format: "%.2f", value))"
            )
        }
    }

    struct EngagementScore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "engagement",
            abstract: "Weighted events with time decay (default: open 1, click 3, cart_add 5, purchase 10; half-life 30 days).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var role: RoleOption
        @Option(name: .long, help: "Weights as type=weight pairs, e.g. email_open=1,email_click=3,cart_add=5,purchase=10.") var weights: String?
        @Option(name: .customLong("half-life"), help: "Days after which an event counts half (default 30).") var halfLife = 30.0

        func run() async throws {
            var engagement = Engagement(halfLifeDays: halfLife)
            guard halfLife > 0 else { throw ValidationError("`--half-life` must be a positive number of days") }
            if let weights {
                var parsed: [String: Double] = [:]
                for pair in weights.split(separator: ",") {
                    let parts = pair.split(separator: "=")
                    guard parts.count == 2, let type = EventType(rawValue: String(parts[0])), let weight = Double(parts[1]) else {
                        throw ValidationError("`--weights` takes type=number pairs; types are \(EventType.choiceList)")
                    }
                    parsed[type.rawValue] = weight
                }
                engagement.weights = parsed
            }
            let role: Role = try Parse.choice(role.role, "role")
            let run = try await global.withVault { vault in
                try await ScoreDesk(vault: vault, as: Principal(actor: global.actorName, role: role)).engagement(engagement)
            }
            try ScoreCommand.report(run, json: global.json)
        }
    }

    struct RFMScore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rfm", abstract: "Recency, frequency and monetary quintiles (1–5) with labels such as champions and at_risk.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var role: RoleOption

        func run() async throws {
            let role: Role = try Parse.choice(role.role, "role")
            let run = try await global.withVault { vault in try await ScoreDesk(vault: vault, as: Principal(actor: global.actorName, role: role)).rfm() }
            try ScoreCommand.report(run, json: global.json)
        }
    }
}

/// `consentry recommend`: item-item recommendations under `personalization`.
struct RecommendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recommend",
        abstract: "Item-item collaborative filtering over views and purchases; stores each subject's top items for renders.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("as"), help: "The role (needs `recommend` for personalization; default: campaign_service).")
    var role = "campaign_service"
    @Option(name: .long, help: "Items per subject (1-50).") var top = 5
    @Flag(name: .long, help: "Also report Precision@k and Recall@k on held-out interactions.") var evaluate = false

    func run() async throws {
        guard (1...50).contains(top) else { throw ValidationError("`--top` must be between 1 and 50") }
        let role: Role = try Parse.choice(role, "role")
        let run = try await global.withVault { vault in
            try await RecommendationDesk(vault: vault, as: Principal(actor: global.actorName, role: role)).run(count: top, evaluate: evaluate)
        }
        guard run.decision == .permit else {
            Output.error("denied: " + run.reasons.joined(separator: "; "))
            throw ExitCode(2)
        }
        if global.json {
            Output.printJSON(run)
            return
        }
        print("recommendations stored for \(run.stored.formatted()) subjects (\(run.items.formatted()) items in the model)")
        print("excluded by the gate: \(Output.exclusions(run.excluded))")
        if let e = run.evaluation {
            print("offline evaluation, most recent item of \(e.subjects.formatted()) subjects held out:")
            for k in e.precision.keys.sorted() {
                print(
                    String(
                        format: "  k=%-3d precision %.4f  recall %.4f   (popular items: precision %.4f)", k, e.precision[k] ?? 0, e.recall[k] ?? 0,
                        e.popularPrecision[k] ?? 0))
            }
        }
    }
}

/// `consentry model …`: models under `profiling`.
struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "Train and list models under `profiling` (propensity to purchase, clusters).",
        subcommands: [Train.self, List.self])

    struct Train: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Train `propensity` (logistic regression, 70/15/15 split, test ROC-AUC, precision, recall) or `clusters` (K-Means, k by silhouette).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var role: ScoreCommand.RoleOption
        @Argument(help: "propensity or clusters") var model: String

        func run() async throws {
            let role: Role = try Parse.choice(role.role, "role")
            switch model {
            case "propensity":
                let report = try await global.withVault { vault in
                    try await ModelDesk(vault: vault, as: Principal(actor: global.actorName, role: role)).trainPropensity()
                }
                if global.json {
                    Output.printJSON(report)
                    return
                }
                print(
                    "propensity model version \(report.version): train \(report.train), validation \(report.validation), test \(report.test) subjects"
                )
                print(
                    String(
                        format: "test ROC-AUC %.3f; at threshold %.2f (best F1 on validation): precision %.3f, recall %.3f; base rate %.3f",
                        report.auc, report.threshold, report.precision, report.recall, report.positiveRate))
                print("scored \(report.scored.formatted()) subjects (score/propensity); excluded by the gate: \(Output.exclusions(report.excluded))")
            case "clusters":
                let report = try await global.withVault { vault in try await ModelDesk(vault: vault, as: Principal(actor: global.actorName, role: role)).cluster()
                }
                if global.json {
                    Output.printJSON(report)
                    return
                }
                let scores = report.silhouettes.sorted { $0.key < $1.key }.map { "k=\($0.key): \(String(format: "%.3f", $0.value))" }
                print("clusters version \(report.version): k = \(report.k) by silhouette (\(scores.joined(separator: ", ")))")
                for (label, size) in report.sizes.sorted(by: { $0.value > $1.value }) {
                    print("  \(label.padding(toLength: 34, withPad: " ", startingAt: 0)) \(size.formatted())")
                }
                print("scored \(report.scored.formatted()) subjects (score/cluster); excluded by the gate: \(Output.exclusions(report.excluded))")
            default: throw ValidationError("unknown model `\(model.prefix(40))`; use `propensity` or `clusters`")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stored model versions with their metrics.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let models = try await global.withVault { try await $0.models() }
            if global.json {
                Output.printJSON(
                    models.map { ["name": $0.name, "version": String($0.version), "purpose": $0.purpose.rawValue, "metrics": $0.metrics] })
                return
            }
            if models.isEmpty { print("no models") }
            for m in models { print("\(m.name) v\(m.version)  \(Normalize.formatTimestamp(millis: m.trainedAt))  \(m.metrics)") }
        }
    }
}
