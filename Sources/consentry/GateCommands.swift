import ArgumentParser
import ConsentryAudit
import ConsentryCore
import ConsentryGate
import ConsentryPolicy
import Foundation

/// `--email` or `--customer-id`: which subject a command is about.
struct SubjectOptions: ParsableArguments {
    @Option(name: .long, help: "The subject's e-mail address (`-`: read it from standard input, keeping it out of the process list).")
    var email: String?

    @Option(name: .customLong("customer-id"), help: "The subject's customer id (`-`: read it from standard input).")
    var customerID: String?

    func validate() throws {
        guard (email == nil) != (customerID == nil) else {
            throw ValidationError("name the subject with exactly one of `--email` or `--customer-id`")
        }
    }

    /// The subject named, reading a value given as `-` from standard input.
    var reference: SubjectReference {
        get throws {
            if let email { return .email(try StandardInput.valueOrLine(email) ?? "") }
            return .customerID(try StandardInput.valueOrLine(customerID) ?? "")
        }
    }

    /// The subject named, if any.
    var optionalReference: SubjectReference? {
        get throws { email == nil && customerID == nil ? nil : try reference }
    }
}

/// Parses vocabulary values given on the command line, with errors that list the choices.
enum Parse {
    static func choice<T: RawRepresentable & CaseIterable>(_ text: String, _ what: String) throws -> T where T.RawValue == String {
        guard let value = T(rawValue: text) else { throw ValidationError("unknown \(what) `\(text.prefix(64))`; use one of \(T.choiceList)") }
        return value
    }

    static func fields(_ text: String?) throws -> [FieldName] {
        guard let text, !text.isEmpty else { return [] }
        return try text.split(separator: ",").map { raw in
            let name = raw.trimmingCharacters(in: .whitespaces)
            guard let field = FieldName(name) else { throw ValidationError("`\(name.prefix(64))` is not a field name") }
            return field
        }
    }

    static func time(_ text: String?, _ option: String) throws -> Int64? {
        guard let text else { return nil }
        if let date = try? Normalize.date(text) { return try Normalize.timestampMillis(date + "T00:00:00Z") }
        do { return try Normalize.timestampMillis(text) } catch {
            throw ValidationError("`\(option)` must be a date `YYYY-MM-DD` or an RFC 3339 time such as `2026-11-20T10:00:00Z`")
        }
    }
}

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Check policy files and explain decisions.", subcommands: [Check.self, Explain.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a policy directory (fields.yaml, purposes.yaml, roles.yaml); errors name file, line and a fix.")

        @Argument(help: "The policy directory (default: ./policies).")
        var directory = "policies"

        @Flag(name: .long, help: "Print machine-readable JSON.")
        var json = false

        func run() async throws {
            let url = URL(fileURLWithPath: directory)
            do {
                let policy = try Policy.load(directory: url)
                let version = Vault.versionOfPolicy(at: url)
                if json {
                    Output.printJSON(["version": version, "warnings": policy.warnings.map(\.description).joined(separator: "\n")])
                } else {
                    for warning in policy.warnings { Output.note(warning.description) }
                    print(
                        "policy ok: version \(version), \(policy.schema.fields.count) fields, \(policy.purposes.count) purposes, \(policy.roles.count) roles"
                    )
                }
            } catch {
                for diagnostic in error.diagnostics { Output.note(diagnostic.description) }
                Output.error(
                    "the policy in `\(directory)` has \(error.diagnostics.filter { $0.severity == .error }.count) error(s); every decision denies until they are fixed"
                )
                throw ExitCode(1)
            }
        }
    }

    struct Explain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the full trace of a decision, ending with `permit` or `deny` (audited; releases no personal data).")

        @OptionGroup var global: GlobalOptions
        @Option(name: .customLong("as"), help: "The role.") var role: String
        @Option(name: .long, help: "The action.") var action: String
        @Option(name: .long, help: "The purpose (for data actions).") var purpose: String?
        @Option(name: .long, help: "Comma-separated fields.") var fields: String?
        @Option(name: .long, help: "A stated reason.") var reason: String?
        @Option(name: .long, help: "The subject's e-mail address, to include its consent state (`-`: from standard input).") var email: String?
        @Option(name: .customLong("customer-id"), help: "The subject's customer id.") var customerID: String?

        func run() async throws {
            let request = AccessRequest(
                actor: global.actorName, role: try Parse.choice(role, "role"), action: try Parse.choice(action, "action"),
                purpose: try purpose.map { try Parse.choice($0, "purpose") }, fields: try Parse.fields(fields), reason: reason)
            let subject =
                try (StandardInput.valueOrLine(email)).map(SubjectReference.email)
                ?? (StandardInput.valueOrLine(customerID)).map(SubjectReference.customerID)
            let explanation = try await global.withVault { try await $0.explain(request, subject: subject) }
            if global.json {
                Output.printJSON(explanation)
            } else {
                for step in explanation.trace { print(step) }
            }
        }
    }
}

