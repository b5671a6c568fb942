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

    @Test(
        "a server under API load and CLI imports, erasures, consent writes and status beside it: no lost write, the erasure holds, the chain verifies"
    )
    func serverAndCommandLineTogether() throws {
        let server = try ServerTests().start()
        let acknowledged = CrashTests.Acknowledged()
        let load = CrashTests.LoadWorkers(2) { worker, n in
            if worker == 0 {
                let email = "api-\(n)-7f3a@example.test"
                let reply = try? server.post(
                    "/v1/profiles", as: "data_engineer", ["source": "web", "profiles": [["email": email, "first_name": "Api"]]])
                if reply?.status == 200 && reply?.json["inserted"] as? Int == 1 { acknowledged.add(profile: email) }
            } else {
                let reply = try? server.post("/v1/render", as: "campaign_service", ["template": "hello", "subject": ["email": Canary.email]])
                if reply?.status == 200 { acknowledged.addRender() }
            }
        }
        // The command line, meanwhile: a file import, an erasure of one of its people, consent writes and status.
        let rows = (1...200).map { "cli-\($0)-7f3a@example.test,Cli" }.joined(separator: "\n")
        let file = TestSupport.writeFile("cli.csv", "email,first_name\n" + rows + "\n")
        #expect(try consentry(server.vault, ["import", "profiles", file.path, "--source", "crm", "--batch-size", "50"]).status == 0)
        let erased = "cli-7-7f3a@example.test"
        let opened = try CLI.run(
            ["dsr", "open", "--type", "erasure", "--regime", "gdpr", "--email", "-", "--json", "--vault", server.vault.path], input: erased)
        let request = try JSONSerialization.jsonObject(with: Data(opened.stdout.utf8)) as? [String: Any] ?? [:]
        let id = try #require(request["id"] as? String), code = try #require(request["code"] as? String)
        #expect(try consentry(server.vault, ["dsr", "verify", id, "--code", code]).status == 0)
        let fulfilled = try consentry(server.vault, ["dsr", "fulfil", id])
        #expect(fulfilled.status == 0, "\(fulfilled.stderr)")
        for step in ["grant", "withdraw", "grant"] {
            #expect(try consentry(server.vault, ["consent", step, "--email", Canary.email, "--purpose", "personalization"]).status == 0)
            #expect(try consentry(server.vault, ["status"]).status == 0)
        }
        load.stop()
        #expect(try server.call("GET", "/readyz").status == 200, "the server's files stayed its own")
        #expect(server.stop() == 0)
        #expect(acknowledged.renders > 0 && !acknowledged.profiles.isEmpty, "the load reached the server")
        for email in acknowledged.profiles + ["cli-1-7f3a@example.test", "cli-200-7f3a@example.test"] {
            let read = try consentry(
                server.vault,
                [
                    "profile", "show", "--email", email, "--as", "compliance_officer", "--purpose", "service", "--fields", "first_name", "--reason",
                    "t",
                ])
            #expect(read.status == 0, "an acknowledged profile is missing")
        }
        let gone = try consentry(
            server.vault,
            ["profile", "show", "--email", erased, "--as", "compliance_officer", "--purpose", "service", "--fields", "first_name", "--reason", "t"])
        #expect(gone.status != 0, "the erased subject stays erased")
        #expect(try consentry(server.vault, ["dsr", "verify-erasure", id]).status == 0)
        #expect(try consentry(server.vault, ["audit", "verify"]).status == 0)
        #expect(try consentry(server.vault, ["check"]).status == 0)
    }
}
