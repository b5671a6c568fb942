import ConsentryAudit
import ConsentryCore
import ConsentryCrypto
import ConsentryPolicy
import ConsentryTesting
import Foundation
import GRDB
import Testing

@testable import ConsentryGate

/// A vault with ten subjects `s0…s9@example.test`; even ones have confirmed e-mail-marketing consent.
func gateVault(configuration: VaultConfiguration = VaultConfiguration(clock: FixedClock(TestSupport.fixedNow))) async throws -> Vault {
    let directory = TestSupport.temporaryDirectory("gate").appendingPathComponent("v")
    let vault = try Vault.create(at: directory, policies: TestSupport.policies, configuration: configuration)
    let rows = (0..<10).map { "s\($0)@example.test,C\($0),Name\($0),Family\($0),,1990-01-0\(($0 % 9) + 1),City\($0),DE" }.joined(separator: "\n")
    _ = try await importCSV(vault, rows + "\n")
    for i in stride(from: 0, to: 10, by: 2) {
        try await vault.recordConsent(
            ConsentChange(purpose: .emailMarketing, state: .pending, source: "form"), subject: .email("s\(i)@example.test"),
            as: Principal(actor: "t", role: .admin))
        try await vault.recordConsent(
            ConsentChange(purpose: .emailMarketing, state: .confirmed, source: "form"), subject: .email("s\(i)@example.test"),
            as: Principal(actor: "t", role: .admin))
    }
    return vault
}

let marketingScan = AccessRequest(actor: "mia", role: .marketer, action: .segment, purpose: .emailMarketing, fields: ["email", "first_name"])

@Suite("Gate")
struct GateTests {
    @Test("a permitted read releases exactly the requested fields and is audited with a pseudonym")
    func permittedRead() async throws {
        let vault = try await gateVault()
        let request = AccessRequest(
            actor: "co", role: .complianceOfficer, action: .readProfile, purpose: .service, fields: ["first_name", "last_name"], reason: "ticket 7")
        let result = try await vault.read(request, subject: .email("s3@example.test"))
        #expect(result.decision.isPermit)
        #expect(result.values == ["first_name": "Name3", "last_name": "Family3"])
        let entry = try #require(try await vault.queryAudit(AuditFilter(action: "read_profile"), as: Principal(actor: "t", role: .admin)).last)
        #expect(entry.sequence == result.auditSequence && entry.subject == result.pseudonym && entry.decision == "permit")
        #expect(entry.fields == ["first_name", "last_name"])
        #expect(!entry.exportLine.contains("Name3") && !entry.exportLine.contains("s3@example.test"))
    }

    @Test("a denied read releases nothing and says why; an unknown subject is a deny, not an error")
    func deniedRead() async throws {
        let vault = try await gateVault()
        let wrongField = AccessRequest(actor: "c", role: .campaignService, action: .render, purpose: .emailMarketing, fields: ["birth_date"])
        let denied = try await vault.read(wrongField, subject: .email("s2@example.test"))
        #expect(!denied.decision.isPermit && denied.values.isEmpty)
        #expect(denied.decision.reasons.map(\.code) == [.fieldNotAllowed])
        let noConsent = try await vault.read(
            AccessRequest(actor: "c", role: .campaignService, action: .render, purpose: .emailMarketing, fields: ["email"]),
            subject: .email("s1@example.test"))
        #expect(noConsent.decision.reasons.map(\.code) == [.consentMissing] && noConsent.values.isEmpty)
        let unknown = try await vault.read(wrongField, subject: .email("nobody@example.test"))
        #expect(!unknown.decision.isPermit && unknown.values.isEmpty)
    }

    @Test("consent changes apply to the next decision: confirm, withdraw, objection, restriction")
    func consentChanges() async throws {
        let vault = try await gateVault()
        let render = AccessRequest(actor: "c", role: .campaignService, action: .render, purpose: .emailMarketing, fields: ["email"])
        await #expect(try vault.read(render, subject: .email("s1@example.test")).decision.reasons.map(\.code) == [.consentMissing])
        try await vault.recordConsent(
            ConsentChange(purpose: .emailMarketing, state: .pending, source: "form"), subject: .email("s1@example.test"),
            as: Principal(actor: "t", role: .dataEngineer))
        await #expect(try vault.read(render, subject: .email("s1@example.test")).decision.reasons.map(\.code) == [.consentUnconfirmed])
        try await vault.recordConsent(
            ConsentChange(purpose: .emailMarketing, state: .confirmed, source: "email-link"), subject: .email("s1@example.test"),
            as: Principal(actor: "t", role: .dataEngineer))
        await #expect(try vault.read(render, subject: .email("s1@example.test")).values == ["email": "s1@example.test"])
        try await vault.recordFlag(
            .objection, purpose: .emailMarketing, on: true, subject: .email("s1@example.test"), source: "letter",
            as: Principal(actor: "t", role: .admin))
        await #expect(try vault.read(render, subject: .email("s1@example.test")).decision.reasons.map(\.code) == [.objection])
        try await vault.recordFlag(
            .objection, purpose: .emailMarketing, on: false, subject: .email("s1@example.test"), source: "letter",
            as: Principal(actor: "t", role: .admin))
        try await vault.recordFlag(.restriction, on: true, subject: .email("s1@example.test"), source: "dsr", as: Principal(actor: "t", role: .admin))
        await #expect(try vault.read(render, subject: .email("s1@example.test")).decision.reasons.map(\.code) == [.restricted])
        try await vault.recordFlag(.restriction, on: false, subject: .email("s1@example.test"), source: "dsr", as: Principal(actor: "t", role: .admin))
        try await vault.recordConsent(
            ConsentChange(purpose: .emailMarketing, state: .withdrawn, source: "unsubscribe"), subject: .email("s1@example.test"),
            as: Principal(actor: "t", role: .admin))
        await #expect(try vault.read(render, subject: .email("s1@example.test")).decision.reasons.map(\.code) == [.consentWithdrawn])
        let history = try await vault.consentHistory(subject: .email("s1@example.test"), as: Principal(actor: "t", role: .complianceOfficer))
        #expect(history.records.map(\.state) == ["pending", "confirmed", "withdrawn"])
        #expect(history.current["email_marketing"] == "withdrawn")
    }

