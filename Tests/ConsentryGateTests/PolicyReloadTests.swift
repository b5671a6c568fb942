import ConsentryAudit
import ConsentryCore
import ConsentryPolicy
import ConsentryTesting
import Foundation
import Testing

@testable import ConsentryGate

@Suite("policy reload")
struct PolicyReloadTests {
    @Test("edited policy files take effect at the next reload, audited; broken files deny everything until fixed")
    func reload() async throws {
        let vault = try TestSupport.makeVault()
        let roles = vault.directory.appendingPathComponent("policies/roles.yaml")
        let original = try String(contentsOf: roles, encoding: .utf8)
        let request = AccessRequest(actor: "a", role: .analyst, action: .score, purpose: .profiling)
        let decision = { () async throws -> Decision in try await vault.explain(request).decision }
        func lastLoad() async throws -> AuditEntry? {
            try await vault.queryAudit(AuditFilter(action: "policy_loaded"), as: Principal(actor: "t", role: .admin)).last
        }
        #expect(try await decision().isPermit)
        #expect(try vault.reloadPolicyIfChanged() == nil, "nothing changed")
        let before = vault.policyVersion

        // Take scoring for profiling away from analysts.
        let narrowed = original.replacingOccurrences(of: "      profiling: [score]\n", with: "")
        #expect(narrowed != original)
        try narrowed.write(to: roles, atomically: true, encoding: .utf8)
        let version = try #require(try vault.reloadPolicyIfChanged())
        #expect(version != before && vault.policyVersion == version)
        await #expect(try !decision().isPermit)
        let loaded = try await lastLoad()
        #expect(loaded?.policyVersion == version && loaded?.decision == "permit")
        #expect(try await vault.queryAudit(AuditFilter(action: "policy_explain"), as: Principal(actor: "t", role: .admin)).last?.policyVersion == version)

        // Files that do not load: every request is denied, and the failure is audited.
        try "roles: [\n".write(to: roles, atomically: true, encoding: .utf8)
        #expect(try vault.reloadPolicyIfChanged() != nil)
        #expect(try await decision().reasons.contains { $0.code == .policyUnavailable })
        await #expect(throws: GateError.denied, "even the audit log is closed while the policy does not load") { try await lastLoad() }
        #expect(vault.schema["email"] != nil, "the field schema stays the last one that loaded")

        // Fixed again: the original rules are back in force.
        try original.write(to: roles, atomically: true, encoding: .utf8)
        #expect(try vault.reloadPolicyIfChanged() == before)
        #expect(try await decision().isPermit)
        let loads = try await vault.queryAudit(AuditFilter(action: "policy_loaded"), as: Principal(actor: "t", role: .admin)).suffix(3)
        #expect(loads.map(\.decision) == ["permit", "deny", "permit"])
        #expect(loads.map(\.policyVersion).first == version && loads.map(\.policyVersion).last == before)
    }
}
