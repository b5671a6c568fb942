import ConsentryCore
import ConsentryGate
import ConsentryPersonalization
import ConsentryServer
import ConsentryTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// Every endpoint as every role, in-process: the application `consentry serve` runs, driven through HummingbirdTesting
/// without a port or a binary, and every response checked against the served OpenAPI document.
@Suite("HTTP API role table (in-process)")
struct RoleTableTests {
    /// One endpoint of the role table: how to call it as a role, and which roles succeed with which status.
    struct Row: Sendable {
        let method: String
        /// The path as the OpenAPI document names it.
        let template: String
        let allowed: Set<String>
        let success: Int
        /// The concrete path and body for a role (a fresh resource where a call changes state).
        let request: @Sendable (String) async throws -> (path: String, body: [String: any Sendable]?)

        init(
            _ method: String, _ template: String, _ allowed: Set<String>, _ success: Int = 200,
            _ request: @escaping @Sendable (String) async throws -> (path: String, body: [String: any Sendable]?)
        ) {
            self.method = method
            self.template = template
            self.allowed = allowed
            self.success = success
            self.request = request
        }

        init(_ method: String, _ template: String, _ allowed: Set<String>, _ success: Int = 200, body: [String: any Sendable]? = nil) {
            self.init(method, template, allowed, success) { _ in (template, body) }
        }
    }

    static let roles = ["admin", "analyst", "campaign_service", "compliance_officer", "data_engineer", "marketer"]
    static let everyone = Set(roles)

    /// A client over the in-process application that records every response.
    final class Caller: @unchecked Sendable {
        let client: any TestClientProtocol
        let tokens: [String: String]
        private(set) var recorded: [RecordedResponse] = []

        init(client: any TestClientProtocol, tokens: [String: String]) {
            self.client = client
            self.tokens = tokens
        }

        struct Reply {
            let status: Int
            let json: [String: Any]
            let text: String
        }

        func call(_ method: String, _ template: String, _ path: String, role: String?, body: Data?, contentType: String = "application/json")
            async throws -> Reply
        {
            var headers = HTTPFields()
            if let role, let token = tokens[role] { headers[.authorization] = "Bearer \(token)" }
            if body != nil { headers[.contentType] = contentType }
            let response = try await client.execute(
                uri: path, method: HTTPRequest.Method(method)!, headers: headers, body: body.map { ByteBuffer(bytes: $0) })
            let text = String(buffer: response.body)
            recorded.append(
                RecordedResponse(
                    method: method, path: template, status: Int(response.status.code), content_type: response.headers[.contentType] ?? "",
                    body: text))
            let json = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
            return Reply(status: Int(response.status.code), json: json, text: text)
        }

        @discardableResult
        func post(_ template: String, _ path: String? = nil, as role: String, _ object: [String: any Sendable]) async throws -> [String: Any] {
            try await call("POST", template, path ?? template, role: role, body: try JSONSerialization.data(withJSONObject: object)).json
        }
    }

    struct SetupError: Error, CustomStringConvertible { let description: String }

