import ConsentryTesting
import Foundation
import Testing

/// Data-subject requests through the built binary, as a compliance officer runs them.
@Suite("data-subject requests through the binary", .serialized)
struct DSRCLITests {
    /// A demo vault plus the canary subject with events.
    func vault() throws -> URL {
        let vault = newVaultPath()
        #expect(try consentry(vault, ["init"]).status == 0)
        #expect(try consentry(vault, ["demo", "--profiles", "40"]).status == 0)
        let csv = TestSupport.writeFile(
            "p.csv",
            "email,customer_id,first_name,last_name,phone,city\n\(Canary.email),\(Canary.customerID),\(Canary.firstName),\(Canary.lastName),\(Canary.phone),\(Canary.city)\n"
        )
        #expect(try consentry(vault, ["import", "profiles", csv.path, "--source", "crm"]).status == 0)
        let events = TestSupport.writeFile(
            "e.jsonl",
            #"{"id":"x1","email":"\#(Canary.email)","type":"purchase","time":"2026-11-19T10:00:00Z","item_id":"sku-9","amount":20,"currency":"EUR"}"#
                + "\n")
        #expect(try consentry(vault, ["import", "events", events.path]).status == 0)
        return vault
    }

    /// Opens a request for the canary (identifier on standard input, never in argv) and verifies it; returns its id.
    func openVerified(_ vault: URL, _ arguments: [String], outputs: inout [String]) throws -> String {
        let opened = try CLI.run(["dsr", "open", "--email", "-", "--json", "--vault", vault.path] + arguments, input: Canary.email + "\n")
        outputs += [opened.stdout, opened.stderr]
        #expect(opened.status == 0, "\(opened.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(opened.stdout.utf8)) as? [String: Any])
        let id = try #require(object["id"] as? String)
        let code = try #require(object["code"] as? String)
        let wrong = try consentry(vault, ["dsr", "verify", id, "--code", code == "00000000" ? "11111111" : "00000000"])
        #expect(wrong.status == 1 && wrong.stderr.contains("4 attempts left"))
        let verified = try consentry(vault, ["dsr", "verify", id, "--code", code])
        #expect(verified.status == 0, "\(verified.stderr)")
        outputs += [wrong.stdout, wrong.stderr, verified.stdout, verified.stderr]
        return id
    }

