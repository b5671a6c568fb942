import ConsentryTesting
import Foundation
import GRDB
import Testing

/// Offline tampering, table by table (threat 15): someone with the vault's files but not its key edits, deletes,
/// inserts or moves rows with SQLite directly. Each case must be detected by `consentry check` or `consentry audit
/// verify` (exit 1, with a message that names what failed), or be listed in docs/threat-model.md as out of scope with
/// the reason. The test process never opens the vault through Consentry: the files are changed as an attacker would.
@Suite("tamper matrix", .serialized)
struct TamperMatrixTests {
    static let neighbour = "neighbour-9c1d@example.test"

    /// How a case must be found.
    enum Detector: String { case check, auditVerify = "audit verify" }

    struct Case: CustomStringConvertible, Sendable {
        let description: String
        let detector: Detector
        /// A phrase the detector's output must contain.
        let message: String
        let tamper: @Sendable (Database) throws -> Void
    }

    /// A vault with two subjects (canary and neighbour), their consents and a flag, a token, a segment with stored
    /// members and an audit history, built once with the binary and copied for each case.
    static let pristine: URL = {
        let vault = newVaultPath()
        func run(_ arguments: [String]) {
            let result = try! consentry(vault, arguments)
            precondition(result.status == 0, "set-up step failed: \(arguments.prefix(3)) \(result.stderr)")
        }
        run(["init"])
        let csv = TestSupport.writeFile(
            "tamper.csv",
            "email,customer_id,first_name,phone,city,country\n\(Canary.email),\(Canary.customerID),\(Canary.firstName),\(Canary.phone),\(Canary.city),DE\n\(neighbour),N-1,Ann,+4915100000001,Oslo,NO\n"
        )
        run(["import", "profiles", csv.path, "--source", "crm"])
        for email in [Canary.email, neighbour] {
            run(["consent", "pending", "--email", email, "--purpose", "email_marketing"])
            run(["consent", "confirm", "--email", email, "--purpose", "email_marketing"])
        }
        run(["consent", "withdraw", "--email", neighbour, "--purpose", "email_marketing"])
        run(["consent", "flag", "--email", neighbour, "--set", "restriction"])
        run(["token", "create", "--role", "marketer", "--name", "tamper-test"])
        run(["segment", "define", "everyone", "--purpose", "email_marketing", "--rule", #"country != "x""#])
        run(["segment", "run", "everyone"])
        return vault
    }()

    static func subjectID(_ db: Database, customer: String) throws -> Int64 {
        // The tamperer knows which row is whose only by position; here by the neighbour's consent history.
        let rows = try Int64.fetchAll(db, sql: "SELECT DISTINCT subject_id FROM subject_flag")
        let neighbourID = try #require(rows.first)
        return customer == "N-1"
            ? neighbourID : try #require(try Int64.fetchOne(db, sql: "SELECT id FROM subject WHERE id != ?", arguments: [neighbourID]))
    }

    static let cases: [Case] = [
        Case(description: "subject: a byte of a sealed field flipped", detector: .check, message: "failed its integrity check") { db in
            let id = try subjectID(db, customer: "C")
            var blob = [UInt8](try #require(try Data.fetchOne(db, sql: "SELECT fields FROM subject WHERE id = ?", arguments: [id])))
            blob[blob.count - 3] ^= 0x40
            try db.execute(sql: "UPDATE subject SET fields = ? WHERE id = ?", arguments: [Data(blob), id])
        },
        Case(description: "subject: sealed fields moved to the other subject", detector: .check, message: "failed its integrity check") { db in
            let (a, b) = (try subjectID(db, customer: "C"), try subjectID(db, customer: "N-1"))
            try db.execute(sql: "UPDATE subject SET fields = (SELECT fields FROM subject WHERE id = ?) WHERE id = ?", arguments: [a, b])
        },
        Case(description: "subject: wrapped data key moved to the other subject", detector: .check, message: "integrity check") { db in
            let (a, b) = (try subjectID(db, customer: "C"), try subjectID(db, customer: "N-1"))
            try db.execute(sql: "UPDATE subject SET wrapped_key = (SELECT wrapped_key FROM subject WHERE id = ?) WHERE id = ?", arguments: [a, b])
        },
        Case(description: "identity: an e-mail's index row moved to another subject", detector: .check, message: "of `identity` fail their binding") {
            db in
            let (a, b) = (try subjectID(db, customer: "C"), try subjectID(db, customer: "N-1"))
            try db.execute(sql: "UPDATE identity SET subject_id = ? WHERE subject_id = ? AND kind = 'email'", arguments: [b, a])
        },
        Case(description: "identity: a forged index row inserted", detector: .check, message: "of `identity` fail their binding") { db in
            let a = try subjectID(db, customer: "C")
            try db.execute(
                sql: "INSERT INTO identity (hash, kind, subject_id, source, created_at) VALUES (randomblob(32), 'email', ?, 'crm', 0)", arguments: [a]
            )
        },
        Case(description: "shared_identity: a phone's index row moved", detector: .check, message: "of `shared_identity` fail their binding") { db in
            let (a, b) = (try subjectID(db, customer: "C"), try subjectID(db, customer: "N-1"))
            try db.execute(sql: "UPDATE shared_identity SET subject_id = ? WHERE subject_id = ?", arguments: [b, a])
        },
        Case(
            description: "consent_record: a withdrawal turned into a confirmation", detector: .check,
            message: "of `consent_record` fail their binding"
        ) {
            db in
            try db.execute(sql: "DROP TRIGGER consent_record_append_only")
            try db.execute(sql: "UPDATE consent_record SET state = 'confirmed' WHERE state = 'withdrawn'")
        },
        Case(description: "consent_record: a forged grant inserted", detector: .check, message: "of `consent_record` fail their binding") { db in
            let b = try subjectID(db, customer: "N-1")
            try db.execute(
                sql:
                    "INSERT INTO consent_record (subject_id, purpose, state, time, source, recorded_at) VALUES (?, 'email_marketing', 'confirmed', 1, 'form', 1)",
                arguments: [b])
        },
        Case(description: "consent_record: a record moved to another subject", detector: .check, message: "of `consent_record` fail their binding") {
            db in
            let (a, b) = (try subjectID(db, customer: "C"), try subjectID(db, customer: "N-1"))
            try db.execute(sql: "DROP TRIGGER consent_record_append_only")
            try db.execute(sql: "UPDATE consent_record SET subject_id = ? WHERE subject_id = ?", arguments: [a, b])
        },
        Case(description: "subject_flag: a restriction cleared in place", detector: .check, message: "of `subject_flag` fail their binding") { db in
            try db.execute(sql: "DROP TRIGGER subject_flag_append_only")
            try db.execute(sql: "UPDATE subject_flag SET value = 0")
        },
        Case(description: "consent_record: the newest withdrawal deleted", detector: .check, message: "does not match its head") { db in
            try db.execute(sql: "DELETE FROM consent_record WHERE state = 'withdrawn'")
        },
        Case(description: "consent_record: an older record deleted", detector: .check, message: "does not match its head") { db in
            try db.execute(sql: "DELETE FROM consent_record WHERE id = (SELECT min(id) FROM consent_record)")
        },
        Case(description: "subject_flag: a restriction deleted", detector: .check, message: "does not match its head") { db in
            try db.execute(sql: "DELETE FROM subject_flag")
        },
        Case(description: "subject: a ledger head removed with every record it counts", detector: .check, message: "does not match its head") { db in
            let b = try subjectID(db, customer: "N-1")
            try db.execute(sql: "DELETE FROM consent_record WHERE subject_id = ?", arguments: [b])
            try db.execute(sql: "DELETE FROM subject_flag WHERE subject_id = ?", arguments: [b])
            try db.execute(sql: "UPDATE subject SET ledger_head = NULL WHERE id = ?", arguments: [b])
        },
        Case(description: "subject: a ledger head copied from another subject", detector: .check, message: "does not match its head") { db in
            let (a, b) = (try subjectID(db, customer: "C"), try subjectID(db, customer: "N-1"))
            try db.execute(sql: "UPDATE subject SET ledger_head = (SELECT ledger_head FROM subject WHERE id = ?) WHERE id = ?", arguments: [a, b])
        },
        Case(description: "api_token: a marketer token raised to admin", detector: .check, message: "of `api_token` fail their binding") { db in
            try db.execute(sql: "UPDATE api_token SET role = 'admin'")
        },
        Case(description: "api_token: an expiry lifted", detector: .check, message: "of `api_token` fail their binding") { db in
            try db.execute(sql: "UPDATE api_token SET expires_at = 1")
        },
        Case(description: "audit_entry: an entry edited", detector: .auditVerify, message: "does not match its hash (edited)") { db in
            try db.execute(sql: "DROP TRIGGER audit_entry_no_update")
            try db.execute(sql: "UPDATE audit_entry SET actor = 'nobody' WHERE sequence = 3")
        },
        Case(description: "audit_entry: an entry deleted", detector: .auditVerify, message: "FAILED verification at entry") { db in
            try db.execute(sql: "DROP TRIGGER audit_entry_no_delete")
            try db.execute(sql: "DELETE FROM audit_entry WHERE sequence = 4")
        },
        Case(description: "audit_entry: the tail cut", detector: .auditVerify, message: "FAILED verification") { db in
            try db.execute(sql: "DROP TRIGGER audit_entry_no_delete")
            try db.execute(sql: "DELETE FROM audit_subject_set WHERE sequence > (SELECT max(sequence) - 3 FROM audit_entry)")
            try db.execute(sql: "DELETE FROM audit_entry WHERE sequence > (SELECT max(sequence) - 3 FROM audit_entry)")
        },
        Case(description: "audit_entry: an entry appended out of band", detector: .auditVerify, message: "FAILED verification") { db in
            try db.execute(
                sql: """
                    INSERT INTO audit_entry (sequence, time, actor, role, action, purpose, subject, subject_count, subject_set_digest, fields, counts,
                        decision, reasons, policy_version, consent_record_ids, request_id, previous_hash, hash)
                    SELECT sequence + 1, time, actor, role, action, purpose, subject, subject_count, subject_set_digest, fields, counts, decision,
                        reasons, policy_version, consent_record_ids, request_id, hash, hash FROM audit_entry ORDER BY sequence DESC LIMIT 1
                    """)
        },
    ]

    /// A fresh copy of the pristine vault with `tamper` applied to its database file, as an attacker would.
    static func tamperedCopy(checkedFirst: Bool = false, _ tamper: (Database) throws -> Void) throws -> URL {
        let copy = TestSupport.temporaryDirectory("tamper").appendingPathComponent("vault")
        try FileManager.default.copyItem(at: pristine, to: copy)
        if checkedFirst {
            #expect(try consentry(copy, ["check"]).status == 0, "the copy is sound before the edit")
            #expect(try consentry(copy, ["audit", "verify"]).status == 0)
        }
        let queue = try DatabaseQueue(path: copy.appendingPathComponent("vault.sqlite").path)
        try queue.write { try tamper($0) }
        try queue.close()
        return copy
    }

    @Test("each offline edit is detected by `check` or `audit verify`, and the untouched vault passes both", arguments: cases)
    func detected(_ testCase: Case) throws {
        let copy = try Self.tamperedCopy(checkedFirst: true, testCase.tamper)
        let detector = try consentry(copy, testCase.detector == .check ? ["check"] : ["audit", "verify"])
        #expect(detector.status == 1, "\(testCase): `\(testCase.detector.rawValue)` exited \(detector.status)")
        #expect(
            (detector.stdout + detector.stderr).contains(testCase.message),
            "\(testCase): \(detector.stdout.suffix(400)) \(detector.stderr.suffix(400))")
        for canary in Canary.forms { #expect(!(detector.stdout + detector.stderr).contains(canary), "a report never names a value") }
        // Subjects are named by their audit pseudonym, never by the vault's internal random id (`s_` and 16 hex digits).
        #expect(
            (detector.stdout + detector.stderr).range(of: #"s_[0-9a-f]{16}"#, options: .regularExpression) == nil, "\(detector.stdout.prefix(400))")
    }

    @Test("a moved e-mail index row fails the look-up closed: the neighbour's profile is never returned for the canary's address")
    func movedIdentityFailsClosed() throws {
        let copy = try Self.tamperedCopy { db in
            let (a, b) = (try Self.subjectID(db, customer: "C"), try Self.subjectID(db, customer: "N-1"))
            try db.execute(sql: "DELETE FROM identity WHERE subject_id = ? AND kind = 'email'", arguments: [b])
            try db.execute(sql: "UPDATE identity SET subject_id = ? WHERE subject_id = ? AND kind = 'email'", arguments: [b, a])
        }
        let read = try consentry(
            copy,
            [
                "profile", "show", "--email", Canary.email, "--as", "compliance_officer", "--purpose", "service", "--fields", "first_name",
                "--reason", "t",
            ])
        #expect(read.status != 0 && !read.stdout.contains("Ann"), "\(read.stdout)")
        #expect(read.stderr.contains("not bound to the subject it names"), "\(read.stderr)")
    }

    @Test("a vault from before record bindings is bound once at its first open after the upgrade, and passes `check`")
    func upgradeBindsOnce() throws {
        // What schema v12 left: no bindings, no record of a backfill.
        let copy = try Self.tamperedCopy { db in
            try db.execute(sql: "DROP TRIGGER consent_record_append_only; DROP TRIGGER subject_flag_append_only")
            for table in ["identity", "shared_identity", "consent_record", "subject_flag", "api_token"] {
                try db.execute(sql: "UPDATE \(table) SET binding = NULL")
            }
            try db.execute(sql: "UPDATE subject SET ledger_head = NULL")
            try db.execute(sql: "DELETE FROM vault_meta WHERE key IN ('record_bindings', 'ledger_heads')")
        }
        let checked = try consentry(copy, ["check"])
        #expect(checked.status == 0, "\(checked.stdout) \(checked.stderr)")
        let unbound = try DatabaseQueue(path: copy.appendingPathComponent("vault.sqlite").path)
        let missing = try unbound.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM consent_record WHERE binding IS NULL") }
        let headless = try unbound.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM subject WHERE ledger_head IS NULL") }
        try unbound.close()
        #expect(missing == 0)
        #expect(headless == 0)
    }

    @Test("a consent or flag write onto a ledger head that fails its binding is refused, and nothing is written")
    func writeOntoForgedHeadRefused() throws {
        let copy = try Self.tamperedCopy { db in
            let (a, b) = (try Self.subjectID(db, customer: "C"), try Self.subjectID(db, customer: "N-1"))
            try db.execute(sql: "UPDATE subject SET ledger_head = (SELECT ledger_head FROM subject WHERE id = ?) WHERE id = ?", arguments: [a, b])
        }
        func records() throws -> Int {
            let queue = try DatabaseQueue(path: copy.appendingPathComponent("vault.sqlite").path)
            defer { try? queue.close() }
            return try queue.read {
                try Int.fetchOne($0, sql: "SELECT (SELECT count(*) FROM consent_record) + (SELECT count(*) FROM subject_flag)") ?? -1
            }
        }
        let before = try records()
        let consent = try consentry(copy, ["consent", "grant", "--email", Self.neighbour, "--purpose", "email_marketing"])
        #expect(consent.status != 0 && consent.stderr.contains("fails its binding"), "\(consent.stderr)")
        let flag = try consentry(copy, ["consent", "flag", "--email", Self.neighbour, "--set", "restriction", "--clear"])
        #expect(flag.status != 0 && flag.stderr.contains("fails its binding"), "\(flag.stderr)")
        #expect(try records() == before)
    }

    @Test("an edited consent record stops decisions at once: scans and reads fail closed until the vault is restored")
    func editedLedgerFailsClosed() throws {
        let copy = try Self.tamperedCopy { db in
            try db.execute(sql: "DROP TRIGGER consent_record_append_only")
            try db.execute(sql: "UPDATE consent_record SET state = 'confirmed' WHERE state = 'withdrawn'")
        }
        let scan = try consentry(copy, ["scan", "--as", "marketer", "--purpose", "email_marketing", "--fields", "email", "--members"])
        #expect(scan.status != 0 && scan.stderr.contains("fails its binding"), "\(scan.stdout) \(scan.stderr)")
        #expect(!scan.stdout.contains("@"), "nothing was released")
        let read = try consentry(
            copy,
            [
                "profile", "show", "--email", Self.neighbour, "--as", "compliance_officer", "--purpose", "service", "--fields", "first_name",
                "--reason", "t",
            ])
        #expect(read.status != 0 && read.stderr.contains("fails its binding"), "\(read.stderr)")
    }
}
