import ConsentryAudit
import ConsentryCore
import ConsentryPolicy
import ConsentryTesting
import Foundation
import Testing

import ConsentryGate
@testable import ConsentryPersonalization

@Suite("send time and experiments")
struct CampaignTests {
    @Test("statistics agree with known values: z and chi-squared p-values, Wilson intervals, log-gamma")
    func statistics() {
        // 1.96 standard errors apart is p = 0.05, two-sided.
        let (_, z, p) = Stats.twoProportion([60, 40], [100, 100])
        #expect(abs(z - 2.8284) < 1e-3 && abs(p - 0.004678) < 1e-4)
        #expect(abs(Stats.upperGamma(0.5, 3.841_459 / 2) - 0.05) < 1e-5, "chi-squared df 1 at its 95th percentile")
        #expect(abs(Stats.upperGamma(1, 5.991_465 / 2) - 0.05) < 1e-5, "df 2")
        #expect(abs(Stats.upperGamma(2.5, 11.070_5 / 2) - 0.05) < 1e-4, "df 5")
        let (_, chi, pChi) = Stats.chiSquared([30, 30, 30], [100, 100, 100])
        #expect(chi == 0 && abs(pChi - 1) < 1e-9)
        let interval = Stats.wilson(50, 100)
        #expect(abs(interval[0] - 0.4038) < 1e-3 && abs(interval[1] - 0.5962) < 1e-3)
        #expect(abs(Double.logGammaOf(5) - log(24)) < 1e-10 && abs(Double.logGammaOf(0.5) - log(Double.pi.squareRoot())) < 1e-10)
        #expect(SendTime.hourOfWeek(0) == 3 * 24, "1970-01-01 00:00 UTC was a Thursday")
    }

    @Test("property: assignment is deterministic and splits subjects by the weights and the holdout")
    func assignment() {
        let experiment = ExperimentDefinition(
            name: "e", purpose: .emailMarketing, arms: [.init(name: "a", weight: 1), .init(name: "b", weight: 3)], holdout: 0.2, role: .marketer)
        var counts: [String: Int] = [:]
        for i in 0..<20_000 {
            let pseudonym = String(format: "%032x", i &* 2_654_435_761)
            let arm = ExperimentDesk.arm(experiment: experiment, pseudonym: pseudonym)
            #expect(arm == ExperimentDesk.arm(experiment: experiment, pseudonym: pseudonym))
            counts[arm, default: 0] += 1
        }
        #expect(abs(Double(counts["holdout"]!) / 20_000 - 0.2) < 0.02)
        #expect(abs(Double(counts["a"]!) / 20_000 - 0.2) < 0.02 && abs(Double(counts["b"]!) / 20_000 - 0.6) < 0.02)
    }

    @Test(
        "an experiment end to end: consenting subjects are assigned, outcomes of others are refused, the report aggregates; erasure removes the subject's part"
    )
    func experimentFlow() async throws {
        let vault = try TestSupport.makeVault()
        let csv = (0..<40).map { "u\($0)@example.test,U\($0)" }.joined(separator: "\n")
        _ = try await vault.importProfiles(from: TestSupport.writeFile("p.csv", "email,customer_id\n" + csv + "\n"), source: .crm, format: .csv)
        for i in 0..<30 {
            for state in [ConsentState.pending, .confirmed] {
                try await vault.recordConsent(
                    ConsentChange(purpose: .emailMarketing, state: state, source: "form"), subject: .email("u\(i)@example.test"),
                    as: Principal(actor: "t", role: .admin))
            }
        }
        let desk = ExperimentDesk(vault: vault, as: Principal(actor: "mia", role: .marketer))
        _ = try await desk.create(
            name: "subject_line", purpose: .emailMarketing, arms: [.init(name: "short", weight: 1), .init(name: "long", weight: 1)], holdout: 0.1)
        await #expect(throws: GateError.alreadyExists) {
            try await desk.create(
                name: "subject_line", purpose: .emailMarketing, arms: [.init(name: "x", weight: 1), .init(name: "y", weight: 1)], holdout: 0)
        }
        let assigned = try await desk.assign("subject_line")
        #expect(assigned.values.reduce(0, +) == 30, "only the 30 consenting subjects")
        let outcomes = (0..<40).map { ExperimentOutcome(id: "c\($0)", subject: .email("u\($0)@example.test"), kind: "conversion", value: 1, time: 0) }
        let recorded = try await ExperimentDesk(vault: vault, as: Principal(actor: "etl", role: .admin)).record("subject_line", outcomes)
        #expect(recorded.recorded == 30 && recorded.rejected.count == 10)
        await #expect(
            try ExperimentDesk(vault: vault, as: Principal(actor: "etl", role: .admin)).record("subject_line", outcomes).duplicates == 30,
            "idempotent by id")
        let report = try await desk.report("subject_line")
        #expect(report.arms.reduce(0) { $0 + $1.recipients } == 30 && report.arms.allSatisfy { $0.conversionRate == 1 })
        #expect(report.test == "two_proportion_z" && !report.significant)
        let export = try await vault.exportSubject(.email("u0@example.test"), as: Principal(actor: "t", role: .complianceOfficer))
        #expect(export.derived["experiment/subject_line"] != nil, "the arm is part of the subject's export")
        _ = try await vault.eraseSubject(.email("u0@example.test"), as: Principal(actor: "t", role: .complianceOfficer))
        await #expect(try desk.report("subject_line").arms.reduce(0) { $0 + $1.recipients } == 29)
    }

    @Test("send time: own history when there is enough, else the country, else everyone; shown through the gate")
    func sendTime() async throws {
        let vault = try TestSupport.makeVault()
        _ = try await vault.importProfiles(
            from: TestSupport.writeFile("p.csv", "email,country\nown@example.test,DE\npeer@example.test,DE\nlone@example.test,FR\n"), source: .crm,
            format: .csv)
        for email in ["own@example.test", "peer@example.test", "lone@example.test"] {
            try await vault.recordConsent(
                ConsentChange(purpose: .personalization, state: .granted, source: "form"), subject: .email(email),
                as: Principal(actor: "t", role: .admin))
        }
        // Three opens on Tuesdays at 18:00 UTC (2026-11-17 was a Tuesday).
        let lines = (0..<3).map {
            #"{"id":"o\#($0)","email":"own@example.test","type":"email_open","campaign_id":"c","time":"2026-11-17T18:0\#($0):00Z"}"#
        }
        _ = try await vault.importEvents(from: TestSupport.writeFile("e.jsonl", lines.joined(separator: "\n") + "\n"))
        let desk = SendTimeDesk(vault: vault, as: Principal(actor: "esp", role: .campaignService))
        let sources = try await desk.compute(now: TestSupport.fixedNow)
        #expect(sources == ["own_history": 1, "country": 1, "global": 1])
        await #expect(try desk.show(.email("own@example.test")).time?.label == "Tue 18:00 UTC")
        await #expect(try desk.show(.email("peer@example.test")).time?.source == "country")
        await #expect(try desk.show(.email("lone@example.test")).time?.source == "global")
    }
}
