public import ConsentryCore
public import ConsentryGate
public import Foundation

/// Test support: temporary vaults, a fixed clock, canary values, paths and a runner for the built binary.
/// Not shipped.
public enum TestSupport {
    /// The repository root, found from this file's location.
    public static let repositoryRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The shipped default policy directory.
    public static var policies: URL { repositoryRoot.appendingPathComponent("policies") }

    /// A fixed "now" for tests: 2026-11-20T12:00:00Z.
    public static let fixedNow = Date(timeIntervalSince1970: 1_795_176_000)

    /// A fresh, empty temporary directory, unique per call, under ``temporaryRoot``.
    /// Runs synchronous work on a thread of its own and waits for it without holding a cooperative thread: work that
    /// blocks inside (a scan whose consumer calls ``waitFor(_:)``) must not run on one.
    public static func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    /// Runs an asynchronous operation from a thread that is not one of Swift's cooperative threads (an import's
    /// preparing thread, a test's helper thread) and waits for it there: the race tests act between two steps of a
    /// synchronous operation.
    public static func waitFor<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<T, any Error>?
        Task {
            do { result = .success(try await body()) } catch { result = .failure(error) }
            done.signal()
        }
        done.wait()
        return try result!.get()
    }

    public static func temporaryDirectory(_ label: String = "consentry") -> URL {
        let url = temporaryRoot.appendingPathComponent("\(label)-\(UUID().uuidString.prefix(12))")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// The directory all of this test process's temporary vaults and files live in, removed when the process exits,
    /// so that test runs do not pile vaults up in the system's temporary directory. Roots left by runs that were
    /// killed are removed when the next run starts.
    public static let temporaryRoot: URL = {
        let base = FileManager.default.temporaryDirectory
        for name in (try? FileManager.default.contentsOfDirectory(atPath: base.path)) ?? [] where name.hasPrefix(rootPrefix) {
            if let pid = Int32(name.dropFirst(rootPrefix.count)), kill(pid, 0) != 0 && errno == ESRCH {
                try? FileManager.default.removeItem(at: base.appendingPathComponent(name))
            }
        }
        let root = base.appendingPathComponent(rootPrefix + String(getpid()))
        try? FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        atexit {
            try? FileManager.default.removeItem(
                at: FileManager.default.temporaryDirectory.appendingPathComponent(TestSupport.rootPrefix + String(getpid())))
        }
        return root
    }()

    static let rootPrefix = "consentry-tests-"

    /// Creates a vault in a new temporary directory with the default policies and a fixed clock.
    public static func makeVault(clock: (any WallClock)? = nil, batchSize: Int = 1_000, policies: URL? = nil) throws -> Vault {
        let directory = temporaryDirectory("vault").appendingPathComponent("v")
        return try Vault.create(
            at: directory, policies: policies ?? Self.policies,
            configuration: VaultConfiguration(clock: clock ?? FixedClock(fixedNow), importBatchSize: batchSize))
    }

    /// Writes `text` to a new temporary file named `name` and returns its URL.
    public static func writeFile(_ name: String, _ text: String) -> URL {
        writeFile(name, Data(text.utf8))
    }

    /// Writes `data` to a new temporary file named `name` and returns its URL.
    public static func writeFile(_ name: String, _ data: Data) -> URL {
        let url = temporaryDirectory("input").appendingPathComponent(name)
        try? data.write(to: url)
        return url
    }

    /// Whether `needle` occurs anywhere in `haystack`'s bytes.
    public static func contains(_ haystack: Data, _ needle: String) -> Bool {
        haystack.range(of: Data(needle.utf8)) != nil
    }

    /// Every file under `directory`, recursively.
    public static func files(under directory: URL) -> [URL] {
        guard let enumerator = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: [.isRegularFileKey]) else { return [] }
        return enumerator.compactMap { $0 as? URL }.filter { (try? $0.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true }
    }
}

/// Canary values: unmistakable fake personal data that tests import and then search for in files and output.
public enum Canary {
    /// A canary e-mail address.
    public static let email = "canary-7f3a@example.test"
    /// A canary given name.
    public static let firstName = "Zorbulon"
    /// A canary family name.
    public static let lastName = "Quaxtrel"
    /// A canary phone number in E.164.
    public static let phone = "+4915199887766"
    /// A canary customer id.
    public static let customerID = "CANARY-5521"
    /// A canary city.
    public static let city = "Vexhollow"

    /// The canaries and the forms a leak could take (lower-cased, base64), for byte scans.
    public static var forms: [String] {
        let values = [email, firstName, lastName, phone, customerID, city]
        return values + values.map { $0.lowercased() } + values.map { Data($0.utf8).base64EncodedString() }
    }
}

/// Runs the built `consentry` binary.
public enum CLI {
    /// The output of one run.
    public struct Result: Sendable {
        /// The exit status.
        public let status: Int32
        /// Standard output.
        public let stdout: String
        /// Standard error.
        public let stderr: String
    }

