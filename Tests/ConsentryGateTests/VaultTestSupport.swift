import ConsentryCore
import ConsentryPolicy
import ConsentryTesting
import Foundation
import GRDB

@testable import ConsentryGate

extension Vault {
    /// All values of one subject found by e-mail, for assertions (tests are inside the door).
    func profile(email: String) throws -> [String: String]? {
        guard let subject = try findSubject(.email, email) else { return nil }
        let values = try readFields(of: subject, fields: schema.fields.map(\.name))
        return values.map { Dictionary(uniqueKeysWithValues: $0.map { ($0.key.rawValue, $0.value) }) }
    }

    func count(_ table: String) throws -> Int {
        try db.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM \(table)") ?? 0 }
    }
}

let csvHeader = "email,customer_id,first_name,last_name,phone,birth_date,city,country\n"

func importCSV(_ vault: Vault, _ body: String, source: DataSource = .crm, header: String = csvHeader) async throws -> ImportReport {
    try await vault.importProfiles(from: TestSupport.writeFile("profiles.csv", header + body), source: source, format: .csv)
}
