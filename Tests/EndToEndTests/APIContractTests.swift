import ConsentryCore
import ConsentryTesting
import ConsentryGate
import Foundation
import Testing

/// Every endpoint as every role, and every response checked against the served OpenAPI document.
@Suite("HTTP API contract", .serialized)
struct APIContractTests {
    /// One response, as the conformance checker (`Tests/peer/conform.py`) reads it.
    struct Recorded: Encodable {
        let method: String
        let path: String
        let status: Int
        let content_type: String
        let body: String
    }

    /// One endpoint of the role table: how to call it as a role, and which roles succeed with which status.
    struct Row {
        let method: String
        /// The path as the OpenAPI document names it.
        let template: String
        let allowed: Set<String>
        let success: Int
        /// The concrete path and body for a role (a fresh resource where a call changes state).
        let request: (String) throws -> (path: String, body: [String: Any]?)

        init(
            _ method: String, _ template: String, _ allowed: Set<String>, _ success: Int = 200,
            _ request: @escaping (String) throws -> (path: String, body: [String: Any]?)
        ) {
            self.method = method
            self.template = template
            self.allowed = allowed
            self.success = success
            self.request = request
        }

        init(_ method: String, _ template: String, _ allowed: Set<String>, _ success: Int = 200, body: [String: Any]? = nil) {
            self.init(method, template, allowed, success) { _ in (template, body) }
        }
    }

    static let roles = ["admin", "analyst", "campaign_service", "compliance_officer", "data_engineer", "marketer"]
    static let everyone = Set(roles)

