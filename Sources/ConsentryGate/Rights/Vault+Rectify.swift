import ConsentryAudit
public import ConsentryCore
import ConsentryCrypto
public import ConsentryPolicy
import Foundation
import GRDB

extension Vault {
    /// Corrects profile fields of one subject (a rectification request). Each value is validated and normalized as an
    /// import would, sealed anew, and marked with source `rectification`; the old ciphertext is overwritten in place
    /// (secure_delete) and the WAL truncated, so the old value is kept nowhere. A changed e-mail, phone or customer id
    /// moves its blind index too. Needs `rectify` for `service`; audited with the names of the changed fields.
    /// - Returns: the fields whose value changed.
    public func rectify(
        _ reference: SubjectReference, values: [String: String], as principal: Principal
    ) async throws(GateError) -> [String] {
        let (actor, role, requestID) = (principal.actor, principal.role, principal.requestID)
        let request = AccessRequest(actor: actor, role: role, action: .rectify, purpose: .service)
        // Denied before the values are looked at: a role without the grant learns nothing from the validation.
        let decision = decide(request)
        guard decision.isPermit else { try await refuse(request, decision, requestID: requestID) }
        let normalized = try validateCorrections(values)
        return try await perform(request, requestID: requestID, decision: decision, failure: "rectify the subject (nothing was changed)") {
            scope -> [String] in
            let db = scope.db
            guard let subject = try resolve(reference, db: db) else {
                throw GateError(.notFound, "no subject matches; check the e-mail address, customer id or request")
            }
            try refreshKEKs(db)
            guard let row = try subjectRow(subject, db: db),
                var packed = row.fields.withUnsafeBytes({ PackedFields.decode($0) })
            else { throw GateError(.integrity, "the stored profile of \(subjectLabel(subject, db)) is malformed; run `consentry check`") }
            let keyVersion = row.keyVersion
            var scratch = try SecretBytes(count: Sealing.keyLength)
            defer { scratch.zero() }
            try unwrapDataKey(of: subject, kekVersion: row.kekVersion, wrapped: row.wrappedKey, into: &scratch)
            let nonces = NonceSource(blockNonces: 4)
            let now = nowMillis
            var changed: [String] = []
            for (spec, value) in normalized {
                let ad = Sealing.fieldAssociatedData(subject: subject, field: spec.name, keyVersion: keyVersion)
                let entry = PackedFields.Entry(
                    name: spec.name.rawValue, source: .rectification, observedAt: now,
                    sealed: Sealing.seal(value, key: scratch, associatedData: ad, nonces: nonces))
                if let index = packed.entries.firstIndex(where: { $0.name == spec.name.rawValue }) {
                    let old = packed.entries[index].sealed.withUnsafeBytes { Sealing.openString($0, key: scratch, associatedData: ad) }
                    packed.entries[index] = entry
                    if old == value { continue }
                } else {
                    packed.entries.append(entry)
                }
                changed.append(spec.name.rawValue)
                if let kind = spec.identityKind { try moveIdentity(kind, to: value, of: subject, now: now, db: db) }
            }
            try SQLiteSubjectRows.updateFields(of: subject.rawValue, packed.encoded(), at: now, db)
            scope.entry.subject = pseudonym(secret: row.auditSecret)
            scope.entry.counts = ["changed": changed.count]
            scope.entry.fields = changed
            scope.entry.reasons.append("rectified")
            // The old ciphertext was overwritten in place (secure_delete); its copy in the WAL goes with the truncation.
            scope.truncatesLog = true
            return changed
        }
    }

    /// Checks corrected values as an import would: each names a declared field and is valid for its type.
    /// - Returns: the normalized values, in field-name order.
    /// - Throws: ``GateError`` `invalidInput` naming the field and what is wrong (never the value).
    @discardableResult
    public func validateCorrections(_ values: [String: String]) throws(GateError) -> [(spec: FieldSpec, value: String)] {
        guard !values.isEmpty else { throw GateError(.invalidInput, "a rectification names at least one field and its corrected value") }
        var normalized: [(spec: FieldSpec, value: String)] = []
        for (name, raw) in values.sorted(by: { $0.key < $1.key }) {
            guard let spec = schema[name] else {
                throw GateError(
                    .invalidInput,
                    "`\(name.prefix(64))` is not a field of this vault; fields.yaml declares \(schema.fields.map { "`\($0.name)`" }.joined(separator: ", "))"
                )
            }
            do { normalized.append((spec, try Normalize.value(raw, as: spec.type))) } catch {
                throw GateError(.invalidInput, "field `\(name)`: \(error.message)")
            }
        }
        return normalized
    }

    /// Replaces the subject's blind index of `kind` with the one of `value`; refuses a value that identifies another subject.
    private func moveIdentity(_ kind: IdentityKind, to value: String, of subject: SubjectID, now: Int64, db: Database) throws {
        let hash = Data(keys.blindIndex.index(kind, value))
        let binding = RecordBinding.identity(keys.recordBinding, hash: [UInt8](hash), kind: kind, subject: subject)
        if kind == .phone {
            try SQLiteSubjectRows.replacePhone(of: subject.rawValue, hash: hash, binding: binding, source: "rectification", at: now, db)
            return
        }
        if let owner = try ProfileIngest.lookup(kind, [UInt8](hash), binder: keys.recordBinding, db: db), owner != subject {
            throw GateError(.invalidInput, "the corrected `\(kind.rawValue)` belongs to another subject; resolve the duplicate first")
        }
        try SQLiteSubjectRows.replaceIdentity(
            of: subject.rawValue, kind: kind.rawValue, hash: hash, binding: binding, source: "rectification", at: now, db)
    }
}
