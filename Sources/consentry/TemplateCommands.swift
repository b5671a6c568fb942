import ArgumentParser
import ConsentryCore
import ConsentryGate
import ConsentryPersonalization
import ConsentryPolicy
import Foundation

/// `consentry template …`: compile, preview and register templates.
struct TemplateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "template",
        abstract: "Liquid templates: list the fields one reads, preview it offline, register it for a purpose. See docs/templates.md.",
        subcommands: [Fields.self, Preview.self, Register.self, List.self])

    /// The file and its format (from `--format`, else `.html`/`.htm` → html, anything else → text).
    struct Source: ParsableArguments {
        @Argument(help: "The template file.") var file: String
        @Option(name: .long, help: "html (outputs are HTML-escaped) or text (default: from the file extension).") var format: String?

        func load() throws -> (String, LiquidTemplate.Format) {
            guard let data = FileManager.default.contents(atPath: file) else {
                Output.error("cannot read `\(file)`")
                throw ExitCode(1)
            }
            guard let text = String(data: data, encoding: .utf8) else {
                Output.error("`\(file)` is not UTF-8 text")
                throw ExitCode(1)
            }
            let extensionFormat: LiquidTemplate.Format =
                ["html", "htm"].contains(URL(fileURLWithPath: file).pathExtension.lowercased()) ? .html : .text
            return (text, try format.map { try Parse.choice($0, "template format") } ?? extensionFormat)
        }

        /// Compiles against `fields`, printing the error with the file name, line and column.
        func compile(fields: Set<String>) throws -> LiquidTemplate {
            let (text, format) = try load()
            do { return try LiquidTemplate(source: text, format: format, profileFields: fields) } catch {
                Output.error("\(file):\(error.line):\(error.column): \(error.message)")
                throw ExitCode(1)
            }
        }
    }

    /// The profile fields of a policy directory, for offline commands.
    struct PolicyOption: ParsableArguments {
        @Option(name: .long, help: "The policy directory whose fields.yaml declares the profile fields (default: ./policies).")
        var policies = "policies"

        var fields: Set<String> {
            get throws {
                do { return Set(try FieldSchema.load(directory: URL(fileURLWithPath: policies)).fields.map(\.name.rawValue)) } catch {
                    for diagnostic in error.diagnostics { Output.note(diagnostic.description) }
                    Output.error("the fields in `\(policies)` do not load; pass `--policies DIR`")
                    throw ExitCode(1)
                }
            }
        }
    }

    struct Fields: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Compile a template strictly and list the profile fields it reads.")
        @OptionGroup var source: Source
        @OptionGroup var policy: PolicyOption
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            let template = try source.compile(fields: try policy.fields)
            if json { Output.printJSON(["fields": template.fields]) } else { print(template.fields.joined(separator: "\n")) }
        }
    }

    struct Preview: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "render", abstract: "Preview a template offline with data from a JSON file (no vault, nothing audited).")
        @OptionGroup var source: Source
        @OptionGroup var policy: PolicyOption
        @Option(name: .long, help: "A JSON object with profile fields and the namespaces recommendations, segments, campaign.")
        var context: String?

        func run() async throws {
            let template = try source.compile(fields: try policy.fields)
            var values: [String: LiquidValue] = [:]
            if let context {
                guard let data = FileManager.default.contents(atPath: context),
                    let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
                else {
                    Output.error("`\(context)` must hold a JSON object of variables")
                    throw ExitCode(1)
                }
                values = object.mapValues { LiquidValue(json: $0) }
            }
            print(template.render(values), terminator: "")
        }
    }

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a template for a purpose; refused when it reads a field the purpose does not allow.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The template's name (lower-case identifier).") var name: String
        @OptionGroup var source: Source
        @Option(name: .long, help: "The purpose it serves.") var purpose: String
        @Option(name: .customLong("as"), help: "The role (needs template_admin; default: marketer).") var role = "marketer"

        func run() async throws {
            let purpose: Purpose = try Parse.choice(purpose, "purpose")
            let role: Role = try Parse.choice(role, "role")
            let (text, format) = try source.load()
            let stored = try await global.withVault { vault in
                try await TemplateDesk(vault: vault, as: Principal(actor: global.actorName, role: role)).register(
                    name: name, purpose: purpose, format: format, source: text)
            }
            if global.json {
                Output.printJSON(stored)
            } else {
                print(
                    "registered `\(stored.name)` version \(stored.version) for \(purpose.rawValue); reads: \(stored.fields.joined(separator: ", "))")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List registered templates.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let templates = try await global.withVault { try await $0.templates() }
            if global.json { Output.printJSON(templates) } else if templates.isEmpty { print("no templates") }
            for t in templates where !global.json {
                print("\(t.name)  v\(t.version)  \(t.purpose.rawValue)  \(t.format)  reads: \(t.fields.joined(separator: ", "))")
            }
        }
    }
}

/// `consentry render NAME --email E --as ROLE`: a gated, audited render for one subject.
struct RenderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render", abstract: "Render a registered template for one subject through the gate (audited); prints the message.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The template's name.") var name: String
    @Option(name: .long, help: "The subject's e-mail address (`-`: read it from standard input).") var email: String?
    @Option(name: .customLong("customer-id"), help: "The subject's customer id (`-`: read it from standard input).") var customerID: String?
    @Option(name: .long, help: "A trigger queue entry id: render for its subject without naming them.") var trigger: Int64?
    @Option(name: .customLong("as"), help: "The role (default: campaign_service).") var role = "campaign_service"

    func validate() throws {
        guard [email != nil, customerID != nil, trigger != nil].filter({ $0 }).count == 1 else {
            throw ValidationError("name the subject with exactly one of `--email`, `--customer-id` or `--trigger`")
        }
    }

    var reference: SubjectReference {
        get throws {
            if let trigger { return .triggerEntry(trigger) }
            if let email { return .email(try StandardInput.valueOrLine(email) ?? "") }
            return .customerID(try StandardInput.valueOrLine(customerID) ?? "")
        }
    }
    @Option(name: .long, help: "A JSON file with the `campaign` namespace (name, subject, links).") var campaign: String?

    func run() async throws {
        let role: Role = try Parse.choice(role, "role")
        var campaignValues: [String: LiquidValue] = [:]
        if let campaign {
            guard let data = FileManager.default.contents(atPath: campaign),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            else {
                Output.error("`\(campaign)` must hold a JSON object")
                throw ExitCode(1)
            }
            campaignValues = object.mapValues { LiquidValue(json: $0) }
        }
        let result = try await global.withVault { vault in
            try await TemplateDesk(vault: vault, as: Principal(actor: global.actorName, role: role)).render(
                name, subject: try reference, campaign: campaignValues)
        }
        guard let output = result.output else {
            Output.error("denied: " + result.decision.reasons.map(\.description).joined(separator: "; ") + " (audit entry \(result.auditSequence))")
            throw ExitCode(2)
        }
        if !result.missing.isEmpty { Output.note("no value for \(result.missing.joined(separator: ", ")): the template's defaults were used") }
        print(output, terminator: output.hasSuffix("\n") ? "" : "\n")
    }
}