struct ConsentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consent", abstract: "Record and show consent, restriction, objection, opt-out and GPC.",
        subcommands: [Grant.self, Withdraw.self, Pending.self, Confirm.self, Show.self, FlagCommand.self])

    struct Change: ParsableArguments {
        @OptionGroup var global: GlobalOptions
        @OptionGroup var subject: SubjectOptions
        @OptionGroup var admin: AdminRoleOption
        @Option(name: .long, help: "The purpose.") var purpose: String
        @Option(name: .long, help: "Where the consent came from: form, import, api, preference_centre, …") var source = "api"
        @Option(name: .long, help: "The version of the privacy notice shown.") var notice: String?
        @Option(name: .long, help: "A reference to the evidence (form submission id, document).") var evidence: String?
        @Option(name: .long, help: "When the consent expires (YYYY-MM-DD or RFC 3339).") var expires: String?

        func record(_ state: ConsentState) async throws {
            let change = ConsentChange(
                purpose: try Parse.choice(purpose, "purpose"), state: state, source: try Normalize.text(source, maxLength: 64), noticeVersion: notice,
                evidence: evidence, expiresAt: try Parse.time(expires, "--expires"))
            let role = try admin.parsedRole
            let id = try await global.withVault {
                try await $0.recordConsent(change, subject: try subject.reference, as: Principal(actor: global.actorName, role: role))
            }
            if global.json { Output.printJSON(["record_id": id]) } else { print("consent record \(id): \(purpose) \(state.rawValue)") }
        }
    }

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record that the subject gave consent for a purpose.")
        @OptionGroup var change: Change
        func run() async throws { try await change.record(.granted) }
    }

    struct Withdraw: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record a withdrawal; it applies to every later decision at once.")
        @OptionGroup var change: Change
        func run() async throws { try await change.record(.withdrawn) }
    }

    struct Pending: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record a double opt-in that awaits confirmation.")
        @OptionGroup var change: Change
        func run() async throws { try await change.record(.pending) }
    }

    struct Confirm: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Complete a pending double opt-in.")
        @OptionGroup var change: Change
        func run() async throws { try await change.record(.confirmed) }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a subject's consent history, current state and flags (audited).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var subject: SubjectOptions
        @OptionGroup var admin: AdminRoleOption

        func run() async throws {
            let role = try admin.parsedRole
            let history = try await global.withVault {
                try await $0.consentHistory(subject: try subject.reference, as: Principal(actor: global.actorName, role: role))
            }
            if global.json {
                Output.printJSON(history)
                return
            }
            print("subject \(history.subject)")
            for record in history.records {
                print(
                    "  #\(record.id) \(record.time) \(record.purpose) \(record.state) (source \(record.source)"
                        + (record.noticeVersion.map { ", notice \($0)" } ?? "") + (record.expiresAt.map { ", expires \($0)" } ?? "") + ")")
            }
            print("current: " + history.current.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
            print("flags: " + (history.flags.isEmpty ? "none" : history.flags.joined(separator: ", ")))
        }
    }

    struct FlagCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "flag", abstract: "Set or clear restriction, objection (per purpose), opt-out of sale/sharing or the GPC signal.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var subject: SubjectOptions
        @OptionGroup var admin: AdminRoleOption
        @Option(name: .long, help: "restriction, objection, opt_out_sale_share or gpc.") var set: String
        @Option(name: .long, help: "The purpose objected to (objection only).") var purpose: String?
        @Flag(name: .long, help: "Clear the flag instead of setting it.") var clear = false
        @Option(name: .long, help: "Where the request came from.") var source = "api"

        func run() async throws {
            let flag: SubjectFlag = try Parse.choice(set, "flag")
            let purpose: Purpose? = try purpose.map { try Parse.choice($0, "purpose") }
            let role = try admin.parsedRole
            try await global.withVault {
                try await $0.recordFlag(
                    flag, purpose: purpose, on: !clear, subject: try subject.reference, source: source,
                    as: Principal(actor: global.actorName, role: role))
            }
            print("\(flag.rawValue)" + (purpose.map { " for \($0.rawValue)" } ?? "") + (clear ? " cleared" : " set"))
        }
    }
}

struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile", abstract: "Gated reads of one subject's profile.", subcommands: [Show.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read chosen fields of one subject through the policy gate (audited); exits 2 when denied.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var subject: SubjectOptions
        @Option(name: .customLong("as"), help: "The role.") var role: String
        @Option(name: .long, help: "The purpose.") var purpose: String
        @Option(name: .long, help: "Comma-separated fields to read.") var fields: String
        @Option(name: .long, help: "A stated reason (required for some roles).") var reason: String?

        func run() async throws {
            let request = AccessRequest(
                actor: global.actorName, role: try Parse.choice(role, "role"), action: .readProfile, purpose: try Parse.choice(purpose, "purpose"),
                fields: try Parse.fields(fields), reason: reason)
            let result = try await global.withVault { try await $0.read(request, subject: try subject.reference) }
            guard result.decision.isPermit else {
                Output.error(
                    "denied: " + result.decision.reasons.map(\.description).joined(separator: "; ") + " (audit entry \(result.auditSequence))")
                throw ExitCode(2)
            }
            if global.json {
                Output.printJSON(Dictionary(uniqueKeysWithValues: result.values.map { ($0.key.rawValue, $0.value) }))
            } else {
                print("subject \(result.pseudonym ?? "?") (audit entry \(result.auditSequence))")
                for field in request.fields { print("  \(field): \(result.values[field] ?? "(none)")") }
            }
        }
    }
}

