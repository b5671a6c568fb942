import ConsentryAudit
import ConsentryCore
import ConsentryTesting
import Foundation
import Testing

@testable import ConsentryGate

@Suite("Profile import")
struct ProfileImportTests {
    @Test("valid rows are normalized, sealed and countable")
    func importsAndNormalizes() async throws {
        let vault = try TestSupport.makeVault()
        let report = try await importCSV(vault, "  Ada@Example.TEST ,C1,Ada,Lovelace,+44 20 7946 0001,1815-12-10,London,gb\nbob@example.test,C2,Bob,,,,,\n")
        #expect(report.records == 2 && report.inserted == 2 && report.rejected == 0)
        let ada = try #require(try vault.profile(email: "ada@example.test"))
        #expect(ada["email"] == "ada@example.test")
        #expect(ada["phone"] == "+442079460001")
        #expect(ada["country"] == "GB")
        #expect(ada["birth_date"] == "1815-12-10")
        let bob = try #require(try vault.profile(email: "BOB@example.test"))
        #expect(bob["last_name"] == nil, "an empty value must not be stored as if real")
        #expect(bob.count == 3)
        #expect(try vault.count("identity") == 4)
        #expect(try vault.count("shared_identity") == 1)
    }

    @Test("bad rows are rejected with line, field and reason; good rows are committed")
    func rejectsBadRows() async throws {
        let vault = try TestSupport.makeVault()
        let report = try await importCSV(
            vault,
            """
            good@example.test,C1,Ann,Lee,,1990-01-01,Oslo,NO
            not-an-email,C2,Ann,Lee,,,,
            ok@example.test,C3,Ann,Lee,,1990-02-30,,
            short@example.test,C4
            ,,Ann,Lee,,,,
            line@example.test,C6,"Ann\r\nX-Injected: 1",Lee,,,,
            tz@example.test,C7,Ann,Lee,0151 1234567,,,

            """)
        #expect(report.inserted == 1)
        #expect(report.rejected == 6)
        #expect(report.rejections.map(\.line) == [3, 4, 5, 6, 7, 9])
        #expect(report.rejections[0] == .init(line: 3, field: "email", reason: "not a valid e-mail address: expected exactly one `@`"))
        #expect(
            report.rejections[1]
                == .init(line: 4, field: "birth_date", reason: "not a valid date: expected ISO 8601 `YYYY-MM-DD` with a real month and day"))
        #expect(report.rejections[2].reason == "has 2 values but the header has 8 columns; check for a missing or extra comma")
        #expect(report.rejections[3].reason.hasPrefix("the record has neither a valid `email` nor a `customer_id`"))
        #expect(report.rejections[4].field == "first_name")
        #expect(report.rejections[5].field == "phone")
        #expect(try vault.count("subject") == 1)
        #expect(report.rejections.allSatisfy { !$0.reason.contains("not-an-email") })
    }

    @Test("undeclared fields are not stored and are reported by name and count")
    func dropsUndeclared() async throws {
        let vault = try TestSupport.makeVault()
        let report = try await importCSV(vault, "a@example.test,shoe_size,12\nb@example.test,shoe_size,\n", header: "email,favourite_colour,shoe_size\n")
        #expect(report.inserted == 2)
        #expect(report.droppedFields == ["favourite_colour": 2, "shoe_size": 2])
        #expect(try vault.profile(email: "a@example.test")?.keys.sorted() == ["email"])
    }

    @Test("an undeclared special-category column refuses the whole file and changes nothing")
    func refusesSpecialCategory() async throws {
        let vault = try TestSupport.makeVault()
        await #expect {
            _ = try await importCSV(vault, "a@example.test,catholic\n", header: "email,religion\n")
        } throws: { error in
            let message = (error as? GateError)?.message ?? ""
            return message.contains("`religion` looks like special-category data (religion)") && message.contains("nothing was imported")
        }
        #expect(try vault.count("subject") == 0)
    }

    @Test("a JSON Lines record with an undeclared special-category key is rejected")
    func refusesSpecialCategoryJSONL() async throws {
        let vault = try TestSupport.makeVault()
        let url = TestSupport.writeFile(
            "p.jsonl",
            "{\"email\":\"a@example.test\",\"health_condition\":\"x\"}\n{\"email\":\"b@example.test\",\"city\":\"Oslo\",\"vip\":true,\"age\":41}\n")
        let report = try await vault.importProfiles(from: url, source: .web, format: .jsonl)
        #expect(report.inserted == 1 && report.rejected == 1)
        #expect(report.rejections.first?.field == "health_condition")
        #expect(report.droppedFields == ["vip": 1, "age": 1])
    }

    static let unusableFiles: [(String, Data, String)] = [
        ("empty", Data(), "is empty"),
        ("blank", Data("\n  \n".utf8), "is empty"),
        ("latin1", Data("email\nm".utf8) + Data([0xFC]) + Data("ller@example.test\n".utf8), "line 2 is not valid UTF-8"),
        ("nul", Data("email\na@example.test\0\n".utf8), "NUL byte"),
        ("noidentity", Data("first_name,city\nAnn,Oslo\n".utf8), "neither an `email` nor a `customer_id` column"),
        ("json", Data("{\"email\": \"a@example.test\"}\n".utf8), "looks like JSON, not CSV"),
        ("badheader", Data("email,First Name\na@example.test,Ann\n".utf8), "is not a field name"),
        ("duplicate", Data("email,email\na@example.test,b@example.test\n".utf8), "appears twice"),
        (
            "wide",
            Data(("email," + (0..<100_000).map { "c\($0)" }.joined(separator: ",") + "\na@example.test\n").utf8),
            "the header has 100001 columns, more than the 1024 accepted"
        ),
    ]

    @Test("files that are unusable as a whole get one clear error and change nothing", arguments: unusableFiles)
    func fileLevelErrors(_ name: String, _ content: Data, _ expected: String) async throws {
        let vault = try TestSupport.makeVault()
        let url = TestSupport.writeFile("\(name).csv", content)
        do {
            _ = try await vault.importProfiles(from: url, source: .crm, format: .csv)
            Issue.record("accepted \(name)")
        } catch {
            #expect(error.code == .invalidInput)
            #expect(error.message.contains(expected), "\(error.message)")
        }
        #expect(try vault.count("subject") == 0)
    }

    @Test("a CSV file given as JSON Lines is refused as a whole")
    func csvAsJSONL() async throws {
        let vault = try TestSupport.makeVault()
        let url = TestSupport.writeFile("p.jsonl", "email\na@example.test\n")
        await #expect(throws: GateError.invalidInput) { try await vault.importProfiles(from: url, source: .crm, format: .jsonl) }
        #expect(try vault.count("subject") == 0)
    }

    @Test("records matching on e-mail or customer id merge into one subject")
    func mergesByIdentity() async throws {
        let clock = FixedClock(TestSupport.fixedNow)
        let vault = try TestSupport.makeVault(clock: clock)
        _ = try await importCSV(vault, "ann@example.test,C1,Ann,Lee,,,Oslo,NO\n", source: .web)
        clock.advance(by: 60)
        let second = try await importCSV(vault, ",C1,Anna,,,,Bergen,\n", source: .web)
        #expect(second.merged == 1 && second.inserted == 0)
        let third = try await importCSV(vault, "ann@example.test,,,,+4712345678,,,\n", source: .web)
        #expect(third.merged == 1)
        let ann = try #require(try vault.profile(email: "ann@example.test"))
        #expect(ann["first_name"] == "Anna" && ann["city"] == "Bergen" && ann["last_name"] == "Lee" && ann["phone"] == "+4712345678")
        #expect(try vault.count("subject") == 1)
        let again = try await importCSV(vault, "ann@example.test,,,,+4712345678,,,\n", source: .web)
        #expect(again.unchanged == 1 && again.merged == 0)
    }

    @Test("merge rule: a higher-precedence source wins; among equals the newest value wins, older ones do not overwrite")
    func mergePrecedence() async throws {
        let clock = FixedClock(TestSupport.fixedNow)
        let vault = try TestSupport.makeVault(clock: clock)
        let header = "email,city,updated_at\n"
        _ = try await importCSV(vault, "m@example.test,Oslo,2026-11-01T00:00:00Z\n", source: .web, header: header)
        _ = try await importCSV(vault, "m@example.test,Bergen,2026-10-01T00:00:00Z\n", source: .web, header: header)
        #expect(try vault.profile(email: "m@example.test")?["city"] == "Oslo", "an older web value must not overwrite a newer one")
        _ = try await importCSV(vault, "m@example.test,Tromso,2026-09-01T00:00:00Z\n", source: .crm, header: header)
        #expect(try vault.profile(email: "m@example.test")?["city"] == "Tromso", "crm outranks web even when older")
        _ = try await importCSV(vault, "m@example.test,Narvik,2026-11-19T00:00:00Z\n", source: .web, header: header)
        #expect(try vault.profile(email: "m@example.test")?["city"] == "Tromso", "web cannot overwrite crm")
        _ = try await importCSV(vault, "m@example.test,Alta,2026-11-19T00:00:00Z\n", source: .crm, header: header)
        #expect(try vault.profile(email: "m@example.test")?["city"] == "Alta")
    }

    @Test("an e-mail and a customer id of two different subjects are a conflict, not a silent merge")
    func identityConflict() async throws {
        let vault = try TestSupport.makeVault()
        _ = try await importCSV(vault, "a@example.test,C1,,,,,,\nb@example.test,C2,,,,,,\n")
        let report = try await importCSV(vault, "a@example.test,C2,,,,,,\n")
        #expect(report.rejected == 1)
        #expect(report.rejections.first?.reason.contains("belong to two different subjects") == true)
    }

    @Test("duplicates inside one file merge within the same batch")
    func duplicatesInOneFile() async throws {
        let vault = try TestSupport.makeVault(batchSize: 2)
        let report = try await importCSV(vault, "d@example.test,C9,Dan,,,,,\nD@EXAMPLE.TEST,,Daniel,,,,,\nd@example.test,,,,,,Rome,IT\n")
        #expect(report.inserted == 1 && report.merged == 2)
        #expect(try vault.profile(email: "d@example.test")?["first_name"] == "Daniel")
    }

    @Test("records commit in batches of the configured size, each with its own audit entry, and no empty batch follows")
    func batchBoundaries() async throws {
        // Five records make batches of 2, 2 and 1; four make exactly two (the input ends on a batch boundary).
        for (records, sizes) in [(5, [2, 2, 1]), (4, [2, 2]), (1, [1])] {
            let vault = try TestSupport.makeVault(batchSize: 2)
            let body = (0..<records).map { "batch\($0)@example.test,C\($0),,,,,,\n" }.joined()
            let report = try await importCSV(vault, body)
            #expect(report.records == records && report.inserted == records && report.rejected == 0)
            #expect(try vault.count("subject") == records)
            let entries = try await vault.queryAudit(AuditFilter(action: "import"), as: Principal(actor: "t", role: .admin))
            #expect(entries.map { $0.counts["records"] } == sizes)
            #expect(entries.map { $0.counts["inserted"] } == sizes)
            // The header is line 1, so batch k starts at line 2 + 2k.
            #expect(entries.map { $0.reasons.last } == sizes.indices.map { "batch from line \(2 + 2 * $0)" })
        }
    }

    @Test("an RFC 4180 CSV with quotes, embedded commas and newlines, CRLF endings and a BOM imports")
    func csvDialect() async throws {
        let vault = try TestSupport.makeVault()
        let text = "\u{FEFF}email,city,last_name\r\nq@example.test,\"Washington, D.C.\",\"O\"\"Brien\"\r\n"
        let report = try await vault.importProfiles(from: TestSupport.writeFile("q.csv", text), source: .crm, format: .csv)
        #expect(report.inserted == 1)
        let q = try #require(try vault.profile(email: "q@example.test"))
        #expect(q["city"] == "Washington, D.C." && q["last_name"] == "O\"Brien")
    }
}

