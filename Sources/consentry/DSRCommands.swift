import ArgumentParser
import ConsentryCore
import ConsentryGate
import ConsentryRights
import Foundation

/// `consentry dsr …`: data-subject requests.
struct DSRCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dsr",
        abstract: "Data-subject requests: open, verify, fulfil, reject, extend, list, and erasure receipts. See docs/rights.md.",
        subcommands: [
            Open.self, Code.self, Verify.self, Fulfil.self, Reject.self, Extend.self, List.self, Show.self, VerifyErasure.self, Receipt.self,
            VerifyReceipt.self,
        ]
    )

    /// The role a request command acts in (default `compliance_officer`).
    struct RoleOption: ParsableArguments {
        @Option(name: .customLong("as"), help: "The role to act in (default: compliance_officer).")
        var role: String = Role.complianceOfficer.rawValue

        func validate() throws { _ = try Parse.choice(role, "role") as Role }
    }

    /// Opens the vault and runs `body` with a desk acting as the given role.
    static func withDesk<T>(_ global: GlobalOptions, _ role: RoleOption, _ body: (RightsDesk) async throws -> T) async throws -> T {
        let role: Role = try Parse.choice(role.role, "role")
        return try await global.withVault { vault in try await body(RightsDesk(vault: vault, as: Principal(actor: global.actorName, role: role))) }
    }

    struct Open: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open a request and issue its verification code.",
            discussion: """
                Identifiers are personal data: give `-` as the value of --email or --customer-id (or use --stdin) to read \
                them from standard input instead of the command line, which other users of the machine can see.
                """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var role: RoleOption
        @Option(name: .long, help: "access, portability, erasure, rectification, restriction, objection, opt_out_sale_share, limit_sensitive")
        var type: String
        @Option(name: .long, help: "gdpr, ccpa or lgpd (sets the deadlines).") var regime: String
        @Option(name: .long, help: "The e-mail address the subject gave (`-`: read it from standard input).") var email: String?
        @Option(name: .customLong("customer-id"), help: "The customer id the subject gave (`-`: read it from standard input).")
        var customerID: String?
        @Option(name: .long, help: "Free text about the request (kept sealed).") var details: String?
        @Option(name: .customLong("set"), help: "Rectification: a corrected value as field=value (repeatable).") var set: [String] = []
        @Option(name: .customLong("purpose"), help: "Objection: a purpose objected to (repeatable; default profiling and email_marketing).")
        var purposes: [String] = []
        @Flag(name: .long, help: "Read a JSON object {\"email\", \"customer_id\", \"set\", \"details\"} from standard input.") var stdin = false
        @Option(name: .customLong("idempotency-key"), help: "Opening twice with one key returns the first request.") var idempotencyKey: String?

        func run() async throws {
            let type: RequestType = try Parse.choice(self.type, "request type")
            let regime: Regime = try Parse.choice(self.regime, "regime")
            var identifiers = RequestIdentifiers(email: try StandardInput.valueOrLine(email), customerID: try StandardInput.valueOrLine(customerID))
            var details = RightsDesk.Details(purposes: purposes.isEmpty ? nil : purposes, text: self.details)
            var values: [String: String] = [:]
            for pair in set {
                guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                    throw ValidationError("`--set` takes field=value; the part before `=` is the field name")
                }
                values[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
            }
            if stdin {
                let input = try StandardInput.json()
                identifiers.email = input.email ?? identifiers.email
                identifiers.customerID = input.customerID ?? identifiers.customerID
                values.merge(input.set ?? [:]) { _, new in new }
                details.text = input.details ?? details.text
            }
            if !values.isEmpty { details.set = values }
            let opened = try await DSRCommand.withDesk(global, role) {
                try await $0.open(type, regime: regime, identifiers: identifiers, details: details, idempotencyKey: idempotencyKey)
            }
            if global.json {
                Output.printJSON(RequestView(opened.record, code: opened.code))
                return
            }
            print("opened \(opened.record.id): \(type.rawValue) under \(regime.rawValue.uppercased())")
            print(RequestView(opened.record).lines.joined(separator: "\n"))
            if let code = opened.code {
                print("verification code: \(code)")
                print("  no mail is configured: send this code to the subject's address on file; it expires in the hours set in rights.yaml")
                print("  then: consentry dsr verify \(opened.record.id) --code <code>")
            } else {
                print("(an earlier call with this idempotency key opened it; its code was issued then)")
            }
        }
    }

    struct Code: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a new verification code (the previous one stops working).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var role: RoleOption
        @Argument(help: "The request id.") var id: String

        func run() async throws {
            let issued = try await DSRCommand.withDesk(global, role) { try await $0.reissueCode(id) }
            if global.json { Output.printJSON(RequestView(issued.record, code: issued.code)) } else { print("verification code: \(issued.code)") }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enter the verification code the subject received.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var role: RoleOption
        @Argument(help: "The request id.") var id: String
        @Option(name: .long, help: "The code (`-`: read it from standard input).") var code: String

        func run() async throws {
            let code = try StandardInput.valueOrLine(code) ?? ""
            let result = try await DSRCommand.withDesk(global, role) { try await $0.verify(id, code: code) }
            let message: String
            switch result.check {
            case .verified: message = "verified: \(id) can now be fulfilled with `consentry dsr fulfil \(id)`"
            case .wrong(let remaining): message = "wrong code; \(remaining) attempts left"
            case .expired: message = "the code expired; issue a new one with `consentry dsr code \(id)`"
            case .locked: message = "too many wrong codes; issue a new one with `consentry dsr code \(id)`"
            }
            if global.json { Output.printJSON(RequestView(result.record, message: message)) } else if result.check == .verified { print(message) }
            guard result.check == .verified else {
                if !global.json { Output.error(message) }
                throw ExitCode(1)
            }
        }
    }

    struct Fulfil: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fulfil a verified request: export, erase, rectify, or set the restriction/objection/opt-out/limit flag.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var role: RoleOption
        @Argument(help: "The request id.") var id: String
        @Option(name: .long, help: "Export format for access and portability: json (one document) or csv (a folder of tables).")
        var format: String = "json"

        func run() async throws {
            let format: ExportFormat = try Parse.choice(format, "export format")
            let done = try await DSRCommand.withDesk(global, role) { try await $0.fulfil(id, format: format) }
            if global.json {
                Output.printJSON(RequestView(done.record, receipt: done.receipt, verification: done.verification))
            } else {
                print("\(id): \(done.record.status.rawValue)")
                if let file = done.exportFile { print("export: \(file) (mode 0600; hand it to the subject over a secure channel)") }
                if let receipt = done.receipt {
                    let deleted = receipt.receipt.deleted.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
                    print("deleted: " + (deleted.isEmpty ? "nothing was held" : deleted.joined(separator: ", ")))
                    for kept in receipt.receipt.retained where kept.count > 0 {
                        print("retained: \(kept.kind) \(kept.count) until \(kept.until) — \(kept.reason)")
                    }
                    if !receipt.receipt.suppressed.isEmpty {
                        print("suppressed for re-import: " + receipt.receipt.suppressed.joined(separator: ", "))
                    }
                    print("signed receipt: consentry dsr receipt \(id)")
                }
                if let verification = done.verification {
                    print("store: \(verification.storeGuarantee)")
                for check in verification.checks { print("check \(check.passed ? "ok  " : "FAIL") \(check.name): \(check.detail)") }
                }
                if let outcome = done.record.outcome, done.receipt == nil { print("outcome: \(outcome)") }
            }
            if done.verification?.passed == false { throw ExitCode(1) }
        }
    }

    struct Reject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Reject a request with a reason (kept 24 months; no personal data).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var role: RoleOption
        @Argument(help: "The request id.") var id: String
        @Option(name: .long, help: "Why.") var reason: String

        func run() async throws {
            let record = try await DSRCommand.withDesk(global, role) { try await $0.reject(id, reason: reason) }
            if global.json { Output.printJSON(RequestView(record)) } else { print("\(id): rejected") }
        }
    }

    struct Extend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Extend the deadline once where the regime allows it, with a reason.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var role: RoleOption
        @Argument(help: "The request id.") var id: String
        @Option(name: .long, help: "Why (tell the subject within the original deadline).") var reason: String

        func run() async throws {
            let record = try await DSRCommand.withDesk(global, role) { try await $0.extend(id, reason: reason) }
            if global.json { Output.printJSON(RequestView(record)) } else { print("\(id): due \(RequestView.day(record.effectiveDueAt)) (extended)") }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List requests by deadline.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var role: RoleOption
        @Option(name: .long, help: "Only requests in this status.") var status: String?
        @Flag(name: .long, help: "Only open requests past their deadline.") var overdue = false
        @Option(name: .customLong("due-within"), help: "Only open requests due within this time, such as 7d.") var dueWithin: String?

        func run() async throws {
            let status: RequestStatus? = try status.map { try Parse.choice($0, "status") }
            var days: Int?
            if let dueWithin {
                guard dueWithin.hasSuffix("d"), let count = Int(dueWithin.dropLast()), count >= 0 else {
                    throw ValidationError("`--due-within` takes a number of days such as `7d`")
                }
                days = count
            }
            let records = try await DSRCommand.withDesk(global, role) { try await $0.list(status: status, overdue: overdue, dueWithinDays: days) }
            if global.json {
                Output.printJSON(records.map { RequestView($0) })
                return
            }
            if records.isEmpty { print("no requests") }
            for record in records {
                print(
                    "\(record.id)  \(record.type.rawValue.padding(toLength: 19, withPad: " ", startingAt: 0)) \(record.regime.rawValue)  \(record.status.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)) due \(RequestView.day(record.effectiveDueAt))\(RequestView.overdue(record) ? "  OVERDUE" : "")"
                )
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one request: status, deadlines, outcome.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var role: RoleOption
        @Argument(help: "The request id.") var id: String

        func run() async throws {
            let record = try await DSRCommand.withDesk(global, role) { try await $0.show(id) }
            if global.json { Output.printJSON(RequestView(record)) } else { print(RequestView(record).lines.joined(separator: "\n")) }
        }
    }

    struct VerifyErasure: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify-erasure",
            abstract: "Re-check a completed erasure: blind-index look-ups, rows referencing the subject, raw bytes of every vault file.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var role: RoleOption
        @Argument(help: "The request id.") var id: String

        func run() async throws {
            let verification = try await DSRCommand.withDesk(global, role) { try await $0.verifyErasure(id) }
            if global.json {
                Output.printJSON(verification)
            } else {
                print("store: \(verification.storeGuarantee)")
                for check in verification.checks { print("check \(check.passed ? "ok  " : "FAIL") \(check.name): \(check.detail)") }
                print(verification.passed ? "erasure verified: nothing of the subject is left" : "erasure verification FAILED")
            }
            if !verification.passed { throw ExitCode(1) }
        }
    }

    struct Receipt: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the signed receipt of a completed erasure (JSON).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var role: RoleOption
        @Argument(help: "The request id.") var id: String

        func run() async throws {
            let record = try await DSRCommand.withDesk(global, role) { try await $0.show(id) }
            guard let receipt = record.receipt else {
                Output.error("request \(id) has no receipt; only completed erasure requests have one")
                throw ExitCode(1)
            }
            print(receipt)
        }
    }

    struct VerifyReceipt: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify-receipt", abstract: "Check an erasure receipt's signature against the vault's public key (audit/signing.pub).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The receipt file (JSON as printed by `dsr receipt`).") var file: String
        @Option(name: .customLong("public-key"), help: "The signing key in hex (default: the vault's audit/signing.pub).")
        var publicKey: String?

        func run() async throws {
            guard let data = FileManager.default.contents(atPath: file) else {
                Output.error("cannot read `\(file)`")
                throw ExitCode(1)
            }
            let keyText: String
            if let publicKey {
                keyText = publicKey
            } else {
                let path = global.vaultURL.appendingPathComponent("audit/signing.pub").path
                guard let key = FileManager.default.contents(atPath: path) else {
                    Output.error("cannot read `\(path)`; pass the key with `--public-key` or the vault with `--vault`")
                    throw ExitCode(1)
                }
                keyText = String(decoding: key, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard SignedReceipt.verify(data, publicKey: keyText) else {
                Output.error("the receipt's signature does not verify: it was changed, or another vault signed it")
                throw ExitCode(1)
            }
            print("receipt signature ok")
        }
    }
}

