import ConsentryAudit
import ConsentryCore
import ConsentryGate
import ConsentryServer
import ConsentryTesting
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// The request id of an API call (`X-Request-Id`) reaches the audit log: every entry the call writes records it, so
/// that a caller's log line and the vault's record of processing can be matched.
@Suite("request ids in the audit log (in-process)")
struct RequestIDTests {
    @Test("a read and a render record the caller's X-Request-Id; a call without one records the id the server answered with")
    func requestIDsAreAudited() async throws {
        let vault = try TestSupport.makeVault()
        let admin = Principal(actor: "t", role: .admin)
        _ = try await vault.importProfiles(
            from: TestSupport.writeFile("p.csv", "email,first_name\n\(Canary.email),\(Canary.firstName)\n"), source: .crm, format: .csv)
        for state in [ConsentState.pending, .confirmed] {
            try await vault.recordConsent(ConsentChange(purpose: .emailMarketing, state: state, source: "form"), subject: .email(Canary.email), as: admin)
        }
        let officer = try await vault.createToken(name: "co", role: .complianceOfficer, expiresAt: nil, as: admin).token
        let service = try await vault.createToken(name: "esp", role: .campaignService, expiresAt: nil, as: admin).token
        _ = try await vault.registerTemplate(
            name: "hello", purpose: .emailMarketing, format: "text", source: "Hi {{ first_name }}", fields: ["first_name"], as: admin)
        let app = Server.buildApplication(vault: vault, configuration: ServerConfiguration(rateLimit: 0))
        let answered = try await app.test(.router) { client -> String in
            func post(_ path: String, token: String, requestID: String?, _ object: [String: any Sendable]) async throws -> (Int, String?, String) {
                var headers: HTTPFields = [.authorization: "Bearer \(token)", .contentType: "application/json"]
                if let requestID { headers[HTTPField.Name("X-Request-Id")!] = requestID }
                let response = try await client.execute(
                    uri: path, method: .post, headers: headers,
                    body: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: object)))
                return (Int(response.status.code), response.headers[HTTPField.Name("X-Request-Id")!], String(buffer: response.body))
            }
            let read = try await post(
                "/v1/profiles/read", token: officer, requestID: "req-read-7f3a",
                ["subject": ["email": Canary.email], "purpose": "service", "fields": ["first_name"], "reason": "ticket 1"])
            #expect(read.0 == 200 && read.1 == "req-read-7f3a", "\(read.2)")
            let render = try await post(
                "/v1/render", token: service, requestID: "req-render-7f3a", ["template": "hello", "subject": ["email": Canary.email]])
            #expect(render.0 == 200 && render.1 == "req-render-7f3a", "\(render.2)")
            let unnamed = try await post(
                "/v1/profiles/read", token: officer, requestID: nil,
                ["subject": ["email": Canary.email], "purpose": "service", "fields": ["first_name"], "reason": "ticket 2"])
            #expect(unnamed.0 == 200)
            return try #require(unnamed.1)
        }
        let reads = try await vault.queryAudit(AuditFilter(action: "read_profile"), as: admin)
        #expect(reads.map(\.requestID).suffix(2) == ["req-read-7f3a", answered])
        let renders = try await vault.queryAudit(AuditFilter(action: "render"), as: admin)
        #expect(renders.last?.requestID == "req-render-7f3a")
    }
}
