import ConsentryCore
import ConsentryGate
import ConsentryTesting
import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The HTTP API through the built binary on a loopback port.
@Suite("HTTP API", .serialized)
struct ServerTests {
    /// A running `consentry serve` on a free port, with a token per role.
    final class Running: @unchecked Sendable {
        let process: Process
        let port: Int
        let vault: URL
        var tokens: [String: String] = [:]

        init(vault: URL, arguments: [String] = ["--rate-limit", "0"]) throws {
            self.vault = vault
            process = try CLI.start(["serve", "--vault", vault.path, "--port", "0"] + arguments)
            let out = process.standardOutput as! Pipe
            var line = Data()
            let deadline = Date().addingTimeInterval(30)
            while !line.contains(UInt8(ascii: "\n")) && Date() < deadline {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                line += chunk
            }
            let text = String(decoding: line, as: UTF8.self)
            guard let range = text.range(of: #":(\d+)\n"#, options: .regularExpression) else { throw CLIError("the server did not start: \(text)") }
            port = Int(text[range].dropFirst().dropLast())!
        }

        struct CLIError: Error { let message: String; init(_ m: String) { message = m } }

        /// A response: status, the body as JSON (empty unless an object) and as text, and the headers.
        struct Reply {
            let status: Int
            let json: [String: Any]
            let text: String
            let headers: [String: String]
            var contentType: String { headers["Content-Type"] ?? "" }
        }

        func call(
            _ method: String, _ path: String, token: String? = nil, body: Data? = nil, contentType: String? = "application/json",
            headers: [String: String] = [:]
        ) throws -> Reply {
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
            request.httpMethod = method
            request.httpBody = body
            if let contentType, body != nil { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
            if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
            for (key, value) in headers { request.setValue(value, forHTTPHeaderField: key) }
            let semaphore = DispatchSemaphore(value: 0)
            nonisolated(unsafe) var result: (Int, Data, [String: String]) = (0, Data(), [:])
            URLSession.shared.dataTask(with: request) { data, response, _ in
                let http = response as? HTTPURLResponse
                var headers: [String: String] = [:]
                for (key, value) in http?.allHeaderFields ?? [:] {
                    if let key = key as? String, let value = value as? String {
                        headers[key.split(separator: "-").map(\.capitalized).joined(separator: "-")] = value
                    }
                }
                result = (http?.statusCode ?? 0, data ?? Data(), headers)
                semaphore.signal()
            }.resume()
            semaphore.wait()
            let json = (try? JSONSerialization.jsonObject(with: result.1)) as? [String: Any] ?? [:]
            return Reply(status: result.0, json: json, text: String(decoding: result.1, as: UTF8.self), headers: result.2)
        }

        func post(_ path: String, as role: String, _ object: [String: Any]) throws -> Reply {
            try call("POST", path, token: tokens[role], body: try JSONSerialization.data(withJSONObject: object))
        }

        func stop() -> Int32 {
            process.terminate()  // SIGTERM: graceful shutdown
            process.waitUntilExit()
            return process.terminationStatus
        }
    }

    /// A vault with the canary subject (consented to e-mail marketing), a template, a segment, and a token per role.
    func start(arguments: [String] = ["--rate-limit", "0"]) throws -> Running {
        let vault = newVaultPath()
        #expect(try consentry(vault, ["init"]).status == 0)
        let csv = TestSupport.writeFile("p.csv", "email,customer_id,first_name\n\(Canary.email),\(Canary.customerID),\(Canary.firstName)\n")
        #expect(try consentry(vault, ["import", "profiles", csv.path, "--source", "crm"]).status == 0)
        for step in ["pending", "confirm"] {
            #expect(try consentry(vault, ["consent", step, "--email", Canary.email, "--purpose", "email_marketing"]).status == 0)
        }
        let template = TestSupport.writeFile("t.txt", "Hi {{ first_name }} {{ campaign.name }} {{ language | default: 'en' }}")
        #expect(try consentry(vault, ["template", "register", "hello", template.path, "--purpose", "email_marketing"]).status == 0)
        #expect(try consentry(vault, ["segment", "define", "everyone", "--purpose", "email_marketing", "--rule", #"first_name != "x""#]).status == 0)
        var tokens: [String: String] = [:]
        for role in ["admin", "compliance_officer", "data_engineer", "marketer", "analyst", "campaign_service"] {
            let created = try consentry(vault, ["token", "create", "--role", role, "--name", "t-\(role)"])
            #expect(created.status == 0)
            tokens[role] = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let running = try Running(vault: vault, arguments: arguments)
        running.tokens = tokens
        return running
    }

    @Test("health, the OpenAPI document, a gated render with fallback, and a graceful shutdown with a final checkpoint")
    func basics() throws {
        let server = try start()
        #expect(try server.call("GET", "/healthz").json["status"] as? String == "ok")
        #expect(try server.call("GET", "/readyz").status == 200)
        let document = try server.call("GET", "/openapi.yaml")
        #expect(document.status == 200 && document.text.hasPrefix("openapi: 3.1.0"))
        let render = try server.post(
            "/v1/render", as: "campaign_service", ["template": "hello", "subject": ["email": Canary.email], "campaign": ["name": "Winter"]])
        #expect(render.status == 200 && render.json["output"] as? String == "Hi \(Canary.firstName) Winter en")
        #expect((render.json["fallback"] as? [String: Any])?["defaults_used_for"] as? [String] == ["language"])
        let metrics = try server.call("GET", "/metrics")
        #expect(metrics.status == 200 && metrics.text.contains(#"consentry_http_requests_total{method="POST",route="/v1/render",status="200"} 1"#))
        #expect(!metrics.text.contains(Canary.email))
        let checkpoints = try String(contentsOf: server.vault.appendingPathComponent("audit/checkpoints"), encoding: .utf8).split(separator: "\n")
            .count
        #expect(server.stop() == 0)
        let after = try String(contentsOf: server.vault.appendingPathComponent("audit/checkpoints"), encoding: .utf8).split(separator: "\n").count
        #expect(after > checkpoints, "shutdown writes a final signed checkpoint")
        #expect(try consentry(server.vault, ["audit", "verify"]).status == 0)
    }

    @Test("an edit of the vault's policy files takes effect in the running server without a restart, and is audited")
    func policyReload() throws {
        let server = try start()
        let body: [String: Any] = ["template": "hello", "subject": ["email": Canary.email], "campaign": ["name": "Winter"]]
        #expect(try server.post("/v1/render", as: "campaign_service", body).status == 200)
        // Take rendering for e-mail marketing away from the campaign platform.
        let roles = server.vault.appendingPathComponent("policies/roles.yaml")
        let original = try String(contentsOf: roles, encoding: .utf8)
        let narrowed = original.replacingOccurrences(of: "      email_marketing: [segment, render]\n", with: "      email_marketing: [segment]\n")
        #expect(narrowed != original)
        try narrowed.write(to: roles, atomically: true, encoding: .utf8)
        var status = 200
        let deadline = Date().addingTimeInterval(15)
        while status == 200 && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.2)
            status = try server.post("/v1/render", as: "campaign_service", body).status
        }
        #expect(status == 403, "the server applies the narrowed policy within seconds")
        #expect(server.stop() == 0)
        let loads = try consentry(server.vault, ["audit", "query", "--action", "policy_loaded", "--json"])
        #expect(loads.status == 0 && loads.stdout.components(separatedBy: "\"policy_loaded\"").count >= 3, "a second policy_loaded entry")
        #expect(try consentry(server.vault, ["audit", "verify"]).status == 0)
    }

