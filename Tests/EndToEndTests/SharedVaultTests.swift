import ConsentryTesting
import Foundation
import Testing

/// Several processes on one vault: a running server and CLI commands beside it.
@Suite("server and CLI processes on one vault", .serialized)
struct SharedVaultTests {
    static func identity(_ path: String) -> [UInt64]? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return [UInt64(info.st_dev), UInt64(info.st_ino)]
    }

    @Test("an erasure's raw-file scan in the server keeps SQLite's locks: a CLI command afterwards deletes no WAL and no acknowledged write is lost")
    func erasureScanKeepsTheServersLocks() throws {
        let server = try ServerTests().start()
        let wal = server.vault.appendingPathComponent("vault.sqlite-wal").path
        let other = "erase-me-7f3a@example.test"
        let imported = try server.post("/v1/profiles", as: "data_engineer", ["source": "crm", "profiles": [["email": other, "first_name": "Eve"]]])
        #expect(imported.status == 200, "\(imported.text)")
        let opened = try server.post("/v1/dsr", as: "compliance_officer", ["type": "erasure", "regime": "gdpr", "email": other])
        let id = try #require(opened.json["id"] as? String), code = try #require(opened.json["verification_code"] as? String)
        #expect(try server.post("/v1/dsr/\(id)/verify", as: "compliance_officer", ["code": code]).status == 200)
        let fulfilled = try server.post("/v1/dsr/\(id)/fulfil", as: "compliance_officer", [:])
        #expect(fulfilled.status == 200, "\(fulfilled.text)")
        let walBefore = try #require(Self.identity(wal))
        // A second process opens and closes the vault: with the server's locks intact it is not the last connection.
        #expect(try consentry(server.vault, ["status"]).status == 0)
        #expect(Self.identity(wal) == walBefore, "the CLI command must leave the server's write-ahead log in place")
        let more = try server.post(
            "/v1/profiles", as: "data_engineer",
            ["source": "crm", "profiles": (1...3).map { ["email": "after-\($0)-7f3a@example.test", "first_name": "Ann"] }])
        #expect(more.status == 200 && more.json["inserted"] as? Int == 3, "\(more.text)")
        let render = try server.post("/v1/render", as: "campaign_service", ["template": "hello", "subject": ["email": Canary.email]])
        #expect(render.status == 200)
        #expect(try server.call("GET", "/readyz").status == 200)
        #expect(server.stop() == 0)
        let status = try consentry(server.vault, ["status", "--json"])
        let subjects = try #require((try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])?["subjects"] as? Int)
        #expect(subjects == 4, "the canary and the three profiles acknowledged after the erasure are stored")
        #expect(try consentry(server.vault, ["audit", "verify"]).status == 0)
        let renders = try consentry(server.vault, ["audit", "query", "--action", "render", "--json"])
        #expect(renders.status == 0 && renders.stdout.contains("campaign_service"), "the render that released data is in the log")
    }
}