/// A request as printed: dates as text, overdue marked.
struct RequestView: Encodable {
    var id: String
    var type: String
    var regime: String
    var status: String
    var subjectFound: Bool
    var receivedAt: String
    var confirmBy: String?
    var due: String
    var extendedDue: String?
    var extensionReason: String?
    var rejectionReason: String?
    var verified: Bool
    var completedAt: String?
    var overdue: Bool
    var outcome: String?
    var exportFile: String?
    var hasReceipt: Bool
    var code: String?
    var message: String?
    var receipt: SignedReceipt?
    var verification: ErasureVerification?

    init(_ r: RequestRecord, code: String? = nil, message: String? = nil, receipt: SignedReceipt? = nil, verification: ErasureVerification? = nil) {
        id = r.id
        type = r.type.rawValue
        regime = r.regime.rawValue
        status = r.status.rawValue
        subjectFound = r.subjectFound
        receivedAt = Normalize.formatTimestamp(millis: r.receivedAt)
        confirmBy = r.confirmDueAt.map(Self.day)
        due = Self.day(r.dueAt)
        extendedDue = r.extendedDueAt.map(Self.day)
        extensionReason = r.extensionReason
        rejectionReason = r.rejectionReason
        verified = r.verifiedAt != nil
        completedAt = r.completedAt.map { Normalize.formatTimestamp(millis: $0) }
        overdue = Self.overdue(r)
        outcome = r.outcome
        exportFile = r.exportFile
        hasReceipt = r.receipt != nil
        self.code = code
        self.message = message
        self.receipt = receipt
        self.verification = verification
    }

