import ConsentryAudit
import ConsentryCore
import ConsentryCrypto
import ConsentryPolicy
import ConsentryTesting
import Foundation
import GRDB
import Testing

@testable import ConsentryGate

@Suite("Vault storage")
struct StorageTests {
    func canaryVault() async throws -> Vault {
        let vault = try TestSupport.makeVault()
        let row = "\(Canary.email),\(Canary.customerID),\(Canary.firstName),\(Canary.lastName),\(Canary.phone),1980-05-05,\(Canary.city),DE\n"
        _ = try await importCSV(vault, row + "other@example.test,C2,Ann,Lee,,,Oslo,NO\n")
        return vault
    }

    @Test("every connection runs with WAL, synchronous=FULL, secure_delete and foreign keys")
    func connectionSettings() throws {
        let vault = try TestSupport.makeVault()
        let reader = try vault.db.read { db in
            [
                try String.fetchOne(db, sql: "PRAGMA journal_mode"), try String.fetchOne(db, sql: "PRAGMA synchronous"),
                try String.fetchOne(db, sql: "PRAGMA secure_delete"), try String.fetchOne(db, sql: "PRAGMA foreign_keys"),
            ]
        }
        #expect(reader == ["wal", "2", "1", "1"])
        let writer = try vault.db.write { db in
            [try String.fetchOne(db, sql: "PRAGMA synchronous"), try String.fetchOne(db, sql: "PRAGMA secure_delete")]
        }
        #expect(writer == ["2", "1"])
    }

    @Test("check is a gated operation: a role without key_admin is refused before any value is opened, and both outcomes are audited")
    func checkIsGated() async throws {
        let vault = try await canaryVault()
        let refused = await #expect(throws: GateError.denied) { _ = try await vault.check(as: Principal(actor: "m", role: .marketer)) }
        #expect(refused?.message.contains("key_admin") == true || refused?.message.contains("not granted") == true, "\(String(describing: refused))")
        let report = try await vault.check(as: Principal(actor: "ops", role: .admin, requestID: "req-check-1"))
        #expect(report.passed && report.valuesOpened > 0)
        let entries = try await vault.queryAudit(AuditFilter(action: "integrity_check"), as: Principal(actor: "t", role: .admin))
        #expect(entries.map(\.decision) == ["deny", "permit"])
        #expect(entries.last?.requestID == "req-check-1" && entries.last?.reasons.contains("passed") == true)
        #expect(entries.last?.reasons.first?.contains("admin") == true, "the permit records the rule that granted it: \(entries.last?.reasons ?? [])")
    }