@Suite("CSV output")
struct CSVOutputTests {
    @Test("RFC 4180 quoting round-trips through the importer's reader")
    func quoting() {
        #expect(CSVText.quote("plain") == "plain")
        #expect(CSVText.quote("a,b") == "\"a,b\"")
        #expect(CSVText.quote("say \"hi\"\nbye") == "\"say \"\"hi\"\"\nbye\"")
        #expect(CSVText.quote("+4915112345678") == "+4915112345678")
    }

    @Test("spreadsheet-safe cells defuse formulas", arguments: ["=1+1", "+cmd", "-2", "@SUM(A1)", "\tx", "\rx"])
    func formulas(_ value: String) {
        let cell = CSVText.spreadsheetSafe(value)
        #expect(cell.hasPrefix("'") || cell.hasPrefix("\"'"))
    }
}

@Suite("Import errors carry no personal data")
struct ImportErrorPrivacyTests {
    @Test("a CSV file that lost its header row gets an error that does not echo the first record")
    func headerlessCSV() async throws {
        let vault = try TestSupport.makeVault()
        let url = TestSupport.writeFile("noheader.csv", "\(Canary.email),\(Canary.customerID),\(Canary.firstName)\n")
        do {
            _ = try await vault.importProfiles(from: url, source: .crm, format: .csv)
            Issue.record("imported a file without a header")
        } catch {
            #expect(error.message.contains("is not a field name") && error.message.contains("add a header row"))
            for canary in Canary.forms { #expect(!error.message.contains(canary), "\(canary) in the error") }
        }
    }

    @Test("a duplicate key that is data (an e-mail address) is not echoed in the rejection")
    func duplicateDataKey() async throws {
        let vault = try TestSupport.makeVault()
        let line = #"{"email":"x@example.test","\#(Canary.email)":1,"\#(Canary.email)":2}"#
        let report = try await vault.importProfiles(
            from: TestSupport.writeFile("dup.jsonl", "{\"email\":\"y@example.test\"}\n" + line + "\n"), source: .web, format: .jsonl)
        #expect(report.rejected == 1)
        let reason = report.rejections.first?.reason ?? ""
        #expect(reason.contains("duplicate key"))
        #expect(!reason.contains(Canary.email))
        let named = try await vault.importProfiles(
            from: TestSupport.writeFile(
                "dup2.jsonl", "{\"email\":\"w@example.test\"}\n" + #"{"email":"z@example.test","city":"A","city":"B"}"# + "\n"),
            source: .web, format: .jsonl)
        #expect(named.rejections.first?.reason.contains("duplicate key `city`") == true)
    }
}

@Suite("Rejections name keys only when they are field names")
struct KeyNamingTests {
    @Test("a nested value under a data-like key is rejected without naming the key")
    func nestedUnderDataKey() async throws {
        let vault = try TestSupport.makeVault()
        let text = "{\"email\":\"y@example.test\"}\n" + #"{"email":"x@example.test","\#(Canary.email)":{"a":1}}"# + "\n"
        let report = try await vault.importProfiles(from: TestSupport.writeFile("nested.jsonl", text), source: .web, format: .jsonl)
        #expect(report.rejected == 1)
        #expect(report.rejections.first?.field == "(invalid name)")
        #expect(!(report.rejections.first?.description.contains(Canary.email) ?? true))
    }
}