    @Test("consent writes need a role that may write consent, and bad changes are refused")
    func consentWriteRules() async throws {
        let vault = try await gateVault()
        let change = ConsentChange(purpose: .emailMarketing, state: .granted, source: "form")
        await #expect(throws: GateError.denied) {
            try await vault.recordConsent(change, subject: .email("s1@example.test"), as: Principal(actor: "m", role: .marketer))
        }
        await #expect(throws: GateError.invalidInput) {
            try await vault.recordConsent(
                ConsentChange(purpose: .service, state: .granted, source: "form"), subject: .email("s1@example.test"),
                as: Principal(actor: "t", role: .admin))
        }
        await #expect(throws: GateError.invalidInput) {
            try await vault.recordConsent(
                ConsentChange(purpose: .profiling, state: .confirmed, source: "form"), subject: .email("s1@example.test"),
                as: Principal(actor: "t", role: .admin))
        }
        await #expect(throws: GateError.notFound) {
            try await vault.recordConsent(change, subject: .email("nobody@example.test"), as: Principal(actor: "t", role: .admin))
        }
        let denials = try await vault.queryAudit(AuditFilter(decision: .deny), as: Principal(actor: "t", role: .admin))
        #expect(denials.contains { $0.actor == "m" && $0.action == "consent_write" })
    }

    @Test("a scan admits consenting subjects, counts exclusions by reason, and never decrypts excluded subjects")
    func scan() async throws {
        let vault = try await gateVault()
        // Corrupt an excluded subject: if the scan decrypted it, it would fail with an integrity error.
        let excluded = try #require(try vault.findSubject(.email, "s1@example.test"))
        try await vault.db.write { db in
            try db.execute(sql: "UPDATE subject SET wrapped_key = zeroblob(73) WHERE id = ?", arguments: [excluded.rawValue])
        }
        var delivered: [String: [String?]] = [:]
        var memberPseudonyms: [String: String] = [:]
        let summary = try await vault.scan(marketingScan) { member, values in
            delivered[member.assignmentKey] = values
            memberPseudonyms[member.assignmentKey] = member.pseudonym
        }
        #expect(summary.decision == .permit && summary.subjects == 10 && summary.permitted == 5 && summary.delivered == 5)
        #expect(summary.excluded == ["consent_missing": 5])
        #expect(Set(delivered.values.compactMap { $0[0] }) == Set(stride(from: 0, to: 10, by: 2).map { "s\($0)@example.test" }))
        #expect(summary.exclusionSummary == "5 excluded: consent_missing")
        let entry = try #require(try await vault.queryAudit(AuditFilter(action: "segment"), as: Principal(actor: "t", role: .admin)).last)
        #expect(entry.subjectCount == 5 && entry.counts["excluded.consent_missing"] == 5 && entry.subjectSetDigest != nil)
        let packed = try await #require(
            try vault.db.read {
                try Data.fetchOne($0, sql: "SELECT pseudonyms FROM audit_subject_set WHERE sequence = ?", arguments: [entry.sequence])
            })
        let members = stride(from: 0, to: packed.count, by: 16).map { Digest.hex(packed[$0..<($0 + 16)]) }
        #expect(Set(members) == Set(delivered.keys), "the audit's subject set holds the audit pseudonyms of the delivered subjects")
        // The pseudonyms a scan hands out are keyed by purpose: none is an audit pseudonym, so a member list cannot be
        // joined with the audit log, a single read, or another purpose's members.
        #expect(memberPseudonyms.count == 5 && Set(memberPseudonyms.values).isDisjoint(with: members))
        let s4 = try await vault.read(
            AccessRequest(actor: "co", role: .complianceOfficer, action: .readProfile, purpose: .service, fields: ["email"], reason: "x"),
            subject: .email("s4@example.test"))
        let s4Audit = try #require(s4.pseudonym)
        #expect(delivered[s4Audit]?[0] == "s4@example.test" && memberPseudonyms[s4Audit] != s4Audit)
        for email in ["s0@example.test", "s2@example.test"] {
            try await vault.recordConsent(
                ConsentChange(purpose: .personalization, state: .granted, source: "form"), subject: .email(email),
                as: Principal(actor: "t", role: .admin))
        }
        var personalization: [String: String] = [:]
        _ = try await vault.scan(AccessRequest(actor: "m", role: .marketer, action: .segment, purpose: .personalization, fields: ["first_name"])) {
            member, _ in personalization[member.assignmentKey] = member.pseudonym
        }
        #expect(personalization.count == 2)
        for (key, pseudonym) in personalization { #expect(memberPseudonyms[key] != pseudonym, "purposes have unrelated pseudonyms") }
        let queried = try await vault.queryAudit(
            AuditFilter(subject: .email("s4@example.test"), action: "segment"), as: Principal(actor: "t", role: .admin))
        #expect(queried.map(\.sequence).contains(entry.sequence), "a query by subject finds bulk entries whose set holds it")
        let notIn = try await vault.queryAudit(AuditFilter(subject: .email("s1@example.test"), action: "segment"), as: Principal(actor: "t", role: .admin))
        #expect(!notIn.map(\.sequence).contains(entry.sequence))
    }

    @Test("a scan that asks for a field outside the purpose is denied as a whole and reads nothing")
    func scanOracle() async throws {
        let vault = try await gateVault()
        var called = false
        let request = AccessRequest(actor: "mia", role: .marketer, action: .segment, purpose: .emailMarketing, fields: ["birth_date"])
        let summary = try await vault.scan(request) { _, _ in called = true }
        #expect(summary.decision == .deny && !called)
        #expect(summary.reasons.first?.hasPrefix("field_not_allowed") == true)
    }

    @Test("consent withdrawn in the middle of a scan excludes the subject from the rest of it")
    func withdrawalMidScan() async throws {
        let vault = try await gateVault(configuration: VaultConfiguration(clock: FixedClock(TestSupport.fixedNow), scanChunkSize: 1))
        let other = try Vault.open(at: vault.directory)
        var seen: [String] = []
        var withdrew = false
        // The scan hands out subjects on a reader's thread, not a cooperative one, so the body may wait there for the
        // withdrawal to commit.
        let summary = try await vault.scan(marketingScan) { _, values in
            seen.append(values[0] ?? "")
            if !withdrew {
                withdrew = true
                // Withdraw, from another connection, the consent of every admitted subject not yet delivered.
                for i in stride(from: 0, to: 10, by: 2) where !seen.contains("s\(i)@example.test") {
                    _ = try TestSupport.waitFor {
                        try await other.recordConsent(
                            ConsentChange(purpose: .emailMarketing, state: .withdrawn, source: "unsubscribe"), subject: .email("s\(i)@example.test"),
                            as: Principal(actor: "u", role: .admin))
                    }
                }
            }
        }
        #expect(summary.delivered == 1 && seen.count == 1)
        #expect(summary.excludedDuringScan == ["consent_withdrawn": 4])
        #expect(summary.auditSequences.count == 2)
        let closing = try #require(try await vault.queryAudit(AuditFilter(action: "segment"), as: Principal(actor: "t", role: .admin)).last)
        #expect(closing.counts["excluded_during_scan.consent_withdrawn"] == 4 && closing.counts["delivered"] == 1)
    }

    @Test("fail closed: when the audit entry cannot be written, reads and scans release nothing")
    func auditUnwritable() async throws {
        let vault = try await gateVault()
        try await vault.db.write { db in
            try db.execute(
                sql: "CREATE TRIGGER simulate_full_disk BEFORE INSERT ON audit_entry BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END")
        }
        let request = AccessRequest(
            actor: "co", role: .complianceOfficer, action: .readProfile, purpose: .service, fields: ["first_name"], reason: "ticket 7")
        await #expect(throws: GateError.storage) { _ = try await vault.read(request, subject: .email("s2@example.test")) }
        var called = false
        await #expect(throws: GateError.storage) { _ = try await vault.scan(marketingScan) { _, _ in called = true } }
        #expect(!called)
        await #expect(throws: GateError.storage) {
            try await vault.recordConsent(
                ConsentChange(purpose: .profiling, state: .granted, source: "form"), subject: .email("s1@example.test"),
                as: Principal(actor: "t", role: .admin))
        }
        #expect(try vault.count("consent_record") == 10, "the consent write rolled back with its audit entry")
        await #expect(throws: GateError.storage) { _ = try await importCSV(vault, "new@example.test,C99,,,,,,\n") }
        #expect(try vault.findSubject(.email, "new@example.test") == nil, "the import batch rolled back with its audit entry")
    }

    @Test("fail closed: a real disk-full condition on the database fails the read")
    func diskFull() async throws {
        let vault = try await gateVault()
        try await vault.db.writeWithoutTransaction { db in
            // No free pages left from the migrations' dropped tables: the next entries must grow the file.
            try db.execute(sql: "VACUUM")
            let pages = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
            try db.execute(sql: "PRAGMA max_page_count = \(pages)")
        }
        let request = AccessRequest(
            actor: "co", role: .complianceOfficer, action: .readProfile, purpose: .service, fields: ["first_name"], reason: "x")
        var failures = 0
        for _ in 0..<400 {
            do { _ = try await vault.read(request, subject: .email("s2@example.test")) } catch {
                failures += 1
                #expect(error.message.contains("disk is full"))
                break
            }
        }
        #expect(failures == 1, "filling the database must eventually fail a read, and that read releases nothing")
    }

    @Test("fail closed: a read-only database fails the read and releases nothing")
    func readOnly() async throws {
        let vault = try await gateVault()
        try await vault.db.writeWithoutTransaction { try $0.execute(sql: "PRAGMA query_only = ON") }
        let request = AccessRequest(
            actor: "co", role: .complianceOfficer, action: .readProfile, purpose: .service, fields: ["first_name"], reason: "x")
        await #expect(throws: GateError.storage) { _ = try await vault.read(request, subject: .email("s2@example.test")) }
        var called = false
        await #expect(throws: GateError.storage) { _ = try await vault.scan(marketingScan) { _, _ in called = true } }
        #expect(!called)
    }

    @Test("fail closed: when the database file is removed while open, reads fail instead of auditing into a lost file")
    func fileRemoved() async throws {
        let vault = try await gateVault()
        try FileManager.default.removeItem(at: vault.directory.appendingPathComponent(Vault.databaseFileName))
        let request = AccessRequest(
            actor: "co", role: .complianceOfficer, action: .readProfile, purpose: .service, fields: ["first_name"], reason: "x")
        do {
            _ = try await vault.read(request, subject: .email("s2@example.test"))
            Issue.record("a read succeeded after the database file was removed")
        } catch {
            #expect(error.message.contains("removed or replaced"))
        }
    }

    @Test(
        "fail closed: when the write-ahead log is deleted under an open vault (lost locks), every later operation fails with why",
        arguments: ["-wal", "-shm"])
    func walRemoved(suffix: String) async throws {
        let vault = try await gateVault()
        let request = AccessRequest(
            actor: "co", role: .complianceOfficer, action: .readProfile, purpose: .service, fields: ["first_name"], reason: "x")
        _ = try await vault.read(request, subject: .email("s2@example.test"))
        #expect(vault.storageFault() == nil)
        try FileManager.default.removeItem(atPath: vault.databasePath + suffix)
        do {
            _ = try await vault.read(request, subject: .email("s2@example.test"))
            Issue.record("a read succeeded after the \(suffix) file was removed")
        } catch {
            #expect(error.code == .storage && error.message.contains("was removed or replaced while this process had the vault open"))
        }
        // The fault stays, even for operations that would not look at the files again.
        #expect(vault.knownStorageFault?.code == .storage)
        #expect(vault.storageFault()?.message.contains(suffix == "-wal" ? "write-ahead log" : "shared-memory index") == true)
        var called = false
        let refused = await #expect(throws: GateError.storage) { _ = try await vault.scan(marketingScan) { _, _ in called = true } }
        #expect(refused?.message.contains("refuses every operation") == true && !called)
    }

    @Test("a broken policy makes every decision deny, and the failure is audited")
    func brokenPolicy() async throws {
        let vault = try await gateVault()
        try Data("roles:\n  marketer: [oops\n".utf8).write(to: vault.directory.appendingPathComponent("policies/roles.yaml"))
        let reopened = try Vault.open(at: vault.directory)
        let read = try await reopened.read(
            AccessRequest(actor: "co", role: .complianceOfficer, action: .readProfile, purpose: .service, fields: ["email"], reason: "x"),
            subject: .email("s2@example.test"))
        #expect(read.decision.reasons.map(\.code) == [.policyUnavailable] && read.values.isEmpty)
        await #expect(try reopened.scan(marketingScan) { _, _ in Issue.record("released data") }.decision == .deny)
        await #expect(throws: GateError.denied) { _ = try await reopened.importEvents(from: TestSupport.writeFile("e.jsonl", "{}\n")) }
        let loaded = try reopened.db.read {
            try Row.fetchOne($0, sql: "SELECT decision, reasons FROM audit_entry WHERE action = 'policy_loaded' ORDER BY sequence DESC")
        }
        #expect(loaded?["decision"] == "deny")
    }

    @Test("explain traces each check and ends with the decision")
    func explain() async throws {
        let vault = try await gateVault()
        let explanation = try await vault.explain(marketingScan, subject: .email("s1@example.test"))
        #expect(explanation.decision.reasons.map(\.code) == [.consentMissing])
        #expect(explanation.trace.last == "decision: deny")
        #expect(explanation.trace.contains { $0.hasPrefix("rule: roles.yaml: marketer → email_marketing: segment") })
        #expect(explanation.trace.contains { $0.hasPrefix("subject: consent for `email_marketing`") })
    }

    @Test("explain is no oracle: a role without the grant gets the same answer for a known and an unknown person, and no trace names a pseudonym")
    func explainForARoleWithoutTheGrant() async throws {
        let vault = try await gateVault()
        // An analyst may not read profiles for service at all.
        let request = AccessRequest(actor: "an", role: .analyst, action: .readProfile, purpose: .service, fields: ["email"], reason: "x")
        let known = try await vault.explain(request, subject: .email("s1@example.test"))
        let unknown = try await vault.explain(request, subject: .email("nobody-7f3a@example.test"))
        #expect(!known.decision.isPermit)
        #expect(known.trace == unknown.trace && known.decision.reasons.map(\.code) == unknown.decision.reasons.map(\.code))
        #expect(known.trace.contains("subject: not looked up (the request is denied before any subject is consulted)"))
        #expect(!known.trace.joined().contains("consent for"), "no consent state for a role without the grant")
        // A permitted role sees the subject's state, but never its pseudonym.
        let permitted = try await vault.explain(marketingScan, subject: .email("s1@example.test"))
        let pseudonyms = try await vault.queryAudit(AuditFilter(action: "policy_explain"), as: Principal(actor: "t", role: .admin)).compactMap(\.subject)
        #expect(!pseudonyms.isEmpty)
        for pseudonym in pseudonyms { #expect(!permitted.trace.joined(separator: "\n").contains(pseudonym)) }
    }
}