    @Test("the database files hold no canary in plaintext, lower-cased or base64 form")
    func forensics() async throws {
        let vault = try await canaryVault()
        _ = try await vault.check(as: .administrator("t"))
        let files = TestSupport.files(under: vault.directory).filter { $0.lastPathComponent.hasPrefix(Vault.databaseFileName) }
        #expect(files.count >= 2, "expected the database and its WAL")
        for file in files {
            let data = try Data(contentsOf: file)
            for canary in Canary.forms { #expect(!TestSupport.contains(data, canary), "\(canary) found in \(file.lastPathComponent)") }
        }
    }

    @Test("reading chosen fields decrypts only those fields")
    func readsChosenFields() async throws {
        let vault = try await canaryVault()
        let subject = try #require(try vault.findSubject(.email, Canary.email))
        let values = try #require(try vault.readFields(of: subject, fields: ["first_name", "city"]))
        #expect(values == ["first_name": Canary.firstName, "city": Canary.city])
        // Corrupt another field: a read that does not ask for it still succeeds, one that does fails.
        try corruptField("last_name", of: subject, in: vault)
        #expect(try vault.readFields(of: subject, fields: ["first_name"])?["first_name"] == Canary.firstName)
        #expect(throws: GateError.integrity) { try vault.readFields(of: subject, fields: ["last_name"]) }
    }

    func corruptField(_ field: String, of subject: SubjectID, in vault: Vault) throws {
        try vault.db.write { db in
            let blob = try #require(try Data.fetchOne(db, sql: "SELECT fields FROM subject WHERE id = ?", arguments: [subject.rawValue]))
            var packed = try #require(blob.withUnsafeBytes { PackedFields.decode($0) })
            let index = try #require(packed.entries.firstIndex { $0.name == field })
            packed.entries[index].sealed[packed.entries[index].sealed.count - 3] ^= 0x40
            try db.execute(sql: "UPDATE subject SET fields = ? WHERE id = ?", arguments: [Data(packed.encoded()), subject.rawValue])
        }
    }

    @Test("a flipped byte is an integrity error naming the subject (by its audit pseudonym) and the field, never the value or the internal id")
    func tamperedByte() async throws {
        let vault = try await canaryVault()
        let subject = try #require(try vault.findSubject(.email, Canary.email))
        try corruptField("city", of: subject, in: vault)
        let report = try await vault.check(as: .administrator("t"))
        #expect(!report.passed)
        // Named by the audit pseudonym, never by the vault's internal id.
        let pseudonym = await vault.pseudonym(secret: try vault.db.read { try vault.auditSecret(of: subject, db: $0) })
        #expect(report.problems == ["field `city` of subject \(pseudonym) failed its integrity check (tampered, moved, or sealed under another key)"])
        #expect(!report.problems.joined().contains(subject.description))
        #expect(report.subjectsChecked == 1, "the untouched subject still checks")
        for canary in Canary.forms { #expect(!report.problems.joined().contains(canary)) }
    }

    @Test("a profile moved to another subject's row fails to open")
    func movedProfile() async throws {
        let vault = try await canaryVault()
        let canary = try #require(try vault.findSubject(.email, Canary.email))
        let other = try #require(try vault.findSubject(.email, "other@example.test"))
        try await vault.db.write { db in
            try db.execute(
                sql: "UPDATE subject SET fields = (SELECT fields FROM subject WHERE id = ?) WHERE id = ?",
                arguments: [canary.rawValue, other.rawValue])
        }
        #expect(throws: GateError.integrity) { try vault.readFields(of: other, fields: ["first_name"]) }
        let report = try await vault.check(as: .administrator("t"))
        let pseudonym = await vault.pseudonym(secret: try vault.db.read { try vault.auditSecret(of: other, db: $0) })
        #expect(report.problems.count == 1 && report.problems[0].contains("subject \(pseudonym)"), "\(report.problems)")
    }

    @Test("a wrapped data key moved to another subject fails to unwrap")
    func movedDataKey() async throws {
        let vault = try await canaryVault()
        let canary = try #require(try vault.findSubject(.email, Canary.email))
        let other = try #require(try vault.findSubject(.email, "other@example.test"))
        try await vault.db.write { db in
            try db.execute(
                sql: "UPDATE subject SET wrapped_key = (SELECT wrapped_key FROM subject WHERE id = ?) WHERE id = ?",
                arguments: [canary.rawValue, other.rawValue])
        }
        #expect(throws: GateError.integrity) { try vault.readFields(of: other, fields: ["first_name"]) }
    }

    @Test("opening with the wrong master key fails with a key error, and a missing vault is reported")
    func wrongMasterKey() async throws {
        let vault = try await canaryVault()
        let wrong = try SecretBytes.random(count: 32)
        do {
            _ = try Vault.open(at: vault.directory, masterKey: wrong)
            Issue.record("opened with a wrong key")
        } catch { #expect(error.code == .key) }
        do {
            _ = try Vault.open(at: TestSupport.temporaryDirectory("none"))
            Issue.record("opened a missing vault")
        } catch { #expect(error.code == .notFound) }
        #expect(throws: GateError.alreadyExists) { _ = try Vault.create(at: vault.directory, policies: TestSupport.policies) }
    }

    @Test("a vault created with a supplied master key writes no key file and reopens only with it")
    func suppliedMasterKey() async throws {
        let directory = TestSupport.temporaryDirectory("supplied").appendingPathComponent("v")
        let material = [UInt8](repeating: 0x5A, count: 32)
        func key() throws -> SecretBytes {
            var k = try SecretBytes(count: 32)
            k.withUnsafeMutableBytes { $0.copyBytes(from: material) }
            return k
        }
        _ = try Vault.create(at: directory, policies: TestSupport.policies, masterKey: try key())
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent(Vault.masterKeyPath).path))
        let reopened = try Vault.open(at: directory, masterKey: try key())
        #expect(try await reopened.status().keyVersion == 1)
        #expect(throws: GateError.key) { _ = try Vault.open(at: directory) }
    }

    @Test("the consent ledger is append-only")
    func consentAppendOnly() async throws {
        let vault = try await canaryVault()
        let subject = try #require(try vault.findSubject(.email, Canary.email))
        _ = try await vault.db.write { db in
            try vault.appendConsent(subject: subject, purpose: .emailMarketing, state: .granted, time: 1, source: "form", db: db)
        }
        let refused = #expect(throws: DatabaseError.self) {
            try vault.db.write { try $0.execute(sql: "UPDATE consent_record SET state = 'withdrawn'") }
        }
        #expect(refused?.message == "consent records are append-only", "\(String(describing: refused))")
    }

    @Test("deleting a subject cascades to identities, events, consents and derived data")
    func cascades() async throws {
        let vault = try await canaryVault()
        let subject = try #require(try vault.findSubject(.email, Canary.email))
        _ = try await vault.importEvents(
            from: TestSupport.writeFile("e.jsonl", #"{"id":"c1","email":"\#(Canary.email)","type":"unsubscribe","time":"2026-11-19T10:00:00Z"}"#))
        _ = try await vault.db.write { db in
            try vault.appendConsent(subject: subject, purpose: .profiling, state: .granted, time: 1, source: "form", db: db)
            try db.execute(
                sql: "INSERT INTO derived (subject_id, kind, name, sealed, updated_at) VALUES (?, 'score', 'engagement', x'00', 0)",
                arguments: [subject.rawValue])
            try db.execute(sql: "DELETE FROM subject WHERE id = ?", arguments: [subject.rawValue])
        }
        for table in ["event", "consent_record", "derived"] { #expect(try vault.count(table) == 0, "\(table)") }
        #expect(try vault.count("identity") == 2)
        #expect(try vault.count("shared_identity") == 0)
    }
}

@Suite("Key rotation")
struct RotationTests {
    @Test("rotation re-wraps every data key, leaves sealed fields untouched, and retires the old key")
    func rotates() async throws {
        let vault = try TestSupport.makeVault(batchSize: 7)
        _ = try await vault.loadDemoData(DemoOptions(profiles: 50, eventsPerProfile: 0))
        let fieldsBefore = try await vault.db.read { try Data.fetchAll($0, sql: "SELECT fields FROM subject ORDER BY id") }
        let report = try await vault.rotateKeys(batchSize: 7)
        #expect(report == RotationReport(fromVersion: 1, toVersion: 2, rewrapped: 50, resumed: false))
        let fieldsAfter = try await vault.db.read { try Data.fetchAll($0, sql: "SELECT fields FROM subject ORDER BY id") }
        #expect(fieldsBefore == fieldsAfter)
        #expect(try vault.count("kek") == 1)
        await #expect(try vault.check(as: .administrator("t")).passed)
        let reopened = try Vault.open(at: vault.directory)
        await #expect(try reopened.check(as: .administrator("t")).subjectsChecked == 50)
        await #expect(try reopened.status().keyVersion == 2)
    }

    @Test("an interrupted rotation leaves every subject readable and is finished by the next run")
    func resumes() async throws {
        let vault = try TestSupport.makeVault()
        _ = try await vault.loadDemoData(DemoOptions(profiles: 30, eventsPerProfile: 0))
        // Simulate a crash after step 1 and one partial batch: a new active KEK, some subjects moved.
        let nonces = NonceSource()
        let kek = try SecretBytes.random(count: 32)
        let wrapped = Data(vault.keys.wrapKEK(kek, version: 2, nonces: nonces))
        try await vault.db.write { db in
            try db.execute(sql: "UPDATE kek SET state = 'retiring'")
            try db.execute(sql: "INSERT INTO kek (version, wrapped, state, created_at) VALUES (2, ?, 'active', 0)", arguments: [wrapped])
        }
        try vault.loadKEKs()
        _ = try await vault.loadDemoData(DemoOptions(profiles: 40, eventsPerProfile: 0))  // 10 new subjects go straight to version 2
        let reopened = try Vault.open(at: vault.directory)
        await #expect(try reopened.status().keyRotationPending)
        await #expect(try reopened.check(as: .administrator("t")).passed, "readable in the middle of a rotation")
        let report = try await reopened.rotateKeys()
        #expect(report.resumed && report.fromVersion == 1 && report.toVersion == 2 && report.rewrapped == 30)
        await #expect(try reopened.status().keyRotationPending == false)
        await #expect(try reopened.check(as: .administrator("t")).subjectsChecked == 40)
    }
}

@Suite("Key rotation by another process")
struct ConcurrentRotationTests {
    @Test("an import after another process rotated the keys wraps new subjects under the current key-encryption key")
    func importAfterForeignRotation() async throws {
        let vault = try TestSupport.makeVault()
        _ = try await importCSV(vault, "a@example.test,C1,,,,,,\n")
        let other = try Vault.open(at: vault.directory)
        _ = try await other.rotateKeys()
        _ = try await importCSV(vault, "b@example.test,C2,,,,,,\n")
        let derived = try await vault.writeDerived(
            AccessRequest(actor: "t", role: .analyst, action: .score, purpose: .analytics), kind: "score", name: "x",
            values: [try #require(try vault.findSubject(.email, "a@example.test")): "1"])
        #expect(derived.decision == .permit)
        let reopened = try Vault.open(at: vault.directory)
        let report = try await reopened.check(as: .administrator("t"))
        #expect(report.passed, "\(report.problems)")
        #expect(report.subjectsChecked == 2)
    }
}
