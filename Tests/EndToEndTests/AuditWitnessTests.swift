import ConsentryTesting
import Foundation
import GRDB
import Testing

/// Restoring the database together with the vault's own checkpoint file, or cutting the log's tail together with its
/// checkpoint lines, leaves a consistent-looking vault. Only something kept outside the vault catches it: a witness
/// file on another volume, or a checkpoint recorded elsewhere and passed to `audit verify --expect`.
@Suite("audit witnesses", .serialized)
struct AuditWitnessTests {
    func status(_ vault: URL, _ extra: [String] = []) throws -> [String: Any] {
        let result = try consentry(vault, ["status", "--json"] + extra)
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
    }

    @Test("a database restored with its checkpoint file verifies on its own, but not against a witness or a recorded checkpoint")
    func restoreIsCaughtOutsideTheVault() throws {
        let base = TestSupport.temporaryDirectory("witness")
        let vault = base.appendingPathComponent("vault"), old = base.appendingPathComponent("old")
        let witness = base.appendingPathComponent("elsewhere/checkpoints").path
        try FileManager.default.createDirectory(atPath: base.appendingPathComponent("elsewhere").path, withIntermediateDirectories: true)
        let w = ["--witness", witness]
        #expect(try consentry(vault, ["init"] + w).status == 0)
        #expect(FileManager.default.fileExists(atPath: witness), "a new witness gets a checkpoint at once")
        let csv = TestSupport.writeFile("w.csv", "email,first_name\n\(Canary.email),\(Canary.firstName)\n")
        #expect(try consentry(vault, ["import", "profiles", csv.path, "--source", "crm"] + w).status == 0)
        try FileManager.default.copyItem(at: vault, to: old)
        for step in ["pending", "confirm", "withdraw"] {
            #expect(try consentry(vault, ["consent", step, "--email", Canary.email, "--purpose", "email_marketing"] + w).status == 0)
        }
        let recorded = try #require(try status(vault, w)["newest_checkpoint"] as? String)
        #expect(try status(vault, w)["witness_files"] as? [String] == [witness])
        #expect(try consentry(vault, ["audit", "verify", "--expect", recorded] + w).status == 0, "the live vault passes everything")
        // The restore: the whole directory from the older copy, checkpoint file included.
        try FileManager.default.removeItem(at: vault)
        try FileManager.default.copyItem(at: old, to: vault)
        #expect(try consentry(vault, ["audit", "verify"]).status == 0, "alone, a restored vault is consistent (the documented limit)")
        let witnessed = try consentry(vault, ["audit", "verify"] + w)
        #expect(witnessed.status == 1 && witnessed.stderr.contains("a checkpoint in the witness file"), "\(witnessed.stderr)")
        let pinned = try consentry(vault, ["audit", "verify", "--expect", recorded])
        #expect(pinned.status == 1 && pinned.stderr.contains("was recorded outside the vault"), "\(pinned.stderr)")
    }

    @Test("a tail cut together with its checkpoint lines is caught by the witness")
    func tailCutWithCheckpoints() throws {
        let base = TestSupport.temporaryDirectory("witness")
        let vault = base.appendingPathComponent("vault")
        let witness = base.appendingPathComponent("witness-checkpoints").path
        let w = ["--witness", witness]
        #expect(try consentry(vault, ["init"] + w).status == 0)
        let csv = TestSupport.writeFile("w.csv", "email,first_name\n\(Canary.email),\(Canary.firstName)\n")
        #expect(try consentry(vault, ["import", "profiles", csv.path, "--source", "crm"] + w).status == 0)
        let keep = try #require(try status(vault, w)["newest_checkpoint"] as? String)
        let keepSequence = try #require(Int64(keep.split(separator: ":")[0]))
        for step in ["pending", "confirm"] {
            #expect(try consentry(vault, ["consent", step, "--email", Canary.email, "--purpose", "email_marketing"] + w).status == 0)
        }
        let queue = try DatabaseQueue(path: vault.appendingPathComponent("vault.sqlite").path)
        try queue.write { db in
            try db.execute(sql: "DROP TRIGGER audit_entry_no_delete")
            try db.execute(sql: "DELETE FROM audit_subject_set WHERE sequence > ?", arguments: [keepSequence])
            try db.execute(sql: "DELETE FROM audit_entry WHERE sequence > ?", arguments: [keepSequence])
        }
        try queue.close()
        // The vault's own checkpoint file, cut back to the same point.
        let file = vault.appendingPathComponent("audit/checkpoints")
        let lines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n").filter { line in
            (Int64(line.split(separator: " ")[1]) ?? 0) <= keepSequence
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: file)
        #expect(try consentry(vault, ["audit", "verify"]).status == 0, "cut consistently, the vault alone cannot tell")
        let witnessed = try consentry(vault, ["audit", "verify"] + w)
        #expect(witnessed.status == 1 && witnessed.stdout.contains("FAILED verification"), "\(witnessed.stdout) \(witnessed.stderr)")
        let malformed = try consentry(vault, ["audit", "verify", "--expect", "12:xyz"])
        #expect(malformed.status != 0 && malformed.stderr.contains("`--expect` takes SEQUENCE:HASH"))
    }
}