    static func day(_ millis: Int64) -> String { String(Normalize.formatTimestamp(millis: millis).prefix(10)) }
    static func overdue(_ r: RequestRecord) -> Bool { !r.status.isClosed && r.effectiveDueAt < Int64(Date().timeIntervalSince1970 * 1000) }

    var lines: [String] {
        var lines = ["  id:        \(id)", "  type:      \(type) (\(regime.uppercased()))", "  status:    \(status)\(overdue ? " — OVERDUE" : "")"]
        lines.append("  received:  \(receivedAt)")
        if let confirmBy { lines.append("  confirm by: \(confirmBy)") }
        lines.append("  due:       \(extendedDue.map { "\($0) (extended from \(due): \(extensionReason ?? ""))" } ?? due)")
        lines.append("  subject:   \(subjectFound ? "held in the vault" : "no subject matched")")
        lines.append("  verified:  \(verified ? "yes" : "no")")
        if let completedAt { lines.append("  closed:    \(completedAt)") }
        if let rejectionReason { lines.append("  rejected:  \(rejectionReason)") }
        if let exportFile { lines.append("  export:    \(exportFile)") }
        if let outcome { lines.append("  outcome:   \(outcome)") }
        if hasReceipt { lines.append("  receipt:   signed; `consentry dsr receipt \(id)`") }
        return lines
    }
}

/// Values read from standard input instead of argv (personal data must not appear in the process list).
enum StandardInput {
    /// `value`, or one line from standard input when `value` is `-`.
    static func valueOrLine(_ value: String?) throws -> String? {
        guard value == "-" else { return value }
        guard let line = readLine(strippingNewline: true), !line.isEmpty else {
            throw ValidationError("expected a value on standard input for an option given as `-`")
        }
        return line
    }

    struct Request: Decodable {
        var email: String?
        var customerID: String?
        var set: [String: String]?
        var details: String?

        enum CodingKeys: String, CodingKey {
            case email, set, details
            case customerID = "customer_id"
        }
    }

    static func json() throws -> Request {
        let data = FileHandle.standardInput.readDataToEndOfFile()
        guard let request = try? JSONDecoder().decode(Request.self, from: data) else {
            throw ValidationError(
                "standard input must be a JSON object with `email`, `customer_id`, `set` (object) and `details` (text), each optional")
        }
        return request
    }
}
