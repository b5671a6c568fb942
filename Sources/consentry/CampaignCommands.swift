import ArgumentParser
import ConsentryCore
import ConsentryGate
import ConsentryPersonalization
import Foundation

/// `consentry sendtime …`: the best hour to send.
struct SendTimeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sendtime", abstract: "Send-time optimization under personalization: compute for everyone, or show one subject's.",
        subcommands: [Compute.self, Show.self], defaultSubcommand: Show.self)

    struct Compute: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Best hour of week per subject from opens and clicks; falls back to the country, then to everyone.")
        @OptionGroup var global: GlobalOptions
        @Option(name: .customLong("as"), help: "The role (default: campaign_service).") var role = "campaign_service"

        func run() async throws {
            let role: Role = try Parse.choice(role, "role")
            let sources = try await global.withVault { vault in try await SendTimeDesk(vault: vault, as: Principal(actor: global.actorName, role: role)).compute()
            }
            if global.json {
                Output.printJSON(sources)
            } else {
                print(
                    "send times stored: "
                        + sources.sorted { $0.key < $1.key }.map { "\($0.value.formatted()) from \($0.key)" }.joined(separator: ", "))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One subject's best hour (a gated, audited read).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var subject: SubjectOptions
        @Option(name: .customLong("as"), help: "The role (default: campaign_service).") var role = "campaign_service"

        func run() async throws {
            let role: Role = try Parse.choice(role, "role")
            let result = try await global.withVault { vault in
                try await SendTimeDesk(vault: vault, as: Principal(actor: global.actorName, role: role)).show(try subject.reference)
            }
            guard result.decision.isPermit else {
                Output.error("denied: " + result.decision.reasons.map(\.description).joined(separator: "; "))
                throw ExitCode(2)
            }
            guard let time = result.time else {
                Output.error("no send time computed for this subject yet; run `consentry sendtime compute`")
                throw ExitCode(1)
            }
            if global.json {
                Output.printJSON(time)
            } else {
                print("\(time.label) (from \(time.source.replacingOccurrences(of: "_", with: " ")), \(time.evidence) opens and clicks)")
            }
        }
    }
}