    @Test("authentication: no token, a malformed, wrong, revoked or expired token are 401 problems")
    func authentication() async throws {
        let server = try start()
        defer { _ = server.stop() }
        let body = try JSONSerialization.data(withJSONObject: ["template": "hello", "subject": ["email": Canary.email]])
        #expect(try server.call("POST", "/v1/render", body: body).status == 401)
        #expect(try server.call("POST", "/v1/render", token: "nonsense", body: body).status == 401)
        var forged = server.tokens["campaign_service"]!
        // The last character changed for another (the removed one decides which, or the "forgery" could be the token).
        let last = forged.removeLast()
        forged.append(last == "A" ? "B" : "A")
        #expect(forged != server.tokens["campaign_service"]!)
        #expect(try server.call("POST", "/v1/render", token: forged, body: body).status == 401)
        let id = String(server.tokens["marketer"]!.split(separator: "_")[1...2].joined(separator: "_"))
        // The server holds a token's row for up to a second; a revocation by another process is seen after it.
        #expect(try server.call("POST", "/v1/segments/everyone/run", token: server.tokens["marketer"], body: Data("{}".utf8)).status != 401)
        #expect(try consentry(server.vault, ["token", "revoke", id]).status == 0)
        try await Task.sleep(for: .milliseconds(1200))
        let revoked = try server.call("POST", "/v1/segments/everyone/run", token: server.tokens["marketer"], body: Data("{}".utf8))
        #expect(revoked.status == 401 && revoked.json["detail"] as? String == "the token is revoked; create a new one with `consentry token create`")
        let vault = try Vault.open(at: server.vault)
        let expired = try await vault.createToken(name: "old", role: .campaignService, expiresAt: 1, as: Principal(actor: "t", role: .admin)).token
        #expect(try server.call("POST", "/v1/render", token: expired, body: body).status == 401)
        let problem = try server.call("POST", "/v1/render", body: body)
        #expect(problem.json["type"] as? String == "https://consentry.dev/problems/unauthorized" && problem.json["request_id"] != nil)
    }

