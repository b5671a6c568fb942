import ConsentryTesting
import Foundation
import Testing

/// Hostile and careless input against the built binary and a running server: each gets a clear refusal that says
/// where, and the process survives it.
@Suite("hostile input", .serialized)
struct HostileInputTests {
    /// The first line a started process writes to standard output (a server's "serving … on …").
    static func firstLine(of process: Process) -> String {
        let out = (process.standardOutput as! Pipe).fileHandleForReading
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = out.availableData
            if chunk.isEmpty { break }
            line += chunk
        }
        return String(decoding: line, as: UTF8.self)
    }

    func body(_ server: ServerTests.Running, _ path: String, as role: String, raw: String) throws -> ServerTests.Running.Reply {
        try server.call("POST", path, token: server.tokens[role], body: Data(raw.utf8))
    }

    @Test("deeply nested segment rules over the API get 422 with line and column, and the server stays up")
    func deepRulesOverTheAPI() throws {
        let server = try ServerTests().start()
        defer { _ = server.stop() }
        let parens = String(repeating: "(", count: 100_000) + #"country = "DE""# + String(repeating: ")", count: 100_000)
        let nots = String(repeating: "not ", count: 50_000) + #"country = "DE""#
        for rule in [parens, nots] {
            let reply = try server.post("/v1/segments", as: "marketer", ["name": "deep", "purpose": "email_marketing", "rule": rule])
            #expect(reply.status == 422, "\(reply.status)")
            let detail = reply.json["detail"] as? String ?? ""
            #expect(detail.contains("line 1, column") && detail.contains("nests deeper than"), "\(detail)")
            #expect(reply.json["pointer"] as? String == "/rule")
        }
        #expect(try server.call("GET", "/healthz").status == 200, "the server survived")
    }

    @Test("deeply nested rules and templates on the command line exit 1 with line and column, never a crash")
    func deepInputOnTheCommandLine() throws {
        let vault = newVaultPath()
        #expect(try consentry(vault, ["init"]).status == 0)
        let rule = String(repeating: "(", count: 40_000) + "a = 1" + String(repeating: ")", count: 40_000)
        let defined = try consentry(vault, ["segment", "define", "deep", "--purpose", "email_marketing", "--rule", rule])
        #expect(defined.status == 1 && defined.stderr.contains("line 1, column") && defined.stderr.hasPrefix("error:"), "\(defined.stderr.prefix(300))")
        let template = TestSupport.writeFile("deep.txt", String(repeating: "{% if true %}", count: 50_000) + "x")
        let fields = try CLI.run(["template", "fields", template.path, "--policies", "policies"])
        #expect(fields.status == 1 && fields.stderr.contains("deep.txt:1:") && fields.stderr.contains("nest deeper"), "\(fields.stderr.prefix(300))")
    }

    @Test("JSON bodies: duplicate keys, NaN and out-of-range numbers are refused with where; a lower-case bearer scheme is accepted")
    func bodies() throws {
        let server = try ServerTests().start()
        defer { _ = server.stop() }
        let duplicate = try body(server, "/v1/render", as: "campaign_service", raw: #"{"template": "hello", "template": "other", "subject": {"email": "x@example.test"}}"#)
        #expect(duplicate.status == 422 && duplicate.json["pointer"] as? String == "/template", "\(duplicate.text)")
        #expect((duplicate.json["detail"] as? String)?.contains("duplicate key `template`") == true)
        let nested = try body(server, "/v1/render", as: "campaign_service", raw: #"{"template": "hello", "subject": {"email": "x@example.test", "email": "y@example.test"}}"#)
        #expect(nested.status == 422 && nested.json["pointer"] as? String == "/subject/email", "\(nested.text)")
        #expect(!nested.text.contains("example.test"), "a refusal never echoes a value")
        let huge = try body(server, "/v1/events", as: "data_engineer", raw: #"{"events": [{"amount": 1e400}]}"#)
        #expect(huge.status == 422 && huge.json["pointer"] as? String == "/events/0/amount", "\(huge.text)")
        #expect((huge.json["detail"] as? String)?.contains("number out of range") == true)
        let nan = try body(server, "/v1/render", as: "campaign_service", raw: #"{"template": NaN}"#)
        #expect(nan.status == 422 && (nan.json["detail"] as? String)?.contains("at byte 14") == true, "\(nan.text)")
        let notObject = try body(server, "/v1/render", as: "campaign_service", raw: "[1, 2]")
        #expect(notObject.status == 422 && (notObject.json["detail"] as? String)?.contains("one JSON object") == true)
        let deep = try body(server, "/v1/render", as: "campaign_service", raw: String(repeating: "[", count: 100_000))
        #expect(deep.status == 422 && (deep.json["detail"] as? String)?.contains("nested deeper than 16 levels") == true, "\(deep.text)")
        let lower = try server.call(
            "POST", "/v1/render", body: try JSONSerialization.data(withJSONObject: ["template": "hello", "subject": ["email": Canary.email]]),
            headers: ["Authorization": "bearer \(server.tokens["campaign_service"]!)"])
        #expect(lower.status == 200, "the scheme is case-insensitive: \(lower.text)")
        let members = try server.call("GET", "/v1/segments/everyone/members?limit=abc", token: server.tokens["marketer"])
        #expect(members.status == 422 && members.json["pointer"] as? String == "/limit", "\(members.text)")
        #expect(try server.call("GET", "/v1/segments/everyone/members?limit=5000", token: server.tokens["marketer"]).status == 422)
        #expect(try server.call("GET", "/v1/segments/everyone/members?limit=2", token: server.tokens["marketer"]).status == 200)
        let dsr = try server.post("/v1/dsr", as: "compliance_officer", ["type": "access", "regime": "gdpr"])
        #expect(dsr.status == 422 && !dsr.text.contains("`--"), "API answers name no command-line flags: \(dsr.text)")
    }

    @Test("/readyz answers 503 with why when the vault's disk has less free space than the server needs")
    func readinessOnAFullDisk() throws {
        let server = try ServerTests().start(arguments: ["--rate-limit", "0", "--min-free-mib", "1099511627776"])
        defer { _ = server.stop() }
        let ready = try server.call("GET", "/readyz")
        #expect(ready.status == 503 && (ready.json["detail"] as? String)?.contains("MiB free, less than") == true, "\(ready.text)")
        #expect(try server.call("GET", "/healthz").status == 200)
    }

    @Test("a master key from the environment is wiped from the server's /proc environment after it is read")
    func masterKeyLeavesTheEnvironment() throws {
        let vault = newVaultPath()
        let key = Data((0..<32).map { UInt8(($0 * 7 + 3) & 0xff) }).base64EncodedString()
        #expect(try consentry(vault, ["init"], environment: ["CONSENTRY_MASTER_KEY": key]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: vault.appendingPathComponent("keys/master.key").path))
        let process = try CLI.start(["serve", "--vault", vault.path, "--port", "0"], environment: ["CONSENTRY_MASTER_KEY": key])
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        #expect(Self.firstLine(of: process).contains("serving"), "the server started with the key from the environment")
        let environ = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(process.processIdentifier)/environ"))
        // The kernel shows the environment block as it was laid out at exec; the name stays there, the value is zeroed.
        #expect(environ.range(of: Data(key.utf8)) == nil, "the key is gone from /proc/<pid>/environ")
        #expect(environ.range(of: Data("CONSENTRY_MASTER_KEY=".utf8) + Data(repeating: 0, count: key.utf8.count)) != nil)
    }

    @Test("an actor with control characters is refused; the vault's policy copies are private to the operator")
    func actorsAndFileModes() throws {
        let vault = newVaultPath()
        #expect(try consentry(vault, ["init"]).status == 0)
        let refused = try consentry(vault, ["status", "--actor", "eve\r\nsystem"])
        #expect(refused.status != 0 && refused.stderr.contains("`--actor` is 1 to 128 printable characters"), "\(refused.stderr)")
        let bidi = try consentry(vault, ["status", "--actor", "eve\u{202E}"])
        #expect(bidi.status != 0)
        let names = try FileManager.default.contentsOfDirectory(atPath: vault.appendingPathComponent("policies").path)
        #expect(!names.isEmpty)
        for name in names {
            let mode = try FileManager.default.attributesOfItem(atPath: vault.appendingPathComponent("policies/\(name)").path)[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(name) is \(String(mode ?? 0, radix: 8))")
        }
    }

    @Test("a fatal fault prints one `error:` line and exits 70, never a stack trace or a bare signal status")
    func faultsAreReported() throws {
        let vault = newVaultPath()
        #expect(try consentry(vault, ["init"]).status == 0)
        let process = try CLI.start(["serve", "--vault", vault.path, "--port", "0"])
        #expect(Self.firstLine(of: process).contains("serving"))
        kill(process.processIdentifier, SIGSEGV)
        process.waitUntilExit()
        let stderr = String(decoding: (process.standardError as! Pipe).fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationReason == .exit && process.terminationStatus == 70, "\(process.terminationReason) \(process.terminationStatus)")
        // The server's own log lines come first; the fault is the last line.
        let last = stderr.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.hasPrefix("error: consentry stopped on an internal fault"), "\(stderr.suffix(300))")
        #expect(!stderr.contains("Backtrace") && !stderr.contains("Thread 0"), "no stack trace reaches the user")
    }

    @Test("a read-only vault is refused with what is wrong and what to do, not SQLite's \"unable to open database file\"")
    func readOnlyVault() throws {
        let vault = newVaultPath()
        #expect(try consentry(vault, ["init"]).status == 0)
        // A place another user can reach, holding a copy that user owns but may not write.
        let base = URL(fileURLWithPath: "/tmp/consentry-readonly-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(at: base) }
        let copy = base.appendingPathComponent("vault")
        try FileManager.default.copyItem(at: vault, to: copy)
        var arguments = ["status", "--vault", copy.path]
        if getuid() == 0 {
            // Root may write anything: run the binary as `nobody`, who owns the copy without write permission.
            #expect(chown(base.path, 65534, 65534) == 0)
            for url in [copy] + TestSupport.files(under: copy) + ["keys", "audit", "exports", "policies"].map({ copy.appendingPathComponent($0) }) {
                #expect(chown(url.path, 65534, 65534) == 0)
            }
            arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", CLI.binary.path] + arguments
        }
        for url in TestSupport.files(under: copy) { chmod(url.path, 0o400) }
        for sub in ["keys", "audit", "exports", "policies", ""] { chmod(copy.appendingPathComponent(sub).path, 0o500) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: getuid() == 0 ? "/usr/bin/setpriv" : CLI.binary.path)
        process.arguments = arguments
        process.currentDirectoryURL = base
        let err = Pipe()
        process.standardError = err
        process.standardOutput = Pipe()
        try process.run()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 1, "\(stderr)")
        #expect(stderr.contains("is read-only for this user") && !stderr.contains("unable to open database file"), "\(stderr)")
    }
}
