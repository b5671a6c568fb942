import ConsentryTesting
import Foundation
import Testing

/// The personalization commands through the binary, on a small demo vault.
@Suite("personalization through the binary", .serialized)
struct PersonalizationCLITests {
    @Test(
        "segments, scores, models, recommendations, triggers, send time and experiments run, refuse what the policy forbids, and print no personal data"
    )
    func commands() throws {
        let vault = newVaultPath()
        #expect(try consentry(vault, ["demo", "--profiles", "400"]).status == 0)
        var printed: [String] = []
        func run(_ arguments: [String], status: Int32 = 0) throws -> CLI.Result {
            let result = try consentry(vault, arguments)
            #expect(result.status == status, "\(arguments.joined(separator: " ")): \(result.stderr)")
            printed += [result.stdout, result.stderr]
            return result
        }
        _ = try run(["segment", "define", "runners", "--purpose", "email_marketing", "--rule", #"event(view, category = "running").within(60d)"#])
        let rules = TestSupport.writeFile("rule.json", #"{"and": [{"segment": "runners"}, {"field": "engagement", "op": ">=", "value": 1}]}"#)
        _ = try run(["segment", "define", "engaged_runners", "--purpose", "email_marketing", "--rule-file", rules.path])
        let seg = try run(["segment", "run", "runners", "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(seg.stdout.utf8)) as? [String: Any])
        #expect((object["evaluated"] as? Int ?? 0) > 0 && (object["excluded"] as? [String: Int])?["consent_missing"] != nil)
        _ = try run(["segment", "overlap", "runners", "engaged_runners"])
        _ = try run(["segment", "define", "old", "--purpose", "email_marketing", "--rule", #"birth_date < "1970-01-01""#], status: 2)
        let bad = try run(["segment", "define", "x", "--purpose", "email_marketing", "--rule", "event(vieww)"], status: 1)
        #expect(bad.stderr.contains("line 1, column 7"))
        _ = try run(["score", "engagement"])
        _ = try run(["score", "rfm", "--json"])
        _ = try run(["score", "engagement", "--as", "marketer"], status: 2)
        let model = try run(["model", "train", "propensity"])
        #expect(model.stdout.contains("ROC-AUC"))
        _ = try run(["model", "train", "clusters"])
        #expect(try run(["model", "list"]).stdout.contains("propensity v1"))
        #expect(try run(["recommend", "--evaluate"]).stdout.contains("precision"))
        _ = try run(["trigger", "define", "cart_reminder", "--kind", "cart_abandoned", "--purpose", "email_marketing", "--after", "5m"])
        _ = try run(["trigger", "check"])
        _ = try run(["trigger", "queue"])
        _ = try run(["sendtime", "compute"])
        _ = try run(["experiment", "create", "subject_line", "--purpose", "email_marketing", "--arm", "short=1", "--arm", "long=1"])
        #expect(try run(["experiment", "assign", "subject_line"]).stdout.contains("holdout"))
        #expect(try run(["experiment", "report", "subject_line"]).stdout.contains("two_proportion_z"))
        #expect(try run(["audit", "verify"]).status == 0)
        // Only pseudonyms and counts are printed: no e-mail address of the demo data appears.
        #expect(!printed.joined().contains("@"), "an e-mail address was printed")
    }
}
