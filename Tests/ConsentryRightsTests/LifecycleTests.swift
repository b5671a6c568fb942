import ConsentryAudit
import ConsentryCore
import ConsentryGate
import ConsentryPolicy
import ConsentryTesting
import Foundation
import Testing

@testable import ConsentryRights

@Suite("request lifecycle")
struct LifecycleTests {
    @Test("open issues a code; the request shows its deadlines; verification moves it to verified; every step is audited")
    func openAndVerify() async throws {
        let f = try await RightsFixture()
        let opened = try await f.desk.open(.access, regime: .ccpa, identifiers: RequestIdentifiers(email: Canary.email))
        #expect(opened.record.status == .verifying && opened.record.subjectFound)
        #expect(opened.code?.count == 8)
        #expect(opened.record.confirmDueAt != nil, "CCPA requests have a confirmation deadline")
        #expect(opened.record.dueAt == Deadlines.of(.access, .ccpa, receivedAt: opened.record.receivedAt).due)
        let verified = try await f.desk.verify(opened.record.id, code: try #require(opened.code))
        #expect(verified.check == .verified && verified.record.status == .verified && verified.record.verifiedAt != nil)
        let steps = try await f.vault.queryAudit(AuditFilter(action: "dsr_manage"), as: Principal(actor: "t", role: .admin)).filter {
            $0.requestID == opened.record.id
        }
        #expect(steps.flatMap(\.reasons).contains { $0.hasPrefix("opened: access") })
        #expect(steps.flatMap(\.reasons).contains("verification code issued"))
        #expect(steps.flatMap(\.reasons).contains("identity verified"))
        #expect(steps.allSatisfy { $0.subject == nil }, "request steps never name the subject")
        let log = steps.map(\.exportLine).joined()
        let code = try #require(opened.code)
        #expect(!Canary.forms.contains { log.contains($0) } && !log.contains(code))
    }

    @Test("wrong codes count attempts and lock the code; an expired code fails; a new code works")
    func attemptsAndExpiry() async throws {
        let f = try await RightsFixture()
        let opened = try await f.desk.open(.erasure, regime: .gdpr, identifiers: RequestIdentifiers(email: Canary.email))
        let id = opened.record.id
        let wrong = opened.code == "00000000" ? "11111111" : "00000000"
        for remaining in (0..<5).reversed() {
            await #expect(try f.desk.verify(id, code: wrong).check == .wrong(remaining: remaining))
        }
        await #expect(try f.desk.verify(id, code: try #require(opened.code)).check == .locked, "the right code no longer works once locked")
        let again = try await f.desk.reissueCode(id)
        f.clock.advance(by: 25 * 3600)
        await #expect(try f.desk.verify(id, code: again.code).check == .expired)
        let third = try await f.desk.reissueCode(id)
        await #expect(try f.desk.verify(id, code: third.code).check == .verified)
        await #expect(throws: GateError.invalidInput) { try await f.desk.verify(id, code: third.code) }
    }

    @Test("a code verifies only its own request: another request's code never unlocks a different subject")
    func codesDoNotCross() async throws {
        let f = try await RightsFixture()
        let mine = try await f.desk.open(.erasure, regime: .gdpr, identifiers: RequestIdentifiers(email: Canary.email))
        let theirs = try await f.desk.open(.erasure, regime: .gdpr, identifiers: RequestIdentifiers(email: RightsFixture.neighbour))
        let check = try await f.desk.verify(theirs.record.id, code: try #require(mine.code)).check
        #expect(check != .verified)
        await #expect(try f.desk.show(theirs.record.id).verifiedAt == nil)
        // An unverified request cannot be fulfilled, and the gate will not resolve its subject.
        await #expect(throws: GateError.invalidInput) { try await f.desk.fulfil(theirs.record.id) }
        await #expect(throws: GateError.invalidInput) {
            try await f.vault.eraseForRequest(theirs.record.id, as: Principal(actor: "dpo", role: .complianceOfficer))
        }
        await #expect(throws: GateError.notFound) {
            try await f.vault.exportSubject(.request(theirs.record.id), as: Principal(actor: "dpo", role: .complianceOfficer))
        }
        await #expect(try f.vault.profileExists(RightsFixture.neighbour))
    }

    @Test("reject and extend: reasons kept, extension once and only where the regime allows it")
    func rejectAndExtend() async throws {
        let f = try await RightsFixture()
        let gdpr = try await f.openVerified(.access)
        let extended = try await f.desk.extend(gdpr.id, reason: "complex request covering several systems")
        #expect(extended.status == .extended && extended.extendedDueAt == Deadlines.extended(.access, .gdpr, receivedAt: gdpr.receivedAt))
        await #expect(throws: GateError.invalidInput) { try await f.desk.extend(gdpr.id, reason: "again") }
        let lgpd = try await f.desk.open(.access, regime: .lgpd, identifiers: RequestIdentifiers(email: Canary.email)).record
        await #expect(throws: GateError.invalidInput) { try await f.desk.extend(lgpd.id, reason: "no") }
        let optOut = try await f.desk.open(.optOutSaleShare, regime: .ccpa, identifiers: RequestIdentifiers(email: Canary.email)).record
        await #expect(throws: GateError.invalidInput) { try await f.desk.extend(optOut.id, reason: "no") }
        await #expect(throws: GateError.invalidInput) { try await f.desk.reject(lgpd.id, reason: "   ") }
        let rejected = try await f.desk.reject(lgpd.id, reason: "identity could not be verified")
        #expect(rejected.status == .rejected && rejected.rejectionReason == "identity could not be verified" && rejected.completedAt != nil)
        await #expect(throws: GateError.invalidInput) { try await f.desk.fulfil(lgpd.id) }
    }

