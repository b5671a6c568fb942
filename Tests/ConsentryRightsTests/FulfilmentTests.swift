import ConsentryAudit
import ConsentryCore
import ConsentryGate
import ConsentryPolicy
import ConsentryTesting
import Foundation
import Testing

@testable import ConsentryRights

@Suite("fulfilment")
struct FulfilmentTests {
    @Test("an access export holds every kind of data about the subject and nothing of anyone else, in a 0600 file")
    func accessExport() async throws {
        let f = try await RightsFixture()
        let record = try await f.openVerified(.access)
        let done = try await f.desk.fulfil(record.id)
        #expect(done.record.status == .completed)
        let file = try #require(done.exportFile)
        let path = f.vault.directory.appendingPathComponent(file).path
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        #expect(mode == 0o600)
        let data = try #require(FileManager.default.contents(atPath: path))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(json["format"] as? String == "consentry-export/1" && json["held"] as? Bool == true)
        let profile = try #require(json["profile"] as? [[String: String]])
        #expect(
            Set(profile.compactMap { $0["value"] }) == [
                Canary.email, Canary.customerID, Canary.firstName, Canary.lastName, Canary.phone, Canary.city, "DE",
            ])
        #expect(profile.allSatisfy { $0["source"] == "crm" && $0["observed_at"] != nil })
        #expect((json["identities"] as? [[String: String]])?.map { $0["kind"] ?? "" }.sorted() == ["customer_id", "email", "phone"])
        #expect((json["consents"] as? [[String: Any]])?.first?["purpose"] as? String == "profiling")
        #expect(json["flags"] as? [String] == ["gpc"])
        let events = try #require(json["events"] as? [[String: Any]])
        #expect(events.count == 2 && events.contains { $0["item_id"] as? String == "sku-1" && $0["type"] as? String == "purchase" })
        #expect((json["derived"] as? [[String: String]])?.first == ["kind": "score", "name": "engagement", "value": "42"])
        let processing = try #require(json["processing"] as? [[String: Any]])
        #expect(processing.contains { $0["action"] as? String == "score" && $0["role"] as? String == "analyst" })
        #expect(processing.contains { $0["action"] as? String == "export" })
        #expect(processing.allSatisfy { $0["actor"] == nil }, "staff names are not part of the subject's copy")
        for foreign in [RightsFixture.neighbour, RightsFixture.neighbourName, "NEIGHBOUR-1", "sku-neighbour"] {
            #expect(!TestSupport.contains(data, foreign), "nothing of another subject")
        }
    }

    @Test("a portability export as CSV is a folder of tables with headers, spreadsheet-safe, private")
    func csvExport() async throws {
        let f = try await RightsFixture()
        let record = try await f.openVerified(.portability, regime: .lgpd)
        let done = try await f.desk.fulfil(record.id, format: .csv)
        let file = try #require(done.exportFile)
        let folder = f.vault.directory.appendingPathComponent(file)
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        #expect(
            names == ["consents.csv", "derived.csv", "events.csv", "flags.csv", "identities.csv", "processing.csv", "profile.csv", "request.csv"])
        let profile = try String(contentsOf: folder.appendingPathComponent("profile.csv"), encoding: .utf8)
        #expect(profile.hasPrefix("field,value,source,observed_at\r\n") && profile.contains("first_name,\(Canary.firstName),crm,"))
        // The phone number starts with `+`: defused for spreadsheets.
        #expect(profile.contains("phone,'\(Canary.phone),crm"))
        let events = try String(contentsOf: folder.appendingPathComponent("events.csv"), encoding: .utf8)
        #expect(events.split(separator: "\r\n").count == 3)
        for name in names {
            let mode = try FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent(name).path)[.posixPermissions] as? Int
            #expect(mode == 0o600)
        }
    }

    @Test("a request whose identifiers match no subject completes with an export saying nothing is held")
    func nothingHeld() async throws {
        let f = try await RightsFixture()
        let opened = try await f.desk.open(.access, regime: .gdpr, identifiers: RequestIdentifiers(email: "stranger@example.test"))
        #expect(!opened.record.subjectFound)
        _ = try await f.desk.verify(opened.record.id, code: try #require(opened.code))
        let done = try await f.desk.fulfil(opened.record.id)
        let file = try #require(done.exportFile)
        let data = try #require(FileManager.default.contents(atPath: f.vault.directory.appendingPathComponent(file).path))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(json["held"] as? Bool == false && (json["events"] as? [Any])?.isEmpty == true)
    }

    @Test("forensics: after an erasure no vault file holds a canary, verify-erasure passes, the receipt verifies and a changed one does not")
    func erasureForensics() async throws {
        let f = try await RightsFixture()
        let access = try await f.openVerified(.access)
        _ = try await f.desk.fulfil(access.id)
        #expect(!f.canaryLeaks().isEmpty, "the export holds the canaries before the erasure (the scan can find them)")
        let erasure = try await f.openVerified(.erasure)
        let done = try await f.desk.fulfil(erasure.id)
        #expect(done.record.status == .completed && done.verification?.passed == true)
        #expect(f.canaryLeaks().isEmpty, "leaks: \(f.canaryLeaks())")
        let receipt = try #require(done.receipt)
        #expect(receipt.receipt.deleted["subject"] == 1 && receipt.receipt.deleted["event"] == 2 && receipt.receipt.deleted["export_file"] == 1)
        #expect(receipt.receipt.deleted["derived"] == 1 && receipt.receipt.deleted["consent_record"] == 1)
        let reason = try #require(try f.vault.policyForTests.rights.retain.first?.reason)
        let retained = try #require(receipt.receipt.retained.first)
        #expect(receipt.receipt.retained.count == 1)
        #expect(retained.kind == "purchase_events" && retained.count == 1 && retained.reason == reason && retained.until == "2036-11-20")
        #expect(receipt.receipt.suppressed == ["email", "customer_id"])
        let stored = try await #require(try f.desk.show(erasure.id).receipt)
        #expect(SignedReceipt.verify(Data(stored.utf8), publicKey: f.vault.signingPublicKey))
        let changed = stored.replacingOccurrences(of: "\"subject\":1", with: "\"subject\":0")
        #expect(changed != stored && !SignedReceipt.verify(Data(changed.utf8), publicKey: f.vault.signingPublicKey))
        #expect(!SignedReceipt.verify(Data(stored.utf8), publicKey: String(repeating: "ab", count: 32)))
        await #expect(try f.desk.verifyErasure(erasure.id).passed)
        await #expect(try f.vault.verifyAudit(as: Principal(actor: "t", role: .admin)).passed, "the chain still verifies")
        await #expect(try f.vault.profileExists(RightsFixture.neighbour), "the neighbour is untouched")
        // Both earlier requests are unlinked from the erased subject.
        let (accessShown, erasureShown) = (try await f.desk.show(access.id), try await f.desk.show(erasure.id))
        #expect(!accessShown.subjectFound && !erasureShown.subjectFound)
    }

    @Test("verify-erasure fails when an identifier is still somewhere in the vault directory")
    func verifyErasureDetects() async throws {
        let f = try await RightsFixture()
        let erasure = try await f.openVerified(.erasure)
        _ = try await f.desk.fulfil(erasure.id)
        try Data("left behind: \(Canary.email.lowercased())".utf8).write(to: f.vault.exportsDirectory.appendingPathComponent("stray.txt"))
        let verification = try await f.desk.verifyErasure(erasure.id)
        #expect(!verification.passed)
        #expect(verification.checks.first { $0.name == "raw files" }?.detail.contains("exports/stray.txt") == true)
        #expect(!verification.checks.map(\.detail).joined().contains(Canary.email), "details name files, never identifiers")
    }

    @Test("an erasure whose own verification fails signs no receipt: the request stays open with what was found, and completes once it is gone")
    func failedVerificationSignsNoReceipt() async throws {
        let f = try await RightsFixture()
        // A copy of the subject's address left in the vault directory before the erasure (an operator's stray file).
        let stray = f.vault.exportsDirectory.appendingPathComponent("stray.txt")
        try Data("left behind: \(Canary.email.lowercased())".utf8).write(to: stray)
        let erasure = try await f.openVerified(.erasure)
        let done = try await f.desk.fulfil(erasure.id)
        #expect(done.receipt == nil && done.verification?.passed == false)
        #expect(done.record.status == .inProgress && done.record.receipt == nil, "the request stays open")
        #expect(done.record.outcome?.contains("raw files") == true, "the outcome names the failed check: \(done.record.outcome ?? "")")
        await #expect(try f.desk.show(erasure.id).receipt == nil)
        await #expect(try !f.vault.profileExists(Canary.email), "the data itself is erased all the same")
        let steps = try await f.vault.queryAudit(AuditFilter(action: "dsr_manage"), as: Principal(actor: "t", role: .admin)).flatMap(\.reasons)
        #expect(steps.contains { $0.hasPrefix("erasure not completed: verification failed (raw files)") })
        // Once the stray copy is gone, fulfilling again erases nothing more, verifies, and signs.
        try FileManager.default.removeItem(at: stray)
        let again = try await f.desk.fulfil(erasure.id)
        let receipt = try #require(again.receipt)
        #expect(again.record.status == .completed && again.verification?.passed == true)
        #expect(receipt.receipt.deleted["subject"] == 1, "the receipt counts what the first pass erased")
        await #expect(SignedReceipt.verify(Data(try #require(try f.desk.show(erasure.id).receipt).utf8), publicKey: f.vault.signingPublicKey))
    }

    @Test("a re-import of an erased e-mail or customer id is refused and reported; other records go in")
    func suppression() async throws {
        let f = try await RightsFixture()
        _ = try await f.desk.fulfil(try f.openVerified(.erasure).id)
        let csv = """
            email,customer_id,first_name
            \(Canary.email.uppercased()),,Again
            other@example.test,\(Canary.customerID),Again
            fresh@example.test,FRESH-1,Fresh

            """
        let report = try await f.vault.importProfiles(from: TestSupport.writeFile("again.csv", csv), source: .web, format: .csv)
        #expect(report.suppressed == 2 && report.rejected == 2 && report.inserted == 1)
        #expect(report.rejections.allSatisfy { $0.reason.contains("erased at their request") })
        await #expect(try !f.vault.profileExists(Canary.email))
    }

    @Test("rectification corrects values, moves the blind index, keeps the old value nowhere, and outlasts a stale re-import")
    func rectification() async throws {
        let f = try await RightsFixture()
        let record = try await f.openVerified(.rectification, details: .init(set: ["city": "Newhaven", "email": "renamed-7f3a@example.test"]))
        let done = try await f.desk.fulfil(record.id)
        #expect(done.record.outcome == #"{"changed":2}"#)
        // Reading the requester's details (the corrected values) is audited as a step of the request.
        let steps = try await f.vault.queryAudit(AuditFilter(action: "dsr_manage"), as: Principal(actor: "t", role: .admin))
        #expect(steps.contains { $0.requestID == record.id && $0.reasons.contains("request details read") })
        let leaks = f.canaryLeaks(forms: [Canary.city, Canary.city.lowercased(), Data(Canary.city.utf8).base64EncodedString()])
        #expect(leaks.isEmpty, "old value left in \(leaks)")
        await #expect(try !f.vault.profileExists(Canary.email))
        await #expect(try f.vault.profileExists("renamed-7f3a@example.test"))
        // The CRM still holds the stale city, observed before the correction: it does not undo it.
        let stale = "email,city,updated_at\nrenamed-7f3a@example.test,\(Canary.city),2026-11-01T00:00:00Z\n"
        _ = try await f.vault.importProfiles(from: TestSupport.writeFile("stale.csv", stale), source: .crm, format: .csv)
        let read = try await f.vault.read(
            AccessRequest(actor: "t", role: .complianceOfficer, action: .readProfile, purpose: .service, fields: ["email"], reason: "check"),
            subject: .email("renamed-7f3a@example.test"))
        #expect(read.decision.isPermit)
        await #expect(try f.vault.rectifiedCity("renamed-7f3a@example.test") == "Newhaven")
        for bad in [["shoe_size": "9"], ["birth_date": "yesterday"]] {
            await #expect(throws: GateError.invalidInput, "refused at open, before anything is stored") {
                try await f.desk.open(
                    .rectification, regime: .gdpr, identifiers: RequestIdentifiers(email: RightsFixture.neighbour), details: .init(set: bad))
            }
        }
    }

    @Test("restriction, objection, opt-out and the sensitive-data limit take effect for the next decision")
    func flags() async throws {
        let policies = try Self.policiesWithSpecialField()
        let f = try await RightsFixture(policies: policies)
        try await f.vault.recordConsent(
            ConsentChange(purpose: .personalization, state: .granted, source: "form"), subject: .email(Canary.email),
            as: Principal(actor: "t", role: .admin))
        try await f.vault.recordConsent(
            ConsentChange(purpose: .saleShare, state: .granted, source: "form"), subject: .email(Canary.email),
            as: Principal(actor: "t", role: .admin))
        try await f.vault.recordFlag(.gpc, on: false, subject: .email(Canary.email), source: "browser", as: Principal(actor: "t", role: .admin))
        func decide(_ purpose: Purpose, _ fields: [FieldName], action: Action = .render) async throws -> [DecisionReason.Code] {
            let request = AccessRequest(actor: "c", role: .campaignService, action: action, purpose: purpose, fields: fields)
            return try await f.vault.read(request, subject: .email(Canary.email)).decision.reasons.map(\.code)
        }
        await #expect(try decide(.personalization, ["first_name", "religion"]) == [.granted])
        _ = try await f.desk.fulfil(try f.openVerified(.limitSensitive, regime: .ccpa).id)
        await #expect(try decide(.personalization, ["first_name", "religion"]) == [.sensitiveLimited])
        await #expect(try decide(.personalization, ["first_name"]) == [.granted], "other fields still flow")
        _ = try await f.desk.fulfil(try f.openVerified(.objection, details: .init(purposes: ["personalization"])).id)
        await #expect(try decide(.personalization, ["first_name"]) == [.objection])
        _ = try await f.desk.fulfil(try f.openVerified(.restriction).id)
        await #expect(try decide(.service, ["email"]) == [.granted], "service goes on under restriction")
        let analytics = AccessRequest(actor: "a", role: .analyst, action: .score, purpose: .profiling, fields: ["country"])
        await #expect(try f.vault.scan(analytics) { _, _ in }.excluded["restricted"] == 1)
        _ = try await f.desk.fulfil(try f.openVerified(.optOutSaleShare, regime: .ccpa).id)
        let flags = try await f.vault.consentHistory(subject: .email(Canary.email), as: Principal(actor: "t", role: .complianceOfficer)).flags
        #expect(Set(flags) == ["restriction", "objection:personalization", "opt_out_sale_share", "limit_sensitive"])
    }

    /// The default policies plus a special-category field `religion` that `personalization` may use.
    static func policiesWithSpecialField() throws -> URL {
        let directory = TestSupport.temporaryDirectory("policies")
        for name in ["fields.yaml", "purposes.yaml", "roles.yaml", "rights.yaml"] {
            try FileManager.default.copyItem(at: TestSupport.policies.appendingPathComponent(name), to: directory.appendingPathComponent(name))
        }
        let fields = directory.appendingPathComponent("fields.yaml")
        var text = try String(contentsOf: fields, encoding: .utf8)
        text = text.replacingOccurrences(
            of: "\nmerge:",
            with: "  religion:\n    type: string\n    class: special\n    description: declared for the limit-sensitive test\n\nmerge:")
        try text.write(to: fields, atomically: true, encoding: .utf8)
        let purposes = directory.appendingPathComponent("purposes.yaml")
        let p = try String(contentsOf: purposes, encoding: .utf8).replacingOccurrences(
            of: "fields: [customer_id, first_name, language, city, country, loyalty_tier]",
            with: "fields: [customer_id, first_name, language, city, country, loyalty_tier, religion]")
        try p.write(to: purposes, atomically: true, encoding: .utf8)
        return directory
    }

    @Test("an erasure racing imports and scans never leaves the subject partly present, and nothing after it resurrects them")
    func erasureRace() async throws {
        for round in 0..<4 {
            let f = try await RightsFixture()
            let record = try await f.openVerified(.erasure)
            let line = "email,first_name\n\(Canary.email),Round\(round)\n"
            let vault = f.vault
            async let importer: Void = { () async in
                for i in 0..<20 {
                    _ = try? await vault.importProfiles(from: TestSupport.writeFile("race\(i).csv", line), source: .web, format: .csv)
                }
            }()
            async let scanner: Void = { () async in
                for _ in 0..<10 {
                    let request = AccessRequest(actor: "a", role: .analyst, action: .score, purpose: .profiling, fields: ["country"])
                    // Every subject handed out must be complete: all requested values open.
                    _ = try? await vault.scan(request) { _, values in #expect(values.count == 1) }
                }
            }()
            let done = try await f.desk.fulfil(record.id)
            _ = await (importer, scanner)
            #expect(done.record.status == .completed)
            await #expect(try !f.vault.profileExists(Canary.email), "round \(round): the subject came back")
            await #expect(try f.desk.verifyErasure(record.id).passed)
        }
    }
}

extension Vault {
    /// The policy the vault loaded (tests only).
    var policyForTests: Policy { get throws { try Policy.load(directory: directory.appendingPathComponent("policies")) } }

    /// The subject's city through a support read.
    func rectifiedCity(_ email: String) async throws -> String? {
        let request = AccessRequest(actor: "t", role: .complianceOfficer, action: .readProfile, purpose: .service, fields: ["email"], reason: "check")
        _ = try await read(request, subject: .email(email))
        var sink = CitySink()
        _ = try await exportSubject(.email(email), as: Principal(actor: "t", role: .complianceOfficer), into: &sink)
        return sink.city
    }
}

/// Picks the city out of an export.
struct CitySink: SubjectExportSink {
    var city: String?
    mutating func begin(subject pseudonym: String) {}
    mutating func profileField(_ name: String, value: String, source: String, observedAt: String) { if name == "city" { city = value } }
    mutating func identity(kind: String, source: String) {}
    mutating func consent(_ record: ConsentRecordInfo) {}
    mutating func flag(_ name: String) {}
    mutating func event(_ event: SubjectExport.Event) {}
    mutating func derived(kind: String, name: String, value: String) {}
    mutating func processing(_ record: ProcessingRecord) {}
    mutating func finish() {}
}
