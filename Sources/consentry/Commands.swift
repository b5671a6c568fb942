import ArgumentParser
import ConsentryCore
import ConsentryCrypto
import ConsentryGate
import ConsentryPersonalization
import ConsentryPolicy
import Foundation

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a new vault: database, master key (mode 0600) and a copy of the policy files.")

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: "The policy directory to copy into the vault (default: the policy set built into consentry).")
    var policies: String?

    func run() async throws {
        let source = try policies.map { URL(fileURLWithPath: $0) } ?? Self.writeDefaultPolicies()
        defer { if policies == nil { try? FileManager.default.removeItem(at: source.deletingLastPathComponent()) } }
        let vault = try Output.guarding {
            let key = try Environment.masterKey()
            return try Vault.create(
                at: global.vaultURL, policies: source, masterKey: key, configuration: VaultConfiguration(witnessFiles: global.witnessURLs))
        }
        let status = try await Output.guarding { try await vault.status() }
        if global.json {
            Output.printJSON(status)
        } else {
            print("created vault at \(vault.directory.path)")
            let keyFile = vault.directory.appendingPathComponent(Vault.masterKeyPath).path
            print(
                "  master key   "
                    + (Environment.masterKeyIsSet
                        ? "from \(Environment.masterKeyVariable) (not written to disk)"
                        : "\(keyFile) (mode 0600; back it up: without it the vault cannot be read)"))
            print("  policy       \(status.policyVersion) (\(status.declaredFields) fields)")
        }
    }
}

extension Init {
    /// Writes the built-in policy set (``DefaultPolicies``) into a private temporary directory and returns it.
    static func writeDefaultPolicies() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("consentry-policies-\(UUID().uuidString)")
            .appendingPathComponent("policies")
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            for file in DefaultPolicies.files {
                try Data((file.contents + "\n").utf8).write(to: directory.appendingPathComponent(file.name))
            }
        } catch {
            Output.error("cannot write the built-in policy files to a temporary directory: \(error.localizedDescription); pass `--policies DIR`")
            throw ExitCode(1)
        }
        return directory
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show counts, key version, schema and policy version (no personal data).")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let vault = try global.openVault()
        let status = try await Output.guarding { try await vault.status() }
        if global.json {
            Output.printJSON(status)
            return
        }
        print("vault            \(status.path)")
        print("store            \(status.store)")
        print("created          \(status.createdAt ?? "unknown")")
        print("subjects         \(status.subjects)")
        print("identities       \(status.identities) (blind indexes)")
        print("events           \(status.events)")
        print("consent records  \(status.consentRecords)")
        print("derived records  \(status.derivedRecords)")
        print(
            "key version      \(status.keyVersion)"
                + (status.keyRotationPending ? " (rotation interrupted: run `consentry keys rotate` to finish it)" : ""))
        print("schema version   \(status.schemaVersion)")
        print("policy version   \(status.policyVersion) (\(status.declaredFields) fields declared)")
        print("checkpoint       \(status.newestCheckpoint ?? "none") (record it elsewhere; `audit verify --expect` checks it later)")
        for witness in status.witnessFiles { print("witness          \(witness)") }
    }
}

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import profiles or behavioral events.", subcommands: [Profiles.self, Events.self])

    struct Profiles: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import profiles from CSV (header row of field names) or JSON Lines.",
            discussion: "Undeclared fields are dropped and reported; bad records are rejected with line, field and reason; the rest are committed.")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The file to import.")
        var file: String

        @Option(name: .long, help: "The source system: crm, web or pos.")
        var source: String

        @Option(name: .long, help: "csv or jsonl (default: from the file extension).")
        var format: String?

        @OptionGroup var batch: BatchOptions

        @OptionGroup var admin: AdminRoleOption

        func validate() throws {
            guard let source = DataSource(rawValue: source), [.crm, .web, .pos].contains(source) else {
                throw ValidationError("unknown source `\(source)`; use `crm`, `web` or `pos`")
            }
            if let format, ProfileFormat(rawValue: format) == nil { throw ValidationError("unknown format `\(format)`; use `csv` or `jsonl`") }
        }

        func run() async throws {
            let url = URL(fileURLWithPath: file)
            guard let format = format.flatMap(ProfileFormat.init(rawValue:)) ?? ProfileFormat(fileExtension: url.pathExtension) else {
                Output.error("cannot tell the format of `\(file)` from its extension; pass `--format csv` or `--format jsonl`")
                throw ExitCode(64)
            }
            let role = try admin.parsedRole
            let report = try await global.withVault(configuration: batch.configuration) { vault in
                try await vault.importProfiles(
                    from: url, source: DataSource(rawValue: source)!, format: format, as: Principal(actor: global.actorName, role: role))
            }
            try ImportOutput.finish(report, json: global.json)
        }
    }

    struct Events: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import behavioral events from JSON Lines (idempotent by event id).")

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The JSON Lines file to import.")
        var file: String

        @OptionGroup var batch: BatchOptions

        @OptionGroup var admin: AdminRoleOption

        func run() async throws {
            let role = try admin.parsedRole
            let (report, note) = try await global.withVault(configuration: batch.configuration) { vault -> (ImportReport, String?) in
                let report = try await vault.importEvents(from: URL(fileURLWithPath: file), as: Principal(actor: global.actorName, role: role))
                // Segments that read events are brought up to date for the subjects that received new ones, each in the
                // role that defined it; a failure here leaves the committed import alone.
                do {
                    let followUp = try await vault.followUpEventImport(report, as: Principal(actor: global.actorName, role: role))
                    let updated = followUp.segments, fired = followUp.triggers
                    if !fired.isEmpty {
                        Output.note("triggers fired: " + fired.map { "\($0.trigger) \($0.fired)" }.joined(separator: ", "))
                    }
                    guard !updated.isEmpty else { return (report, nil) }
                    return (
                        report,
                        "segments updated for \(report.touchedSubjects.count) subjects: "
                            + updated.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value) members among them)" }.joined(separator: ", ")
                    )
                } catch {
                    return (report, "segments were not updated (run `consentry segment run` later): \((error as? GateError)?.message ?? "\(error)")")
                }
            }
            if let note { Output.note(note) }
            try ImportOutput.finish(report, json: global.json)
        }
    }
}

