import ConsentryAudit
public import ConsentryCore
import ConsentryCrypto
import ConsentryPolicy
import Foundation

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
    public func rotateKeys(batchSize: Int = 1_000, as principal: Principal = .system) async throws(GateError) -> RotationReport {
        let (actor, role) = (principal.actor, principal.role)
        let decision = try await requireAdministrative(.keyAdmin, actor: actor, role: role, requestID: nil)
        let nonces = NonceSource()
        let now = nowMillis
        do {
            // Step 1: install a new active KEK, unless an interrupted rotation already did.
            let newKEK = try SecretBytes.random(count: Sealing.keyLength)
            let (fromVersion, toVersion, resumed) = try await store.write { tx -> (UInt32, UInt32, Bool) in
                let keks = try await tx.keks()
                let active = keks.first(where: \.active)?.version ?? 0
                if let retiring = keks.first(where: { !$0.active })?.version { return (retiring, active, true) }
                let next = active + 1
                try await tx.rotateKEK(
                    to: KEKRecord(version: next, wrapped: Data(keys.wrapKEK(newKEK, version: next, nonces: nonces)), active: true, createdAt: now))
                return (active, next, false)
            }
            try loadKEKs()
            let target = toVersion
            guard let targetKEK = keys.kek(target) else { throw GateError(.key, "the new key-encryption key did not load") }
            // Step 2: re-wrap data keys in batches, each batch one transaction.
            var scratch = try SecretBytes(count: Sealing.keyLength)
            defer { scratch.zero() }
            var rewrapped = 0
            // Page through subjects by id, re-wrapping those not yet under the target.
            var after: Int64 = 0
            while true {
                let (scanned, moved, last) = try await store.write { tx -> (Int, Int, Int64) in
                    let page = try await tx.dataKeys(after: after, limit: batchSize)
                    var moved = 0
                    for key in page where key.kekVersion != target {
                        let subject = SubjectID(rawValue: key.subjectID)
                        // A failure rolls back this batch: nothing of it is changed.
                        try unwrapDataKey(of: subject, kekVersion: key.kekVersion, wrapped: key.wrappedKey, into: &scratch)
                        let wrapped = Sealing.wrap(
                            scratch, kek: targetKEK.key, associatedData: Sealing.wrapAssociatedData(subject: subject, kekVersion: target),
                            nonces: nonces)
                        scratch.zero()
                        try await tx.rewrapDataKey(WrappedDataKey(subjectID: key.subjectID, kekVersion: target, wrappedKey: Data(wrapped)))
                        moved += 1
                    }
                    return (page.count, moved, page.last?.subjectID ?? after)
                }
                after = last
                rewrapped += moved
                if scanned < batchSize { break }
            }
            // Step 3: retire the old KEKs once nothing references them, then purge the store's deleted bytes so that
            // their wrapped copies leave the write-ahead log too (secure_delete overwrites them in the main file).
            try await store.write { tx in
                let remaining = try await tx.dataKeysNotUnder(target)
                guard remaining == 0 else {
                    throw GateError(.storage, "\(remaining) data keys still use an old key-encryption key; run `consentry keys rotate` again")
                }
                try await tx.deleteRetiringKEKs()
            }
            try await store.purgeDeleted()
            try loadKEKs()
            var entry = draft(AccessRequest(actor: actor, role: role, action: .keyAdmin), decision, counts: ["rewrapped": rewrapped], requestID: nil)
            entry.reasons.append("key-encryption key \(fromVersion) → \(toVersion)" + (resumed ? " (finished an interrupted rotation)" : ""))
            try await auditAlone(entry)
            return RotationReport(fromVersion: Int(fromVersion), toVersion: Int(toVersion), rewrapped: rewrapped, resumed: resumed)
        } catch let error as CryptoError {
            throw GateError(.key, error.message)
        } catch {
            throw Self.storageError(error, "rotate the key-encryption key")
        }
    }
}