@Suite("Audit verification", .serialized)
struct AuditVerificationTests {
    func vaultWithHistory() async throws -> Vault {
        let vault = try await gateVault()
        for i in 0..<3 {
            _ = try await vault.read(
                AccessRequest(actor: "co", role: .complianceOfficer, action: .readProfile, purpose: .service, fields: ["email"], reason: "r\(i)"),
                subject: .email("s\(i)@example.test"))
        }
        try vault.checkpointIfDue(force: true)
        return vault
    }

    func verify(_ vault: Vault) async throws -> AuditVerification {
        try await Vault.open(at: vault.directory).verifyAudit(as: Principal(actor: "auditor", role: .complianceOfficer))
    }

    /// Tampers with the database the way someone with the file would: outside Consentry, without its triggers.
    func tamper(_ vault: Vault, _ sql: String) throws {
        let queue = try DatabaseQueue(path: vault.directory.appendingPathComponent("vault.sqlite").path)
        try queue.write { db in
            try db.execute(sql: "DROP TRIGGER audit_entry_no_update; DROP TRIGGER audit_entry_no_delete")
            try db.execute(sql: sql)
        }
    }

    @Test("an intact log verifies")
    func intact() async throws {
        let report = try await verify(try vaultWithHistory())
        #expect(report.passed, "\(report.problems)")
        #expect(report.entriesChecked > 10)
    }

