// consentry-bench: measures import throughput and the decrypt-and-read scan against a C baseline measured
// in the same run, and writes the results to BENCHMARKS.md. Performance is measured here, never in tests.
import ConsentryCore
import ConsentryGate
import ConsentryPersonalization
import ConsentryPolicy
import ConsentryRights
import Foundation

struct Options {
    var profiles = 100_000
    var eventsPerProfile = 10.0
    var work = "Benchmarks/work"
    var baseline = "Benchmarks/work/baseline"
    var policies = "policies"
    var out = "BENCHMARKS.md"
    var repeats = 3
    var peer = "Benchmarks/peer/cedar_peer.py"
    var readSeconds = 3.0

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let flag = iterator.next() {
            guard let value = iterator.next() else { fail("missing a value after `\(flag)`") }
            switch flag {
            case "--profiles": profiles = Int(value) ?? profiles
            case "--events-per-profile": eventsPerProfile = Double(value) ?? eventsPerProfile
            case "--work": work = value
            case "--baseline": baseline = value
            case "--policies": policies = value
            case "--out": out = value
            case "--repeats": repeats = max(1, Int(value) ?? repeats)
            case "--peer": peer = value
            case "--read-seconds": readSeconds = max(0.5, Double(value) ?? readSeconds)
            default:
                fail(
                    "unknown option `\(flag)`; use --profiles, --events-per-profile, --work, --baseline, --policies, --peer, --out, --repeats, --read-seconds"
                )
            }
        }
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    exit(1)
}

/// A gated scan that opens every admitted subject and keeps nothing (the benchmark measures the door, not a consumer).
func scanAll(_ vault: Vault, _ request: AccessRequest) async throws -> ScanSummary {
    try await vault.scan(request) { _, _ in }
}

func time<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let start = DispatchTime.now().uptimeNanoseconds
    let result = try body()
    return (result, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
}

/// ``time(_:)`` for an asynchronous body.
func time<T>(_ body: () async throws -> T) async rethrows -> (T, Double) {
    let start = DispatchTime.now().uptimeNanoseconds
    let result = try await body()
    return (result, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

func runBaseline(_ path: String, _ arguments: [String], interpreter: String? = nil) -> [String: Double] {
    let process = Process()
    // An interpreter is looked up on PATH (as run.sh installed the peer's packages for that python3).
    process.executableURL = URL(fileURLWithPath: interpreter == nil ? path : "/usr/bin/env")
    process.arguments = interpreter.map { [$0, path] + arguments } ?? arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    do { try process.run() } catch { fail("cannot run the baseline `\(path)`: \(error.localizedDescription)") }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0, let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        fail("the baseline `\(path)` failed (exit \(process.terminationStatus))")
    }
    return object.compactMapValues { ($0 as? NSNumber)?.doubleValue }
}

func shell(_ command: String) -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command]
    let pipe = Pipe()
    process.standardOutput = pipe
    try? process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

func rate(_ count: Double, _ seconds: Double) -> String {
    let value = Int((count / seconds).rounded())
    return value.formatted(.number.grouping(.automatic)).replacingOccurrences(of: ",", with: ",")
}

/// The process's peak resident memory in KiB (`VmHWM` of /proc/self/status).
func peakResidentKiB() -> Int {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
}

/// Opens a data-subject request for `email` and verifies it through the desk; returns its id.
func verifiedRequest(_ desk: RightsDesk, _ type: RequestType, _ identifiers: RequestIdentifiers) async throws -> String {
    let opened = try await desk.open(type, regime: .gdpr, identifiers: identifiers)
    guard let code = opened.code, try await desk.verify(opened.record.id, code: code).check == .verified else { fail("verification failed") }
    return opened.record.id
}

// `consentry-bench --export-only VAULT EMAIL` answers an access request for EMAIL (JSON export) in a fresh process and
// prints its time and the process's peak resident memory, so that exports of small and large histories compare.
if CommandLine.arguments.count == 4, CommandLine.arguments[1] == "--export-only" {
    do {
        let vault = try Vault.open(at: URL(fileURLWithPath: CommandLine.arguments[2]))
        let desk = RightsDesk(vault: vault, as: Principal(actor: "bench", role: .complianceOfficer))
        let id = try await verifiedRequest(desk, .access, RequestIdentifiers(email: CommandLine.arguments[3]))
        // VmHWM, not getrusage: Linux carries ru_maxrss over from the parent across fork and exec, VmHWM belongs to this image.
        let before = peakResidentKiB()
        let (done, seconds) = try await time { try await desk.fulfil(id) }
        let after = peakResidentKiB()
        let events = done.record.outcome.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Int] }?["events"] ?? -1
        let size =
            (try? FileManager.default.attributesOfItem(atPath: vault.directory.appendingPathComponent(done.exportFile ?? "").path)[.size] as? Int)
            ?? -1
        print(
            "{\"seconds\": \(seconds), \"events\": \(events), \"bytes\": \(size), \"maxrss_kb_before\": \(before), \"maxrss_kb\": \(after)}"
        )
    } catch { fail("\(error)") }
    exit(0)
}

