import ConsentryCore
import ConsentryTesting
import Foundation
import Testing

@testable import ConsentryGate
@testable import ConsentryRights

@Suite("erasure during a running import")
struct ErasureRaceTests {
    @Test("an erasure committed between two batches of a running import stops the erased subject's later records")
    func erasureBetweenBatches() async throws {
        let f = try await RightsFixture()
        let erasure = try await f.openVerified(.erasure)
        // A second handle on the same vault, with one record per batch: the import as another process would run it.
        let importer = try Vault.open(at: f.vault.directory, configuration: VaultConfiguration(clock: f.clock, importBatchSize: 1))
        let desk = f.desk
        let rows: [[(key: String, value: String)]] = [
            [("email", "first-batch@example.test"), ("first_name", "Before")],
            [("email", Canary.email), ("first_name", "Resurrected")],
            [("email", "third-batch@example.test"), ("first_name", "After")],
        ]
        // The records are read on the import's preparing thread. Reading the second one waits until the first batch
        // has committed, then erases the canary, so the erasure lands between the first and the second batch.
        let vault = f.vault
        let records = rows.indices.lazy.map { index -> ProfileRecord in
            if index == 1 {
                let deadline = Date().addingTimeInterval(30)
                while (try? TestSupport.waitFor { try await vault.profileExists("first-batch@example.test") }) != true && Date() < deadline { usleep(2_000) }
                _ = try? TestSupport.waitFor { try await desk.fulfil(erasure.id) }
            }
            return ProfileRecord(line: index + 2, values: rows[index])
        }
        var report = ImportReport(file: "race", kind: "profiles")
        let audit = try await importer.importAudit(actor: "t", role: .admin, what: "profiles from crm")
        try importer.ingestProfiles(records, source: .crm, report: &report, audit: audit)
        await #expect(try f.vault.request(erasure.id, as: Principal(actor: "dpo", role: .complianceOfficer)).status == .completed)
        #expect(report.inserted == 2 && report.suppressed == 1)
        await #expect(try !f.vault.profileExists(Canary.email))
        await #expect(try f.vault.profileExists("third-batch@example.test"))
    }
}