    @Test("an edited entry is detected and named")
    func edited() async throws {
        let vault = try await vaultWithHistory()
        try tamper(vault, "UPDATE audit_entry SET decision = 'deny' WHERE sequence = 5")
        let report = try await verify(vault)
        #expect(report.firstBadSequence == 5)
    }

    @Test("a deleted entry is detected and named")
    func deleted() async throws {
        let vault = try await vaultWithHistory()
        try tamper(vault, "DELETE FROM audit_entry WHERE sequence = 7")
        #expect(try await verify(vault).firstBadSequence == 7)
    }

    @Test("reordered entries are detected")
    func reordered() async throws {
        let vault = try await vaultWithHistory()
        try tamper(
            vault,
            "UPDATE audit_entry SET sequence = sequence + 1000 WHERE sequence IN (8, 9); UPDATE audit_entry SET sequence = 9 WHERE sequence = 1008; UPDATE audit_entry SET sequence = 8 WHERE sequence = 1009"
        )
        #expect(try await verify(vault).firstBadSequence == 8)
    }

    @Test("an entry appended out of band is detected")
    func appendedOutOfBand() async throws {
        let vault = try await vaultWithHistory()
        try tamper(
            vault,
            """
            INSERT INTO audit_entry SELECT sequence + 1000, time, 'intruder', role, action, purpose, subject, subject_count, subject_set_digest, fields, counts,
                decision, reasons, policy_version, consent_record_ids, request_id, hash, hash FROM audit_entry ORDER BY sequence DESC LIMIT 1
            """)
        #expect(!(try await verify(vault)).passed)
    }

