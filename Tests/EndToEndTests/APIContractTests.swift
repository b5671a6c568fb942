import ConsentryCore
import ConsentryGate
import ConsentryTesting
import Foundation
import Testing

/// The API contract through the built binary: idempotent retries, and fuzzing from the served OpenAPI document. The role
/// table (every endpoint as every role) runs in-process, in ConsentryServerTests.
@Suite("HTTP API contract", .serialized)
struct APIContractTests {
    @Test("an Idempotency-Key makes an import run once: a retry replays the first response, another body with the key is refused")
    func idempotentImports() throws {
        let server = try ServerTests().start()
        defer { _ = server.stop() }
        let batch = try JSONSerialization.data(withJSONObject: [
            "events": [["id": "i1", "email": Canary.email, "type": "view", "item_id": "sku", "time": "2026-11-20T10:00:00Z"]]
        ])
        let token = server.tokens["data_engineer"]
        let first = try server.call("POST", "/v1/events", token: token, body: batch, headers: ["Idempotency-Key": "batch-0001"])
        #expect(first.status == 200 && first.json["inserted"] as? Int == 1)
        let retry = try server.call("POST", "/v1/events", token: token, body: batch, headers: ["Idempotency-Key": "batch-0001"])
        #expect(retry.status == 200 && retry.text == first.text && retry.headers["Idempotent-Replayed"] == "true", "the first response again")
        // Without the key, the event id alone makes the import a duplicate; with a new key the import runs again.
        let fresh = try server.call("POST", "/v1/events", token: token, body: batch, headers: ["Idempotency-Key": "batch-0002"])
        #expect(fresh.status == 200 && fresh.json["duplicates"] as? Int == 1 && fresh.headers["Idempotent-Replayed"] == nil)
        let other = try JSONSerialization.data(withJSONObject: [
            "events": [["id": "i2", "email": Canary.email, "type": "view", "item_id": "sku", "time": "2026-11-20T10:00:00Z"]]
        ])
        let reused = try server.call("POST", "/v1/events", token: token, body: other, headers: ["Idempotency-Key": "batch-0001"])
        #expect(reused.status == 422 && (reused.json["detail"] as? String)?.contains("different body") == true)
        // Keys belong to the token that sent them: another token's same key is a new request.
        let admin = try server.call("POST", "/v1/events", token: server.tokens["admin"], body: other, headers: ["Idempotency-Key": "batch-0001"])
        #expect(admin.status == 200 && admin.json["inserted"] as? Int == 1)
        let profiles = try JSONSerialization.data(withJSONObject: ["source": "api", "profiles": [["email": "idem-7f3a@example.test"]]])
        let created = try server.call("POST", "/v1/profiles", token: token, body: profiles, headers: ["Idempotency-Key": "p-1"])
        let again = try server.call("POST", "/v1/profiles", token: token, body: profiles, headers: ["Idempotency-Key": "p-1"])
        #expect(created.json["inserted"] as? Int == 1 && again.text == created.text && again.headers["Idempotent-Replayed"] == "true")
        let bad = try server.call("POST", "/v1/profiles", token: token, body: profiles, headers: ["Idempotency-Key": "bad key with spaces"])
        #expect(bad.status == 422)
        #expect(try consentry(server.vault, ["status"]).stdout.contains("subjects         2"), "the replay created nobody")
    }

    @Test("fuzzing from the document (schemathesis, fixed seed): no server error, every status, type and body as documented, for three roles")
    func fuzzFromDocument() throws {
        let vault = newVaultPath()
        #expect(try consentry(vault, ["demo", "--profiles", "200", "--seed", "7"]).status == 0)
        let server = try ServerTests.Running(vault: vault)
        defer { _ = server.stop() }
        let document = TestSupport.writeFile("openapi.yaml", try server.call("GET", "/openapi.yaml").text)
        // Models train over the API too (an analyst, under profiling), and their reports are as documented.
        let analyst = try consentry(vault, ["token", "create", "--role", "analyst", "--name", "models"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        var recorded: [RecordedResponse] = []
        for name in ["propensity", "clusters"] {
            let result = try server.call("POST", "/v1/scores/\(name)", token: analyst, body: Data("{}".utf8))
            recorded.append(
                RecordedResponse(
                    method: "POST", path: "/v1/scores/{name}", status: result.status, content_type: result.contentType, body: result.text))
            #expect(result.status == 200, "\(name): \(result.text.prefix(300))")
        }
        let propensity = try #require(try JSONSerialization.jsonObject(with: Data(recorded[0].body.utf8)) as? [String: Any])
        #expect((propensity["auc"] as? Double).map { (0...1).contains($0) } == true && (propensity["scored"] as? Int ?? 0) > 0)
        let clusters = try #require(try JSONSerialization.jsonObject(with: Data(recorded[1].body.utf8)) as? [String: Any])
        #expect((clusters["k"] as? Int).map { (2...8).contains($0) } == true)
        let checked = try Peer.run(
            "Tests/peer/conform.py", [document.path, TestSupport.writeFile("models.json", try JSONEncoder().encode(recorded)).path])
        #expect(checked.status == 0, "\(checked.stdout)")
        // The token reaches schemathesis through the environment, never through its command line.
        let config = TestSupport.writeFile("schemathesis.toml", #"headers = { Authorization = "Bearer ${CONSENTRY_TOKEN}" }"# + "\n")
        for role in ["admin", "campaign_service", "compliance_officer"] {
            let token = try consentry(vault, ["token", "create", "--role", role, "--name", "fuzz-\(role)"]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let run = try Peer.run(
                module: "schemathesis.cli",
                [
                    "--config-file", config.path, "run", document.path, "--url", "http://127.0.0.1:\(server.port)", "--checks",
                    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance", "--max-examples", "15",
                    "--phases", "examples,coverage,fuzzing", "--workers", "1", "--seed", "20261123",
                ], environment: ["CONSENTRY_TOKEN": token])
            #expect(run.status == 0, "\(role): \(run.stdout.suffix(3_000))\(run.stderr.suffix(500))")
            #expect(run.stdout.contains("passed"), "\(role): schemathesis ran no operation (`make test-peers` installs it)")
            // The token was accepted: the gate audited decisions with it as the actor.
            let audited = try consentry(vault, ["audit", "query", "--by", "token:fuzz-\(role)", "--limit", "1"])
            #expect(audited.status == 0 && audited.stdout.contains("token:fuzz-\(role)"), "\(role): the token was not accepted")
        }
    }
}
