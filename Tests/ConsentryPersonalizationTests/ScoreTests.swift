import ConsentryAudit
import ConsentryCore
import ConsentryGate
import ConsentryPolicy
import ConsentryTesting
import Foundation
import Testing

@testable import ConsentryPersonalization

@Suite("scores and recommendations")
struct ScoreTests {
    @Test("RFM quintiles: recent, frequent, high-value subjects score 5; ties share a score; labels follow the grid")
    func rfmQuintiles() {
        var inputs: [SubjectID: ScoreDesk.RFMInput] = [:]
        for i in 1...10 {
            inputs[SubjectID(rawValue: Int64(i))] = .init(recencyDays: Double(i * 10), frequency: 11 - i, monetary: Double(i == 10 ? 1000 : 100 - i))
        }
        let scores = ScoreDesk.rfm(inputs)
        let best = scores[SubjectID(rawValue: 1)]!
        #expect(best.r == 5 && best.f == 5 && best.m == 5 && best.label == "champions")
        let worst = scores[SubjectID(rawValue: 9)]!
        #expect(worst.r == 1 && worst.f == 1 && worst.m == 1 && worst.label == "lost")
        #expect(scores[SubjectID(rawValue: 10)]!.m == 5, "the biggest spender is top on M whatever else")
        let tied = ScoreDesk.rfm([
            SubjectID(rawValue: 1): .init(recencyDays: 5, frequency: 2, monetary: 10),
            SubjectID(rawValue: 2): .init(recencyDays: 5, frequency: 2, monetary: 10),
        ])
        #expect(tied[SubjectID(rawValue: 1)]!.r == tied[SubjectID(rawValue: 2)]!.r)
    }

    @Test("item-item similarity recommends what similar subjects chose, excludes purchases, and falls back to popular items")
    func itemItem() {
        let histories: [[String: Double]] = [
            ["shoe": 3, "sock": 1], ["shoe": 1, "sock": 3], ["shoe": 1, "sock": 1, "cap": 1], ["racket": 3, "ball": 1], ["racket": 1, "ball": 1],
        ]
        let model = ItemItemModel(
            histories, categories: ["shoe": "running", "sock": "running", "cap": "running", "racket": "tennis", "ball": "tennis"])
        let picks = model.recommend(["shoe": 3], purchased: ["shoe"], count: 3)
        #expect(picks.first?.id == "sock" && picks.first?.source == "similar")
        #expect(!picks.contains { $0.id == "shoe" })
        #expect(!picks.contains { $0.id == "racket" || $0.id == "ball" } || picks.count == 3)
        let cold = model.recommend(["ball": 1], purchased: [], count: 4)
        #expect(cold.first?.id == "racket")
        #expect(cold.contains { $0.source == "popular" || $0.source == "popular_in_category" } || cold.count < 4)
        #expect(model.recommend([:], purchased: [], count: 2).map(\.source) == ["popular", "popular"], "no history: popular items")
    }

    /// A vault where two subjects consent to profiling and personalization and one objected to profiling.
    func vault() async throws -> Vault {
        let vault = try TestSupport.makeVault()
        let csv = "email,customer_id,first_name,country\na@example.test,A,Ann,DE\nb@example.test,B,Bo,DE\nc@example.test,C,Cy,FR\n"
        _ = try await vault.importProfiles(from: TestSupport.writeFile("p.csv", csv), source: .crm, format: .csv)
        for email in ["a@example.test", "b@example.test", "c@example.test"] {
            for purpose in [Purpose.profiling, .personalization] {
                try await vault.recordConsent(
                    ConsentChange(purpose: purpose, state: .granted, source: "form"), subject: .email(email), as: Principal(actor: "t", role: .admin))
            }
        }
        try await vault.recordFlag(
            .objection, purpose: .profiling, on: true, subject: .email("c@example.test"), source: "letter", as: Principal(actor: "t", role: .admin))
        var lines: [String] = []
        for (i, (email, item, type)) in [
            ("a@example.test", "shoe", "purchase"), ("a@example.test", "sock", "view"), ("b@example.test", "shoe", "view"),
            ("b@example.test", "sock", "purchase"), ("b@example.test", "cap", "view"), ("c@example.test", "shoe", "view"),
        ].enumerated() {
            let amount = type == "purchase" ? #","amount":40,"currency":"EUR""# : ""
            lines.append(
                #"{"id":"e\#(i)","email":"\#(email)","type":"\#(type)","item_id":"\#(item)","category":"running","time":"2026-11-1\#(i)T10:00:00Z"\#(amount)}"#
            )
        }
        let report = try await vault.importEvents(from: TestSupport.writeFile("e.jsonl", lines.joined(separator: "\n") + "\n"))
        #expect(report.inserted == 6, "\(report.rejections)")
        return vault
    }

    @Test("engagement and RFM are stored for consenting subjects only; an objection to profiling excludes the subject")
    func scores() async throws {
        let vault = try await vault()
        let desk = ScoreDesk(vault: vault, as: Principal(actor: "al", role: .analyst))
        let engagement = try await desk.engagement(now: TestSupport.fixedNow)
        #expect(engagement.decision == .permit && engagement.scored == 2 && engagement.excluded == ["objection": 1])
        let rfm = try await desk.rfm(now: TestSupport.fixedNow)
        #expect(rfm.scored == 2)
        let export = try await vault.exportSubject(.email("a@example.test"), as: Principal(actor: "t", role: .complianceOfficer))
        #expect(export.derived["score/engagement"] != nil && export.derived["score/rfm_label"] != nil)
        await #expect(try vault.exportSubject(.email("c@example.test"), as: Principal(actor: "t", role: .complianceOfficer)).derived.isEmpty)
        await #expect(try ScoreDesk(vault: vault, as: Principal(actor: "m", role: .marketer)).engagement().decision == .deny)
    }

    @Test("recommendations are stored under personalization and reach a personalization render, never another purpose's")
    func recommendationsInRenders() async throws {
        let vault = try await vault()
        let run = try await RecommendationDesk(vault: vault, as: Principal(actor: "esp", role: .campaignService)).run(
            count: 3, evaluate: true, now: TestSupport.fixedNow)
        #expect(run.decision == .permit && run.stored == 3 && run.evaluation != nil)
        let marketer = TemplateDesk(vault: vault, as: Principal(actor: "mia", role: .marketer))
        let source = "{% for r in recommendations %}{{ r.id }} {% endfor %}"
        _ = try await marketer.register(name: "picks", purpose: .personalization, format: .text, source: source)
        let picks = try await TemplateDesk(vault: vault, as: Principal(actor: "esp", role: .campaignService)).render(
            "picks", subject: .email("c@example.test"))
        #expect(picks.output?.contains("sock") == true, "c viewed a shoe; b and a, who also chose shoes, chose socks")
        // The same template for email_marketing (consented below) gets no recommendations: they were computed for another purpose.
        for state in [ConsentState.pending, .confirmed] {
            try await vault.recordConsent(
                ConsentChange(purpose: .emailMarketing, state: state, source: "form"), subject: .email("c@example.test"),
                as: Principal(actor: "t", role: .admin))
        }
        _ = try await marketer.register(name: "picks_mail", purpose: .emailMarketing, format: .text, source: source)
        let mail = try await TemplateDesk(vault: vault, as: Principal(actor: "esp", role: .campaignService)).render(
            "picks_mail", subject: .email("c@example.test"))
        #expect(mail.decision.isPermit && mail.output == "")
    }
}