    @Test("a truncated tail is detected through the checkpoints")
    func truncated() async throws {
        let vault = try await vaultWithHistory()
        let last = try await vault.db.read { try Int64.fetchOne($0, sql: "SELECT max(sequence) FROM audit_entry") } ?? 0
        try tamper(vault, "DELETE FROM audit_entry WHERE sequence > \(last - 3)")
        let report = try await verify(vault)
        #expect(report.firstBadSequence == last - 2)
        #expect(report.problems.contains { $0.contains("truncated or the database restored from an older copy") })
    }

    @Test("a database restored from an older copy is detected")
    func restoredOlderCopy() async throws {
        let vault = try await vaultWithHistory()
        let file = vault.directory.appendingPathComponent("vault.sqlite")
        _ = try await vault.db.writeWithoutTransaction { try $0.checkpoint(.truncate) }
        let backup = try Data(contentsOf: file)
        for i in 3..<6 {
            _ = try await vault.read(
                AccessRequest(actor: "co", role: .complianceOfficer, action: .readProfile, purpose: .service, fields: ["email"], reason: "r"),
                subject: .email("s\(i)@example.test"))
        }
        try vault.checkpointIfDue(force: true)
        _ = try await vault.db.writeWithoutTransaction { try $0.checkpoint(.truncate) }
        try vault.db.close()
        try backup.write(to: file)
        try? FileManager.default.removeItem(at: vault.directory.appendingPathComponent("vault.sqlite-wal"))
        try? FileManager.default.removeItem(at: vault.directory.appendingPathComponent("vault.sqlite-shm"))
        let report = try await verify(vault)
        #expect(!report.passed)
        #expect(report.problems.contains { $0.contains("restored from an older copy") })
    }