    /// The debug build of the binary (built by `swift build --build-tests`).
    public static var binary: URL {
        for configuration in ["debug", "release"] {
            let url = TestSupport.repositoryRoot.appendingPathComponent(".build/\(configuration)/consentry")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return TestSupport.repositoryRoot.appendingPathComponent(".build/debug/consentry")
    }

    /// Runs `consentry` with `arguments` (and `input` on standard input) and waits for it.
    public static func run(_ arguments: [String], environment: [String: String] = [:], directory: URL? = nil, input: String? = nil) throws -> Result {
        let process = try start(arguments, environment: environment, directory: directory, input: input)
        let out = process.standardOutput as! Pipe, err = process.standardError as! Pipe
        // Read both pipes before waiting so a full pipe cannot block the child.
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Starts `consentry` with `arguments` without waiting, with pipes for its output.
    public static func start(_ arguments: [String], environment: [String: String] = [:], directory: URL? = nil, input: String? = nil) throws
        -> Process
    {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "CONSENTRY_MASTER_KEY")
        env.removeValue(forKey: "CONSENTRY_VAULT")
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.currentDirectoryURL = directory ?? TestSupport.repositoryRoot
        process.standardOutput = Pipe()
        process.standardError = Pipe()
        let stdin = Pipe()
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try stdin.fileHandleForWriting.close()
        return process
    }
}

/// One case of the shared decision corpus (`Tests/Fixtures/decisions.json`), run through the library and the CLI.
public struct DecisionCase: Decodable, Sendable, CustomStringConvertible {
    /// The subject's state in a case.
    public struct Subject: Decodable, Sendable {
        /// Consent status per purpose (`granted`, `pending`, `confirmed`, `withdrawn`).
        public var consents: [String: String]
        /// Processing restricted.
        public var restricted: Bool?
        /// Purposes objected to.
        public var objections: [String]?
    }

    /// What the case is about.
    public var name: String
    /// The role.
    public var role: String
    /// The action.
    public var action: String
    /// The purpose.
    public var purpose: String?
    /// The fields.
    public var fields: [String]?
    /// A stated reason.
    public var reason: String?
    /// The subject, for data actions.
    public var subject: Subject?
    /// `permit` or `deny`.
    public var decision: String
    /// The expected reason codes, in order.
    public var reasons: [String]

    /// The case name.
    public var description: String { name }

    /// All cases of the corpus.
    public static func corpus() throws -> [DecisionCase] {
        try JSONDecoder().decode(
            [DecisionCase].self, from: Data(contentsOf: TestSupport.repositoryRoot.appendingPathComponent("Tests/Fixtures/decisions.json")))
    }
}

extension TestSupport {
    /// A generator for a property test, and its seed: taken from `CONSENTRY_TEST_SEED` when set (to replay a failure),
    /// otherwise drawn at random. The seed is printed, and belongs in every failure message of the test, so that any
    /// failing run can be repeated exactly.
    public static func propertyGenerator(_ test: String) -> (generator: SplitMix64, seed: UInt64) {
        let seed = ProcessInfo.processInfo.environment["CONSENTRY_TEST_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 0...UInt64.max)
        print("property test `\(test)`: seed \(seed) (replay with CONSENTRY_TEST_SEED=\(seed))")
        return (SplitMix64(seed: seed), seed)
    }
}

/// Runs a Python test peer from `Tests/peer` (installed by `make test-peers`).
public enum Peer {
    /// Runs `script` (relative to the repository) with `arguments`.
    public static func run(_ script: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try python([TestSupport.repositoryRoot.appendingPathComponent(script).path] + arguments, environment: [:])
    }

    /// Runs an installed Python module (`python3 -m module`) with `arguments` and extra `environment` variables.
    public static func run(module: String, _ arguments: [String], environment: [String: String]) throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        try python(["-m", module] + arguments, environment: environment)
    }

    private static func python(_ arguments: [String], environment: [String: String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        // Peers run in a scratch directory: schemathesis keeps a cache where it runs, which must not land in the repository.
        process.currentDirectoryURL = TestSupport.temporaryDirectory("peer")
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes while the peer runs, so a large report cannot fill one and stall it.
        nonisolated(unsafe) var errors = Data()
        let reader = Thread { errors = err.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !reader.isFinished { Thread.sleep(forTimeInterval: 0.01) }
        return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: errors, as: UTF8.self))
    }
}

/// One HTTP response, as the conformance checker (`Tests/peer/conform.py`) reads it: the path is the document's
/// template (`/v1/dsr/{id}`), the body as text.
public struct RecordedResponse: Encodable, Sendable {
    public let method: String
    public let path: String
    public let status: Int
    public let content_type: String
    public let body: String

    /// Records one response.
    public init(method: String, path: String, status: Int, content_type: String, body: String) {
        self.method = method
        self.path = path
        self.status = status
        self.content_type = content_type
        self.body = body
    }
}
