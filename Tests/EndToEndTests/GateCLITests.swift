import ConsentryTesting
import Foundation
import GRDB
import Testing

@Suite("Gate through the binary", .serialized)
struct GateCLITests {
    /// A vault with the canary subject and one other, created through the CLI.
    func vault() throws -> URL {
        let vault = newVaultPath()
        #expect(try consentry(vault, ["init"]).status == 0)
        let csv = TestSupport.writeFile(
            "p.csv",
            "email,customer_id,first_name,last_name,city,country\n\(Canary.email),\(Canary.customerID),\(Canary.firstName),\(Canary.lastName),\(Canary.city),DE\nother@example.test,C2,Ann,Lee,Oslo,NO\n"
        )
        #expect(try consentry(vault, ["import", "profiles", csv.path, "--source", "crm"]).status == 0)
        return vault
    }

    @Test("the decision corpus gives the same decisions through `policy explain`", arguments: try! DecisionCase.corpus())
    func corpusThroughCLI(_ testCase: DecisionCase) throws {
        let vault = try vault()
        if let subject = testCase.subject {
            for (purpose, state) in subject.consents.sorted(by: { $0.key < $1.key }) {
                let steps =
                    state == "confirmed" ? ["pending", "confirm"] : [state == "granted" ? "grant" : state == "withdrawn" ? "withdraw" : state]
                for step in steps {
                    let r = try consentry(vault, ["consent", step, "--email", Canary.email, "--purpose", purpose])
                    #expect(r.status == 0, "\(r.stderr)")
                }
            }
            if subject.restricted == true {
                #expect(try consentry(vault, ["consent", "flag", "--email", Canary.email, "--set", "restriction"]).status == 0)
            }
            for purpose in subject.objections ?? [] {
                #expect(try consentry(vault, ["consent", "flag", "--email", Canary.email, "--set", "objection", "--purpose", purpose]).status == 0)
            }
        }
        var arguments = ["policy", "explain", "--as", testCase.role, "--action", testCase.action, "--json"]
        if let purpose = testCase.purpose { arguments += ["--purpose", purpose] }
        if let fields = testCase.fields { arguments += ["--fields", fields.joined(separator: ",")] }
        if let reason = testCase.reason { arguments += ["--reason", reason] }
        if testCase.subject != nil { arguments += ["--email", Canary.email] }
        let result = try consentry(vault, arguments)
        #expect(result.status == 0, "\(result.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let decision = object?["decision"] as? [String: Any]
        #expect(decision?["effect"] as? String == testCase.decision)
        let codes = (decision?["reasons"] as? [[String: Any]])?.compactMap { $0["code"] as? String }
        #expect(codes == testCase.reasons)
    }

    @Test("a gated read prints released values; a denial exits 2; nothing else prints personal data")
    func gatedRead() throws {
        let vault = try vault()
        let denied = try consentry(
            vault, ["profile", "show", "--as", "compliance_officer", "--purpose", "service", "--email", Canary.email, "--fields", "first_name"])
        #expect(denied.status == 2 && denied.stderr.contains("reason_missing"))
        #expect(!denied.stdout.contains(Canary.firstName))
        let read = try consentry(
            vault,
            [
                "profile", "show", "--as", "compliance_officer", "--purpose", "service", "--email", Canary.email, "--fields", "first_name",
                "--reason", "ticket 1",
            ])
        #expect(read.status == 0 && read.stdout.contains(Canary.firstName) && !read.stdout.contains(Canary.city))
        let scan = try consentry(vault, ["scan", "--as", "marketer", "--purpose", "email_marketing", "--fields", "email", "--members"])
        #expect(scan.status == 0 && scan.stdout.contains("0 of 2 subjects included; 2 excluded: consent_missing"))
        let oracle = try consentry(vault, ["scan", "--as", "marketer", "--purpose", "email_marketing", "--fields", "birth_date"])
        #expect(oracle.status == 2)
        let queried = try consentry(vault, ["audit", "query", "--email", Canary.email])
        #expect(
            queried.status == 0 && queried.stdout.contains("read_profile for service → deny")
                && queried.stdout.contains("read_profile for service → permit"))
        for result in [denied, scan, oracle, queried] {
            for canary in Canary.forms { #expect(!result.stdout.contains(canary) && !result.stderr.contains(canary)) }
        }
        let export = TestSupport.temporaryDirectory("export").appendingPathComponent("audit.jsonl")
        #expect(try consentry(vault, ["audit", "export", "--out", export.path]).status == 0)
        let exported = try Data(contentsOf: export)
        for canary in Canary.forms { #expect(!TestSupport.contains(exported, canary), "\(canary) in the audit export") }
        #expect((try FileManager.default.attributesOfItem(atPath: export.path)[.posixPermissions] as? Int) == 0o600)
        #expect(try consentry(vault, ["audit", "export", "--out", export.path]).status == 1, "an existing file is never overwritten")
    }

    @Test("`policy check` reports every error with file and line and exits 1")
    func policyCheck() throws {
        let directory = TestSupport.temporaryDirectory("policy")
        for name in ["fields.yaml", "purposes.yaml", "roles.yaml"] {
            try FileManager.default.copyItem(at: TestSupport.policies.appendingPathComponent(name), to: directory.appendingPathComponent(name))
        }
        #expect(try CLI.run(["policy", "check", directory.path]).status == 0)
        try Data("roles:\n  marketer:\n    purposes:\n      email_marketing: [segment, teleport]\n".utf8).write(
            to: directory.appendingPathComponent("roles.yaml"))
        let result = try CLI.run(["policy", "check", directory.path])
        #expect(result.status == 1)
        #expect(result.stderr.contains("roles.yaml:4:34: error: unknown action `teleport`"))
    }

    @Test("audit export CSV defuses formulas planted in actor names")
    func csvInjection() throws {
        let vault = try vault()
        _ = try consentry(
            vault, ["scan", "--as", "marketer", "--purpose", "analytics", "--fields", "country", "--actor", "=HYPERLINK(\"http://x\")"])
        let result = try consentry(vault, ["audit", "export", "--format", "csv"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("\"'=HYPERLINK(\"\"http://x\"\")\""))
        #expect(!result.stdout.contains(",=HYPERLINK"))
    }

    @Test("`audit verify` exits 1 and names the entry after the database is edited behind Consentry's back")
    func verifyDetectsTampering() throws {
        let vault = try vault()
        #expect(try consentry(vault, ["audit", "verify"]).status == 0)
        let queue = try DatabaseQueue(path: vault.appendingPathComponent("vault.sqlite").path)
        try queue.write { db in
            try db.execute(sql: "DROP TRIGGER audit_entry_no_update")
            try db.execute(sql: "UPDATE audit_entry SET actor = 'nobody' WHERE sequence = 3")
        }
        try queue.close()
        let result = try consentry(vault, ["audit", "verify"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("entry 3 does not match its hash (edited)"))
        #expect(result.stdout.contains("FAILED verification at entry 3"))
    }
}