    @Test("every endpoint × every role: the allowed roles succeed, every other role gets 403, and every response conforms to the document")
    func everyEndpointEveryRole() async throws {
        let clock = FixedClock(TestSupport.fixedNow)
        let vault = try TestSupport.makeVault(clock: clock)
        var issued: [String: String] = [:]
        for role in Self.roles {
            issued[role] = try await vault.createToken(name: "t-\(role)", role: Role(rawValue: role)!, expiresAt: nil, as: Principal(actor: "t", role: .admin))
                .token
        }
        let tokens = issued
        // Defined before the cart event below, so the event is one the trigger sees.
        _ = try await vault.defineTrigger(
            name: "cart", kind: "cart_abandoned", purpose: .emailMarketing, delay: 300_000, as: Principal(actor: "t", role: .marketer))
        let app = Server.buildApplication(vault: vault, configuration: ServerConfiguration(rateLimit: 0))
        try await app.test(.router) { client in
            let api = Caller(client: client, tokens: tokens)
            let canary: [String: any Sendable] = ["email": Canary.email]
            // The subjects and definitions the calls need, made through the API itself.
            try await api.post(
                "/v1/profiles", as: "data_engineer",
                ["source": "crm", "profiles": [["email": Canary.email, "customer_id": Canary.customerID, "first_name": Canary.firstName]]])
            for state in ["pending", "confirmed"] {
                try await api.post("/v1/consent", as: "admin", ["subject": canary, "purpose": "email_marketing", "state": state])
            }
            try await api.post(
                "/v1/templates", as: "marketer",
                ["name": "hello", "purpose": "email_marketing", "format": "text", "source": "Hi {{ first_name }} {{ campaign.name }}"])
            try await api.post("/v1/segments", as: "marketer", ["name": "everyone", "purpose": "email_marketing", "rule": #"first_name != "x""#])
            let other = "erase-me-7f3a@example.test"
            try await api.post("/v1/profiles", as: "data_engineer", ["source": "crm", "profiles": [["email": other, "first_name": "Eve"]]])
            clock.advance(by: 600)
            let cartTime = Normalize.formatTimestamp(millis: Int64(clock.now().timeIntervalSince1970 * 1000))
            try await api.post(
                "/v1/events", as: "data_engineer",
                ["events": [["id": "c1", "email": Canary.email, "type": "cart_add", "item_id": "sku-1", "time": cartTime]]])
            clock.advance(by: 3_600)
            let fired = try await TriggerDesk(vault: vault, as: Principal(actor: "t", role: .admin)).check(now: clock.now())
            #expect(fired.first?.fired == 1, "the cart trigger fired: \(fired)")
            let queue = try await api.call("GET", "/v1/triggers/queue", "/v1/triggers/queue", role: "campaign_service", body: nil)
            guard let entry = (try JSONSerialization.jsonObject(with: Data(queue.text.utf8)) as? [[String: Any]])?.first?["id"] as? Int else {
                throw SetupError(description: "no trigger queue entry: \(queue.text.prefix(300))")
            }
            // Send times are computed under personalization, which the canary consents to here.
            try await api.post("/v1/consent", as: "admin", ["subject": canary, "purpose": "personalization", "state": "granted"])
            _ = try await SendTimeDesk(vault: vault, as: Principal(actor: "t", role: .campaignService)).compute(now: clock.now())
            try await api.post("/v1/experiments", as: "marketer", ["name": "subject_line", "purpose": "email_marketing", "arms": ["a": 1, "b": 1]])
            // A verified request per call that needs one (opening, verifying and fulfilling change its state).
            @Sendable func openRequest(_ type: String, email: String = Canary.email, verify: Bool, fulfil: Bool = false) async throws -> (
                id: String, code: String
            ) {
                let opened = try await api.post("/v1/dsr", as: "compliance_officer", ["type": type, "regime": "gdpr", "email": email])
                guard let id = opened["id"] as? String, let code = opened["verification_code"] as? String else {
                    throw SetupError(description: "opening a request failed: \(opened.keys.sorted())")
                }
                if verify { try await api.post("/v1/dsr/{id}/verify", "/v1/dsr/\(id)/verify", as: "compliance_officer", ["code": code]) }
                if fulfil { try await api.post("/v1/dsr/{id}/fulfil", "/v1/dsr/\(id)/fulfil", as: "compliance_officer", [:]) }
                return (id, code)
            }
            let access = try await openRequest("access", verify: true, fulfil: true).id
            let erasure = try await openRequest("erasure", email: other, verify: true, fulfil: true).id

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
                Row("POST", "/v1/dsr/{id}/verify", compliance) { _ in
                    let (id, code) = try await openRequest("objection", verify: false)
                    return ("/v1/dsr/\(id)/verify", ["code": code])
                },
                // Fulfilling an access request exports personal data: only a role with `export` may (admin manages requests only).
                Row("POST", "/v1/dsr/{id}/fulfil", ["compliance_officer"]) { _ in
                    ("/v1/dsr/\(try await openRequest("access", verify: true).id)/fulfil", nil)
                },
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
                    let (path, body) = try await row.request(role)
                    let result = try await api.call(
                        row.method, row.template, path, role: role, body: try body.map { try JSONSerialization.data(withJSONObject: $0) })
                    if row.allowed.contains(role) {
                        #expect(result.status == row.success, "\(role) \(row.method) \(path): \(result.text.prefix(300))")
                    } else {
                        #expect(result.status == 403, "\(role) \(row.method) \(path) should be denied: \(result.status) \(result.text.prefix(300))")
                    }
                }
            }
            // Every operation of the document is in the table, so no endpoint escapes the role check.
            let document = try await api.call("GET", "/openapi.yaml", "/openapi.yaml", role: nil, body: nil).text
            let listed = Set(document.split(separator: "\n").filter { $0.hasPrefix("  /v1/") }.map { String($0.dropFirst(2).dropLast()) })
            #expect(listed == Set(table.map(\.template)), "operations without a row: \(listed.subtracting(table.map(\.template)).sorted())")

            // Error paths, recorded for the conformance check too.
            let render = try JSONSerialization.data(withJSONObject: ["template": "hello", "subject": canary])
            #expect(try await api.call("POST", "/v1/render", "/v1/render", role: nil, body: render).status == 401)
            #expect(
                try await api.call("POST", "/v1/render", "/v1/render", role: "campaign_service", body: render, contentType: "text/plain").status
                    == 415)
            let huge = Data(#"{"template": ""#.utf8) + Data(repeating: UInt8(ascii: "a"), count: 300 * 1024) + Data(#""}"#.utf8)
            #expect(try await api.call("POST", "/v1/render", "/v1/render", role: "campaign_service", body: huge).status == 413)
            let unknown = try JSONSerialization.data(withJSONObject: ["template": "hello", "subject": ["email": "nobody-7f3a@example.test"]])
            let missing = try await api.call("POST", "/v1/render", "/v1/render", role: "campaign_service", body: unknown)
            #expect(
                missing.status == 404 && missing.json["reasons"] as? [String] == ["subject_not_found"],
                "an unknown subject, for a role that may render")
            #expect(
                try await api.call("POST", "/v1/render", "/v1/render", role: "marketer", body: unknown).status == 403,
                "no existence oracle for others")
            let typo = try JSONSerialization.data(withJSONObject: ["template": "hello", "subject": canary, "role": "admin"])
            let rejected = try await api.call("POST", "/v1/render", "/v1/render", role: "campaign_service", body: typo)
            #expect(rejected.status == 422 && rejected.json["pointer"] as? String == "/role")

            // The conformance check of everything recorded.
            let documentFile = TestSupport.writeFile("openapi.yaml", document)
            let responses = TestSupport.writeFile("responses.json", try JSONEncoder().encode(api.recorded))
            let checked = try Peer.run("Tests/peer/conform.py", [documentFile.path, responses.path])
            #expect(
                checked.status == 0, "responses that do not conform to the document:\n\(checked.stdout.prefix(4_000))\(checked.stderr.suffix(400))")
            #expect(api.recorded.count > 200)
        }
    }
}
