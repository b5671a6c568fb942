import ConsentryCore
import ConsentryCrypto
import Foundation
import GRDB

// INVARIANT: one door. Everything in this file returns decrypted personal data and is `internal`: only
// code inside ConsentryGate (the gate) can call it. Making any of it `public` or `package` breaks
// invariant 1; the access-control test in ConsentryGateTests fails if that happens.

/// Opens the requested fields of subjects, one subject at a time, reusing one scratch key in locked
/// memory and one associated-data buffer per field.
struct FieldOpener {
    let fields: [FieldName]
    private let names: [[UInt8]]
    private var associatedData: [[UInt8]]
    private let prefixLength = Array("cns-field-v1".utf8).count

    init(fields: [FieldName]) {
        self.fields = fields
        names = fields.map { Array($0.rawValue.utf8) }
        associatedData = fields.map { Sealing.fieldAssociatedData(subject: SubjectID(rawValue: 0), field: $0, keyVersion: 0) }
    }

    /// Points every field's associated data at `subject` and `keyVersion` (their bytes sit at fixed offsets).
    mutating func bind(subject: SubjectID, keyVersion: UInt32) {
        let subjectBytes = subject.rawValue.bigEndian
        let version = keyVersion.bigEndian
        for i in associatedData.indices {
            associatedData[i].withUnsafeMutableBytes { ad in
                ad.storeBytes(of: subjectBytes, toByteOffset: prefixLength, as: Int64.self)
                ad.storeBytes(of: version, toByteOffset: prefixLength + 8, as: UInt32.self)
            }
        }
    }

    /// Opens the requested fields in a packed profile. `values[i]` is nil when field `i` is absent.
    /// - Throws: ``GateError`` `integrity` naming subject and field when a value fails to open.
    func open(packed: UnsafeRawBufferPointer, key: borrowing SecretBytes, subject: SubjectID, into values: inout [String?]) throws {
        for i in values.indices { values[i] = nil }
        var failure: FieldName?
        let wellFormed = PackedFields.visit(packed) { name, _, _, sealed in
            guard let index = names.firstIndex(where: { $0.elementsEqual(name) }) else { return true }
            let opened = associatedData[index].withUnsafeBytes { ad -> String? in
                let length = sealed.count - Sealing.overhead
                guard length >= 0 else { return nil }
                var ok = true
                let text = String(unsafeUninitializedCapacity: max(length, 1)) { buffer in
                    guard let n = Sealing.open(sealed, key: key, associatedData: ad, into: UnsafeMutableRawPointer(buffer.baseAddress!)) else {
                        ok = false
                        return 0
                    }
                    return n
                }
                return ok ? text : nil
            }
            guard let opened else {
                failure = fields[index]
                return false
            }
            values[index] = opened
            return true
        }
        if let failure {
            throw GateError(
                .integrity, about: subject
            ) { "field `\(failure)` of \($0) failed its integrity check (tampered, moved, or sealed under another key)" }
        }
        guard wellFormed else { throw GateError(.integrity, about: subject) { "the stored profile of \($0) is malformed" } }
    }
}

/// One subject's key material and sealed profile, as stored in its `subject` row.
struct SubjectRecord {
    /// The key-encryption key version its data key is wrapped under.
    var kekVersion: UInt32
    /// The wrapped data key.
    var wrappedKey: [UInt8]
    /// The data key's version (bound into every sealed value's associated data).
    var keyVersion: UInt32
    /// The sealed profile (``PackedFields``).
    var fields: [UInt8]
    /// The secret behind the subject's audit pseudonym.
    var auditSecret: [UInt8]
}

extension Vault {
    /// Finds the subject an identifier belongs to, through its blind index. `value` is normalized here.
    func findSubject(_ kind: IdentityKind, _ value: String) throws(GateError) -> SubjectID? {
        let normalized: String
        do {
            switch kind {
            case .email: normalized = try Normalize.email(value)
            case .phone: normalized = try Normalize.phone(value)
            case .customerID: normalized = try Normalize.customerID(value)
            }
        } catch { return nil }
        let hash = keys.blindIndex.index(kind, normalized)
        do { return try db.read { try ProfileIngest.lookup(kind, hash, binder: keys.recordBinding, db: $0) } } catch {
            throw Self.storageError(error, "look up a subject")
        }
    }

    /// One subject's key material and sealed profile, fetched once for ``openFields(_:of:row:db:scratch:)``.
    func subjectRow(_ subject: SubjectID, db: Database) throws -> SubjectRecord? {
        try SQLiteSubjectRows.sealedRecord(of: subject.rawValue, db)
    }