    @Test("a removed or edited checkpoint file is detected")
    func checkpointFile() async throws {
        let vault = try await vaultWithHistory()
        let url = vault.directory.appendingPathComponent("audit/checkpoints")
        var text = try String(contentsOf: url, encoding: .utf8)
        let lines = text.split(separator: "\n")
        let lastLine = String(lines.last!)
        var parts = lastLine.split(separator: " ").map(String.init)
        parts[3] = String((Int64(parts[3]) ?? 0) + 1)
        text = text.replacingOccurrences(of: lastLine, with: parts.joined(separator: " "))
        try Data(text.utf8).write(to: url)
        #expect(try await verify(vault).problems.contains { $0.contains("invalid signature") })
        try FileManager.default.removeItem(at: url)
        #expect(try await verify(vault).problems.contains { $0.contains("checkpoint file is missing") })
    }
}

@Suite("Group commit")
struct GroupCommitTests {
    @Test("concurrent gated reads share transactions, each gets its own audit entry, and the chain verifies")
    func concurrentReads() async throws {
        let vault = try await gateVault()
        let before = try vault.count("audit_entry")
        // One subject whose data key is corrupt: its reads fail alone, without failing the others in the batch.
        let broken = try #require(try vault.findSubject(.email, "s9@example.test"))
        try await vault.db.write { try $0.execute(sql: "UPDATE subject SET wrapped_key = zeroblob(73) WHERE id = ?", arguments: [broken.rawValue]) }
        let request = AccessRequest(
            actor: "co", role: .complianceOfficer, action: .readProfile, purpose: .service, fields: ["first_name"], reason: "load")
        // Concurrent callers, as a server's request handlers are; each suspends while its batch commits.
        let outcomes = await withTaskGroup(of: (Int, Bool).self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var ok = 0
                    var failed = false
                    for i in 0..<40 {
                        let subject = (worker + i) % 10
                        do {
                            let read = try await vault.read(request, subject: .email("s\(subject)@example.test"))
                            if read.values["first_name"] == "Name\(subject)" { ok += 1 }
                        } catch { if subject == 9 { failed = true } else { ok -= 1000 } }
                    }
                    return (ok, failed)
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let succeeded = outcomes.reduce(0) { $0 + $1.0 }
        #expect(succeeded == 8 * 40 - 8 * 4, "every read of a sound subject releases its value")
        #expect(outcomes.contains { $0.1 }, "reads of the broken subject fail")
        #expect(try vault.count("audit_entry") - before == succeeded, "one entry per successful read; failed reads leave none")
        #expect(vault.groupCommitter.largestBatch >= 1)
        #expect(try await vault.verifyAudit(as: Principal(actor: "t", role: .admin)).passed)
    }
}

@Suite("Gate hooks: derived data, export, erasure")
struct GateHookTests {
    @Test("derived values are sealed, stored only for admitted subjects, audited as one entry, and exported")
    func derivedAndExport() async throws {
        let vault = try await gateVault()
        let ids = try (0..<4).map { try #require(try vault.findSubject(.email, "s\($0)@example.test")) }
        try await vault.recordConsent(
            ConsentChange(purpose: .profiling, state: .granted, source: "form"), subject: .email("s0@example.test"),
            as: Principal(actor: "t", role: .admin))
        try await vault.recordConsent(
            ConsentChange(purpose: .profiling, state: .granted, source: "form"), subject: .email("s1@example.test"),
            as: Principal(actor: "t", role: .admin))
        let request = AccessRequest(actor: "model", role: .analyst, action: .score, purpose: .profiling, fields: ["country"])
        let values = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, "score-canary-\($0)") })
        let summary = try await vault.writeDerived(request, kind: "score", name: "engagement", values: values)
        #expect(summary.written == 2 && summary.skipped == ["consent_missing": 2])
        let raw = try await vault.db.read { try Data.fetchAll($0, sql: "SELECT sealed FROM derived") }
        #expect(raw.count == 2 && raw.allSatisfy { !TestSupport.contains($0, "score-canary") })
        let export = try await vault.exportSubject(.email("s0@example.test"), as: Principal(actor: "co", role: .complianceOfficer))
        #expect(export.derived == ["score/engagement": "score-canary-0"])
        #expect(export.profile["email"] == "s0@example.test" && export.profile["city"] == "City0")
        #expect(export.consents.map(\.purpose).contains("profiling"))
        #expect(export.processing.contains { $0.action == "score" }, "the processing log lists the bulk write that included the subject")
        await #expect(throws: GateError.denied) { _ = try await vault.exportSubject(.email("s0@example.test"), as: Principal(actor: "m", role: .marketer)) }
        let denied = try await vault.writeDerived(
            AccessRequest(actor: "m", role: .marketer, action: .score, purpose: .profiling), kind: "score", name: "x", values: values)
        #expect(denied.decision == .deny && denied.written == 0)
    }

    @Test("after erasure no file of the vault holds the subject, the chain still verifies, and past entries are unlinkable")
    func erasure() async throws {
        let vault = try TestSupport.makeVault()
        _ = try await importCSV(
            vault,
            "\(Canary.email),\(Canary.customerID),\(Canary.firstName),\(Canary.lastName),\(Canary.phone),1980-05-05,\(Canary.city),DE\nother@example.test,C2,Ann,Lee,,,Oslo,NO\n"
        )
        _ = try await vault.importEvents(
            from: TestSupport.writeFile(
                "e.jsonl", #"{"id":"c1","email":"\#(Canary.email)","type":"view","time":"2026-11-19T10:00:00Z","item_id":"\#(Canary.lastName)-sku"}"#)
        )
        try await vault.recordConsent(
            ConsentChange(purpose: .profiling, state: .granted, source: "form", evidence: Canary.city), subject: .email(Canary.email),
            as: Principal(actor: "t", role: .admin))
        let read = try await vault.read(
            AccessRequest(actor: "co", role: .complianceOfficer, action: .readProfile, purpose: .service, fields: ["first_name"], reason: "x"),
            subject: .email(Canary.email))
        let pseudonym = try #require(read.pseudonym)
        let summary = try await vault.eraseSubject(.email(Canary.email), as: Principal(actor: "co", role: .complianceOfficer))
        #expect(
            summary.deleted["subject"] == 1 && summary.deleted["event"] == 1 && summary.deleted["consent_record"] == 1
                && summary.deleted["identity"] == 2)
        #expect(try vault.findSubject(.email, Canary.email) == nil)
        await #expect(try vault.check(as: .administrator("t")).passed)
        #expect(try await vault.verifyAudit(as: Principal(actor: "t", role: .admin)).passed)
        // The old pseudonym can no longer be computed from anything the vault holds: a query by the subject finds nothing.
        #expect(try await vault.queryAudit(AuditFilter(subject: .email(Canary.email)), as: Principal(actor: "t", role: .admin)).isEmpty)
        await #expect(
            try vault.db.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM audit_entry WHERE subject = ?", arguments: [pseudonym]) } ?? 0 >= 1)
        try vault.db.close()
        for file in TestSupport.files(under: vault.directory) {
            let data = try Data(contentsOf: file)
            for canary in Canary.forms { #expect(!TestSupport.contains(data, canary), "\(canary) left in \(file.lastPathComponent)") }
        }
    }
}

