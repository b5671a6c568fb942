import ArgumentParser
import ConsentryCore
import ConsentryGate
import ConsentryPersonalization
import Foundation

/// `consentry segment …`: behavioral segments bound to a purpose.
struct SegmentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment", abstract: "Segments: define a rule for a purpose, run it through the gate, compare two. See docs/segments.md.",
        subcommands: [Define.self, List.self, Run.self, Overlap.self])

    /// The role (`segment` for the purpose; default marketer).
    struct RoleOption: ParsableArguments {
        @Option(name: .customLong("as"), help: "The role (default: marketer).") var role = "marketer"
    }

    static func desk(_ vault: Vault, _ global: GlobalOptions, _ role: RoleOption) throws -> SegmentDesk {
        SegmentDesk(vault: vault, as: Principal(actor: global.actorName, role: try Parse.choice(role.role, "role")))
    }

    struct Define: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Define or redefine a segment from a text rule or a JSON rule file.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var role: RoleOption
        @Argument(help: "The segment's name (lower-case identifier).") var name: String
        @Option(name: .long, help: "The purpose it serves.") var purpose: String
        @Option(name: .long, help: "The rule in text form, e.g. 'event(view, category = \"running\").within(7d) and engagement >= 10'.")
        var rule: String?
        @Option(name: .customLong("rule-file"), help: "A file with the rule: text, or JSON when it ends in .json.") var ruleFile: String?

        func run() async throws {
            let purpose: Purpose = try Parse.choice(purpose, "purpose")
            let parsed: SegmentRule
            do {
                switch (rule, ruleFile) {
                case (let text?, nil): parsed = try SegmentRule(text: text)
                case (nil, let file?):
                    guard let data = FileManager.default.contents(atPath: file) else {
                        Output.error("cannot read `\(file)`")
                        throw ExitCode(1)
                    }
                    if file.hasSuffix(".json") {
                        guard let object = try? JSONSerialization.jsonObject(with: data) else {
                            Output.error("`\(file)` is not valid JSON")
                            throw ExitCode(1)
                        }
                        parsed = try SegmentRule(json: object)
                    } else {
                        parsed = try SegmentRule(text: String(decoding: data, as: UTF8.self))
                    }
                default: throw ValidationError("give the rule with exactly one of `--rule` or `--rule-file`")
                }
            } catch let error as RuleError {
                Output.error("the rule does not parse: \(ruleFile.map { "\($0): " } ?? "")\(error)")
                throw ExitCode(1)
            }
            let stored = try await global.withVault { vault in
                try await SegmentCommand.desk(vault, global, role).define(name: name, purpose: purpose, rule: parsed)
            }
            if global.json {
                Output.printJSON(stored)
            } else {
                print("defined `\(stored.name)` version \(stored.version) for \(purpose.rawValue): \(stored.rule)")
                print(
                    "reads: \(stored.fields.isEmpty ? "no profile fields" : stored.fields.joined(separator: ", "))\(stored.readsEvents ? " and events" : "")"
                )
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List segment definitions.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let segments = try await global.withVault { try await $0.segments() }
            if global.json {
                Output.printJSON(segments)
                return
            }
            if segments.isEmpty { print("no segments") }
            for s in segments { print("\(s.name)  v\(s.version)  \(s.purpose.rawValue)  \(s.rule)") }
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a segment through the gate: members (pseudonymous ids), count, and who was excluded and why; stores the memberships.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var role: RoleOption
        @Argument(help: "The segment.") var name: String
        @Flag(name: .long, help: "Print the members' pseudonymous ids.") var members = false

        func run() async throws {
            let result = try await global.withVault { vault in try await SegmentCommand.desk(vault, global, role).run(name) }
            guard result.decision == .permit else {
                Output.error("denied: " + result.reasons.joined(separator: "; "))
                throw ExitCode(2)
            }
            if global.json {
                Output.printJSON(result)
                return
            }
            print("\(result.members.count.formatted()) members of \(result.evaluated.formatted()) subjects evaluated")
            print("excluded by the gate before evaluation: \(Output.exclusions(result.excluded))")
            if members { for member in result.members { print(member) } }
        }
    }

    struct Overlap: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "How many subjects two segments share (both run through the gate).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var role: RoleOption
        @Argument(help: "The first segment.") var first: String
        @Argument(help: "The second segment.") var second: String

        func run() async throws {
            let overlap = try await global.withVault { vault in try await SegmentCommand.desk(vault, global, role).overlap(first, second) }
            if global.json {
                Output.printJSON(["a": Double(overlap.a), "b": Double(overlap.b), "both": Double(overlap.both), "jaccard": overlap.jaccard])
            } else {
                print("\(first): \(overlap.a)  \(second): \(overlap.b)  both: \(overlap.both)  jaccard: \(String(format: "%.3f", overlap.jaccard))")
            }
        }
    }
}

