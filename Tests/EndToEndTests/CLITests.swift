import ConsentryTesting
import Foundation
import Testing

/// Runs `consentry` with `--vault` appended.
func consentry(_ vault: URL, _ arguments: [String], environment: [String: String] = [:]) throws -> CLI.Result {
    try CLI.run(arguments + ["--vault", vault.path], environment: environment)
}

func newVaultPath() -> URL { TestSupport.temporaryDirectory("e2e").appendingPathComponent("vault") }

@Suite("consentry binary")
struct CLITests {
    @Test("`init` in an empty folder uses the built-in policy set, and the vault works")
    func initInAnEmptyFolder() throws {
        let empty = TestSupport.temporaryDirectory("empty")
        let created = try CLI.run(["init", "--vault", "vault"], directory: empty)
        #expect(created.status == 0, "\(created.stderr)")
        let names = try FileManager.default.contentsOfDirectory(atPath: empty.appendingPathComponent("vault/policies").path).sorted()
        #expect(names == ["README.md", "fields.yaml", "purposes.yaml", "rights.yaml", "roles.yaml"])
        #expect(try CLI.run(["status", "--vault", "vault"], directory: empty).status == 0)
        #expect(try CLI.run(["policy", "check", "vault/policies"], directory: empty).status == 0)
    }