struct ScanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Scan every subject for a purpose through the gate and report who is included and why others are excluded (no values are printed).")
    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("as"), help: "The role.") var role: String
    @Option(name: .long, help: "segment or score.") var action = "segment"
    @Option(name: .long, help: "The purpose.") var purpose: String
    @Option(name: .long, help: "Comma-separated fields the scan reads.") var fields: String
    @Flag(name: .long, help: "List the pseudonyms of the included subjects.") var members = false

    func run() async throws {
        let request = AccessRequest(
            actor: global.actorName, role: try Parse.choice(role, "role"), action: try Parse.choice(action, "action"),
            purpose: try Parse.choice(purpose, "purpose"), fields: try Parse.fields(fields))
        var pseudonyms: [String] = []
        let summary = try await global.withVault { vault in
            try await vault.scan(request) { member, _ in if members, let pseudonym = member.pseudonym { pseudonyms.append(pseudonym) } }
        }
        if global.json {
            Output.printJSON(summary)
        } else if summary.decision == .permit {
            print("\(summary.delivered.formatted()) of \(summary.subjects.formatted()) subjects included; \(summary.exclusionSummary)")
            print("audit entries: " + summary.auditSequences.map(String.init).joined(separator: ", "))
            for pseudonym in pseudonyms { print(pseudonym) }
        }
        if summary.decision == .deny {
            Output.error("denied: " + summary.reasons.joined(separator: "; "))
            throw ExitCode(2)
        }
    }
}

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Verify, query, export and report on the tamper-evident audit log.",
        subcommands: [Verify.self, Query.self, Export.self, Report.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the hash chain, signatures and checkpoints; names the first bad entry and exits 1 on any problem.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var admin: AdminRoleOption
        @Option(
            name: .long,
            help:
                "SEQUENCE:HASH of an entry recorded outside the vault (`consentry status` prints the newest checkpoint); the log must still hold it (repeatable)."
        )
        var expect: [String] = []

        func validate() throws { _ = try expected }

        var expected: [(sequence: Int64, hash: String)] {
            get throws {
                try expect.map { text in
                    let parts = text.split(separator: ":", maxSplits: 1)
                    guard parts.count == 2, let sequence = Int64(parts[0]), sequence >= 0, parts[1].count == 64, parts[1].allSatisfy(\.isHexDigit)
                    else {
                        throw ValidationError(
                            "`--expect` takes SEQUENCE:HASH as `consentry status` prints it, such as 42:3f… (64 hex digits); got `\(text.prefix(80))`"
                        )
                    }
                    return (sequence, String(parts[1]).lowercased())
                }
            }
        }

        func run() async throws {
            let role = try admin.parsedRole
            let expected = try self.expected
            let report = try await global.withVault { try await $0.verifyAudit(as: Principal(actor: global.actorName, role: role), expected: expected) }
            if global.json {
                Output.printJSON(report)
            } else {
                print("entries checked      \(report.entriesChecked) (last \(report.lastSequence))")
                print("checkpoints checked  \(report.checkpointsChecked) (newest covers entry \(report.lastCheckpoint))")
                print("after last checkpoint \(report.uncheckpointedEntries)")
                for problem in report.problems { Output.error(problem) }
                print(report.passed ? "audit log verified" : "audit log FAILED verification at entry \(report.firstBadSequence ?? 0)")
            }
            if !report.passed { throw ExitCode(1) }
        }
    }

    struct FilterOptions: ParsableArguments {
        @OptionGroup var subject: OptionalSubject
        @Option(name: .customLong("by"), help: "Only entries by this actor.") var byActor: String?
        @Option(name: .long, help: "Only entries of this role.") var role: String?
        @Option(name: .long, help: "Only entries for this purpose.") var purpose: String?
        @Option(name: .long, help: "Only entries of this action.") var action: String?
        @Option(name: .long, help: "permit or deny.") var decision: String?
        @Option(name: .long, help: "From (YYYY-MM-DD or RFC 3339).") var since: String?
        @Option(name: .long, help: "Until, exclusive (YYYY-MM-DD or RFC 3339).") var until: String?
        @Option(name: .long, help: "At most this many entries (the newest).") var limit: Int?

        func filter(defaultLimit: Int) throws -> AuditFilter {
            if let action, AuditAction(rawValue: action) == nil {
                throw ValidationError("unknown action `\(action.prefix(64))`; use one of \(AuditAction.choiceList)")
            }
            return AuditFilter(
                subject: try subject.reference, actor: byActor, role: try role.map { try Parse.choice($0, "role") },
                purpose: try purpose.map { try Parse.choice($0, "purpose") },
                action: action, decision: try decision.map { try Parse.choice($0, "decision") }, since: try Parse.time(since, "--since"),
                until: try Parse.time(until, "--until"), limit: limit ?? defaultLimit)
        }
    }

    struct OptionalSubject: ParsableArguments {
        @Option(name: .long, help: "Only entries about the subject with this e-mail address (`-`: from standard input).") var email: String?
        @Option(name: .customLong("customer-id"), help: "Only entries about the subject with this customer id.") var customerID: String?
        var reference: SubjectReference? {
            get throws {
                try (StandardInput.valueOrLine(email)).map(SubjectReference.email)
                    ?? (StandardInput.valueOrLine(customerID)).map(SubjectReference.customerID)
            }
        }
    }

    struct Query: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Find audit entries by subject, actor, role, purpose, action, decision and time.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var admin: AdminRoleOption
        @OptionGroup var filter: FilterOptions

        func run() async throws {
            let role = try admin.parsedRole
            let query = try filter.filter(defaultLimit: 100)
            let entries = try await global.withVault { try await $0.queryAudit(query, as: Principal(actor: global.actorName, role: role)) }
            if global.json {
                Output.printJSON(entries)
                return
            }
            for e in entries {
                print(
                    "#\(e.sequence) \(Normalize.formatTimestamp(millis: e.time)) \(e.actor) (\(e.role ?? "system")) \(e.action)"
                        + (e.purpose.map { " for \($0)" } ?? "") + " → \(e.decision)" + (e.subject.map { " subject \($0)" } ?? "")
                        + (e.subjectCount > 1 ? " subjects \(e.subjectCount)" : "")
                        + (e.fields.isEmpty ? "" : " fields \(e.fields.joined(separator: ","))")
                        + (e.reasons.isEmpty ? "" : " [\(e.reasons.joined(separator: "; "))]"))
            }
            Output.note("\(entries.count) entries")
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stream the audit log as JSON Lines (verifiable offline) or CSV (safe to open in spreadsheets).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var admin: AdminRoleOption
        @OptionGroup var filter: FilterOptions
        @Option(name: .long, help: "jsonl or csv.") var format = "jsonl"
        @Option(name: .long, help: "Write to this file (created 0600, never overwritten) instead of standard output.") var out: String?

        func run() async throws {
            let format: AuditExportFormat = try Parse.choice(self.format, "format")
            let role = try admin.parsedRole
            let query = try filter.filter(defaultLimit: Int.max)
            let handle: FileHandle
            if let out {
                let fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                guard fd >= 0 else {
                    Output.error(
                        "cannot create `\(out)`: \(String(cString: strerror(errno))); choose a new file name (existing files are never overwritten)")
                    throw ExitCode(1)
                }
                handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
            } else {
                handle = FileHandle.standardOutput
            }
            let count = try await global.withVault {
                try await $0.exportAudit(format, filter: query, to: handle, as: Principal(actor: global.actorName, role: role))
            }
            if out != nil { Output.note("exported \(count) entries to \(out!)") }
        }
    }

    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compliance reports: access-summary, denials, art30 (record of processing compared with the log). See audit/REPORTS.md.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var admin: AdminRoleOption
        @Argument(help: "access-summary, denials or art30.") var name: String
        @Option(name: .long, help: "From (YYYY-MM-DD or RFC 3339).") var since: String?
        @Option(name: .long, help: "Until, exclusive (YYYY-MM-DD or RFC 3339).") var until: String?
        @Option(name: .long, help: "text, json or csv.") var format = "text"

        func run() async throws {
            let report: ReportName = try Parse.choice(name, "report")
            guard ["text", "json", "csv"].contains(format) else {
                throw ValidationError("unknown format `\(format.prefix(32))`; use `text`, `json` or `csv`")
            }
            let role = try admin.parsedRole
            let (from, to) = (try Parse.time(since, "--since"), try Parse.time(until, "--until"))
            let result = try await global.withVault { try await $0.report(report, since: from, until: to, as: Principal(actor: global.actorName, role: role)) }
            if global.json || format == "json" {
                Output.printJSON(result)
                return
            }
            if format == "csv" {
                print(result.columns.joined(separator: ","))
                for row in result.rows { print(row.map(CSVText.spreadsheetSafe).joined(separator: ",")) }
                return
            }
            print(
                "\(result.name) — generated \(result.generatedAt), policy \(result.policyVersion)"
                    + (result.period.isEmpty ? "" : ", period \(result.period.joined(separator: " … "))"))
            let widths = result.columns.indices.map { i in min(40, max(result.columns[i].count, result.rows.map { $0[i].count }.max() ?? 0)) }
            func line(_ cells: [String]) -> String {
                zip(cells, widths).map { cell, width in
                    cell.count > width ? String(cell.prefix(width - 1)) + "…" : cell.padding(toLength: width, withPad: " ", startingAt: 0)
                }
                .joined(separator: "  ")
            }
            print(line(result.columns))
            for row in result.rows { print(line(row)) }
            if !result.findings.isEmpty {
                print("findings:")
                for finding in result.findings { print("  - \(finding)") }
            }
        }
    }
}