enum ImportOutput {
    /// Prints a report and exits 3 when records were rejected.
    static func finish(_ report: ImportReport, json: Bool) throws {
        if json {
            Output.printJSON(report)
        } else {
            print(summary(report))
            for rejection in report.rejections {
                Output.note("\(report.file):\(rejection.line): " + (rejection.field.map { "field `\($0)`: " } ?? "") + rejection.reason)
            }
            if report.rejected > report.rejections.count { Output.note("… and \(report.rejected - report.rejections.count) more rejected records") }
        }
        if report.rejected > 0 { throw ExitCode(3) }
    }

    static func summary(_ report: ImportReport) -> String {
        var lines = ["imported \(report.kind) from \(report.file)", "  records    \(report.records)"]
        if report.kind == "profiles" {
            lines += ["  inserted   \(report.inserted) new subjects", "  merged     \(report.merged)", "  unchanged  \(report.unchanged)"]
        } else {
            lines += ["  inserted   \(report.inserted)", "  duplicates \(report.duplicates) (already imported, skipped)"]
        }
        lines.append("  rejected   \(report.rejected)")
        if report.suppressed > 0 { lines.append("    of which \(report.suppressed) erased at the subject's request (suppressed)") }
        if !report.droppedFields.isEmpty {
            // At most 20 names on the line; `--json` has them all.
            let dropped = report.droppedFields.sorted { $0.key < $1.key }
            lines.append(
                "  dropped fields (not declared in policies/fields.yaml, not stored): "
                    + dropped.prefix(20).map { "\($0.key) (\($0.value))" }.joined(separator: ", ")
                    + (dropped.count > 20 ? " and \(dropped.count - 20) more (`--json` lists them)" : ""))
        }
        return lines.joined(separator: "\n")
    }
}

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fill a vault with deterministic synthetic customers, events and consents (creating the vault if absent).",
        discussion:
            "All data is fictitious, on .example and .test domains. With --write-files the data is written as profiles.csv and events.jsonl instead.")

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: "Number of profiles.")
    var profiles = 1_000

    @Option(name: .long, help: "Random seed; the same seed on the same day gives the same data.")
    var seed: UInt64 = 42

    @Option(name: .long, help: "Mean number of events per profile.")
    var eventsPerProfile: Double = 10

    @Option(name: .long, help: "The policy directory, when the vault has to be created (default: the built-in policy set).")
    var policies: String?

    @Option(name: .long, help: "Write profiles.csv and events.jsonl into this directory instead of a vault.")
    var writeFiles: String?

    func validate() throws {
        guard (0...10_000_000).contains(profiles) else { throw ValidationError("`--profiles` must be between 0 and 10,000,000") }
        guard eventsPerProfile >= 0, eventsPerProfile <= 1_000 else { throw ValidationError("`--events-per-profile` must be between 0 and 1,000") }
    }

    func run() async throws {
        let options = DemoOptions(profiles: profiles, seed: seed, eventsPerProfile: eventsPerProfile)
        if let writeFiles {
            let generator = DemoGenerator(options: options, now: Date())
            let urls: (profiles: URL, events: URL)
            do { urls = try generator.writeFiles(to: URL(fileURLWithPath: writeFiles)) } catch {
                Output.error("could not write demo files into `\(writeFiles)`: \(error.localizedDescription)")
                throw ExitCode(1)
            }
            print("wrote \(urls.profiles.path) and \(urls.events.path)")
            return
        }
        let vault: Vault
        if FileManager.default.fileExists(atPath: global.vaultURL.appendingPathComponent(Vault.databaseFileName).path) {
            vault = try global.openVault()
        } else {
            let source = try policies.map { URL(fileURLWithPath: $0) } ?? Init.writeDefaultPolicies()
            defer { if policies == nil { try? FileManager.default.removeItem(at: source.deletingLastPathComponent()) } }
            vault = try Output.guarding {
                let key = try Environment.masterKey()
                return try Vault.create(
                    at: global.vaultURL, policies: source, masterKey: key, configuration: VaultConfiguration(witnessFiles: global.witnessURLs))
            }
        }
        let report = try await Output.guarding { try await vault.loadDemoData(options, as: Principal(actor: global.actorName, role: .admin)) }
        try? vault.checkpointIfDue(force: true)
        if global.json {
            Output.printJSON(report)
        } else {
            print("demo data loaded into \(vault.directory.path) (seed \(seed))")
            print(ImportOutput.summary(report.profiles))
            print(ImportOutput.summary(report.events))
            print("consent records written: \(report.consentRecords)")
        }
    }
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify that every subject's data key and fields open, and that the database is consistent.",
        discussion: "Prints subjects and fields that fail, never values. Exits 1 if anything is wrong.")

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: "Comma-separated fields to open (default: all declared fields).")
    var fields: String?

    func run() async throws {
        let report = try await global.withVault { vault -> CheckReport in
            let names = try fields.map { list in
                try list.split(separator: ",").map { item -> FieldName in
                    let raw = String(item).trimmingCharacters(in: .whitespaces)
                    guard let name = FieldName(raw), vault.schema[raw] != nil else {
                        Output.error("`\(raw.prefix(64))` is not a declared field; see policies/fields.yaml")
                        throw ExitCode(64)
                    }
                    return name
                }
            }
            return try await vault.check(fields: names, as: .administrator(global.actorName))
        }
        if global.json {
            Output.printJSON(report)
        } else {
            print("subjects checked     \(report.subjectsChecked)")
            print("values opened        \(report.valuesOpened)")
            print("database check       \(report.databaseCheck)")
            print("foreign-key problems \(report.foreignKeyViolations)")
            for problem in report.problems { Output.error(problem) }
            print(report.passed ? "check passed" : "check FAILED")
        }
        if !report.passed { throw ExitCode(1) }
    }
}

struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage the vault's keys.", subcommands: [Rotate.self])

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rotate the key-encryption key and re-wrap every data key (crash-safe; re-run to finish an interrupted rotation).")

        @OptionGroup var global: GlobalOptions

        @OptionGroup var admin: AdminRoleOption

        func run() async throws {
            let role = try admin.parsedRole
            let report = try await global.withVault { try await $0.rotateKeys(as: Principal(actor: global.actorName, role: role)) }
            if global.json {
                Output.printJSON(report)
            } else {
                print(
                    "key-encryption key rotated from version \(report.fromVersion) to \(report.toVersion)"
                        + (report.resumed ? " (finished an interrupted rotation)" : ""))
                print("  data keys re-wrapped  \(report.rewrapped)")
            }
        }
    }
}