    @Test("every endpoint × every role: the allowed roles succeed, every other role gets 403, and every response conforms to the document")
    func everyEndpointEveryRole() throws {
        let server = try ServerTests().start()
        defer { _ = server.stop() }
        var recorded: [Recorded] = []
        func call(_ method: String, _ template: String, _ path: String, role: String?, body: Data?, contentType: String = "application/json")
            throws -> (status: Int, json: [String: Any], text: String)
        {
            let result = try server.call(method, path, token: role.flatMap { server.tokens[$0] }, body: body, contentType: contentType)
            recorded.append(
                Recorded(method: method, path: template, status: result.status, content_type: result.contentType, body: result.text))
            return (result.status, result.json, result.text)
        }
        func post(_ template: String, _ path: String? = nil, as role: String, _ object: [String: Any]) throws -> [String: Any] {
            let body = try JSONSerialization.data(withJSONObject: object)
            let result: (status: Int, json: [String: Any], text: String) = try call("POST", template, path ?? template, role: role, body: body)
            return result.json
        }

        // Resources the calls need: a second subject to erase, a trigger queue entry, send times, an experiment.
        let other = "erase-me-7f3a@example.test"
        _ = try post("/v1/profiles", as: "data_engineer", ["source": "crm", "profiles": [["email": other, "first_name": "Eve"]]])
        // The trigger is defined as of two hours ago (a vault opened with a clock set back), so a cart of an hour ago fires.
        let past = try Vault.open(at: server.vault, configuration: VaultConfiguration(clock: FixedClock(Date().addingTimeInterval(-7_200))))
        _ = try past.defineTrigger(name: "cart", kind: "cart_abandoned", purpose: .emailMarketing, delay: 300_000, actor: "t", role: .marketer)
        let cartTime = Normalize.formatTimestamp(millis: Int64(Date().addingTimeInterval(-3_600).timeIntervalSince1970 * 1000))
        _ = try post(
            "/v1/events", as: "data_engineer",
            ["events": [["id": "c1", "email": Canary.email, "type": "cart_add", "item_id": "sku-1", "time": cartTime]]])
        #expect(try consentry(server.vault, ["trigger", "check"]).status == 0)
        let queue = try call("GET", "/v1/triggers/queue", "/v1/triggers/queue", role: "campaign_service", body: nil)
        let entry = try #require((try JSONSerialization.jsonObject(with: Data(queue.text.utf8)) as? [[String: Any]])?.first?["id"] as? Int)
        // Send times are computed under personalization, which the canary consents to here.
        _ = try post("/v1/consent", as: "admin", ["subject": ["email": Canary.email], "purpose": "personalization", "state": "granted"])
        #expect(try consentry(server.vault, ["sendtime", "compute"]).status == 0)
        _ = try post("/v1/experiments", as: "marketer", ["name": "subject_line", "purpose": "email_marketing", "arms": ["a": 1, "b": 1]])
        // A verified request per call that needs one (opening, verifying and fulfilling change its state).
        func openRequest(_ type: String, email: String = Canary.email, verify: Bool, fulfil: Bool = false) throws -> (id: String, code: String) {
            let opened = try post("/v1/dsr", as: "compliance_officer", ["type": type, "regime": "gdpr", "email": email])
            guard let id = opened["id"] as? String, let code = opened["verification_code"] as? String else {
                throw ServerTests.Running.CLIError("opening a request failed: \(opened)")
            }
            if verify { _ = try post("/v1/dsr/{id}/verify", "/v1/dsr/\(id)/verify", as: "compliance_officer", ["code": code]) }
            if fulfil { _ = try post("/v1/dsr/{id}/fulfil", "/v1/dsr/\(id)/fulfil", as: "compliance_officer", [:]) }
            return (id, code)
        }
        let access = try openRequest("access", verify: true, fulfil: true).id
        let erasure = try openRequest("erasure", email: other, verify: true, fulfil: true).id

        let canary: [String: Any] = ["email": Canary.email]
        let compliance: Set<String> = ["admin", "compliance_officer"]
        let table: [Row] = [
            Row("POST", "/v1/render", ["campaign_service"], body: ["template": "hello", "subject": canary]),
            Row(
                "POST", "/v1/profiles/read", ["compliance_officer"],
                body: ["subject": canary, "purpose": "service", "fields": ["first_name"], "reason": "ticket 1"]),
            Row(
                "POST", "/v1/profiles", ["admin", "data_engineer"],
                body: ["source": "web", "profiles": [["email": "new-7f3a@example.test", "first_name": "Neu"]]]),
            Row(
                "POST", "/v1/events", ["admin", "data_engineer"],
                body: ["events": [["id": "e1", "email": Canary.email, "type": "view", "item_id": "sku", "time": "2026-11-20T10:00:00Z"]]]),
            Row(
                "POST", "/v1/consent", ["admin", "compliance_officer", "data_engineer"], 201,
                body: ["subject": canary, "purpose": "personalization", "state": "granted"]),
            Row("POST", "/v1/consent/history", ["admin", "compliance_officer", "data_engineer"], body: ["subject": canary]),
            Row(
                "POST", "/v1/segments", ["marketer", "campaign_service"], 201,
                body: ["name": "s2", "purpose": "email_marketing", "rule": #"first_name != "y""#]),
            Row("POST", "/v1/segments/{name}/run", ["marketer", "campaign_service"]) { _ in ("/v1/segments/everyone/run", nil) },
            Row("GET", "/v1/segments/{name}/members", ["marketer", "campaign_service"]) { _ in ("/v1/segments/everyone/members?limit=10", nil) },
            Row("GET", "/v1/triggers/queue", Self.everyone),
            Row("POST", "/v1/triggers/{id}/ack", ["campaign_service"]) { _ in ("/v1/triggers/\(entry)/ack", nil) },
            Row(
                "POST", "/v1/templates", ["admin", "marketer"], 201,
                body: ["name": "t2", "purpose": "email_marketing", "format": "text", "source": "{{ first_name }}"]),
            Row("POST", "/v1/recommendations/run", ["campaign_service"]),
            Row("POST", "/v1/sendtime", ["campaign_service"], body: ["subject": canary]),
            Row("POST", "/v1/scores/{name}", ["analyst"]) { _ in ("/v1/scores/engagement", nil) },
            // Experiments need `segment` for their purpose.
            Row("POST", "/v1/experiments", ["marketer", "campaign_service"], 201) { role in
                ("/v1/experiments", ["name": "exp_\(role)", "purpose": "email_marketing", "arms": ["a": 1, "b": 1], "holdout": 0.2])
            },
            Row("POST", "/v1/experiments/{name}/assign", ["marketer", "campaign_service"]) { _ in ("/v1/experiments/subject_line/assign", nil) },
            Row("POST", "/v1/experiments/{name}/outcomes", ["admin", "data_engineer"]) { role in
                ("/v1/experiments/subject_line/outcomes", ["outcomes": [["id": "o-\(role)", "email": Canary.email, "kind": "open"]]])
            },
            Row("GET", "/v1/experiments/{name}/report", ["marketer", "campaign_service"]) { _ in ("/v1/experiments/subject_line/report", nil) },
            Row("POST", "/v1/dsr", compliance, 201, body: ["type": "access", "regime": "lgpd", "email": Canary.email]),
            Row("GET", "/v1/dsr/{id}", compliance) { _ in ("/v1/dsr/\(access)", nil) },
            Row("POST", "/v1/dsr/{id}/verify", compliance) { role in
                let (id, code) = try openRequest("objection", verify: false)
                return ("/v1/dsr/\(id)/verify", ["code": code])
            },
            // Fulfilling an access request exports personal data: only a role with `export` may (admin manages requests only).
            Row("POST", "/v1/dsr/{id}/fulfil", ["compliance_officer"]) { _ in ("/v1/dsr/\(try openRequest("access", verify: true).id)/fulfil", nil) },
            Row("GET", "/v1/dsr/{id}/export", ["compliance_officer"]) { _ in ("/v1/dsr/\(access)/export", nil) },
            Row("GET", "/v1/dsr/{id}/receipt", compliance) { _ in ("/v1/dsr/\(erasure)/receipt", nil) },
            Row("GET", "/v1/audit/verify", compliance),
            Row("GET", "/v1/audit/reports/{name}", compliance) { _ in ("/v1/audit/reports/denials", nil) },
            Row("POST", "/v1/audit/query", compliance, body: ["subject": canary, "limit": 5]),
            Row("GET", "/v1/audit/export", compliance) { _ in ("/v1/audit/export?format=jsonl", nil) },
            Row("POST", "/v1/policy/explain", Self.everyone, body: ["action": "render", "purpose": "email_marketing", "fields": ["email"]]),
        ]
        for row in table {
            for role in Self.roles {
                let (path, body) = try row.request(role)
                let result = try call(
                    row.method, row.template, path, role: role, body: try body.map { try JSONSerialization.data(withJSONObject: $0) })
                if row.allowed.contains(role) {
                    #expect(result.status == row.success, "\(role) \(row.method) \(path): \(result.text.prefix(300))")
                } else {
                    #expect(result.status == 403, "\(role) \(row.method) \(path) should be denied: \(result.status) \(result.text.prefix(300))")
                }
            }
        }
        // Every operation of the document is in the table, so no endpoint escapes the role check.
        let document = try server.call("GET", "/openapi.yaml").text
        let listed = Set(
            document.split(separator: "\n").filter { $0.hasPrefix("  /v1/") }.map { String($0.dropFirst(2).dropLast()) })
        #expect(listed == Set(table.map(\.template)), "operations without a row: \(listed.subtracting(table.map(\.template)).sorted())")

        // Error paths, recorded for the conformance check too.
        let render = try JSONSerialization.data(withJSONObject: ["template": "hello", "subject": canary])
        #expect(try call("POST", "/v1/render", "/v1/render", role: nil, body: render).status == 401)
        #expect(try call("POST", "/v1/render", "/v1/render", role: "campaign_service", body: render, contentType: "text/plain").status == 415)
        let huge = Data(#"{"template": ""#.utf8) + Data(repeating: UInt8(ascii: "a"), count: 300 * 1024) + Data(#""}"#.utf8)
        #expect(try call("POST", "/v1/render", "/v1/render", role: "campaign_service", body: huge).status == 413)
        let unknown = try JSONSerialization.data(withJSONObject: ["template": "hello", "subject": ["email": "nobody-7f3a@example.test"]])
        let missing = try call("POST", "/v1/render", "/v1/render", role: "campaign_service", body: unknown)
        #expect(
            missing.status == 404 && missing.json["reasons"] as? [String] == ["subject_not_found"], "an unknown subject, for a role that may render")
        #expect(try call("POST", "/v1/render", "/v1/render", role: "marketer", body: unknown).status == 403, "no existence oracle for others")
        let typo = try JSONSerialization.data(withJSONObject: ["template": "hello", "subject": canary, "role": "admin"])
        let rejected = try call("POST", "/v1/render", "/v1/render", role: "campaign_service", body: typo)
        #expect(rejected.status == 422 && rejected.json["pointer"] as? String == "/role")

        // The conformance check of everything recorded.
        let documentFile = TestSupport.writeFile("openapi.yaml", document)
        let responses = TestSupport.writeFile("responses.json", try JSONEncoder().encode(recorded))
        let checked = try Peer.run("Tests/peer/conform.py", [documentFile.path, responses.path])
        #expect(checked.status == 0, "responses that do not conform to the document:\n\(checked.stdout.prefix(4_000))\(checked.stderr.suffix(400))")
        #expect(recorded.count > 200)
        // Nothing the server printed holds a canary.
        _ = server.stop()
        let out = (server.process.standardOutput as! Pipe).fileHandleForReading.readDataToEndOfFile()
        let err = (server.process.standardError as! Pipe).fileHandleForReading.readDataToEndOfFile()
        for form in Canary.forms {
            #expect(!TestSupport.contains(out, form) && !TestSupport.contains(err, form), "the server log holds a canary form")
        }
    }

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
        var recorded: [Recorded] = []
        for name in ["propensity", "clusters"] {
            let result = try server.call("POST", "/v1/scores/\(name)", token: analyst, body: Data("{}".utf8))
            recorded.append(
                Recorded(method: "POST", path: "/v1/scores/{name}", status: result.status, content_type: result.contentType, body: result.text))
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
