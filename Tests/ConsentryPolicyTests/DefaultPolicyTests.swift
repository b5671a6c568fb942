import ConsentryPolicy
import ConsentryTesting
import Foundation
import Testing

/// The policy set built into the binary is the one in policies/, byte for byte.
@Suite("built-in policies")
struct DefaultPolicyTests {
    @Test("DefaultPolicies holds exactly the files of policies/ (run `make embed-policies` after editing them)")
    func matchesTheDirectory() throws {
        let directory = TestSupport.policies
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".yaml") || $0 == "README.md" }.sorted()
        #expect(DefaultPolicies.files.map(\.name) == names)
        for file in DefaultPolicies.files {
            let onDisk = try String(contentsOf: directory.appendingPathComponent(file.name), encoding: .utf8)
            #expect(file.contents + "\n" == onDisk, "\(file.name) differs from policies/\(file.name); run `make embed-policies`")
        }
    }
}
