import ConsentryCore
import ConsentryGate
import ConsentryPolicy
import ConsentryTesting
import Foundation
import Testing

@testable import ConsentryRights

/// A vault with the canary subject (profile, consents, flags, events, derived data) and a neighbour whose data must
/// never appear in the canary's export. The clock is fixed and can be advanced.
struct RightsFixture {
    let vault: Vault
    let clock: FixedClock
    let desk: RightsDesk
    static let neighbour = "neighbour-9c1d@example.test"
    static let neighbourName = "Plimbertine"

    init(policies: URL? = nil) async throws {
        clock = FixedClock(TestSupport.fixedNow)
        vault = try TestSupport.makeVault(clock: clock, policies: policies)
        desk = RightsDesk(vault: vault, as: Principal(actor: "dpo", role: .complianceOfficer))
        let csv = """
            email,customer_id,first_name,last_name,phone,city,country
            \(Canary.email),\(Canary.customerID),\(Canary.firstName),\(Canary.lastName),\(Canary.phone),\(Canary.city),DE
            \(Self.neighbour),NEIGHBOUR-1,\(Self.neighbourName),Other,+4915100000001,Elsewhere,FR

            """
        _ = try await vault.importProfiles(from: TestSupport.writeFile("p.csv", csv), source: .crm, format: .csv)
        let events =
            [
                #"{"id":"c-1","email":"\#(Canary.email)","type":"view","time":"2026-11-18T09:00:00Z","item_id":"sku-1","category":"running"}"#,
                #"{"id":"c-2","email":"\#(Canary.email)","type":"purchase","time":"2026-11-19T09:00:00Z","item_id":"sku-1","amount":89.9,"currency":"EUR"}"#,
                #"{"id":"n-1","email":"\#(Self.neighbour)","type":"purchase","time":"2026-11-19T10:00:00Z","item_id":"sku-neighbour","amount":5,"currency":"EUR"}"#,
            ].joined(separator: "\n") + "\n"
        _ = try await vault.importEvents(from: TestSupport.writeFile("e.jsonl", events))
        for email in [Canary.email, Self.neighbour] {
            try await vault.recordConsent(
                ConsentChange(purpose: .profiling, state: .granted, source: "form"), subject: .email(email), as: Principal(actor: "t", role: .admin))
        }
        try await vault.recordFlag(.gpc, on: true, subject: .email(Canary.email), source: "browser", as: Principal(actor: "t", role: .admin))
        var ids: [SubjectID: String] = [:]
        _ = try await vault.scan(AccessRequest(actor: "a", role: .analyst, action: .score, purpose: .profiling, fields: ["country"])) { member, _ in
            ids[member.subject] = "42"
        }
        _ = try await vault.writeDerived(
            AccessRequest(actor: "a", role: .analyst, action: .score, purpose: .profiling), kind: "score", name: "engagement", values: ids)
    }

    /// Opens a request for the canary and verifies it.
    func openVerified(_ type: RequestType, regime: Regime = .gdpr, details: RightsDesk.Details = .init()) async throws -> RequestRecord {
        let opened = try await desk.open(type, regime: regime, identifiers: RequestIdentifiers(email: Canary.email), details: details)
        let code = try #require(opened.code)
        let verified = try await desk.verify(opened.record.id, code: code)
        try #require(verified.check == .verified)
        return verified.record
    }

    /// Files of the vault directory holding any canary form (plain, lower-cased, base64), with the form's index.
    func canaryLeaks(forms: [String] = Canary.forms) -> [String] {
        TestSupport.files(under: vault.directory).flatMap { url -> [String] in
            guard let data = FileManager.default.contents(atPath: url.path) else { return [] }
            return forms.enumerated().filter { TestSupport.contains(data, $0.element) }.map { "\(url.lastPathComponent) form #\($0.offset)" }
        }
    }
}