    @Test("`consentry --help` lists the commands and exit codes")
    func help() throws {
        let result = try CLI.run(["--help"])
        #expect(result.status == 0)
        for command in ["init", "status", "import", "demo", "check", "keys"] { #expect(result.stdout.contains(command)) }
        #expect(result.stdout.contains("Exit codes"))
    }

    @Test("init, import, status and check work end to end and print no personal data")
    func walkthrough() throws {
        let vault = newVaultPath()
        let initResult = try consentry(vault, ["init"])
        #expect(initResult.status == 0, "\(initResult.stderr)")
        let csv = TestSupport.writeFile(
            "crm.csv",
            "email,customer_id,first_name,last_name,phone,city,shoe_size\n\(Canary.email),\(Canary.customerID),\(Canary.firstName),\(Canary.lastName),\(Canary.phone),\(Canary.city),44\n"
                + "\(Canary.firstName)-at-nowhere,C2,\(Canary.firstName),,,,\n")
        let imported = try consentry(vault, ["import", "profiles", csv.path, "--source", "crm"])
        #expect(imported.status == 3, "a rejected row must give exit code 3")
        #expect(imported.stdout.contains("inserted   1 new subjects"))
        #expect(imported.stdout.contains("shoe_size (1)"), "values of rejected rows are not counted as dropped")
        #expect(imported.stderr.contains("crm.csv:3: field `email`: not a valid e-mail address"))
        let events = TestSupport.writeFile(
            "ev.jsonl", #"{"id":"e1","email":"\#(Canary.email)","type":"view","time":"2026-11-19T10:00:00Z","item_id":"sku-1"}"# + "\n")
        let eventResult = try consentry(vault, ["import", "events", events.path, "--json"])
        #expect(eventResult.status == 0)
        #expect(eventResult.stdout.contains("\"inserted\" : 1"))
        let status = try consentry(vault, ["status", "--json"])
        #expect(status.status == 0)
        #expect(status.stdout.contains("\"subjects\" : 1") && status.stdout.contains("\"events\" : 1"))
        let check = try consentry(vault, ["check"])
        #expect(check.status == 0 && check.stdout.contains("check passed"))
        let rotate = try consentry(vault, ["keys", "rotate"])
        #expect(rotate.status == 0 && rotate.stdout.contains("from version 1 to 2"))
        for result in [initResult, imported, eventResult, status, check, rotate] {
            for canary in Canary.forms {
                #expect(!result.stdout.contains(canary) && !result.stderr.contains(canary), "\(canary) printed")
            }
        }
    }

    @Test("exit codes: 1 for an unusable file or a missing vault, 64 for usage errors")
    func exitCodes() throws {
        let vault = newVaultPath()
        #expect(try consentry(vault, ["status"]).status == 1)
        #expect(try consentry(vault, ["status"]).stderr.contains("no vault at"))
        _ = try consentry(vault, ["init"])
        let empty = TestSupport.writeFile("empty.csv", "")
        let result = try consentry(vault, ["import", "profiles", empty.path, "--source", "crm"])
        #expect(result.status == 1 && result.stderr.hasPrefix("error: ") && result.stderr.contains("is empty"))
        #expect(try consentry(vault, ["import", "profiles", empty.path, "--source", "fax"]).status == 64)
        #expect(try consentry(vault, ["import", "profiles", "/tmp/x.txt", "--source", "crm"]).status == 64)
        #expect(try consentry(vault, ["check", "--fields", "favourite_colour"]).status == 64)
    }

    @Test("the master key is never accepted on the command line")
    func noKeyInArgv() throws {
        let vault = newVaultPath()
        let result = try consentry(vault, ["init", "--master-key", Data(repeating: 1, count: 32).base64EncodedString()])
        #expect(result.status == 64)
        #expect(!FileManager.default.fileExists(atPath: vault.path))
    }

    @Test("CONSENTRY_MASTER_KEY supplies the key: no key file is written, and the vault opens only with it")
    func environmentKey() throws {
        let vault = newVaultPath()
        let key = Data((0..<32).map { UInt8($0 * 7 & 0xFF) }).base64EncodedString()
        let created = try consentry(vault, ["init"], environment: ["CONSENTRY_MASTER_KEY": key])
        #expect(created.status == 0, "\(created.stderr)")
        #expect(!created.stdout.contains(key) && !created.stderr.contains(key))
        #expect(!FileManager.default.fileExists(atPath: vault.appendingPathComponent("keys/master.key").path))
        #expect(try consentry(vault, ["status"], environment: ["CONSENTRY_MASTER_KEY": key]).status == 0)
        let without = try consentry(vault, ["status"])
        #expect(without.status == 1 && without.stderr.contains("CONSENTRY_MASTER_KEY"))
        let wrong = try consentry(vault, ["status"], environment: ["CONSENTRY_MASTER_KEY": Data(repeating: 9, count: 32).base64EncodedString()])
        #expect(wrong.status == 1 && wrong.stderr.contains("does not open"))
        let malformed = try consentry(vault, ["status"], environment: ["CONSENTRY_MASTER_KEY": "c2hvcnQ="])
        #expect(malformed.status == 1 && malformed.stderr.contains("exactly 32 bytes") && !malformed.stderr.contains("c2hvcnQ="))
    }

    @Test("a master key file readable by others is refused")
    func keyPermissions() throws {
        let vault = newVaultPath()
        _ = try consentry(vault, ["init"])
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: vault.appendingPathComponent("keys/master.key").path)
        let result = try consentry(vault, ["status"])
        #expect(result.status == 1 && result.stderr.contains("chmod 600"))
    }

    @Test("demo data is deterministic for a seed and passes the check")
    func demo() throws {
        let a = TestSupport.temporaryDirectory("demo-a"), b = TestSupport.temporaryDirectory("demo-b")
        #expect(try CLI.run(["demo", "--write-files", a.path, "--profiles", "50", "--seed", "7"]).status == 0)
        #expect(try CLI.run(["demo", "--write-files", b.path, "--profiles", "50", "--seed", "7"]).status == 0)
        let fa = try Data(contentsOf: a.appendingPathComponent("events.jsonl")), fb = try Data(contentsOf: b.appendingPathComponent("events.jsonl"))
        #expect(fa == fb && !fa.isEmpty)
        #expect(try Data(contentsOf: a.appendingPathComponent("profiles.csv")) == Data(contentsOf: b.appendingPathComponent("profiles.csv")))
        let vault = newVaultPath()
        let loaded = try consentry(vault, ["demo", "--profiles", "200", "--json"])
        #expect(loaded.status == 0, "\(loaded.stderr)")
        #expect(try consentry(vault, ["check"]).status == 0)
        // The written files import into a vault through the ordinary commands.
        let imported = try consentry(vault, ["import", "profiles", a.appendingPathComponent("profiles.csv").path, "--source", "crm"])
        #expect(imported.status == 0)
        let events = try consentry(vault, ["import", "events", a.appendingPathComponent("events.jsonl").path])
        #expect(events.status == 0, "\(events.stderr)")
    }
}

@Suite("Process hardening")
struct HardeningTests {
    @Test("files the binary creates are private even under a permissive umask")
    func privateFiles() throws {
        let directory = TestSupport.temporaryDirectory("umask")
        // `demo --write-files` creates files through Foundation, which honours the process umask.
        let result = try CLI.run(["demo", "--write-files", directory.path, "--profiles", "2"])
        #expect(result.status == 0)
        for name in ["profiles.csv", "events.jsonl"] {
            let mode = try FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent(name).path)[.posixPermissions] as? Int
            #expect(mode.map { $0 & 0o077 } == 0, "\(name) is readable by group or others: \(String(mode ?? 0, radix: 8))")
        }
    }
}