    @Test("open, verify and fulfil every request type; erasure leaves no canary in any file; receipts verify; re-import is refused")
    func everyType() throws {
        let vault = try vault()
        var outputs: [String] = []
        let access = try openVerified(vault, ["--type", "access", "--regime", "gdpr"], outputs: &outputs)
        let unverified = try CLI.run(
            ["dsr", "open", "--email", "-", "--type", "erasure", "--regime", "gdpr", "--vault", vault.path], input: Canary.email)
        #expect(unverified.status == 0)
        let pending = try #require(unverified.stdout.split(separator: " ").first { $0.hasPrefix("dsr_") }.map { String($0.prefix(20)) })
        let early = try consentry(vault, ["dsr", "fulfil", pending])
        #expect(early.status == 1 && early.stderr.contains("verify the requester first"))

        let exported = try consentry(vault, ["dsr", "fulfil", access])
        #expect(exported.status == 0 && exported.stdout.contains("export: exports/\(access)-"))
        let portability = try openVerified(vault, ["--type", "portability", "--regime", "lgpd"], outputs: &outputs)
        let csv = try consentry(vault, ["dsr", "fulfil", portability, "--format", "csv"])
        #expect(csv.status == 0 && csv.stdout.contains("-csv"))
        let rectify = try CLI.run(
            ["dsr", "open", "--stdin", "--type", "rectification", "--regime", "gdpr", "--json", "--vault", vault.path],
            input: #"{"email": "\#(Canary.email)", "set": {"city": "Brightmoor"}}"#)
        #expect(rectify.status == 0, "\(rectify.stderr)")
        for type in ["restriction", "objection", "opt_out_sale_share", "limit_sensitive"] {
            let id = try openVerified(vault, ["--type", type, "--regime", type.contains("_") ? "ccpa" : "gdpr"], outputs: &outputs)
            let done = try consentry(vault, ["dsr", "fulfil", id])
            #expect(done.status == 0 && done.stdout.contains("completed"), "\(type): \(done.stderr)")
            outputs += [done.stdout, done.stderr]
        }
        let flags = try CLI.run(["consent", "show", "--email", "-", "--as", "compliance_officer", "--vault", vault.path], input: Canary.email + "\n")
        #expect(flags.stdout.contains("restriction") && flags.stdout.contains("objection:profiling") && flags.stdout.contains("limit_sensitive"))

        let erasure = try openVerified(vault, ["--type", "erasure", "--regime", "ccpa"], outputs: &outputs)
        let erased = try consentry(vault, ["dsr", "fulfil", erasure])
        #expect(erased.status == 0, "\(erased.stderr)")
        #expect(erased.stdout.contains("subject 1") && erased.stdout.contains("retained: purchase_events 1"))
        #expect(erased.stdout.contains("export_file 2"), "both earlier exports of the subject were deleted: \(erased.stdout)")
        let receipt = try consentry(vault, ["dsr", "receipt", erasure])
        #expect(receipt.status == 0)
        let file = TestSupport.writeFile("receipt.json", receipt.stdout)
        #expect(try consentry(vault, ["dsr", "verify-receipt", file.path]).status == 0)
        let forged = TestSupport.writeFile("forged.json", receipt.stdout.replacingOccurrences(of: "\"subject\":1", with: "\"subject\":0"))
        let refused = try consentry(vault, ["dsr", "verify-receipt", forged.path])
        #expect(refused.status == 1 && refused.stderr.contains("does not verify"))
        let check = try consentry(vault, ["dsr", "verify-erasure", erasure])
        #expect(check.status == 0 && check.stdout.contains("nothing of the subject is left"))
        outputs += [exported.stdout, csv.stdout, erased.stdout, erased.stderr, receipt.stdout, check.stdout]

        let again = TestSupport.writeFile("again.csv", "email,first_name\n\(Canary.email),Back\n")
        let reimport = try consentry(vault, ["import", "profiles", again.path, "--source", "web"])
        #expect(reimport.status == 3 && reimport.stdout.contains("suppressed") && reimport.stderr.contains("erased at their request"))
        outputs += [reimport.stdout, reimport.stderr]

        // Forensics: no canary in any file of the vault (database, WAL, shm, exports, audit) nor in anything printed.
        for url in TestSupport.files(under: vault) {
            let data = try Data(contentsOf: url)
            for form in Canary.forms { #expect(!TestSupport.contains(data, form), "\(url.lastPathComponent) holds a canary form") }
        }
        let printed = outputs.joined()
        for form in Canary.forms { #expect(!printed.contains(form), "output holds a canary form") }

        let list = try consentry(vault, ["dsr", "list", "--json"])
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        #expect(rows.count == 9 && rows.filter { $0["status"] as? String == "completed" }.count == 7)
        #expect(try consentry(vault, ["dsr", "list", "--overdue"]).stdout.contains("no requests"))
        #expect(try consentry(vault, ["audit", "verify"]).status == 0)
    }

    @Test("bad input is refused with a message and exit code: unknown type, regime, request id, role")
    func badInput() throws {
        let vault = try vault()
        let type = try CLI.run(["dsr", "open", "--type", "nonsense", "--regime", "gdpr", "--email", "-", "--vault", vault.path], input: Canary.email)
        #expect(type.status == 64 && type.stderr.contains("unknown request type"))
        let regime = try CLI.run(
            ["dsr", "open", "--type", "access", "--regime", "hipaa", "--email", "-", "--vault", vault.path], input: Canary.email)
        #expect(regime.status == 64 && regime.stderr.contains("unknown regime"))
        let missing = try consentry(vault, ["dsr", "show", "dsr_0000000000000000"])
        #expect(missing.status == 1 && missing.stderr.contains("no request"))
        let malformed = try consentry(vault, ["dsr", "show", "../../etc/passwd"])
        #expect(malformed.status == 1 && !malformed.stderr.contains("passwd\n"))
        let role = try CLI.run(["dsr", "list", "--as", "marketer", "--vault", vault.path])
        #expect(role.status == 2 && role.stderr.contains("denied"))
        for result in [type, regime, missing, malformed, role] {
            for form in Canary.forms { #expect(!result.stderr.contains(form)) }
        }
    }
}

/// Templates through the binary: fields, offline preview, registration refusals, a gated render.
@Suite("templates through the binary", .serialized)
struct TemplateCLITests {
    @Test("fields, preview, register (refusing forbidden fields), list, and a gated render that needs consent")
    func templates() throws {
        let vault = newVaultPath()
        #expect(try consentry(vault, ["init"]).status == 0)
        let csv = TestSupport.writeFile("p.csv", "email,first_name,loyalty_tier\n\(Canary.email),\(Canary.firstName),gold\n")
        #expect(try consentry(vault, ["import", "profiles", csv.path, "--source", "crm"]).status == 0)
        let welcome = TestSupport.repositoryRoot.appendingPathComponent("templates/welcome.html").path
        let fields = try CLI.run(["template", "fields", welcome])
        #expect(fields.status == 0 && fields.stdout == "email\nfirst_name\nlanguage\nloyalty_tier\n")
        let context = TestSupport.writeFile("ctx.json", #"{"first_name": "ada", "campaign": {"name": "<Winter>"}}"#)
        let preview = try CLI.run(["template", "render", welcome, "--context", context.path])
        #expect(preview.status == 0 && preview.stdout.contains("Hello Ada!") && preview.stdout.contains("&lt;Winter&gt;"))
        let bad = TestSupport.writeFile("bad.txt", "Hi\n  {{ first_name | shout }}")
        let broken = try CLI.run(["template", "fields", bad.path])
        #expect(broken.status == 1 && broken.stderr.contains("bad.txt:2:19: unknown filter `shout`"))

        let birthday = TestSupport.writeFile("birthday.txt", "Happy birthday {{ first_name }}, born {{ birth_date }}")
        let refused = try consentry(vault, ["template", "register", "birthday", birthday.path, "--purpose", "email_marketing"])
        #expect(refused.status == 2 && refused.stderr.contains("birth_date"))
        let registered = try consentry(vault, ["template", "register", "welcome", welcome, "--purpose", "email_marketing"])
        #expect(registered.status == 0 && registered.stdout.contains("version 1"))
        #expect(try consentry(vault, ["template", "list"]).stdout.contains("welcome  v1  email_marketing  html"))

        let noConsent = try CLI.run(["render", "welcome", "--email", "-", "--vault", vault.path], input: Canary.email)
        #expect(noConsent.status == 2 && noConsent.stderr.contains("consent_missing") && !noConsent.stdout.contains(Canary.firstName))
        for step in ["pending", "confirm"] {
            #expect(try consentry(vault, ["consent", step, "--email", Canary.email, "--purpose", "email_marketing"]).status == 0)
        }
        let rendered = try CLI.run(["render", "welcome", "--email", "-", "--vault", vault.path], input: Canary.email)
        #expect(rendered.status == 0 && rendered.stdout.contains("Hello \(Canary.firstName)!") && rendered.stdout.contains("gold member"))
        #expect(rendered.stderr.contains("no value for language"))
        #expect(try consentry(vault, ["audit", "query", "--action", "render"]).stdout.contains("permit"))
    }
}
