import ConsentryCore
import ConsentryPolicy
import ConsentryTesting
import Foundation
import GRDB
import Testing

@testable import ConsentryGate

/// Registered kinds of derived data: sealed with the subject's key, stored with the purpose they were computed for,
/// released with reads of that purpose only when the kind says so, exported and erased like every other kind.
@Suite struct DerivedKindTests {
    private let marketer = Principal(actor: "mia", role: .marketer)

    /// Each consenting subject of ``gateVault()`` (s0, s2, … s8) in one of two arms, alternately.
    private func assignments(_ vault: Vault) throws -> [SubjectID: String] {
        var arms: [SubjectID: String] = [:]
        for i in stride(from: 0, to: 10, by: 2) {
            arms[try #require(try vault.findSubject(.email, "s\(i)@example.test"))] = i % 4 == 0 ? "canary_arm_7f3a" : "canary_arm_9b2c"
        }
        return arms
    }

    private func exportedArms(_ vault: Vault) async throws -> [String: String] {
        var arms: [String: String] = [:]
        for i in stride(from: 0, to: 10, by: 2) {
            let export = try await vault.exportSubject(.email("s\(i)@example.test"), as: Principal(actor: "t", role: .complianceOfficer))
            arms["s\(i)"] = export.derived["experiment/canary_exp"]
        }
        return arms
    }

    @Test func experimentArmsAreSealedAndAVaultFromBeforeV16HasItsClearArmsSealedAtItsFirstOpen() async throws {
        let vault = try await gateVault()
        let experiment = ExperimentDefinition(
            name: "canary_exp", purpose: .emailMarketing, arms: [.init(name: "canary_arm_7f3a", weight: 1), .init(name: "canary_arm_9b2c", weight: 1)],
            holdout: 0, role: .marketer)
        try await vault.createExperiment(experiment, actor: "mia")
        let arms = try assignments(vault)
        #expect(try await vault.storeAssignments(experiment, arms, as: marketer) == 5)
        // Assigned again, nobody changes arm.
        #expect(try await vault.storeAssignments(experiment, arms.mapValues { _ in "canary_arm_9b2c" }, as: marketer) == 0)
        let counts = try await vault.experimentCounts(experiment, as: marketer)
        #expect(counts.mapValues(\.assigned) == ["canary_arm_7f3a": 3, "canary_arm_9b2c": 2])
        let exported = try await exportedArms(vault)
        #expect(exported == ["s0": "canary_arm_7f3a", "s2": "canary_arm_9b2c", "s4": "canary_arm_7f3a", "s6": "canary_arm_9b2c", "s8": "canary_arm_7f3a"])

        // No row holds an arm in clear: there is no assignment table, and the sealed values hide the names.
        let clear = try await vault.db.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM derived WHERE kind = 'experiment' AND instr(sealed, CAST('canary_arm' AS BLOB)) > 0")
        }
        #expect(clear == 0)
        let sealed = try await vault.db.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM derived WHERE kind = 'experiment' AND purpose = 'email_marketing'")
        }
        #expect(sealed == 5)
        #expect(try await vault.db.read { try $0.tableExists("experiment_assignment") } == false)

        // What schema v15 left: the arms in clear in their own table, none sealed.
        try await vault.db.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE experiment_assignment (experiment TEXT NOT NULL, subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                        arm TEXT NOT NULL, assigned_at INTEGER NOT NULL, PRIMARY KEY (experiment, subject_id)) WITHOUT ROWID
                    """)
            for (subject, arm) in arms {
                try db.execute(sql: "INSERT INTO experiment_assignment VALUES ('canary_exp', ?, ?, 1)", arguments: [subject.rawValue, arm])
            }
            try db.execute(sql: "DELETE FROM derived WHERE kind = 'experiment'")
        }
        let reopened = try Vault.open(at: vault.directory)
        #expect(try await reopened.db.read { try $0.tableExists("experiment_assignment") } == false)
        #expect(try await reopened.experimentCounts(experiment, as: marketer) == counts)
        #expect(try await exportedArms(reopened) == exported)
        let resealed = try await reopened.db.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM derived WHERE kind = 'experiment' AND purpose = 'email_marketing'")
        }
        #expect(resealed == 5)
    }

    @Test func aKindThatIsNotRegisteredIsRefusedWithTheKindsThatAre() async throws {
        let vault = try await gateVault()
        let request = AccessRequest(actor: "t", role: .analyst, action: .score, purpose: .analytics)
        let error = await #expect(throws: GateError.invalidInput) {
            try await vault.writeDerived(request, kind: "horoscope", name: "sign", values: [:])
        }
        #expect(error?.message.contains("`horoscope` is not a registered kind of derived data") == true)
        #expect(error?.message.contains("`segment`") == true)
    }

    /// A value leaves with a read only when its kind is released with reads and it was computed for the read's purpose.
    @Test func aReadReleasesOnlyReleasedKindsOfItsOwnPurpose() async throws {
        let vault = try await gateVault()
        let subject = try #require(try vault.findSubject(.email, "s0@example.test"))
        let segment = AccessRequest(actor: "mia", role: .marketer, action: .segment, purpose: .emailMarketing)
        _ = try await vault.writeDerived(segment, kind: "segment", name: "fans", values: [subject: "1"])
        _ = try await vault.writeDerived(segment, kind: "score", name: "engagement", values: [subject: "0.9"])
        let render = AccessRequest(actor: "esp", role: .campaignService, action: .render, purpose: .emailMarketing, fields: ["first_name"])
        let read = try await vault.read(render, subject: .email("s0@example.test"), includeDerived: true)
        #expect(read.decision.isPermit)
        #expect(read.derived == ["segment/fans": "1"], "the score is not released with reads")
        let service = AccessRequest(actor: "esp", role: .campaignService, action: .render, purpose: .service, fields: ["first_name"])
        let other = try await vault.read(service, subject: .email("s0@example.test"), includeDerived: true)
        #expect(other.decision.isPermit)
        #expect(other.derived.isEmpty, "a membership computed for e-mail marketing does not leave for another purpose")
        // Both are the subject's data: the export has them all.
        let export = try await vault.exportSubject(.email("s0@example.test"), as: Principal(actor: "t", role: .complianceOfficer))
        #expect(export.derived == ["segment/fans": "1", "score/engagement": "0.9"])
    }
}
