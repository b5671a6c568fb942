import ConsentryAudit
import ConsentryCore
import ConsentryGate
import ConsentryPolicy
import ConsentryTesting
import Foundation
import Testing

@testable import ConsentryPersonalization

@Suite("templates through the gate")
struct TemplateGateTests {
    /// A vault with the canary subject (confirmed e-mail-marketing consent) and one without consent.
    func vault() async throws -> Vault {
        let vault = try TestSupport.makeVault()
        let csv = """
            email,customer_id,first_name,birth_date,loyalty_tier,language
            \(Canary.email),\(Canary.customerID),\(Canary.firstName),1990-03-05,gold,de
            noconsent@example.test,NC-1,Nora,1991-01-01,silver,en

            """
        _ = try await vault.importProfiles(from: TestSupport.writeFile("p.csv", csv), source: .crm, format: .csv)
        for state in [ConsentState.pending, .confirmed] {
            try await vault.recordConsent(
                ConsentChange(purpose: .emailMarketing, state: state, source: "form"), subject: .email(Canary.email),
                as: Principal(actor: "t", role: .admin))
        }
        return vault
    }

    static let welcome =
        "Hello {{ first_name | default: 'there' }} ({{ loyalty_tier }}), {{ campaign.name }}{% for s in segments %} [{{ s }}]{% endfor %}"

    @Test("register extracts the fields; a render releases only them, renders, and is audited")
    func registerAndRender() async throws {
        let vault = try await vault()
        let marketer = TemplateDesk(vault: vault, as: Principal(actor: "mia", role: .marketer))
        let stored = try await marketer.register(name: "welcome", purpose: .emailMarketing, format: .text, source: Self.welcome)
        #expect(stored.fields == ["first_name", "loyalty_tier"] && stored.version == 1)
        let campaign = TemplateDesk(vault: vault, as: Principal(actor: "esp", role: .campaignService))
        let result = try await campaign.render(
            "welcome", subject: .email(Canary.email), campaign: ["name": .string("Winter")], segments: ["vip"])
        #expect(result.output == "Hello \(Canary.firstName) (gold), Winter [vip]")
        #expect(result.released == ["first_name", "loyalty_tier"] && result.missing.isEmpty)
        let entry = try await #require(try vault.queryAudit(AuditFilter(action: "render"), as: Principal(actor: "t", role: .admin)).last)
        #expect(entry.sequence == result.auditSequence && entry.fields == ["first_name", "loyalty_tier"] && entry.purpose == "email_marketing")
        await #expect(try marketer.register(name: "welcome", purpose: .emailMarketing, format: .text, source: Self.welcome).version == 2)
    }

    @Test("derived data is read only for a template that reads segments or recommendations, and the entry says which")
    func derivedOnlyWhenRead() async throws {
        let vault = try await vault()
        let marketer = TemplateDesk(vault: vault, as: Principal(actor: "mia", role: .marketer))
        _ = try await marketer.register(name: "plain", purpose: .emailMarketing, format: .text, source: "Hi {{ first_name }}, {{ campaign.name }}")
        _ = try await marketer.register(name: "welcome", purpose: .emailMarketing, format: .text, source: Self.welcome)
        _ = try await marketer.register(
            name: "shadowed", purpose: .emailMarketing, format: .text, source: "{% assign segments = 'none' %}{{ segments }} {{ first_name }}")
        #expect(try marketer.compile(Self.welcome, format: .text).namespacesRead == ["campaign", "segments"])
        #expect(try marketer.compile("{% for r in recommendations %}{{ r.id }}{% endfor %}", format: .text).namespacesRead == ["recommendations"])
        let campaign = TemplateDesk(vault: vault, as: Principal(actor: "esp", role: .campaignService))
        let note = "with derived data of the purpose"
        for (name, expected) in [("plain", false), ("welcome", true), ("shadowed", false)] {
            let result = try await campaign.render(name, subject: .email(Canary.email), campaign: ["name": .string("Winter")])
            #expect(result.decision.isPermit)
            let entry = try await #require(try vault.queryAudit(AuditFilter(action: "render"), as: Principal(actor: "t", role: .admin)).last)
            #expect(entry.sequence == result.auditSequence && entry.reasons.contains(note) == expected, "\(name)")
        }
    }