@Suite("Checkpoints from several writers")
struct ConcurrentCheckpointTests {
    @Test("checkpoints written concurrently by two vault instances never go backwards, and the log verifies")
    func concurrentCheckpoints() async throws {
        let first = try await gateVault()
        let second = try Vault.open(at: first.directory)
        let request = AccessRequest(actor: "co", role: .complianceOfficer, action: .readProfile, purpose: .service, fields: ["email"], reason: "x")
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<6 {
                group.addTask {
                    let vault = worker % 2 == 0 ? first : second
                    for i in 0..<25 {
                        _ = try? await vault.read(request, subject: .email("s\((worker + i) % 10)@example.test"))
                        try? vault.checkpointIfDue(force: true)
                    }
                }
            }
        }
        let report = try await first.verifyAudit(as: Principal(actor: "t", role: .admin))
        #expect(report.passed, "\(report.problems)")
        #expect(report.checkpointsChecked > 10)
    }
}

@Suite("Demo data is audited")
struct DemoAuditTests {
    @Test("the demo's imports and consent writes are in the audit log, and the log verifies")
    func demoAudited() async throws {
        let vault = try TestSupport.makeVault()
        let report = try await vault.loadDemoData(DemoOptions(profiles: 40, eventsPerProfile: 2))
        let entries = try await vault.queryAudit(AuditFilter(limit: 1_000), as: Principal(actor: "t", role: .admin))
        let consentWrites = entries.filter { $0.action == "consent_write" }.reduce(0) { $0 + ($1.counts["records"] ?? 0) }
        #expect(consentWrites == report.consentRecords && consentWrites > 0)
        #expect(entries.contains { $0.action == "import" && $0.reasons.contains("demo profiles") })
        #expect(try await vault.verifyAudit(as: Principal(actor: "t", role: .admin)).passed)
    }
}