// `consentry-bench --templates-only DIR` renders Benchmarks/templates/bench.liquid for 3 seconds after a warm-up and
// prints {"renders_per_second": N}. `make bench` measures the renderer this way, in a fresh process like its peers.
if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "--templates-only" {
    let directory = URL(fileURLWithPath: CommandLine.arguments[2])
    do {
        let source = try String(contentsOf: directory.appendingPathComponent("bench.liquid"), encoding: .utf8)
        let object =
            try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("context.json"))) as? [String: Any] ?? [:]
        let template = try LiquidTemplate(source: source, format: .html, profileFields: ["first_name", "loyalty_tier", "signup_date", "city"])
        let context = object.mapValues { LiquidValue(json: $0) }
        for _ in 0..<200 { _ = template.render(context) }
        var rendered = 0
        let start = Date()
        while Date().timeIntervalSince(start) < 3 { for _ in 0..<200 { rendered += template.render(context).isEmpty ? 0 : 1 } }
        print("{\"renders_per_second\": \(Double(rendered) / Date().timeIntervalSince(start))}")
    } catch { fail("\(error)") }
    exit(0)
}

/// Creates a campaign-service token in the vault at `path` and serves it with the release binary, for the load modes.
func serveForLoad(_ path: String, tokenName: String) async throws -> (token: String, server: Process, port: Int) {
    let vault = try Vault.open(at: URL(fileURLWithPath: path))
    let token = try await vault.createToken(name: tokenName, role: .campaignService, expiresAt: nil, as: Principal(actor: "bench", role: .admin)).token
    guard let (server, port) = try LoadGenerator.startServer(vault: path) else { fail("the API server did not start") }
    return (token, server, port)
}

// `consentry-bench --render-only VAULT` serves VAULT and renders `bench_mail` over 50 connections for 6 seconds, with
// no static rounds: a steady load to attach a profiler to.
if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "--render-only" {
    do {
        let (token, server, port) = try await serveForLoad(CommandLine.arguments[2], tokenName: "render-only")
        let requests = LoadGenerator.RenderRequests(token: token, profiles: 100_000)
        let load = LoadGenerator.run(port: port, connections: 50, seconds: 6) { worker, n in requests.request(worker: worker, n: n) }
        server.terminate()
        server.waitUntilExit()
        print("\(Int(load.rate)) renders/s, p50 \(load.percentile(0.5) * 1000) ms, statuses \(load.statuses)")
    } catch { fail("\(error)") }
    exit(0)
}

// `consentry-bench --api-only VAULT` serves VAULT with the release binary, measures `GET /healthz` for 3 seconds and
// renders `bench_mail` over 50 connections for 5 seconds (for profiling; the template and data come from a full run).
if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "--api-only" {
    do {
        let (token, server, port) = try await serveForLoad(CommandLine.arguments[2], tokenName: "api-only")
        let staticRequest = Array("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        _ = LoadGenerator.run(port: port, connections: 50, seconds: 1) { _, _ in staticRequest }  // warm-up
        let (staticLoad, load, ratios) = LoadGenerator.compare(
            port: port, rounds: 3, seconds: 2, staticRequest: staticRequest, render: .init(token: token, profiles: 100_000))
        server.terminate()
        server.waitUntilExit()
        print(
            "\(Int(load.rate)) renders/s (\(Int(load.rate / staticLoad.rate * 100))% of static \(Int(staticLoad.rate))/s; rounds \(ratios.map { Int($0 * 100) })), "
                + "p50 \(load.percentile(0.5) * 1000) ms, statuses \(load.statuses)")
    } catch { fail("\(error)") }
    exit(0)
}

// `consentry-bench --reads-only VAULT` runs 50 threads of audited gated reads for 3 seconds (for profiling).
if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "--reads-only" {
    do {
        let vault = try Vault.open(at: URL(fileURLWithPath: CommandLine.arguments[2]))
        let request = AccessRequest(
            actor: "bench", role: .complianceOfficer, action: .readProfile, purpose: .service, fields: ["email", "first_name"], reason: "bench")
        let deadline = Date().addingTimeInterval(3)
        let total = await withTaskGroup(of: Int.self) { group in
            for worker in 0..<50 {
                group.addTask {
                    var done = 0, i = worker
                    while Date() < deadline {
                        i += 7
                        if (try? await vault.read(request, subject: .customerID("C\(String(format: "%08d", i % 100_000))")))?.decision.isPermit == true {
                            done += 1
                        }
                    }
                    return done
                }
            }
            var sum = 0
            for await done in group { sum += done }
            return sum
        }
        print("\(total / 3) reads/s")
    } catch { fail("\(error)") }
    exit(0)
}

// `consentry-bench --scan-only VAULT` times the gated and the plain scan on an existing vault (for profiling).
if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "--scan-only" {
    do {
        let vault = try Vault.open(at: URL(fileURLWithPath: CommandLine.arguments[2]))
        let fields: [FieldName] = ["email", "customer_id", "first_name", "last_name", "language"]
        for _ in 0..<5 {
            let (_, gated) = try await time {
                try await scanAll(vault, AccessRequest(actor: "bench", role: .campaignService, action: .render, purpose: .service, fields: fields))
            }
            let (_, plain) = try await time { try await vault.check(fields: fields, structural: false, as: .administrator("bench")) }
            print(String(format: "gated %.3f s, plain %.3f s", gated, plain))
        }
    } catch { fail("\(error)") }
    exit(0)
}

let options = Options(CommandLine.arguments)
let work = URL(fileURLWithPath: options.work)
let vaultURL = work.appendingPathComponent("vault")
try? FileManager.default.removeItem(at: vaultURL)
try? FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)

print("generating \(options.profiles) demo profiles with about \(Int(options.eventsPerProfile)) events each …")
let generator = DemoGenerator(options: DemoOptions(profiles: options.profiles, seed: 2026, eventsPerProfile: options.eventsPerProfile), now: Date())
let files: (profiles: URL, events: URL)
do { files = try generator.writeFiles(to: work) } catch { fail("cannot write demo files: \(error.localizedDescription)") }

