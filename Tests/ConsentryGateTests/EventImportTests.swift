import ConsentryCore
import ConsentryTesting
import Foundation
import GRDB
import Testing

@testable import ConsentryGate

@Suite("Event import")
struct EventImportTests {
    func vaultWithProfiles() async throws -> Vault {
        let vault = try TestSupport.makeVault()
        _ = try await importCSV(vault, "e@example.test,C1,,,,,,\nf@example.test,C2,,,,,,\n")
        return vault
    }

    func importEvents(_ vault: Vault, _ lines: String) async throws -> ImportReport {
        try await vault.importEvents(from: TestSupport.writeFile("events.jsonl", lines))
    }

    @Test("events link to subjects by e-mail or customer id and are idempotent by id")
    func idempotent() async throws {
        let vault = try await vaultWithProfiles()
        let lines = """
            {"id":"e-1","email":"E@example.test","type":"view","time":"2026-11-19T10:00:00Z","item_id":"run-1","category":"running"}
            {"id":"e-2","customer_id":"C2","type":"purchase","time":"2026-11-18T10:00:00+01:00","item_id":"run-1","amount":12.5,"currency":"eur"}
            {"id":"e-3","customer_id":"C1","type":"email_open","time":"2026-11-01T10:00:00Z","campaign_id":"camp-1"}

            """
        let first = try await importEvents(vault, lines)
        #expect(first.inserted == 3 && first.rejected == 0)
        let second = try await importEvents(vault, lines)
        #expect(second.inserted == 0 && second.duplicates == 3)
        #expect(try vault.count("event") == 3)
        let currency = try await vault.db.read { try String.fetchOne($0, sql: "SELECT currency FROM event WHERE type = 'purchase'") }
        #expect(currency == "EUR")
    }

    @Test("out-of-order events are stored with their own times")
    func outOfOrder() async throws {
        let vault = try await vaultWithProfiles()
        let report = try await importEvents(
            vault,
            """
            {"id":"late","email":"e@example.test","type":"view","time":"2026-11-19T10:00:00Z","item_id":"a"}
            {"id":"early","email":"e@example.test","type":"view","time":"2026-11-01T10:00:00Z","item_id":"b"}
            """)
        #expect(report.inserted == 2)
        let items = try await vault.db.read { try String.fetchAll($0, sql: "SELECT item_id FROM event ORDER BY time") }
        #expect(items == ["b", "a"])
    }

    @Test("an id reused for different content is rejected")
    func reusedID() async throws {
        let vault = try await vaultWithProfiles()
        _ = try await importEvents(vault, #"{"id":"e-1","email":"e@example.test","type":"view","time":"2026-11-19T10:00:00Z","item_id":"a"}"#)
        let report = try await importEvents(vault, #"{"id":"e-1","email":"e@example.test","type":"view","time":"2026-11-19T10:00:00Z","item_id":"b"}"#)
        #expect(report.rejected == 1)
        #expect(
            report.rejections.first == .init(line: 1, field: "id", reason: "was already imported for a different event; give each event its own id"))
    }

    @Test("bad events are rejected with line, field and reason")
    func rejections() async throws {
        let vault = try await vaultWithProfiles()
        let report = try await importEvents(
            vault,
            """
            {"id":"x1","email":"nobody@example.test","type":"view","time":"2026-11-19T10:00:00Z","item_id":"a"}
            {"id":"x2","email":"e@example.test","type":"teleport","time":"2026-11-19T10:00:00Z"}
            {"id":"x3","email":"e@example.test","type":"view","time":"yesterday","item_id":"a"}
            {"id":"x4","email":"e@example.test","type":"view","time":"2026-11-19T10:00:00Z"}
            {"id":"x5","email":"e@example.test","type":"purchase","time":"2026-11-19T10:00:00Z","amount":"12"}
            {"id":"x6","email":"e@example.test","type":"purchase","time":"2026-11-19T10:00:00Z","amount":12}
            {"id":"x7","email":"e@example.test","type":"view","time":"2027-11-19T10:00:00Z","item_id":"a"}
            {"id":"x8","email":"e@example.test","type":"view","time":"2026-11-19T10:00:00Z","item_id":"a",}
            {"id":"x9","type":"view","time":"2026-11-19T10:00:00Z","item_id":"a"}
            ["not","an","object"]
            {"id":"x11","email":"e@example.test","type":"email_click","time":"2026-11-19T10:00:00Z"}
            {"id":"x12","email":"e@example.test","type":"view","time":"2026-11-19T10:00:00Z","item_id":"a\\u0000b"}
            """)
        #expect(report.inserted == 0)
        let byLine = Dictionary(uniqueKeysWithValues: report.rejections.map { ($0.line, $0) })
        #expect(byLine[1]?.field == "email" && byLine[1]?.reason.hasPrefix("matches no subject in the vault") == true)
        #expect(byLine[2]?.field == "type")
        #expect(byLine[3]?.field == "time")
        #expect(byLine[4] == .init(line: 4, field: "item_id", reason: "is required for `view` events"))
        #expect(byLine[5] == .init(line: 5, field: "amount", reason: "must be a JSON number such as `12.5`"))
        #expect(byLine[6] == .init(line: 6, field: "currency", reason: "is required when `amount` is given"))
        #expect(byLine[7]?.reason == "is more than a day in the future; check the source system's clock")
        #expect(byLine[8]?.reason.hasPrefix("invalid JSON at column") == true)
        #expect(byLine[9]?.reason.hasPrefix("the event has neither `email` nor `customer_id`") == true)
        #expect(byLine[10]?.reason == "expected a JSON object `{...}`")
        #expect(byLine[11]?.field == "campaign_id")
        #expect(byLine[12]?.field == "item_id")
        #expect(report.rejected == 12)
    }

    @Test("unknown keys are dropped and reported, never stored")
    func droppedKeys() async throws {
        let vault = try await vaultWithProfiles()
        let report = try await importEvents(
            vault, #"{"id":"d1","email":"e@example.test","type":"unsubscribe","time":"2026-11-19T10:00:00Z","ip":"203.0.113.9"}"#)
        #expect(report.inserted == 1)
        #expect(report.droppedFields == ["ip": 1])
    }

    @Test("deeply nested JSON is refused without a crash")
    func deepNesting() async throws {
        let vault = try await vaultWithProfiles()
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        let report = try await importEvents(
            vault,
            #"{"id":"n1","email":"e@example.test","type":"view","time":"2026-11-19T10:00:00Z","item_id":"a"}"# + "\n{\"id\":\"n2\",\"x\":" + deep
                + "}\n")
        #expect(report.inserted == 1 && report.rejected == 1)
        #expect(report.rejections.first?.reason.contains("nested deeper than 32 levels") == true)
    }

    @Test("a file whose first line is not JSON is refused as a whole")
    func notJSONLines() async throws {
        let vault = try await vaultWithProfiles()
        await #expect(throws: GateError.invalidInput) { try await importEvents(vault, "id,email,type\n1,e@example.test,view\n") }
        #expect(try vault.count("event") == 0)
    }
}