@Suite("ledger queries")
struct LedgerQueryTests {
    /// One subject's consent state is read on every gated read: its ledger query must go through the per-subject index,
    /// not walk the whole ledger in record order (which made reads slow once the ledger was large).
    @Test("one subject's ledger is read through the per-subject indexes; ranges scan in record order from the watermark")
    func plans() async throws {
        let vault = try await gateVault()
        let plans = try await vault.db.read { db -> [String] in
            try [
                SQLiteLedgerRows.walkSQL(consent: true, bySubject: true), SQLiteLedgerRows.walkSQL(consent: false, bySubject: true),
                SQLiteLedgerRows.walkSQL(consent: true, bySubject: false),
            ].map { sql in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: [5, 5, 0]).map { $0["detail"] as String }.joined(separator: "; ")
            }
        }
        #expect(plans[0].contains("USING INDEX consent_subject"), "\(plans[0])")
        #expect(plans[1].contains("USING INDEX subject_flag_subject"), "\(plans[1])")
        #expect(plans[2].contains("PRIMARY KEY"), "\(plans[2])")
    }
}

@Suite("Asynchronous gated reads and hot caches")
struct AsyncReadTests {
    @Test("asynchronous reads (the API's path) release the same values, fail alone, and each leave one audit entry")
    func asyncReads() async throws {
        let vault = try await gateVault()
        let before = try vault.count("audit_entry")
        let broken = try #require(try vault.findSubject(.email, "s9@example.test"))
        try await vault.db.write { try $0.execute(sql: "UPDATE subject SET wrapped_key = zeroblob(73) WHERE id = ?", arguments: [broken.rawValue]) }
        let request = AccessRequest(
            actor: "co", role: .complianceOfficer, action: .readProfile, purpose: .service, fields: ["first_name"], reason: "load")
        // 200 reads in flight at once, more than any thread pool: waiting reads hold no thread.
        let outcomes = await withTaskGroup(of: (Int, Bool?).self) { group in
            for i in 0..<200 {
                group.addTask {
                    let subject = i % 10
                    do {
                        let read = try await vault.read(request, subject: .email("s\(subject)@example.test"))
                        return (subject, read.values["first_name"] == "Name\(subject)")
                    } catch { return (subject, nil) }
                }
            }
            return await group.reduce(into: [(Int, Bool?)]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0.0 != 9 }.allSatisfy { $0.1 == true }, "every read of a sound subject releases its value")
        #expect(outcomes.filter { $0.0 == 9 }.allSatisfy { $0.1 == nil }, "reads of the broken subject fail")
        #expect(try vault.count("audit_entry") - before == 180, "one entry per successful read; failed reads leave none")
        await #expect(try vault.verifyAudit(as: Principal(actor: "t", role: .admin)).passed)
    }

    @Test("a token revoked in this process is refused at once, though its row was cached")
    func revokedTokenRefusedAtOnce() async throws {
        let vault = try await gateVault()
        let created = try await vault.createToken(name: "svc", role: .campaignService, expiresAt: nil, as: Principal(actor: "t", role: .admin))
        guard case .success(let principal) = await vault.authenticate(token: created.token) else {
            Issue.record("a fresh token is accepted")
            return
        }
        #expect(principal == Principal(actor: "token:svc", role: .campaignService, tokenID: created.info.id))
        // The use is recorded off the request's path; it shows in the token list shortly after.
        var used: String?
        for _ in 0..<100 where used == nil {
            used = try await vault.tokens(as: Principal(actor: "t", role: .admin)).first { $0.id == created.info.id }?.lastUsedAt
            if used == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(used != nil, "the token's last use is recorded")
        try await vault.revokeToken(created.info.id, as: Principal(actor: "t", role: .admin))
        guard case .failure(let refusal) = await vault.authenticate(token: created.token) else {
            Issue.record("a revoked token is refused")
            return
        }
        #expect(refusal == .revoked)
    }

    @Test("a template registered again renders its new version at once")
    func reregisteredTemplate() async throws {
        let vault = try await gateVault()
        _ = try await vault.registerTemplate(
            name: "t", purpose: .service, format: "text", source: "one", fields: [], as: Principal(actor: "t", role: .admin))
        await #expect(try vault.template(named: "t")?.source == "one")
        _ = try await vault.registerTemplate(
            name: "t", purpose: .service, format: "text", source: "two", fields: [], as: Principal(actor: "t", role: .admin))
        await #expect(try vault.template(named: "t")?.source == "two")
        await #expect(try vault.template(named: "t")?.version == 2)
    }
}

@Suite("Compliance reports")
struct ReportTests {
    @Test("the denials report tallies the gate's reason codes, not the notes entries carry after them")
    func denialsTallyCodesOnly() async throws {
        let vault = try await gateVault()
        let request = AccessRequest(actor: "m", role: .marketer, action: .readProfile, purpose: .service, fields: ["first_name"])
        let read = try await vault.read(request, subject: .email("s1@example.test"), includeDerived: true)
        #expect(!read.decision.isPermit)
        let report = try await vault.report(.denials, as: Principal(actor: "t", role: .admin))
        let reasons = Set(report.rows.map { $0[3] })
        #expect(reasons.contains("no_rule"))
        #expect(reasons.allSatisfy { DecisionReason.Code(rawValue: $0) != nil || $0 == "(none)" }, "\(reasons)")
    }
}
