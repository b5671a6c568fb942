import ConsentryTesting
import Foundation
import Testing

/// Invariant 1 (one door): no module outside ConsentryGate can reach decrypted personal data. This test
/// compiles probe files against the built ConsentryGate module, as another module would, and requires the
/// compiler to refuse every plaintext path. A control probe using only public API must compile, and each forbidden
/// line must compile with `@testable import`, so the test fails if the harness itself breaks or a name goes stale.
/// The module's whole public surface is checked against an allow-list, from the compiler's symbol graph.
@Suite("One door")
struct AccessControlTests {
    static let modules = TestSupport.repositoryRoot.appendingPathComponent(".build/debug/Modules")

    static let moduleMaps: [String] = {
        let root = TestSupport.repositoryRoot.path
        return [
            "\(root)/Sources/CSodium/module.modulemap", "\(root)/.build/checkouts/Yams/Sources/CYaml/include/module.modulemap",
            "\(root)/.build/checkouts/GRDB.swift/Sources/GRDBSQLite/module.modulemap", "\(root)/.build/debug/CConsentrySystem.build/module.modulemap",
        ].flatMap { ["-Xcc", "-fmodule-map-file=\($0)"] }
    }()

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func typecheck(_ source: String) throws -> (status: Int32, output: String) {
        let file = TestSupport.writeFile("probe.swift", source)
        return try Self.run(["swiftc", "-typecheck", "-I", Self.modules.path] + Self.moduleMaps + [file.path])
    }

    @Test("another module can use the public vault API but none of its plaintext reads")
    func plaintextReadsAreInternal() throws {
        try #require(FileManager.default.fileExists(atPath: Self.modules.appendingPathComponent("ConsentryGate.swiftmodule").path))
        let control = try typecheck(
            """
            import ConsentryGate
            func ok(_ v: Vault) async throws { _ = try await v.status() }
            """)
        #expect(control.status == 0, "the control probe must compile: \(control.output)")

        let forbidden = [
            "_ = try v.readFields(of: SubjectID(rawValue: 1), fields: [])",
            "try v.scanSubjects(fields: []) { _, _ in }",
            "_ = try v.findSubject(.email, \"a@example.test\")",
            "_ = v.db",
            "_ = v.keys",
            "_ = FieldOpener(fields: [])",
            "_ = PackedFields()",
        ]
        for line in forbidden {
            func probe(_ importLine: String) throws -> (status: Int32, output: String) {
                try typecheck(
                    """
                    import ConsentryCore
                    \(importLine)
                    func leak(_ v: Vault) throws {
                        \(line)
                    }
                    """)
            }
            // The same line compiles with the module's internals in view, so it names something that exists: a typo
            // cannot pass for a refusal.
            let inside = try probe("@testable import ConsentryGate")
            #expect(inside.status == 0, "the probe must name a real internal symbol: \(line): \(inside.output)")
            let outside = try probe("import ConsentryGate")
            #expect(outside.status != 0, "compiled from outside the gate module: \(line)")
        }
    }

    /// The module's public symbols, one line each (`kind path`), sorted, from the compiler's symbol graph.
    static func publicSurface(of module: String) throws -> [String] {
        let output = TestSupport.temporaryDirectory("symbols")
        let extracted = try run(
            ["swift-symbolgraph-extract", "-module-name", module, "-I", modules.path, "-minimum-access-level", "public", "-output-dir", output.path]
                + ["-target", "\(hostArchitecture)-unknown-linux-gnu"] + moduleMaps)
        try #require(extracted.status == 0, "swift-symbolgraph-extract failed: \(extracted.output.suffix(600))")
        let graph = try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("\(module).symbols.json"))) as? [String: Any]
        let symbols = try #require(graph?["symbols"] as? [[String: Any]])
        let lines = symbols.compactMap { symbol -> String? in
            guard let kind = (symbol["kind"] as? [String: Any])?["identifier"] as? String, let path = symbol["pathComponents"] as? [String] else { return nil }
            return "\(kind) \(path.joined(separator: "."))"
        }
        return Array(Set(lines)).sorted()
    }

    static var hostArchitecture: String {
        #if arch(arm64)
            "aarch64"
        #else
            "x86_64"
        #endif
    }

    static let surfaceFile = TestSupport.repositoryRoot.appendingPathComponent("Tests/ConsentryGateTests/public-surface.txt")

    @Test("the gate module's public surface is exactly the allow-list (a new public symbol is a decision, not an accident)")
    func publicSurfaceIsAllowed() throws {
        let surface = try Self.publicSurface(of: "ConsentryGate")
        try #require(surface.count > 50, "the symbol graph lists too few symbols to be the module: \(surface.count)")
        if ProcessInfo.processInfo.environment["CONSENTRY_UPDATE_SURFACE"] == "1" {
            try (surface.joined(separator: "\n") + "\n").write(to: Self.surfaceFile, atomically: true, encoding: .utf8)
        }
        let allowed = try String(contentsOf: Self.surfaceFile, encoding: .utf8).split(separator: "\n").map(String.init)
        let added = Set(surface).subtracting(allowed).sorted()
        let removed = Set(allowed).subtracting(surface).sorted()
        #expect(
            added.isEmpty && removed.isEmpty,
            "the public surface of ConsentryGate changed; if that is meant, run `make public-surface` and commit the file.\nnew: \(added.prefix(40))\ngone: \(removed.prefix(40))"
        )
    }
}