    @Test("list finds overdue requests and those due within a window, by the deadline in force")
    func overdue() async throws {
        let f = try await RightsFixture()
        let lgpd = try await f.desk.open(.access, regime: .lgpd, identifiers: RequestIdentifiers(email: Canary.email)).record
        let gdpr = try await f.desk.open(.access, regime: .gdpr, identifiers: RequestIdentifiers(email: Canary.email)).record
        await #expect(try f.desk.list(overdue: true).isEmpty)
        await #expect(try f.desk.list(dueWithinDays: 20).map(\.id) == [lgpd.id])
        f.clock.advance(by: 16 * 86_400)
        await #expect(try f.desk.list(overdue: true).map(\.id) == [lgpd.id])
        f.clock.advance(by: 20 * 86_400)
        await #expect(Set(try f.desk.list(overdue: true).map(\.id)) == [lgpd.id, gdpr.id])
        _ = try await f.desk.reject(lgpd.id, reason: "duplicate")
        await #expect(try f.desk.list(overdue: true).map(\.id) == [gdpr.id], "closed requests are never overdue")
    }

    @Test("closed requests lose their sealed identifiers after the identifier retention and their record after 24 months")
    func retention() async throws {
        let f = try await RightsFixture()
        let record = try await f.desk.open(.access, regime: .gdpr, identifiers: RequestIdentifiers(email: Canary.email)).record
        _ = try await f.desk.reject(record.id, reason: "duplicate")
        await #expect(try f.desk.show(record.id).identifiersKept)
        f.clock.advance(by: 31 * 86_400)
        _ = try await f.desk.list()
        await #expect(try !f.desk.show(record.id).identifiersKept)
        f.clock.advance(by: 22 * 31 * 86_400)
        await #expect(try f.desk.list().map(\.id) == [record.id], "kept for 24 months")
        f.clock.advance(by: 40 * 86_400)
        await #expect(try f.desk.list().isEmpty)
    }

    @Test("requests need dsr_manage; a marketer is denied and the denial is audited")
    func roles() async throws {
        let f = try await RightsFixture()
        let marketer = RightsDesk(vault: f.vault, as: Principal(actor: "mia", role: .marketer))
        await #expect(throws: GateError.denied) { try await marketer.open(.access, regime: .gdpr, identifiers: RequestIdentifiers(email: Canary.email)) }
        await #expect(throws: GateError.denied) { try await marketer.list() }
        let denials = try await f.vault.queryAudit(AuditFilter(decision: .deny), as: Principal(actor: "t", role: .admin))
        #expect(denials.contains { $0.actor == "mia" && $0.action == "dsr_manage" })
        // An admin manages requests but holds no export grant: fulfilment is denied by the gate.
        let admin = RightsDesk(vault: f.vault, as: Principal(actor: "root", role: .admin))
        let opened = try await admin.open(.access, regime: .gdpr, identifiers: RequestIdentifiers(email: Canary.email))
        _ = try await admin.verify(opened.record.id, code: try #require(opened.code))
        await #expect(throws: GateError.denied) { try await admin.fulfil(opened.record.id) }
    }

    @Test("bad input: no identifier, a malformed e-mail, identifiers of two subjects, a rectification without values")
    func badInput() async throws {
        let f = try await RightsFixture()
        await #expect(throws: GateError.invalidInput) { try await f.desk.open(.access, regime: .gdpr, identifiers: RequestIdentifiers()) }
        await #expect(throws: GateError.invalidInput) { try await f.desk.open(.access, regime: .gdpr, identifiers: RequestIdentifiers(email: "not an address")) }
        await #expect(throws: GateError.invalidInput) {
            try await f.desk.open(.erasure, regime: .gdpr, identifiers: RequestIdentifiers(email: Canary.email, customerID: "NEIGHBOUR-1"))
        }
        await #expect(throws: GateError.invalidInput) {
            try await f.desk.open(.rectification, regime: .gdpr, identifiers: RequestIdentifiers(email: Canary.email))
        }
        await #expect(throws: GateError.invalidInput) {
            try await f.desk.open(.objection, regime: .gdpr, identifiers: RequestIdentifiers(email: Canary.email), details: .init(purposes: ["nonsense"]))
        }
        await #expect(try f.desk.list().isEmpty, "nothing was stored")
    }

    @Test("an idempotency key returns the first request instead of opening a second")
    func idempotency() async throws {
        let f = try await RightsFixture()
        let first = try await f.desk.open(.access, regime: .gdpr, identifiers: RequestIdentifiers(email: Canary.email), idempotencyKey: "k-1")
        let second = try await f.desk.open(.access, regime: .gdpr, identifiers: RequestIdentifiers(email: Canary.email), idempotencyKey: "k-1")
        #expect(first.record.id == second.record.id && second.code == nil)
        await #expect(try f.desk.list().count == 1)
    }
}

extension Vault {
    /// Whether a subject with this e-mail exists (through the gate's own look-up).
    func profileExists(_ email: String) async throws -> Bool {
        let request = AccessRequest(actor: "t", role: .complianceOfficer, action: .readProfile, purpose: .service, fields: ["email"], reason: "test")
        return try await read(request, subject: .email(email)).pseudonym != nil
    }
}
