import ConsentryAudit
public import ConsentryCore
import ConsentryCrypto
import ConsentryPolicy
import Foundation
import GRDB

/// What a key rotation did.
public struct RotationReport: Sendable, Codable, Equatable {
    /// The key-encryption-key version data keys were wrapped with before.
    public var fromVersion: Int
    /// The version they are wrapped with now.
    public var toVersion: Int
    /// Data keys re-wrapped by this run.
    public var rewrapped: Int
    /// Whether this run finished a rotation that an earlier run had started and not completed.
    public var resumed: Bool
}

extension Vault {
    /// Rotates the key-encryption key: a new random KEK becomes active and every subject's data key is
    /// re-wrapped under it; sealed field values are not touched.
    ///
    /// Crash-safe: the new KEK is stored before any data key moves, each batch of re-wraps commits with
    /// the version it used, and the old KEK is deleted only when no data key needs it any more. Killed at
    /// any moment, the vault stays readable, and running the rotation again finishes the interrupted one.
    ///
    /// Needs `key_admin`; the rotation's start and end are audited.
    public func rotateKeys(batchSize: Int = 1_000, as principal: Principal = .system) throws(GateError) -> RotationReport {
        let (actor, role) = (principal.actor, principal.role)
        let decision = try requireAdministrative(.keyAdmin, actor: actor, role: role, requestID: nil)
        let nonces = NonceSource()
        let now = nowMillis
        var resumed = false
        var fromVersion = 0
        var toVersion = 0
        do {
            // Step 1: install a new active KEK, unless an interrupted rotation already did.
            let newKEK = try SecretBytes.random(count: Sealing.keyLength)
            try db.write { db in
                let retiring = try Int64.fetchOne(db, sql: "SELECT version FROM kek WHERE state = 'retiring' ORDER BY version LIMIT 1")
                let active = try Int64.fetchOne(db, sql: "SELECT version FROM kek WHERE state = 'active'") ?? 0
                if let retiring {
                    resumed = true
                    fromVersion = Int(retiring)
                    toVersion = Int(active)
                    return
                }
                let next = active + 1
                fromVersion = Int(active)
                toVersion = Int(next)
                try db.execute(sql: "UPDATE kek SET state = 'retiring' WHERE state = 'active'")
                try db.execute(
                    sql: "INSERT INTO kek (version, wrapped, state, created_at) VALUES (?, ?, 'active', ?)",
                    arguments: [next, Data(keys.wrapKEK(newKEK, version: UInt32(next), nonces: nonces)), now])
            }
            try loadKEKs()
            let target = UInt32(toVersion)
            guard let targetKEK = keys.kek(target) else { throw GateError(.key, "the new key-encryption key did not load") }
            // Step 2: re-wrap data keys in batches, each batch one transaction.
            var scratch = try SecretBytes(count: Sealing.keyLength)
            defer { scratch.zero() }
            var rewrapped = 0
            // Page through subjects by id (the primary key), re-wrapping those not yet under the target.
            var after: Int64 = 0
            while true {
                let (scanned, moved) = try db.write { db -> (Int, Int) in
                    let page = try Row.fetchAll(
                        db, sql: "SELECT id, kek_version, wrapped_key FROM subject WHERE id > ? ORDER BY id LIMIT ?", arguments: [after, batchSize])
                    after = page.last?[0] ?? after
                    let rows = page.filter { ($0[1] as Int64) != Int64(target) }
                    let update = try db.cachedStatement(sql: "UPDATE subject SET kek_version = ?, wrapped_key = ? WHERE id = ?")
                    for row in rows {
                        let subject = SubjectID(rawValue: row[0])
                        // A failure rolls back this batch: nothing of it is changed.
                        try unwrapDataKey(of: subject, kekVersion: UInt32(row[1] as Int64), wrapped: row[2] as Data, into: &scratch)
                        let wrapped = Sealing.wrap(
                            scratch, kek: targetKEK.key, associatedData: Sealing.wrapAssociatedData(subject: subject, kekVersion: target),
                            nonces: nonces)
                        scratch.zero()
                        try update.execute(arguments: [Int64(target), Data(wrapped), subject.rawValue])
                    }
                    return (page.count, rows.count)
                }
                rewrapped += moved
                if scanned < batchSize { break }
            }
            // Step 3: retire the old KEKs once nothing references them, then checkpoint so that their
            // wrapped copies leave the WAL too (secure_delete overwrites them in the main file).
            try db.write { db in
                let remaining = try Int.fetchOne(db, sql: "SELECT count(*) FROM subject WHERE kek_version <> ?", arguments: [Int64(target)]) ?? 0
                guard remaining == 0 else {
                    throw GateError(.storage, "\(remaining) data keys still use an old key-encryption key; run `consentry keys rotate` again")
                }
                try db.execute(sql: "DELETE FROM kek WHERE state = 'retiring'")
            }
            _ = try db.writeWithoutTransaction { try $0.checkpoint(.truncate) }
            try loadKEKs()
            var entry = draft(AccessRequest(actor: actor, role: role, action: .keyAdmin), decision, counts: ["rewrapped": rewrapped], requestID: nil)
            entry.reasons.append("key-encryption key \(fromVersion) → \(toVersion)" + (resumed ? " (finished an interrupted rotation)" : ""))
            try auditAloneNow(entry)
            return RotationReport(fromVersion: fromVersion, toVersion: toVersion, rewrapped: rewrapped, resumed: resumed)
        } catch let error as CryptoError {
            throw GateError(.key, error.message)
        } catch {
            throw Self.storageError(error, "rotate the key-encryption key")
        }
    }
}