    /// Decrypts `fields` of one subject from its fetched row (see ``subjectRow(_:db:)``), in `fields` order;
    /// absent fields are nil. Reloads the KEKs when another process has rotated them. The subject's data key is
    /// left in `scratch` (for derived data); the caller zeroes it.
    func openFields(_ fields: [FieldName], of subject: SubjectID, row: SubjectRecord, db: Database, scratch: inout SecretBytes) throws -> [String?] {
        if keys.kek(row.kekVersion) == nil { try refreshKEKs(db) }
        try unwrapDataKey(of: subject, kekVersion: row.kekVersion, wrapped: row.wrappedKey, into: &scratch)
        var opener = FieldOpener(fields: fields)
        opener.bind(subject: subject, keyVersion: row.keyVersion)
        var values = [String?](repeating: nil, count: fields.count)
        try row.fields.withUnsafeBytes { (packed: UnsafeRawBufferPointer) in
            try opener.open(packed: packed, key: scratch, subject: subject, into: &values)
        }
        return values
    }

    /// Decrypts `fields` of one subject; absent fields are missing from the result. Nil when the subject does not exist.
    func readFields(of subject: SubjectID, fields: [FieldName]) throws(GateError) -> [FieldName: String]? {
        var result: [FieldName: String]?
        try scanSubjects(fields: fields, only: subject) { _, values in
            var found: [FieldName: String] = [:]
            for (name, value) in zip(fields, values) { if let value { found[name] = value } }
            result = found
        }
        return result
    }

    /// Decrypts `fields` of every subject (or of one), calling `body` with each subject and its values in
    /// `fields` order. Only the requested fields are opened. Runs in one read transaction (a consistent snapshot).
    func scanSubjects(fields: [FieldName], only: SubjectID? = nil, _ body: (SubjectID, [String?]) throws -> Void) throws(GateError) {
        do {
            try db.read { db in try openSubjects(db, fields: fields, only.map { .one($0.rawValue) } ?? .all, body) }
        } catch {
            throw Self.storageError(error, "read subjects")
        }
    }
}

extension Vault {
    /// Decrypts `fields` of the subjects in `range` inside the caller's transaction, calling `body` with each subject
    /// and its values in `fields` order.
    func openSubjects(_ db: Database, fields: [FieldName], _ range: SubjectRange, _ body: (SubjectID, [String?]) throws -> Void) throws {
        var scratch = try SecretBytes(count: Sealing.keyLength)
        var reader = SubjectReader(fields: fields, vault: self)
        try reader.open(db, scratch: &scratch, range, body)
    }
}

/// Decrypts chosen fields of subjects, keeping its field opener and buffers across calls, so that a scan
/// reading many chunks sets them up once. The caller lends the scratch key (locked memory), which is zeroed
/// after every subject.
struct SubjectReader {
    private var opener: FieldOpener
    private var values: [String?]
    private var wrapAD: [UInt8]
    private var kekCache: (version: UInt32, box: KeyBox)?
    private let keys: VaultKeys
    /// The vault, to reload KEKs after a rotation by another process.
    private let vaultForRefresh: Vault?
    private static let wrapPrefix = Array("cns-wrap-v1".utf8).count

    init(fields: [FieldName], vault: Vault) {
        self.vaultForRefresh = vault
        opener = FieldOpener(fields: fields)
        values = [String?](repeating: nil, count: fields.count)
        wrapAD = Sealing.wrapAssociatedData(subject: SubjectID(rawValue: 0), kekVersion: 0)
        self.keys = vault.keys
    }

    /// Opens the subjects of `range` that `include` admits, in id order, calling `body` with each one's values.
    mutating func open(
        _ db: Database, scratch: inout SecretBytes, _ range: SubjectRange, include: (SubjectID) -> Bool = { _ in true },
        _ body: (SubjectID, [String?]) throws -> Void
    ) throws {
        defer { scratch.zero() }
        try SQLiteSubjectRows.forEachSealed(range, db) { row in
            let subject = SubjectID(rawValue: row.subject)
            // Minimization: subjects the gate excluded are never decrypted.
            guard include(subject) else { return }
            let kekVersion = row.kekVersion
            if kekCache?.version != kekVersion {
                // A version this process has not seen: another process rotated the keys.
                if keys.kek(kekVersion) == nil { try vaultForRefresh?.refreshKEKs(db) }
                guard let box = keys.kek(kekVersion) else {
                    throw GateError(
                        .key, about: subject
                    ) { "\($0) is wrapped under key-encryption key version \(kekVersion), which the vault does not hold" }
                }
                kekCache = (kekVersion, box)
            }
            wrapAD.withUnsafeMutableBytes { ad in
                ad.storeBytes(of: subject.rawValue.bigEndian, toByteOffset: Self.wrapPrefix, as: Int64.self)
                ad.storeBytes(of: kekVersion.bigEndian, toByteOffset: Self.wrapPrefix + 8, as: UInt32.self)
            }
            guard Sealing.unwrap(row.wrappedKey, kek: kekCache!.box.key, associatedData: wrapAD, into: &scratch) else {
                throw GateError(.integrity, about: subject) { "the data key of \($0) failed its integrity check (tampered or moved)" }
            }
            opener.bind(subject: subject, keyVersion: row.keyVersion)
            guard let packed = row.fields else { throw GateError(.integrity, about: subject) { "\($0) has no stored profile" } }
            try opener.open(packed: packed, key: scratch, subject: subject, into: &values)
            scratch.zero()
            try body(subject, values)
        }
    }
}
