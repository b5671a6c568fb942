import ConsentryAudit
import ConsentryCore
import ConsentryPolicy
import ConsentryTesting
import Foundation
import GRDB
import Testing

@testable import ConsentryGate

/// The one path every gate operation takes (authorize → transaction → work → audit entry → commit → checkpoint).
@Suite("perform")
struct PerformTests {
    static func marker(_ vault: Vault) throws -> String? {
        try vault.db.read { try String.fetchOne($0, sql: "SELECT value FROM vault_meta WHERE key = 'perform-test'") }
    }

    static func entries(_ vault: Vault) throws -> Int {
        try vault.db.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM audit_entry") } ?? -1
    }

    @Test("a permit commits the work and its entry together; the entry carries what the work added")
    func permit() async throws {
        let vault = try TestSupport.makeVault()
        let request = AccessRequest(actor: "ops", role: .admin, action: .keyAdmin)
        let value = try await vault.perform(request, requestID: "req-1", failure: "mark the vault") { scope -> Int in
            try scope.db.execute(sql: "INSERT INTO vault_meta (key, value) VALUES ('perform-test', 'x')")
            scope.entry.reasons.append("marked")
            return 7
        }
        #expect(try value == 7 && Self.marker(vault) == "x")
        let last = try #require(try await vault.queryAudit(AuditFilter(action: "keys_rotated"), as: .administrator("t")).last)
        #expect(last.decision == "permit" && last.reasons.contains("marked") && last.requestID == "req-1")
    }

    @Test("a denial by the policy runs no work and is audited with its reasons")
    func denied() async throws {
        let vault = try TestSupport.makeVault()
        var ran = false
        let refused = await #expect(throws: GateError.denied) {
            try await vault.perform(AccessRequest(actor: "m", role: .marketer, action: .keyAdmin), requestID: nil, failure: "x") { _ in ran = true }
        }
        #expect(!ran && refused?.message.hasPrefix("denied: ") == true)
        let last = try #require(try await vault.queryAudit(AuditFilter(decision: .deny), as: .administrator("t")).last)
        #expect(last.actor == "m" && last.action == "keys_rotated")
    }

    @Test("a refusal thrown by the work rolls the work back and is audited like a denial before it")
    func refusalInsideWork() async throws {
        let vault = try TestSupport.makeVault()
        let request = AccessRequest(actor: "ops", role: .admin, action: .keyAdmin)
        let before = try Self.entries(vault)
        let refused = await #expect(throws: GateError.denied) {
            try await vault.perform(request, requestID: nil, failure: "x") { scope in
                try scope.db.execute(sql: "INSERT INTO vault_meta (key, value) VALUES ('perform-test', 'x')")
                throw Refusal(request: request, decision: .deny(.consentMissing, "found inside the work"))
            }
        }
        #expect(refused?.message.contains("found inside the work") == true)
        #expect(try Self.marker(vault) == nil, "the work rolled back")
        #expect(try Self.entries(vault) == before + 1, "exactly the denial was recorded")
        #expect(try await vault.queryAudit(AuditFilter(decision: .deny), as: .administrator("t")).last?.reasons.first?.contains("found inside") == true)
    }

    @Test("a failing work or audit write rolls everything back and says what could not be done")
    func failureRollsBack() async throws {
        let vault = try TestSupport.makeVault()
        let before = try Self.entries(vault)
        let failed = await #expect(throws: GateError.storage) {
            try await vault.perform(AccessRequest(actor: "ops", role: .admin, action: .keyAdmin), requestID: nil, failure: "mark the vault") { scope in
                try scope.db.execute(sql: "INSERT INTO vault_meta (key, value) VALUES ('perform-test', 'x')")
                try scope.db.execute(sql: "INSERT INTO no_such_table VALUES (1)")
            }
        }
        #expect(failed?.message.hasPrefix("could not mark the vault") == true, "\(String(describing: failed))")
        #expect(try Self.marker(vault) == nil && Self.entries(vault) == before)
    }
}