    @Test("a template reading a field its purpose does not allow is refused, and the refusal is audited")
    func forbiddenField() async throws {
        let vault = try await vault()
        let marketer = TemplateDesk(vault: vault, as: Principal(actor: "mia", role: .marketer))
        await #expect(throws: GateError.denied) {
            try await marketer.register(name: "birthday", purpose: .emailMarketing, format: .text, source: "Happy {{ birth_date | date: '%d %B' }}")
        }
        let denial = try await #require(try vault.queryAudit(AuditFilter(action: "template_admin"), as: Principal(actor: "t", role: .admin)).last)
        #expect(denial.decision == "deny" && denial.reasons.contains { $0.contains("birth_date") })
        await #expect(try vault.templates().isEmpty)
        // A syntax error is reported with line and column, and nothing is stored.
        do {
            _ = try await marketer.register(name: "broken", purpose: .emailMarketing, format: .text, source: "ok\n{% if %}")
            Issue.record("a broken template was registered")
        } catch {
            #expect(error.code == .invalidInput && error.message.contains("line 2, column"))
        }
        // Roles without template_admin may not register.
        await #expect(throws: GateError.denied) {
            try await TemplateDesk(vault: vault, as: Principal(actor: "a", role: .analyst)).register(
                name: "x", purpose: .emailMarketing, format: .text, source: "{{ first_name }}")
        }
    }

    @Test("no consent, no render; a withdrawal stops the next render; missing values fall back to defaults")
    func consent() async throws {
        let vault = try await vault()
        _ = try await TemplateDesk(vault: vault, as: Principal(actor: "mia", role: .marketer)).register(
            name: "welcome", purpose: .emailMarketing, format: .html, source: Self.welcome)
        let campaign = TemplateDesk(vault: vault, as: Principal(actor: "esp", role: .campaignService))
        let denied = try await campaign.render("welcome", subject: .email("noconsent@example.test"))
        #expect(denied.output == nil && denied.decision.reasons.map(\.code) == [.consentMissing])
        await #expect(try campaign.render("welcome", subject: .email(Canary.email)).output != nil)
        try await vault.recordConsent(
            ConsentChange(purpose: .emailMarketing, state: .withdrawn, source: "unsubscribe"), subject: .email(Canary.email),
            as: Principal(actor: "t", role: .admin))
        let after = try await campaign.render("welcome", subject: .email(Canary.email))
        #expect(after.output == nil && after.decision.reasons.map(\.code) == [.consentWithdrawn])
        // A marketer may segment but not render.
        let marketer = try await TemplateDesk(vault: vault, as: Principal(actor: "mia", role: .marketer)).render(
            "welcome", subject: .email("noconsent@example.test"))
        #expect(marketer.decision.reasons.map(\.code).contains(.noRule))
    }

    @Test("a subject without a value gets the template's default")
    func defaults() async throws {
        let vault = try TestSupport.makeVault()
        _ = try await vault.importProfiles(from: TestSupport.writeFile("p.csv", "email,customer_id\nbare@example.test,B-1\n"), source: .crm, format: .csv)
        _ = try await TemplateDesk(vault: vault, as: Principal(actor: "mia", role: .marketer)).register(
            name: "service_note", purpose: .service, format: .text, source: "Dear {{ first_name | default: 'customer' }}")
        let result = try await TemplateDesk(vault: vault, as: Principal(actor: "esp", role: .campaignService)).render(
            "service_note", subject: .email("bare@example.test"))
        #expect(result.output == "Dear customer" && result.missing == ["first_name"])
    }
}