/// `consentry trigger …`: behavioral triggers and their queue.
struct TriggerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trigger", abstract: "Triggers (cart_abandoned, viewed_not_purchased, browse_abandoned): define, check, read the queue.",
        subcommands: [Define.self, Check.self, Queue.self, Ack.self])

    struct Define: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Define a trigger for a purpose.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The trigger's name.") var name: String
        @Option(name: .long, help: "cart_abandoned, viewed_not_purchased or browse_abandoned.") var kind: String
        @Option(name: .long, help: "The purpose its messages serve.") var purpose: String
        @Option(name: .long, help: "Delay before it fires, such as 5m, 2h or 1d (default per kind: 5m, 1d, 1h).") var after: String?
        @Option(name: .customLong("as"), help: "The role (needs `segment` for the purpose; default: marketer).") var role = "marketer"

        func run() async throws {
            let kind: TriggerKind = try Parse.choice(kind, "trigger kind")
            let purpose: Purpose = try Parse.choice(purpose, "purpose")
            let role: Role = try Parse.choice(role, "role")
            var delay: Int64?
            if let after {
                guard let unit = ["m": Int64(60_000), "h": 3_600_000, "d": 86_400_000][String(after.suffix(1))], let count = Int64(after.dropLast()),
                    count > 0
                else { throw ValidationError("`--after` takes a number and a unit: 5m, 2h or 1d") }
                delay = count * unit
            }
            let definition = try await global.withVault { vault in
                try await TriggerDesk(vault: vault, as: Principal(actor: global.actorName, role: role)).define(
                    name: name, kind: kind, purpose: purpose, delay: delay)
            }
            if global.json {
                Output.printJSON(definition)
            } else {
                print(
                    "defined `\(definition.name)`: \(definition.kind) for \(definition.purpose.rawValue), fires after \(definition.delay / 60_000) minutes"
                )
            }
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue every occurrence whose delay has passed (run it on a schedule; imports check the subjects they touch).")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let results = try await global.withVault { vault in try await TriggerDesk(vault: vault, as: Principal(actor: global.actorName, role: .admin)).check()
            }
            if global.json {
                Output.printJSON(results)
                return
            }
            if results.isEmpty { print("no triggers") }
            for r in results { print("\(r.trigger): \(r.fired) fired, \(r.duplicates) already queued, \(r.skipped) withheld (consent)") }
        }
    }

    struct Queue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pending queue entries: entry id, trigger, subject pseudonym, item. Render with `consentry render NAME --trigger ID`.")
        @OptionGroup var global: GlobalOptions
        @Option(name: .long, help: "Only this trigger.") var trigger: String?
        @Option(name: .long, help: "At most this many entries per trigger (default 100).") var limit = 100
        @Option(name: .customLong("as"), help: "The role (needs `render` for the purpose; default: campaign_service).") var role = "campaign_service"

        func run() async throws {
            let role: Role = try Parse.choice(role, "role")
            let entries = try await global.withVault { vault in
                try await TriggerDesk(vault: vault, as: Principal(actor: global.actorName, role: role)).queue(trigger: trigger, limit: limit)
            }
            if global.json {
                Output.printJSON(entries)
                return
            }
            if entries.isEmpty { print("queue empty") }
            for e in entries { print("\(e.id)  \(e.trigger)  \(e.subject)  \(e.item ?? "-")  fired \(e.firedAt)") }
        }
    }

    struct Ack: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ack", abstract: "Mark a queue entry handled.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The entry id.") var id: Int64
        @Option(name: .customLong("as"), help: "The role (default: campaign_service).") var role = "campaign_service"

        func run() async throws {
            let role: Role = try Parse.choice(role, "role")
            try await global.withVault { vault in try await TriggerDesk(vault: vault, as: Principal(actor: global.actorName, role: role)).acknowledge(id) }
            if !global.json { print("acknowledged \(id)") }
        }
    }
}