/// `consentry experiment …`: A/B and multivariate tests.
struct ExperimentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiment", abstract: "Experiments: create arms and a holdout, assign, ingest outcomes, report with significance.",
        subcommands: [Create.self, Assign.self, Outcomes.self, Report.self])

    struct RoleOption: ParsableArguments {
        @Option(name: .customLong("as"), help: "The role (default: marketer; outcomes need `import`, default admin).") var role: String?
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an experiment: --arm name=weight (two or more), --holdout share.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var role: RoleOption
        @Argument(help: "The experiment's name.") var name: String
        @Option(name: .long, help: "The purpose its messages serve.") var purpose: String
        @Option(name: .customLong("arm"), help: "An arm as name=weight (repeatable).") var arms: [String] = []
        @Option(name: .long, help: "The share held out, from 0 to below 1 (default 0.1).") var holdout = 0.1

        func run() async throws {
            let purpose: Purpose = try Parse.choice(purpose, "purpose")
            let parsed = try arms.map { text -> ExperimentDefinition.Arm in
                let parts = text.split(separator: "=")
                guard parts.count == 2, let weight = Double(parts[1]) else { throw ValidationError("`--arm` takes name=weight, such as control=1") }
                return ExperimentDefinition.Arm(name: String(parts[0]), weight: weight)
            }
            let role: Role = try Parse.choice(role.role ?? "marketer", "role")
            let definition = try await global.withVault { vault in
                try await ExperimentDesk(vault: vault, as: Principal(actor: global.actorName, role: role)).create(
                    name: name, purpose: purpose, arms: parsed, holdout: holdout)
            }
            if global.json {
                Output.printJSON(definition)
            } else {
                print("created `\(name)`: \(parsed.map(\.name).joined(separator: ", ")) and a \(Int(holdout * 100))% holdout")
            }
        }
    }

    struct Assign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Assign every subject the gate admits for the purpose (deterministic; earlier assignments stay).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var role: RoleOption
        @Argument(help: "The experiment.") var name: String

        func run() async throws {
            let role: Role = try Parse.choice(role.role ?? "marketer", "role")
            let arms = try await global.withVault { vault in
                try await ExperimentDesk(vault: vault, as: Principal(actor: global.actorName, role: role)).assign(name)
            }
            if global.json {
                Output.printJSON(arms)
            } else {
                print(arms.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value.formatted())" }.joined(separator: ", "))
            }
        }
    }

    struct Outcomes: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Ingest outcomes from JSON Lines: {\"id\", \"email\" or \"customer_id\", \"kind\": send|open|click|conversion|revenue, \"value\", \"time\"}."
        )
        @OptionGroup var global: GlobalOptions
        @OptionGroup var role: RoleOption
        @Argument(help: "The experiment.") var name: String
        @Argument(help: "The JSON Lines file.") var file: String

        func run() async throws {
            guard let data = FileManager.default.contents(atPath: file) else {
                Output.error("cannot read `\(file)`")
                throw ExitCode(1)
            }
            var outcomes: [ExperimentOutcome] = []
            var problems: [String] = []
            for (index, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where !line.isEmpty {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let id = object["id"] as? String,
                    let kind = object["kind"] as? String
                else {
                    problems.append("\(file):\(index + 1): expected a JSON object with `id` and `kind`")
                    continue
                }
                let reference: SubjectReference
                if let email = object["email"] as? String {
                    reference = .email(email)
                } else if let customer = object["customer_id"] as? String {
                    reference = .customerID(customer)
                } else {
                    problems.append("\(file):\(index + 1): name the subject with `email` or `customer_id`")
                    continue
                }
                let time = (object["time"] as? String).flatMap { try? Normalize.timestampMillis($0) } ?? Int64(Date().timeIntervalSince1970 * 1000)
                outcomes.append(
                    ExperimentOutcome(id: id, subject: reference, kind: kind, value: (object["value"] as? NSNumber)?.doubleValue ?? 1, time: time))
            }
            let role: Role = try Parse.choice(role.role ?? "admin", "role")
            let result = try await global.withVault { vault in
                try await ExperimentDesk(vault: vault, as: Principal(actor: global.actorName, role: role)).record(name, outcomes)
            }
            for (index, reason) in result.rejected { problems.append("outcome \(index + 1): \(reason)") }
            print("recorded \(result.recorded), already recorded \(result.duplicates), rejected \(problems.count)")
            for problem in problems.prefix(20) { Output.note(problem) }
            if !problems.isEmpty { throw ExitCode(3) }
        }
    }

    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open rate, CTR, conversion and revenue per recipient per arm, with 95% intervals and a significance test.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var role: RoleOption
        @Argument(help: "The experiment.") var name: String

        func run() async throws {
            let role: Role = try Parse.choice(role.role ?? "marketer", "role")
            let report = try await global.withVault { vault in
                try await ExperimentDesk(vault: vault, as: Principal(actor: global.actorName, role: role)).report(name)
            }
            if global.json {
                Output.printJSON(report)
                return
            }
            func pct(_ v: Double) -> String { String(format: "%.1f%%", v * 100) }
            func range(_ r: [Double]) -> String { "[\(pct(r[0])), \(pct(r[1]))]" }
            for arm in report.arms {
                print("\(arm.name): \(arm.recipients) recipients, \(arm.sent) sent")
                print("  open \(pct(arm.openRate)) \(range(arm.openInterval))  click \(pct(arm.clickRate)) \(range(arm.clickInterval))")
                print(
                    "  conversion \(pct(arm.conversionRate)) \(range(arm.conversionInterval))  revenue/recipient \(String(format: "%.2f", arm.revenuePerRecipient)) [\(String(format: "%.2f", arm.revenueInterval[0])), \(String(format: "%.2f", arm.revenueInterval[1]))]"
                )
            }
            print(
                "\(report.test) on conversion: statistic \(String(format: "%.3f", report.statistic)), p = \(String(format: "%.4f", report.pValue))\(report.significant ? " (significant at 5%)" : " (not significant at 5%)")"
            )
        }
    }
}
