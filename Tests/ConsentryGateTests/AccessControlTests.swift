import ConsentryTesting
import Foundation
import Testing

/// Invariant 1 (one door): no module outside ConsentryGate can reach decrypted personal data. This test
/// compiles probe files against the built ConsentryGate module, as another module would, and requires the
/// compiler to refuse every plaintext path. A control probe using only public API must compile, so the
/// test fails if the harness itself breaks.
@Suite("One door")
struct AccessControlTests {
    static let modules = TestSupport.repositoryRoot.appendingPathComponent(".build/debug/Modules")

    func typecheck(_ source: String) throws -> (status: Int32, output: String) {
        let file = TestSupport.writeFile("probe.swift", source)
        let root = TestSupport.repositoryRoot.path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "swiftc", "-typecheck", "-I", Self.modules.path,
            "-Xcc", "-fmodule-map-file=\(root)/Sources/CSodium/module.modulemap",
            "-Xcc", "-fmodule-map-file=\(root)/.build/checkouts/Yams/Sources/CYaml/include/module.modulemap",
            "-Xcc", "-fmodule-map-file=\(root)/.build/checkouts/GRDB.swift/Sources/GRDBSQLite/module.modulemap",
            "-Xcc", "-fmodule-map-file=\(root)/.build/debug/CConsentrySystem.build/module.modulemap",
            file.path,
        ]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test("another module can use the public vault API but none of its plaintext reads")
    func plaintextReadsAreInternal() throws {
        try #require(FileManager.default.fileExists(atPath: Self.modules.appendingPathComponent("ConsentryGate.swiftmodule").path))
        let control = try typecheck(
            """
            import ConsentryGate
            func ok(_ v: Vault) throws { _ = try v.status(); _ = try v.check() }
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
            let probe = try typecheck(
                """
                import ConsentryCore
                import ConsentryGate
                func leak(_ v: Vault) throws {
                    \(line)
                }
                """)
            #expect(probe.status != 0, "compiled from outside the vault module: \(line)")
            #expect(
                probe.output.contains("inaccessible due to 'internal' protection level") || probe.output.contains("cannot find"),
                "\(line): \(probe.output)")
        }
    }
}