    @Test("hostile bodies: wrong type, too large, deeply nested, malformed, not UTF-8, unknown fields, wrong types")
    func hostileBodies() throws {
        let server = try start()
        defer { _ = server.stop() }
        let token = server.tokens["campaign_service"]
        let good = try JSONSerialization.data(withJSONObject: ["template": "hello", "subject": ["email": Canary.email]])
        #expect(try server.call("POST", "/v1/render", token: token, body: good, contentType: "text/plain").status == 415)
        let huge = Data(#"{"template": ""#.utf8) + Data(repeating: UInt8(ascii: "a"), count: 300 * 1024) + Data(#""}"#.utf8)
        #expect(try server.call("POST", "/v1/render", token: token, body: huge).status == 413)
        let deep = Data((String(repeating: "[", count: 40) + String(repeating: "]", count: 40)).utf8)
        #expect(try server.call("POST", "/v1/render", token: token, body: deep).status == 422)
        #expect(try server.call("POST", "/v1/render", token: token, body: Data("{\"template\": ".utf8)).status == 422)
        #expect(try server.call("POST", "/v1/render", token: token, body: Data([0x7B, 0xFF, 0xFE, 0x7D])).status == 422)
        let unknown = try server.post(
            "/v1/render", as: "campaign_service", ["template": "hello", "subject": ["email": Canary.email], "role": "admin"])
        #expect(unknown.status == 422 && unknown.json["pointer"] as? String == "/role")
        let wrongType = try server.post("/v1/render", as: "campaign_service", ["template": 5, "subject": ["email": Canary.email]])
        #expect(wrongType.status == 422 && wrongType.json["pointer"] as? String == "/template")
        let twoSubjects = try server.post(
            "/v1/render", as: "campaign_service", ["template": "hello", "subject": ["email": Canary.email, "customer_id": "x"]])
        #expect(twoSubjects.status == 422)
        #expect(try server.call("GET", "/v1/nothing", token: token).status == 404)
    }

    @Test("the served OpenAPI document validates, and every operation it lists exists on the server (no drift)")
    func contract() throws {
        let server = try start()
        defer { _ = server.stop() }
        let document = try server.call("GET", "/openapi.yaml")
        let file = TestSupport.writeFile("openapi.yaml", document.text)
        let validated = try Peer.run("Tests/peer/validate_openapi.py", [file.path])
        try #require(validated.status == 0, "the document does not validate (or `make test-peers` was not run): \(validated.stderr.suffix(400))")
        let operations = try #require(try JSONSerialization.jsonObject(with: Data(validated.stdout.utf8)) as? [[String]])
        #expect(operations.count >= 20)
        for operation in operations {
            let path = operation[1].replacingOccurrences(of: "{name}", with: "x").replacingOccurrences(of: "{id}", with: "1")
            let result = try server.call(operation[0], path, body: operation[0] == "POST" ? Data("{}".utf8) : nil)
            // Without a token every /v1 operation must answer 401 (it exists); public ones answer 200.
            #expect(result.status == (path.hasPrefix("/v1/") ? 401 : 200), "\(operation[0]) \(operation[1]) answered \(result.status)")
        }
    }

    @Test("a token over its rate limit gets 429 with Retry-After; other tokens are unaffected")
    func rateLimit() throws {
        // One request per second with bursts of two: ten quick requests must run into the limit, even on a busy machine.
        let server = try start(arguments: ["--rate-limit", "1"])
        defer { _ = server.stop() }
        var statuses: [Int] = []
        for _ in 0..<10 { statuses.append(try server.call("GET", "/v1/triggers/queue", token: server.tokens["marketer"]).status) }
        #expect(statuses.prefix(2).allSatisfy { $0 == 200 } && statuses.filter { $0 == 429 }.count >= 5, "\(statuses)")
        let limited = try server.call("GET", "/v1/triggers/queue", token: server.tokens["marketer"])
        #expect(limited.status == 429 && limited.json["type"] as? String == "https://consentry.dev/problems/rate_limited")
        #expect(try server.call("GET", "/v1/triggers/queue", token: server.tokens["analyst"]).status == 200)
    }

    @Test("a data-subject request over the API: open, verify, fulfil, download the export; an erasure's receipt")
    func dataSubjectRequests() throws {
        let server = try start()
        defer { _ = server.stop() }
        let opened = try server.call(
            "POST", "/v1/dsr", token: server.tokens["compliance_officer"],
            body: try JSONSerialization.data(withJSONObject: ["type": "access", "regime": "gdpr", "email": Canary.email]),
            headers: ["Idempotency-Key": "req-1"])
        #expect(opened.status == 201)
        let id = try #require(opened.json["id"] as? String), code = try #require(opened.json["verification_code"] as? String)
        let again = try server.call(
            "POST", "/v1/dsr", token: server.tokens["compliance_officer"],
            body: try JSONSerialization.data(withJSONObject: ["type": "access", "regime": "gdpr", "email": Canary.email]),
            headers: ["Idempotency-Key": "req-1"])
        #expect(again.json["id"] as? String == id && again.json["verification_code"] == nil, "the retry returns the first request")
        #expect(try server.post("/v1/dsr/\(id)/verify", as: "compliance_officer", ["code": code]).status == 200)
        #expect(try server.post("/v1/dsr/\(id)/fulfil", as: "compliance_officer", [:]).status == 200)
        let export = try server.call("GET", "/v1/dsr/\(id)/export", token: server.tokens["compliance_officer"])
        #expect(export.status == 200 && export.text.contains(Canary.firstName))
        #expect(try server.call("GET", "/v1/dsr/\(id)/export", token: server.tokens["marketer"]).status == 403)
        #expect(
            try consentry(server.vault, ["audit", "query", "--action", "dsr_manage"]).stdout.contains("export downloaded"), "downloads are audited")
        let erasure = try server.post("/v1/dsr", as: "compliance_officer", ["type": "erasure", "regime": "ccpa", "email": Canary.email])
        let erasureID = try #require(erasure.json["id"] as? String)
        _ = try server.post(
            "/v1/dsr/\(erasureID)/verify", as: "compliance_officer", ["code": try #require(erasure.json["verification_code"] as? String)])
        let erased = try server.post("/v1/dsr/\(erasureID)/fulfil", as: "compliance_officer", [:])
        #expect(erased.status == 200 && erased.json["receipt"] != nil)
        let receipt = try server.call("GET", "/v1/dsr/\(erasureID)/receipt", token: server.tokens["compliance_officer"])
        #expect(receipt.status == 200 && receipt.json["signature"] != nil)
        #expect(
            try server.call("GET", "/v1/dsr/\(id)/export", token: server.tokens["compliance_officer"]).status == 404, "the erasure deleted the export"
        )
        // Nothing the server printed, while personal data went through it both ways, holds a canary.
        #expect(server.stop() == 0)
        let out = (server.process.standardOutput as! Pipe).fileHandleForReading.readDataToEndOfFile()
        let err = (server.process.standardError as! Pipe).fileHandleForReading.readDataToEndOfFile()
        for form in Canary.forms {
            #expect(!TestSupport.contains(out, form) && !TestSupport.contains(err, form), "the server log holds a canary form")
        }
    }

    @Test("profile batches are validated like files: a bad record is reported by position, the rest is stored")
    func profileBatch() throws {
        let server = try start()
        defer { _ = server.stop() }
        let result = try server.post(
            "/v1/profiles", as: "data_engineer",
            [
                "source": "web",
                "profiles": [
                    ["email": "batch-1@example.test", "first_name": "Bea"], ["email": "not an address"],
                    ["shoe_size": "9", "email": "batch-2@example.test"],
                ],
            ])
        #expect(result.status == 207 && result.json["inserted"] as? Int == 2 && result.json["rejected"] as? Int == 1)
        let rejection = try #require((result.json["rejections"] as? [[String: Any]])?.first)
        #expect(rejection["line"] as? Int == 2 && rejection["field"] as? String == "email")
        #expect((result.json["dropped_fields"] as? [String: Int])?["shoe_size"] == 1, "undeclared fields are not stored")
        #expect(!result.text.contains("not an address"), "a report never echoes a value")
        // String limits hold per field: an over-long value is rejected with its field, the record's others are not stored.
        let long = try server.post(
            "/v1/profiles", as: "data_engineer",
            ["source": "web", "profiles": [["email": "batch-3@example.test", "first_name": String(repeating: "x", count: 5_000)]]])
        let longRejection = try #require((long.json["rejections"] as? [[String: Any]])?.first)
        #expect(long.status == 207 && long.json["inserted"] as? Int == 0 && longRejection["field"] as? String == "first_name")
        #expect((longRejection["reason"] as? String)?.contains("longer than") == true)
    }

    @Test("experiments and scores over the API, and segment members a page at a time")
    func campaigns() throws {
        let server = try start()
        defer { _ = server.stop() }
        let created = try server.post(
            "/v1/experiments", as: "marketer", ["name": "subject_line", "purpose": "email_marketing", "arms": ["a": 1, "b": 1], "holdout": 0])
        #expect(created.status == 201)
        #expect(
            try server.post("/v1/experiments", as: "marketer", ["name": "subject_line", "purpose": "email_marketing", "arms": ["a": 1, "b": 1]])
                .status == 409)
        #expect(try server.post("/v1/experiments/subject_line/assign", as: "marketer", [:]).status == 200)
        let outcomes = try server.post(
            "/v1/experiments/subject_line/outcomes", as: "data_engineer",
            ["outcomes": [["id": "o1", "email": Canary.email, "kind": "conversion"], ["id": "o2", "email": "nobody@example.test", "kind": "open"]]])
        #expect(outcomes.status == 207 && outcomes.json["recorded"] as? Int == 1)
        let report = try server.call("GET", "/v1/experiments/subject_line/report", token: server.tokens["marketer"])
        #expect(report.status == 200 && (report.json["arms"] as? [[String: Any]])?.isEmpty == false)
        #expect(try server.post("/v1/scores/engagement", as: "analyst", [:]).status == 200)
        #expect(try server.post("/v1/scores/engagement", as: "marketer", [:]).status == 403)
        let page = try server.call("GET", "/v1/segments/everyone/members?limit=1", token: server.tokens["marketer"])
        #expect(page.status == 200 && (page.json["members"] as? [String])?.count == 1 && page.json["count"] as? Int == 1 && page.json["next"] == nil)
        #expect(try server.call("GET", "/v1/segments/everyone/members?after=zz", token: server.tokens["marketer"]).status == 422)
    }

    @Test("events with Sec-GPC: 1 record the signal; sale and sharing is then denied")
    func globalPrivacyControl() throws {
        let server = try start()
        defer { _ = server.stop() }
        let events: [String: Any] = [
            "events": [["id": "g1", "email": Canary.email, "type": "view", "item_id": "sku", "time": "2026-11-20T10:00:00Z"]]
        ]
        let result = try server.call(
            "POST", "/v1/events", token: server.tokens["data_engineer"], body: try JSONSerialization.data(withJSONObject: events),
            headers: ["Sec-GPC": "1"])
        #expect(result.status == 200 && result.json["inserted"] as? Int == 1)
        #expect(try consentry(server.vault, ["consent", "show", "--email", Canary.email]).stdout.contains("gpc"))
    }
}