do {
    let vault = try Vault.create(at: vaultURL, policies: URL(fileURLWithPath: options.policies))
    // Written-back pages of the demo files would otherwise share the disk with the import's commits.
    sync()
    print("importing profiles …")
    let (profileReport, profileSeconds) = try await time { try await vault.importProfiles(from: files.profiles, source: .crm, format: .csv) }
    print("importing events …")
    let (eventReport, eventSeconds) = try await time { try await vault.importEvents(from: files.events) }
    guard profileReport.rejected == 0, eventReport.rejected == 0 else { fail("demo data was rejected; the benchmark is void") }

    let fields: [FieldName] = ["email", "first_name", "city", "country", "loyalty_tier"]
    print("scanning \(fields.count) fields of every subject (\(options.repeats) runs each, Consentry and C) …")
    var swiftRuns: [Double] = [], cRuns: [Double] = []
    var opened = 0
    for _ in 0..<options.repeats {
        let (report, seconds) = try await time { try await vault.check(fields: fields, structural: false, as: .administrator("bench")) }
        guard report.passed || report.problems.isEmpty else { fail("the scan found integrity problems") }
        opened = report.valuesOpened
        swiftRuns.append(seconds)
        let c = runBaseline(options.baseline, ["read", vaultURL.path, fields.map(\.rawValue).joined(separator: ",")])
        guard Int(c["values"] ?? -1) == opened else { fail("the C baseline opened \(c["values"] ?? -1) values, Consentry \(opened)") }
        cRuns.append(c["seconds"] ?? .nan)
    }
    print("measuring the plain-row insert baseline …")
    let insertRows = 1_000_000.0
    let insert = runBaseline(options.baseline, ["insert", work.appendingPathComponent("plain.sqlite").path, String(Int(insertRows))])
    // The storage floor of a profile import: the same statements on the same schema, without parsing, hashing or sealing.
    // The fastest of three runs, each into a new vault after a sync: the writes of the vault measured above are still
    // reaching the disk, and a floor that shares the disk with them is no floor.
    print("measuring the profile storage floor (3 runs) …")
    let floorURL = work.appendingPathComponent("floor-vault")
    var floor: [String: Double] = [:]
    for _ in 0..<3 {
        try? FileManager.default.removeItem(at: floorURL)
        _ = try Vault.create(at: floorURL, policies: URL(fileURLWithPath: options.policies))
        sync()
        let run = runBaseline(options.baseline, ["store", floorURL.path, String(Int(profileReport.inserted))])
        if (run["seconds"] ?? .infinity) < (floor["seconds"] ?? .infinity) { floor = run }
    }
    // Its cryptography floor: what the preparing thread must do per new subject, in C on one core.
    print("measuring the profile cryptography floor …")
    let sealFloor = runBaseline(options.baseline, ["seal", String(Int(profileReport.inserted))])

    // The gate: decision rate against Cedar on the same rules, audited reads, and a gated scan against the plain scan.
    guard case .success(let policy) = vault.policy else { fail("the policy did not load") }
    print("measuring decisions …")
    var rng = SystemRandomNumberGenerator()
    let allFields = policy.schema.fields.map(\.name)
    var requests: [(AccessRequest, SubjectState)] = []
    var peerCases: [[String: Any]] = []
    for _ in 0..<10_000 {
        let action = Action.allCases.randomElement(using: &rng)!
        let purpose = Purpose.allCases.randomElement(using: &rng)!
        let fields = (0..<Int.random(in: 1...3, using: &rng)).map { _ in allFields.randomElement(using: &rng)! }
        let request = AccessRequest(
            actor: "bench", role: Role.allCases.randomElement(using: &rng)!, action: action, purpose: purpose, fields: fields,
            reason: Bool.random(using: &rng) ? "ticket" : nil)
        let consent = ConsentStatus.allCases.filter { $0 != .expired }.randomElement(using: &rng)!
        let state = SubjectState(
            consents: [purpose: consent], restricted: Int.random(in: 0..<10, using: &rng) == 0,
            objections: Int.random(in: 0..<8, using: &rng) == 0 ? [purpose] : [], saleOptOut: Int.random(in: 0..<8, using: &rng) == 0,
            globalPrivacyControl: Int.random(in: 0..<8, using: &rng) == 0)
        requests.append((request, state))
        peerCases.append([
            "role": request.role.rawValue, "action": action.rawValue, "purpose": purpose.rawValue, "fields": fields.map(\.rawValue),
            "has_reason": request.reason != nil, "consent": consent.rawValue, "restricted": state.restricted, "objected": !state.objections.isEmpty,
            "opt_out": state.saleOptOut, "gpc": state.globalPrivacyControl,
            "expected": policy.decide(request, subject: action.isAdministrative ? nil : state).effect.rawValue,
        ])
    }
    var permits = 0
    let decisionRounds = 100
    let (_, decisionSeconds) = time {
        for _ in 0..<decisionRounds {
            for (request, state) in requests where policy.decide(request, subject: state).isPermit { permits += 1 }
        }
    }
    let decisions = Double(requests.count * decisionRounds)
    let cedarFile = work.appendingPathComponent("policy.cedar"), casesFile = work.appendingPathComponent("requests.json")
    try Data(policy.cedarText.utf8).write(to: cedarFile)
    try JSONSerialization.data(withJSONObject: peerCases).write(to: casesFile)
    let peer = runBaseline(options.peer, [cedarFile.path, casesFile.path, "5"], interpreter: "python3")
    guard peer["disagreements"] == 0 else {
        fail("Cedar disagreed with Consentry on \(Int(peer["disagreements"] ?? -1)) requests; the comparison is void")
    }
    let peerRate = (peer["decisions"] ?? .nan) / (peer["seconds"] ?? .nan)

    print("measuring audited gated reads (1 and 50 callers) …")
    let readRequest = AccessRequest(
        actor: "bench", role: .complianceOfficer, action: .readProfile, purpose: .service, fields: ["email", "first_name"], reason: "bench")
    // Each caller is a task, as an API request is: it suspends while its read waits for the shared commit.
    func readLoad(threads: Int) async -> Double {
        let deadline = Date().addingTimeInterval(options.readSeconds)
        let total = await withTaskGroup(of: Int.self) { group in
            for worker in 0..<threads {
                group.addTask {
                    var done = 0
                    var i = worker
                    while Date() < deadline {
                        i += 7
                        if (try? await vault.read(readRequest, subject: .customerID("C\(String(format: "%08d", i % options.profiles))")))?.decision
                            .isPermit == true
                        {
                            done += 1
                        }
                    }
                    return done
                }
            }
            var sum = 0
            for await done in group { sum += done }
            return sum
        }
        return Double(total) / options.readSeconds
    }
    let singleReadRate = await readLoad(threads: 1)
    let groupReadRate = await readLoad(threads: 50)

    print("measuring the gated scan against the plain scan …")
    let serviceFields: [FieldName] = ["email", "customer_id", "first_name", "last_name", "language"]
    var gatedRuns: [Double] = [], plainRuns: [Double] = []
    // One warm-up run of each (it also lets the WAL left by the read load be checkpointed), then the median of five.
    for run in 0..<(max(options.repeats, 5) + 1) {
        let scanRequest = AccessRequest(actor: "bench", role: .campaignService, action: .render, purpose: .service, fields: serviceFields)
        let (summary, gated) = try await time { try await scanAll(vault, scanRequest) }
        guard summary.delivered == options.profiles else { fail("the gated scan delivered \(summary.delivered) of \(options.profiles)") }
        let plain = try await time { try await vault.check(fields: serviceFields, structural: false, as: .administrator("bench")) }.1
        if run > 0 {
            gatedRuns.append(gated)
            plainRuns.append(plain)
        }
    }
    let scanOverhead = (median(gatedRuns) / median(plainRuns) - 1) * 100

    // Personalization: segment evaluation, incremental updates, recommendations, template rendering.
    print("measuring segments, recommendations and templates …")
    // The demo's consents, so that the gate admits subjects as it would in a real vault.
    try await vault.loadDemoConsents(DemoOptions(profiles: options.profiles, seed: 2026, eventsPerProfile: options.eventsPerProfile))
    let segmentDesk = SegmentDesk(vault: vault, as: Principal(actor: "bench", role: .marketer))
    let segmentRule = try SegmentRule(
        text: #"event(view, category = "running").within(30d) and not event(purchase).within(7d) and engagement >= 5"#)
    _ = try await segmentDesk.define(name: "bench_runners", purpose: .emailMarketing, rule: segmentRule)
    var segmentRuns: [Double] = []
    var segmentResult: SegmentRun?
    for _ in 0..<3 {
        let (result, seconds) = try await time { try await segmentDesk.run("bench_runners", store: false) }
        segmentRuns.append(seconds)
        segmentResult = result
    }
    let (_, storedSegmentSeconds) = try await time { try await segmentDesk.run("bench_runners", store: true) }
    let evaluated = Double(segmentResult?.evaluated ?? 0)
    var incrementalRuns: [Double] = []
    for i in 0..<20 {
        let line =
            #"{"id":"bench-inc-\#(i)","customer_id":"C\#(String(format: "%08d", i * 37))","type":"view","item_id":"run-001","category":"running","time":"\#(Normalize.formatTimestamp(millis: Int64(Date().timeIntervalSince1970 * 1000) - 60_000))"}"#
        let file = work.appendingPathComponent("incremental.jsonl")
        try Data((line + "\n").utf8).write(to: file)
        let report = try await vault.importEvents(from: file)
        let (_, seconds) = try await time { try await segmentDesk.refresh(subjects: report.touchedSubjects) }
        incrementalRuns.append(seconds)
    }
    let (recommendations, recommendSeconds) = try await time {
        try await RecommendationDesk(vault: vault, as: Principal(actor: "bench", role: .campaignService)).run(count: 5, evaluate: false)
    }
    let templateDirectory = URL(fileURLWithPath: options.policies).deletingLastPathComponent().appendingPathComponent("Benchmarks/templates")
    // In a fresh process, as the peers are: measured in this process, after everything above had grown its heap, the
    // renderer (which allocates its output and loop scopes) ran a fifth slower than on its own.
    let renderRate = runBaseline(CommandLine.arguments[0], ["--templates-only", templateDirectory.path])["renders_per_second"] ?? .nan
    let templatePeers = runBaseline(
        options.peer.replacingOccurrences(of: "cedar_peer.py", with: "template_peer.py"),
        [
            templateDirectory.appendingPathComponent("bench.liquid").path, templateDirectory.appendingPathComponent("bench.jinja").path,
            templateDirectory.appendingPathComponent("context.json").path, "3",
        ], interpreter: "python3")

    // The HTTP API: gated send-time renders over loopback with 50 connections, next to a static response.
    print("measuring the HTTP API (50 connections) …")
    _ = try await TemplateDesk(vault: vault, as: Principal(actor: "bench", role: .marketer)).register(
        name: "bench_mail", purpose: .emailMarketing, format: .html,
        source:
            "<h1>Hello {{ first_name | default: 'there' | capitalize }}!</h1>{% if loyalty_tier == 'gold' %}<p>Gold</p>{% endif %}<p lang=\"{{ language | default: 'en' }}\">{{ campaign.name }}</p>"
    )
    let apiToken = try await vault.createToken(name: "bench", role: .campaignService, expiresAt: nil, as: Principal(actor: "bench", role: .admin)).token
    guard let (server, apiPort) = try LoadGenerator.startServer(vault: vaultURL.path) else { fail("the API server did not start") }
    let profilesCount = options.profiles
    let staticRequest = Array("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
    _ = LoadGenerator.run(port: apiPort, connections: 50, seconds: 1) { _, _ in staticRequest }  // warm-up
    let (staticLoad, renderLoad, apiRatios) = LoadGenerator.compare(
        port: apiPort, rounds: 5, seconds: 2, staticRequest: staticRequest, render: .init(token: apiToken, profiles: profilesCount))
    server.terminate()
    server.waitUntilExit()
    // The target compares the median round: each round measured both loads back to back.
    let renderShare = apiRatios.sorted()[apiRatios.count / 2] * 100
    func ms(_ seconds: Double) -> String { String(format: "%.1f ms", seconds * 1000) }

    // Data-subject requests: erasure latency in the full vault, and exports of a long history in a vault of their own.
    print("measuring erasures …")
    let erasures = 100
    let desk = RightsDesk(vault: vault, as: Principal(actor: "bench", role: .complianceOfficer))
    var erasureRuns: [Double] = []
    var lastErasure = ""
    for i in 0..<erasures {
        let id = try await verifiedRequest(desk, .erasure, RequestIdentifiers(customerID: "C\(String(format: "%08d", (i * 997) % options.profiles))"))
        let (result, seconds) = try await time { try await vault.eraseForRequest(id, as: Principal(actor: "bench", role: .complianceOfficer)) }
        guard result.receipt.deleted["subject"] == 1 else { fail("an erasure deleted no subject") }
        erasureRuns.append(seconds)
        lastErasure = id
    }
    // Verification (and the receipt's signature) after the last erasure: it scans every file of the vault.
    let (completion, verifySeconds) = try await time { try await vault.completeErasure(lastErasure, as: Principal(actor: "bench", role: .complianceOfficer)) }
    guard completion.verification.passed, completion.receipt != nil else { fail("verify-erasure failed in the benchmark") }
    let deleteBaseline = runBaseline(options.baseline, ["delete", work.appendingPathComponent("plain.sqlite").path, String(erasures)])
    try? FileManager.default.removeItem(at: work.appendingPathComponent("plain.sqlite"))
    func percentile(_ values: [Double], _ p: Double) -> Double { values.sorted()[min(values.count - 1, Int(Double(values.count) * p))] }

    print("measuring exports of 1,000 and 100,000 events …")
    let exportVaultURL = work.appendingPathComponent("export-vault")
    try? FileManager.default.removeItem(at: exportVaultURL)
    let exportVault = try Vault.create(at: exportVaultURL, policies: URL(fileURLWithPath: options.policies))
    let people = "email,customer_id,first_name,city\nlong@example.test,LONG-1,Longa,Berlin\nshort@example.test,SHORT-1,Shorty,Lyon\n"
    let peopleFile = work.appendingPathComponent("export-people.csv")
    try Data(people.utf8).write(to: peopleFile)
    _ = try await exportVault.importProfiles(from: peopleFile, source: .crm, format: .csv)
    let eventsFile = work.appendingPathComponent("export-events.jsonl")
    _ = FileManager.default.createFile(atPath: eventsFile.path, contents: nil)
    let handle = try FileHandle(forWritingTo: eventsFile)
    let base = Int64(Date().timeIntervalSince1970) - 200_000 * 60
    let types = ["view", "view", "cart_add", "purchase", "email_open", "email_click"]
    for (email, count) in [("long@example.test", 100_000), ("short@example.test", 1_000)] {
        var chunk = ""
        for i in 0..<count {
            let type = types[i % types.count]
            let time = Normalize.formatTimestamp(millis: (base + Int64(i) * 60) * 1000)
            let amount =
                type == "purchase"
                ? ",\"amount\":\(Double(i % 200) + 0.5),\"currency\":\"EUR\"" : type.hasPrefix("email_") ? ",\"campaign_id\":\"cmp-\(i % 30)\"" : ""
            chunk +=
                "{\"id\":\"\(email)-\(i)\",\"email\":\"\(email)\",\"type\":\"\(type)\",\"time\":\"\(time)\",\"item_id\":\"sku-\(i % 5000)\",\"category\":\"cat-\(i % 40)\"\(amount)}\n"
            if chunk.utf8.count > 1 << 20 {
                handle.write(Data(chunk.utf8))
                chunk = ""
            }
        }
        handle.write(Data(chunk.utf8))
    }
    try handle.close()
    let exportEvents = try await exportVault.importEvents(from: eventsFile)
    guard exportEvents.rejected == 0 else { fail("export events were rejected") }
    let bench = CommandLine.arguments[0]
    // A first export checkpoints the WAL the import left behind, so that the measured runs start alike.
    _ = runBaseline(bench, ["--export-only", exportVaultURL.path, "short@example.test"])
    let longExport = runBaseline(bench, ["--export-only", exportVaultURL.path, "long@example.test"])
    let shortExport = runBaseline(bench, ["--export-only", exportVaultURL.path, "short@example.test"])
    let cExport = runBaseline(options.baseline, ["export", exportVaultURL.path, work.appendingPathComponent("export-baseline.jsonl").path])
    guard Int(longExport["events"] ?? 0) == 100_000, Int(shortExport["events"] ?? 0) == 1_000, Int(cExport["rows"] ?? 0) == 100_000 else {
        fail("the exports did not hold the expected events")
    }
    let mib = { (kb: Double?) in String(format: "%.1f MiB", (kb ?? .nan) / 1024) }

    let subjects = Double(options.profiles)
    let swiftScan = subjects / median(swiftRuns), cScan = subjects / median(cRuns)
    let cpu = shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").trimmingCharacters(in: .whitespaces)
    let memory = shell("free -g | awk '/Mem:/ {print $2}'")
    let date = ISO8601DateFormatter().string(from: Date())
    let ratio = swiftScan / cScan * 100

    let markdown = """
        # Benchmarks

        Measured by `make bench` (`Benchmarks/run.sh`), which rewrites this file. Performance is measured here, never by timed
        assertions in tests. Every number below comes from one run on one machine; the C baselines ran in the same run.

        - Date: \(date)
        - Machine: \(cpu.isEmpty ? "unknown CPU" : cpu), \(ProcessInfo.processInfo.activeProcessorCount) cores, \(memory) GiB memory, \(shell("uname -sm"))
        - Build: release (`swift build -c release`); C baseline `cc -O2` against the system SQLite \(shell("pkg-config --modversion sqlite3")) and libsodium \(shell("pkg-config --modversion libsodium"))
        - Data: \(Int(subjects).formatted()) synthetic profiles (10 fields, 3 blind indexes each) and \(eventReport.inserted.formatted()) events from `consentry demo`

        ## Import (durable: WAL, synchronous=FULL, one transaction per 10,000 records)

        | what | count | seconds | rate | target |
        |---|---:|---:|---:|---:|
        | profiles: parse, validate, normalize, 3 blind indexes, seal 10 fields, store | \(profileReport.inserted.formatted()) | \(String(format: "%.2f", profileSeconds)) | \(rate(Double(profileReport.inserted), profileSeconds)) profiles/s | 100,000 profiles/s |
        | events: parse, validate, resolve subject, idempotency hashes, store | \(eventReport.inserted.formatted()) | \(String(format: "%.2f", eventSeconds)) | \(rate(Double(eventReport.inserted), eventSeconds)) events/s | — |
        | C baseline: plain rows (integer key, 100-byte blob), same durability | \(Int(insertRows).formatted()) | \(String(format: "%.2f", insert["seconds"] ?? .nan)) | \(rate(insertRows, insert["seconds"] ?? .nan)) rows/s | — |
        | C baseline: the profile import's statements on the vault's schema (2 look-ups, a subject row, 3 identity rows; random bytes for hashes and ciphertexts, drawn before timing), same durability, fastest of 3 | \(profileReport.inserted.formatted()) | \(String(format: "%.2f", floor["seconds"] ?? .nan)) | \(rate(Double(profileReport.inserted), floor["seconds"] ?? .nan)) profiles/s | — |
        | C baseline: the profile import's cryptography (random data key, 10 field seals, key wrap, 3 keyed hashes, audit secret), one core | \(profileReport.inserted.formatted()) | \(String(format: "%.2f", sealFloor["seconds"] ?? .nan)) | \(rate(Double(profileReport.inserted), sealFloor["seconds"] ?? .nan)) profiles/s | — |

        The 100,000 profiles/s target is above what SQLite stores on this schema and machine at all: the C program
        that runs only the import's statements (the second baseline) reaches \(rate(Double(profileReport.inserted), floor["seconds"] ?? .nan)) profiles/s, so the import
        runs at \(String(format: "%.0f", (floor["seconds"] ?? .nan) / profileSeconds * 100))% of its storage floor. A profile is seven B-tree inserts at random keys (random subject id, keyed
        hashes), not one sequential row as in the plain-row baseline; 16 KiB pages measured faster than 4 or 8 KiB.
        Storing runs on SQLite's single writer, so one core stores while the other prepares: the import cannot pass the
        slower of the two C floors, \(rate(Double(profileReport.inserted), max(floor["seconds"] ?? .nan, sealFloor["seconds"] ?? .nan))) profiles/s here, even with no
        parsing and no cost over C. See docs/vault.md ("Import throughput") for the designs measured against the target.

        ## Decrypt-and-read 5 fields of every subject

        Fields: \(fields.map { "`\($0)`" }.joined(separator: ", ")). Each subject: unwrap its data key, open the 5 sealed values.
        Median of \(options.repeats) runs.

        | reader | subjects/s | values opened per run |
        |---|---:|---:|
        | Consentry (`Vault.check(fields:structural: false, as:)`) | \(rate(subjects, median(swiftRuns))) | \(opened.formatted()) |
        | C baseline (SQLite C API + libsodium, same rows and ciphertexts) | \(rate(subjects, median(cRuns))) | \(opened.formatted()) |

        Consentry reaches **\(String(format: "%.0f", ratio))%** of the C baseline's rate (target: at least 50%).

        ## The gate

        | what | result | comparison | target |
        |---|---:|---:|---:|
        | pure decision function (10,000 varied requests × \(decisionRounds)) | \(rate(decisions, decisionSeconds)) decisions/s (\(String(format: "%.0f", decisionSeconds / decisions * 1e9)) ns each) | Cedar (cedarpy, same rules, batched): \(rate(peerRate, 1)) decisions/s | ≥ 50× the peer: **\(String(format: "%.0f", decisions / decisionSeconds / peerRate))×** |
        | audited gated reads, 1 caller (decide, audit, decrypt, durable commit) | \(rate(singleReadRate, 1)) reads/s | — | — |
        | audited gated reads, 50 callers, group commit | \(rate(groupReadRate, 1)) reads/s | one fsync per entry caps near 8,000/s on this disk | — |
        | gated scan of \(Int(subjects).formatted()) subjects, 5 fields (`service`), median of \(gatedRuns.count) after a warm-up | \(String(format: "%.3f", median(gatedRuns))) s | plain decrypt of the same fields: \(String(format: "%.3f", median(plainRuns))) s | gate + audit add < 25%: **\(String(format: "%+.0f", scanOverhead))%** |

        Cedar agreed with Consentry on all 10,000 requests before it was timed; the Cedar text is generated from the compiled
        policy (`Policy.cedarText`). The gated scan derives every subject's consent state, records the admitted subject set in
        one audit entry (a pseudonym per subject), then decrypts in chunks that re-read consent.

        ## Personalization

        | what | result | comparison | target |
        |---|---:|---:|---:|
        | segment `\(segmentRule.text)` over \(Int(subjects).formatted()) subjects and their events (gated scan, events of the last 365 days), median of 3 | \(rate(evaluated, median(segmentRuns))) subjects evaluated/s (\(String(format: "%.2f", median(segmentRuns))) s for \(Int(evaluated).formatted()) admitted; \(segmentResult?.members.count ?? 0) members) | C decrypt baseline (above): \(rate(subjects, median(cRuns))) subjects/s | — |
        | the same run storing memberships (sealed derived data) | \(String(format: "%.2f", storedSegmentSeconds)) s | — | — |
        | incremental update after a one-event import (the touched subject only, all event segments) | \(String(format: "%.1f", median(incrementalRuns) * 1000)) ms median, \(String(format: "%.1f", (incrementalRuns.max() ?? 0) * 1000)) ms max of 20 | full run: \(String(format: "%.0f", median(segmentRuns) * 1000)) ms | — |
        | item-item recommendations for every admitted subject (top 5, stored) | \(String(format: "%.2f", recommendSeconds)) s for \(recommendations.stored.formatted()) subjects, \(recommendations.items) items | — | — |
        | 20-line HTML template with a loop, filters and escaping (`Benchmarks/templates/bench.liquid`), one core | \(rate(renderRate, 1)) renders/s | python-liquid 2.3.6: \(rate(templatePeers["liquid"] ?? .nan, 1))/s (**\(String(format: "%.1f", renderRate / (templatePeers["liquid"] ?? .nan)))×**); Jinja2: \(rate(templatePeers["jinja2"] ?? .nan, 1))/s (**\(String(format: "%.1f", renderRate / (templatePeers["jinja2"] ?? .nan)))×**) | ≥ 10× python-liquid, ≥ 3× Jinja2 |

        The segment run decides every subject's consent first (pass 1, audited with the admitted set), then reads the admitted
        subjects' events chunk by chunk and evaluates the rule; the C baseline only decrypts five fields per subject. The
        incremental update runs one gated scan limited to the touched subjects per event-based segment. The template
        engines each render for 3 s after a warm-up, each in a process of its own (`consentry-bench --templates-only`
        for Consentry, `Benchmarks/peer/template_peer.py` for the peers).

        ## The HTTP API

        | what (loopback, 50 keep-alive connections, 5 alternating rounds of 2 s per load, one process on the same 2 cores) | requests/s | p50 | p99 | responses | target |
        |---|---:|---:|---:|---|---:|
        | static: `GET /healthz` | \(rate(staticLoad.rate, 1)) | \(ms(staticLoad.percentile(0.5))) | \(ms(staticLoad.percentile(0.99))) | \(staticLoad.statuses.sorted { $0.key < $1.key }.map { "\($0.value.formatted()) × \($0.key)" }.joined(separator: ", ")) | — |
        | gated send-time render: `POST /v1/render` (token check, decision, audit entry with durable group commit, decrypt, render) | \(rate(renderLoad.rate, 1)) | \(ms(renderLoad.percentile(0.5))) | \(ms(renderLoad.percentile(0.99))) | \(renderLoad.statuses.sorted { $0.key < $1.key }.map { "\($0.value.formatted()) × \($0.key)" }.joined(separator: ", ")) | ≥ 30% of static: **\(String(format: "%.0f", renderShare))%** (median round; rounds: \(apiRatios.map { String(format: "%.0f%%", $0 * 100) }.joined(separator: ", "))) |

        Each round measures the static load and then the render load for 2 s each; the target compares the median round, so
        a slow spell of this shared machine (the static rate alone has ranged from 40,000 to 53,000/s between runs) weighs
        on both loads alike. Renders cycle through the demo's customers, so some are denied by the gate (403: no
        e-mail-marketing consent); a denial is decided and audited like a permit. The load generator
        (`LoadGenerator.swift`, raw sockets) runs on the same two cores as the server; both loads send prepared request
        bytes (a render request is a template with the customer id's digits written in) and parse responses as bytes, so
        the client costs about the same per request for both. \(renderShare >= 30 ? "The 30% target is met in the median round." : "The 30% target is not met in the median round.")

        A render authenticates its token and finds its compiled template in memory (both cached; see docs/api.md),
        queues its gated read and suspends without holding a thread. One writer transaction then decides, audits and
        decrypts every queued read and shares one durable commit among them; the template's derived data (segments,
        recommendations) is read only when the template uses it, and `bench_mail` does not. Timed per stage on this machine
        at about 13,000 renders/s, a read spends about 41 µs in the writer (the audit entry about a quarter, consent
        derivation and the subject's row about a fifth each, read with SQLite's own calls) plus about 24 µs as its share of the batch's
        durable commit (about 500 µs for some 21 reads). Both cores are busy during the run (the server about 1.4 of them,
        the load generator the rest), so only less work per render helps. Committing without waiting for the disk and
        flushing the log on a second thread while the writer runs the next batch was measured and was slower (smaller
        batches, more commits, no shorter wall time per read with both cores busy), so the commit stays synchronous.
        Auditing after the commit, or without a durable commit, would lift the rate and break "no audit, no data".

        ## Data-subject requests

        | what | median | p99 | comparison |
        |---|---:|---:|---|
        | erasure of one subject in a \(Int(subjects).formatted())-subject vault (retain, suppress, delete, audit, sign receipt, commit, WAL truncate), \(erasures) erasures | \(String(format: "%.1f", median(erasureRuns) * 1000)) ms | \(String(format: "%.1f", percentile(erasureRuns, 0.99) * 1000)) ms | C baseline, one durable delete + WAL truncate with secure_delete: \(String(format: "%.1f", (deleteBaseline["median"] ?? .nan) * 1000)) ms median, \(String(format: "%.1f", (deleteBaseline["p99"] ?? .nan) * 1000)) ms p99 |
        | `verify-erasure` (look-ups, row references, byte scan of every vault file) | \(String(format: "%.2f", verifySeconds)) s | — | once, after the erasures |

        | export (JSON, access request) | events | seconds | file | peak memory of the process | comparison |
        |---|---:|---:|---:|---:|---|
        | subject with 1,000 events | \(Int(shortExport["events"] ?? 0).formatted()) | \(String(format: "%.3f", shortExport["seconds"] ?? .nan)) | \(Int((shortExport["bytes"] ?? 0) / 1024).formatted()) KiB | \(mib(shortExport["maxrss_kb"])) (\(mib(shortExport["maxrss_kb_before"])) before the export) | — |
        | subject with 100,000 events | \(Int(longExport["events"] ?? 0).formatted()) | \(String(format: "%.3f", longExport["seconds"] ?? .nan)) | \(Int((longExport["bytes"] ?? 0) / 1024).formatted()) KiB | \(mib(longExport["maxrss_kb"])) (\(mib(longExport["maxrss_kb_before"])) before the export) | C baseline, the same 100,000 rows to JSON lines with stdio: \(String(format: "%.3f", cExport["seconds"] ?? .nan)) s |

        Each export runs in a fresh process (`consentry-bench --export-only`), so peak memory belongs to that export alone. The
        export streams events and audit entries from database cursors through a 64 KiB write buffer, and holds SQLite's page
        cache to 4 MiB while it runs: the growth over the process's memory before the export stays within that bound however
        many events the subject has, which the two rows compare. The export also decrypts the profile, writes its audit entry
        first, and syncs the file before renaming it into place. The erasure's time over the C floor is the suppression and
        retention writes, the audit entry, signing the receipt, and reading the subject's identifiers to suppress them.

        ## Reading the numbers

        - Profiles/s counts subjects created. Each costs one subject row (random id) and three blind-index rows keyed by
          random hashes, plus their child indexes: about seven random B-tree inserts, against one sequential insert per
          plain row in the first C baseline, before any parsing, validation, hashing or sealing (eleven
          XChaCha20-Poly1305 seals and three keyed BLAKE2b hashes per profile). Records are prepared (parsed,
          normalized, hashed, sealed) on one core while the other writes; the writer is the bound, and the second C
          baseline measures what its statements alone cost. The preparer hands records to the writer through a bounded
          queue that wakes it only after half is drained, not per record, and the writer stores each record as it arrives
          inside the batch's open transaction. The writer's per-record statements (look-ups,
          subject and identity inserts) are bound and stepped with SQLite's own calls; a profile of the import shows
          the writer spending most of its time inside SQLite.
        - Audited gated reads: each read runs in a write transaction on SQLite's single writer (decision, audit entry,
          decrypt), and group commit shares one durable commit among every read queued meanwhile. Waiting reads hold no
          thread and each is woken by its own completion, so 50 callers reach \(String(format: "%.1f", groupReadRate / singleReadRate))× the
          single-caller rate; the writer's per-read work (blind-index look-up, consent derivation, audit chaining, key
          unwrap and decrypt) is the bound. The audit log has no index on the subject's pseudonym (docs/vault.md): such an
          index dirtied a random page per read.
        - `consentry-bench --scan-only VAULT` and `--reads-only VAULT` repeat one measurement on an existing vault, for profiling.
        - Raw measurements: profile import \(String(format: "%.3f", profileSeconds)) s, event import \(String(format: "%.3f", eventSeconds)) s,
          scan runs \(swiftRuns.map { String(format: "%.3f", $0) }.joined(separator: ", ")) s, C scan runs \(cRuns.map { String(format: "%.3f", $0) }.joined(separator: ", ")) s,
          gated scan runs \(gatedRuns.map { String(format: "%.3f", $0) }.joined(separator: ", ")) s, plain runs \(plainRuns.map { String(format: "%.3f", $0) }.joined(separator: ", ")) s,
          \(permits) permits among the timed decisions.

        """
    try Data(markdown.utf8).write(to: URL(fileURLWithPath: options.out))
    print(markdown)
} catch let error as GateError {
    fail(error.message)
} catch {
    fail("\(error)")
}
