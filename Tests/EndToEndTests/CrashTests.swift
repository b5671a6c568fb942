import ConsentryTesting
import Foundation
import Synchronization
import Testing

/// Invariant 6: a SIGKILL at any moment leaves the vault readable and consistent.
@Suite("Crash safety", .serialized)
struct CrashTests {
    static let profiles = 6_000

    /// Starts `arguments`, kills it with SIGKILL after `delay` seconds (or lets it finish), and returns whether it was killed.
    func killAfter(_ delay: Double, _ arguments: [String]) throws -> Bool {
        let process = try CLI.start(arguments)
        let deadline = Date().addingTimeInterval(delay)
        while process.isRunning && Date() < deadline { usleep(2_000) }
        guard process.isRunning else { return false }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        return true
    }

    func statusCounts(_ vault: URL) throws -> [String: Int] {
        let status = try consentry(vault, ["status", "--json"])
        #expect(status.status == 0, "\(status.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any] ?? [:]
        return object.compactMapValues { $0 as? Int }
    }

    @Test("killing an import at random points leaves whole batches only, and every subject decrypts")
    func killDuringImport() throws {
        let files = TestSupport.temporaryDirectory("crash-files")
        #expect(try CLI.run(["demo", "--write-files", files.path, "--profiles", "\(Self.profiles)", "--events-per-profile", "3"]).status == 0)
        var generator = SystemRandomNumberGenerator()
        var killedCount = 0
        // Calibrate: kill points are drawn from the duration of a whole import on this machine, so that they
        // land inside the import however fast it is.
        let calibration = newVaultPath()
        #expect(try consentry(calibration, ["init"]).status == 0)
        let started = Date()
        #expect(
            try consentry(
                calibration, ["import", "profiles", files.appendingPathComponent("profiles.csv").path, "--source", "crm", "--batch-size", "500"]
            ).status == 0)
        let duration = Date().timeIntervalSince(started)
        for run in 0..<4 {
            let vault = newVaultPath()
            #expect(try consentry(vault, ["init"]).status == 0)
            let delay = Double.random(in: (duration * 0.1)...(duration * 0.8), using: &generator)
            let killed = try killAfter(
                delay,
                [
                    "import", "profiles", files.appendingPathComponent("profiles.csv").path, "--source", "crm", "--batch-size", "500", "--vault",
                    vault.path,
                ])
            if killed { killedCount += 1 }
            let check = try consentry(vault, ["check"])
            #expect(check.status == 0, "run \(run) (killed after \(delay)s): \(check.stdout) \(check.stderr)")
            let counts = try statusCounts(vault)
            let subjects = counts["subjects"] ?? -1
            #expect(subjects % 500 == 0, "a partial batch is visible: \(subjects) subjects")
            // Every stored subject has its e-mail and customer-id index: no half-written subject.
            #expect((counts["identities"] ?? 0) >= subjects * 2)
            // Importing again completes the file without duplicating anyone.
            let again = try consentry(vault, ["import", "profiles", files.appendingPathComponent("profiles.csv").path, "--source", "crm"])
            #expect(again.status == 0)
            #expect(try statusCounts(vault)["subjects"] == Self.profiles)
            // Events killed mid-way, then resumed, end up exactly once each.
            let eventsFile = files.appendingPathComponent("events.jsonl").path
            _ = try killAfter(
                Double.random(in: (duration * 0.1)...(duration * 0.8), using: &generator),
                ["import", "events", eventsFile, "--batch-size", "2000", "--vault", vault.path])
            let eventsAgain = try consentry(vault, ["import", "events", eventsFile, "--json"])
            #expect(eventsAgain.status == 0)
            let lines = try String(contentsOfFile: eventsFile, encoding: .utf8).split(separator: "\n").count
            #expect(try statusCounts(vault)["events"] == lines)
        }
        #expect(killedCount > 0, "no run was killed mid-import; the test proved nothing")
    }

    @Test("killing a key rotation at random points leaves every subject readable; the next run finishes it")
    func killDuringRotation() throws {
        let vault = newVaultPath()
        #expect(try consentry(vault, ["demo", "--profiles", "4000", "--events-per-profile", "0"]).status == 0)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<3 {
            _ = try killAfter(Double.random(in: 0.01...0.4, using: &generator), ["keys", "rotate", "--vault", vault.path])
            let check = try consentry(vault, ["check"])
            #expect(check.status == 0, "\(check.stdout) \(check.stderr)")
        }
        let finish = try consentry(vault, ["keys", "rotate"])
        #expect(finish.status == 0)
        let counts = try statusCounts(vault)
        #expect(counts["subjects"] == 4000)
        #expect(try consentry(vault, ["check"]).status == 0)
        let status = try consentry(vault, ["status", "--json"])
        #expect(status.stdout.contains("\"key_rotation_pending\" : false"))
    }

    @Test("killing an erasure at random points leaves the subject wholly present or wholly gone; a re-run completes it")
    func killDuringErasure() throws {
        var generator = SystemRandomNumberGenerator()
        var duration = 0.0
        var killedCount = 0
        for run in 0..<5 {
            let vault = newVaultPath()
            #expect(try consentry(vault, ["demo", "--profiles", "300"]).status == 0)
            let csv = TestSupport.writeFile(
                "c.csv", "email,customer_id,first_name,city\n\(Canary.email),\(Canary.customerID),\(Canary.firstName),\(Canary.city)\n")
            #expect(try consentry(vault, ["import", "profiles", csv.path, "--source", "crm"]).status == 0)
            let opened = try CLI.run(
                ["dsr", "open", "--type", "erasure", "--regime", "gdpr", "--email", "-", "--json", "--vault", vault.path], input: Canary.email)
            let object = try JSONSerialization.jsonObject(with: Data(opened.stdout.utf8)) as? [String: Any] ?? [:]
            let id = try #require(object["id"] as? String), code = try #require(object["code"] as? String)
            #expect(try consentry(vault, ["dsr", "verify", id, "--code", code]).status == 0)
            let subjectsBefore = try statusCounts(vault)["subjects"] ?? -1
            let arguments = ["dsr", "fulfil", id, "--vault", vault.path]
            if run == 0 {
                // Calibrate on an unkilled run: kill points are drawn from its duration.
                let started = Date()
                #expect(try CLI.run(arguments).status == 0)
                duration = Date().timeIntervalSince(started)
                continue
            }
            let started = Date()
            if try killAfter(Double.random(in: 0...duration, using: &generator), arguments) {
                killedCount += 1
            } else {
                // The erasure finished first: the calibration ran cold (a first start of the binary, files not yet
                // cached). Later kill points are drawn from the warm duration, so that they land inside it.
                duration = min(duration, Date().timeIntervalSince(started)) * 0.8
            }
            #expect(try consentry(vault, ["check"]).status == 0, "run \(run)")
            #expect(try consentry(vault, ["audit", "verify"]).status == 0, "run \(run)")
            let show = try consentry(vault, ["dsr", "show", id, "--json"])
            let status = (try JSONSerialization.jsonObject(with: Data(show.stdout.utf8)) as? [String: Any])?["status"] as? String
            let subjects = try statusCounts(vault)["subjects"] ?? -1
            switch status {
            case "completed":
                #expect(subjects == subjectsBefore - 1, "run \(run): completed but the subject is present")
            case "in_progress":
                // Erased, killed before its verification signed the receipt: gone, and the re-run only verifies and signs.
                #expect(subjects == subjectsBefore - 1, "run \(run): erased but the subject is present")
                #expect(try consentry(vault, ["dsr", "fulfil", id]).status == 0, "run \(run): the re-run completes it")
            default:
                #expect(status == "verified", "run \(run): \(status ?? "no status")")
                #expect(subjects == subjectsBefore, "run \(run): not erased but the subject is partly gone")
                #expect(try consentry(vault, ["dsr", "fulfil", id]).status == 0, "run \(run): the re-run completes it")
            }
            let final = try consentry(vault, ["dsr", "show", id, "--json"])
            #expect((try JSONSerialization.jsonObject(with: Data(final.stdout.utf8)) as? [String: Any])?["status"] as? String == "completed")
            #expect(try consentry(vault, ["dsr", "verify-erasure", id]).status == 0, "run \(run)")
        }
        #expect(killedCount > 0, "no run was killed; the test proved nothing")
    }

    /// Threads that call `body(worker, n)` for n = 1, 2, … until stopped.
    final class LoadWorkers: Sendable {
        private let stopped = Mutex(false)
        private let group = DispatchGroup()

        init(_ count: Int, _ body: @escaping @Sendable (_ worker: Int, _ n: Int) -> Void) {
            for worker in 0..<count {
                group.enter()
                Thread.detachNewThread { [self] in
                    defer { group.leave() }
                    var n = 0
                    while !stopped.withLock({ $0 }) {
                        n += 1
                        body(worker, n)
                    }
                }
            }
        }

        /// Stops every worker and waits for their last call to return.
        func stop() {
            stopped.withLock { $0 = true }
            group.wait()
        }
    }

    /// What the clients of a killed server were told had happened.
    final class Acknowledged: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var profiles: [String] = []
        private(set) var consents = 0
        private(set) var renders = 0
        private(set) var cliConsents = 0
        func add(profile: String) { lock.withLock { profiles.append(profile) } }
        func addConsent() { lock.withLock { consents += 1 } }
        func addRender() { lock.withLock { renders += 1 } }
        func addCLIConsent() { lock.withLock { cliConsents += 1 } }
    }

    @Test("killing a server under mixed API load, with CLI writes beside it, loses no acknowledged write and leaves a verifying chain")
    func killServerUnderLoad() throws {
        var generator = SystemRandomNumberGenerator()
        var crashPoints = 0
        for run in 0..<3 {
            let server = try ServerTests().start()
            let acknowledged = Acknowledged()
            let load = LoadWorkers(4) { worker, n in
                switch worker {
                case 0:
                    let email = "load-\(run)-\(n)-7f3a@example.test"
                    let reply = try? server.post(
                        "/v1/profiles", as: "data_engineer", ["source": "crm", "profiles": [["email": email, "first_name": "Lo"]]])
                    if reply?.status == 200 && reply?.json["inserted"] as? Int == 1 { acknowledged.add(profile: email) }
                case 1:
                    let state = n % 2 == 0 ? "granted" : "withdrawn"
                    let reply = try? server.post(
                        "/v1/consent", as: "admin", ["subject": ["email": Canary.email], "purpose": "personalization", "state": state])
                    if reply?.status == 201 { acknowledged.addConsent() }
                case 2:
                    let reply = try? server.post("/v1/render", as: "campaign_service", ["template": "hello", "subject": ["email": Canary.email]])
                    if reply?.status == 200 { acknowledged.addRender() }
                default:
                    // Another process writing the same vault at the same time.
                    let state = n % 2 == 0 ? "grant" : "withdraw"
                    if (try? consentry(server.vault, ["consent", state, "--email", Canary.email, "--purpose", "profiling"]))?.status == 0 {
                        acknowledged.addCLIConsent()
                    }
                }
            }
            Thread.sleep(forTimeInterval: Double.random(in: 0.5...2.0, using: &generator))
            kill(server.process.processIdentifier, SIGKILL)
            server.process.waitUntilExit()
            load.stop()
            crashPoints += 1
            #expect(try consentry(server.vault, ["check"]).status == 0, "run \(run)")
            let verify = try consentry(server.vault, ["audit", "verify"])
            #expect(verify.status == 0, "run \(run): \(verify.stderr)")
            #expect(acknowledged.renders > 0 && !acknowledged.profiles.isEmpty, "run \(run): the load reached the server")
            // Every acknowledged import is stored.
            for email in acknowledged.profiles {
                let read = try consentry(
                    server.vault,
                    [
                        "profile", "show", "--email", email, "--as", "compliance_officer", "--purpose", "service", "--fields", "first_name",
                        "--reason", "crash test",
                    ])
                #expect(read.status == 0, "run \(run): an acknowledged profile is missing")
            }
            // Every acknowledged consent write and render has its audit entry.
            let audit = try consentry(server.vault, ["audit", "query", "--json", "--limit", "100000"])
            let entries = (try JSONSerialization.jsonObject(with: Data(audit.stdout.utf8)) as? [[String: Any]]) ?? []
            let renders = entries.filter { $0["action"] as? String == "render" && $0["decision"] as? String == "permit" }.count
            let consentWrites = entries.filter { $0["action"] as? String == "consent_write" && $0["purpose"] as? String == "personalization" }.count
            let cliWrites = entries.filter { $0["action"] as? String == "consent_write" && $0["purpose"] as? String == "profiling" }.count
            #expect(renders >= acknowledged.renders, "run \(run): \(renders) render entries for \(acknowledged.renders) acknowledged renders")
            #expect(consentWrites >= acknowledged.consents && cliWrites >= acknowledged.cliConsents, "run \(run)")
        }
        print("crash points tried (server killed under load): \(crashPoints)")
    }

    /// Write paths killed at random moments on a demo vault: afterwards the vault checks, the chain verifies, and the
    /// command run again succeeds.
    static let writePaths: [(name: String, arguments: [String])] = [
        ("segment run", ["segment", "run", "browsers"]),
        ("engagement score", ["score", "engagement"]),
        ("recommendations", ["recommend"]),
        ("consent writes", ["consent", "withdraw", "--customer-id", "C00000007", "--purpose", "email_marketing"]),
        ("flag writes", ["consent", "flag", "--customer-id", "C00000008", "--set", "restriction"]),
    ]

    @Test("killing segment and score runs, recommendations, consent and flag writes at random points leaves a consistent vault")
    func killDuringWritePaths() throws {
        let vault = newVaultPath()
        #expect(try consentry(vault, ["demo", "--profiles", "2000", "--events-per-profile", "4"]).status == 0)
        #expect(
            try consentry(vault, ["segment", "define", "browsers", "--purpose", "email_marketing", "--rule", "event(view).within(30d)"]).status == 0)
        var generator = SystemRandomNumberGenerator()
        var crashPoints = 0, killed = 0
        for (name, arguments) in Self.writePaths {
            let started = Date()
            #expect(try consentry(vault, arguments).status == 0, "\(name) runs unkilled")
            let duration = Date().timeIntervalSince(started)
            for _ in 0..<3 {
                crashPoints += 1
                if try killAfter(Double.random(in: 0...duration, using: &generator), arguments + ["--vault", vault.path]) { killed += 1 }
                let check = try consentry(vault, ["check"])
                #expect(check.status == 0, "\(name): \(check.stdout.suffix(300)) \(check.stderr.suffix(300))")
                let verify = try consentry(vault, ["audit", "verify"])
                #expect(verify.status == 0, "\(name): \(verify.stderr.suffix(300))")
            }
            #expect(try consentry(vault, arguments).status == 0, "\(name) runs again after the kills")
        }
        print("crash points tried (write paths): \(crashPoints), killed mid-run: \(killed)")
        #expect(killed > 0, "no run was killed; the test proved nothing")
    }

    @Test("killing a rectification at random points leaves the old or the new values, never a mix; a re-run completes it")
    func killDuringRectification() throws {
        var generator = SystemRandomNumberGenerator()
        var killed = 0
        var duration = 0.0
        for run in 0..<4 {
            let vault = newVaultPath()
            #expect(try consentry(vault, ["demo", "--profiles", "300", "--events-per-profile", "0"]).status == 0)
            let csv = TestSupport.writeFile(
                "r.csv", "email,customer_id,first_name,city\n\(Canary.email),\(Canary.customerID),\(Canary.firstName),\(Canary.city)\n")
            #expect(try consentry(vault, ["import", "profiles", csv.path, "--source", "crm"]).status == 0)
            let opened = try CLI.run(
                ["dsr", "open", "--type", "rectification", "--regime", "gdpr", "--stdin", "--json", "--vault", vault.path],
                input: #"{"email": "\#(Canary.email)", "set": {"first_name": "Renamed", "email": "moved-7f3a@example.test"}}"#)
            let object = try JSONSerialization.jsonObject(with: Data(opened.stdout.utf8)) as? [String: Any] ?? [:]
            let id = try #require(object["id"] as? String, "\(opened.stderr)"), code = try #require(object["code"] as? String)
            #expect(try consentry(vault, ["dsr", "verify", id, "--code", code]).status == 0)
            let arguments = ["dsr", "fulfil", id, "--vault", vault.path]
            if run == 0 {
                let started = Date()
                #expect(try CLI.run(arguments).status == 0)
                duration = Date().timeIntervalSince(started)
            } else if try killAfter(Double.random(in: 0...duration, using: &generator), arguments) {
                killed += 1
            }
            #expect(try consentry(vault, ["check"]).status == 0, "run \(run)")
            #expect(try consentry(vault, ["audit", "verify"]).status == 0, "run \(run)")
            func name(_ email: String) throws -> String? {
                let read = try consentry(
                    vault,
                    [
                        "profile", "show", "--email", email, "--as", "compliance_officer", "--purpose", "service", "--fields", "first_name",
                        "--reason", "t", "--json",
                    ])
                guard read.status == 0 else { return nil }
                return (try JSONSerialization.jsonObject(with: Data(read.stdout.utf8)) as? [String: String])?["first_name"]
            }
            let old = try name(Canary.email), new = try name("moved-7f3a@example.test")
            // Either wholly before (found by the old address, old name) or wholly after (found by the new one, new name).
            #expect((old == Canary.firstName && new == nil) || (old == nil && new == "Renamed"), "run \(run): \(old ?? "-") / \(new ?? "-")")
            if new == nil { #expect(try consentry(vault, ["dsr", "fulfil", id]).status == 0, "run \(run): the re-run completes it") }
            #expect(try name("moved-7f3a@example.test") == "Renamed", "run \(run)")
        }
        print("crash points tried (rectification): 3, killed mid-run: \(killed)")
    }
}
