import Foundation
import GRDB

/// Per-subject reads and derived values in the SQLite store: a subject's keys, identities, events and derived
/// values (for its export), and the derived table's upserts and deletes. Events go through cursors, so that an export's
/// memory does not grow with the subject's history.
enum SQLiteSubjectRows {
    /// One subject's key material and sealed profile, or nil when it has no row.
    static func sealedRecord(of subject: Int64, _ db: Database) throws -> SubjectRecord? {
        let query = try RawQuery(db, "SELECT kek_version, wrapped_key, key_version, fields, audit_secret FROM subject WHERE id = ?")
        query.bind(1, subject)
        guard try query.step() else { return nil }
        return SubjectRecord(
            kekVersion: UInt32(truncatingIfNeeded: query.int64(0)), wrappedKey: query.bytes(1),
            keyVersion: UInt32(truncatingIfNeeded: query.int64(2)), fields: query.bytes(3), auditSecret: query.bytes(4))
    }

    /// Calls `body` with the sealed row of each subject in `range`, in id order. The view's pointers are SQLite's,
    /// valid during the call only: a scan opens every subject's fields without copying its row.
    static func forEachSealed(_ range: SubjectRange, _ db: Database, _ body: (SealedSubjectView) throws -> Void) throws {
        let columns = "SELECT id, kek_version, wrapped_key, key_version, fields, audit_secret FROM subject"
        let bounds: (Int64, Int64)?
        switch range {
        case .all: bounds = nil
        case .ids(let ids): bounds = (ids.lowerBound, ids.upperBound)
        case .one(let id): bounds = (id, id)
        }
        let query = try RawQuery(db, columns + (bounds == nil ? " ORDER BY id" : " WHERE id BETWEEN ? AND ? ORDER BY id"))
        if let bounds {
            query.bind(1, bounds.0)
            query.bind(2, bounds.1)
        }
        while try query.step() {
            try query.withBytes(2) { wrapped in
                try query.withBytes(5) { secret in
                    let kekVersion = UInt32(truncatingIfNeeded: query.int64(1)), keyVersion = UInt32(truncatingIfNeeded: query.int64(3))
                    if query.isNull(4) {
                        try body(
                            SealedSubjectView(
                                subject: query.int64(0), kekVersion: kekVersion, wrappedKey: wrapped, keyVersion: keyVersion, fields: nil,
                                auditSecret: secret))
                    } else {
                        try query.withBytes(4) { fields in
                            try body(
                                SealedSubjectView(
                                    subject: query.int64(0), kekVersion: kekVersion, wrappedKey: wrapped, keyVersion: keyVersion, fields: fields,
                                    auditSecret: secret))
                        }
                    }
                }
            }
        }
    }

    /// The subject's keys, or nil when it has no row.
    static func keys(of subject: Int64, _ db: Database) throws -> SubjectKeys? {
        try Row.fetchOne(
            db.cachedStatement(sql: "SELECT kek_version, wrapped_key, key_version, audit_secret FROM subject WHERE id = ?"), arguments: [subject]
        ).map { keys($0, from: 0) }
    }

    /// A subject's keys from four columns of `row` starting at `index`: kek_version, wrapped_key, key_version, audit_secret.
    static func keys(_ row: Row, from index: Int) -> SubjectKeys {
        SubjectKeys(
            kekVersion: UInt32(truncatingIfNeeded: row[index] as Int64), wrappedKey: row[index + 1],
            keyVersion: UInt32(truncatingIfNeeded: row[index + 2] as Int64), auditSecret: row[index + 3])
    }

    static func derivedExists(subject: Int64, kind: String, name: String, _ db: Database) throws -> Bool {
        try Bool.fetchOne(
            db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM derived WHERE subject_id = ? AND kind = ? AND name = ?)"),
            arguments: [subject, kind, name]) == true
    }

    /// Every stored value of `kind/name`, with its subject's keys.
    static func derivedValues(kind: String, name: String, _ db: Database) throws -> [SealedDerived] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT d.subject_id, d.sealed, s.kek_version, s.wrapped_key, s.key_version, s.audit_secret
                FROM derived d JOIN subject s ON s.id = d.subject_id WHERE d.kind = ? AND d.name = ?
                """, arguments: [kind, name]
        ).map { SealedDerived(subjectID: $0[0], sealed: $0[1], keys: keys($0, from: 2)) }
    }

    /// Stores a sealed derived value (replacing the subject's value of `kind/name`), with its purpose.
    static func upsertDerived(subject: Int64, kind: String, name: String, sealed: [UInt8], at time: Int64, purpose: String, _ db: Database) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO derived (subject_id, kind, name, sealed, updated_at, purpose) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (subject_id, kind, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at,
                    purpose = excluded.purpose
                """
        ).execute(arguments: [subject, kind, name, Data(sealed), time, purpose])
    }

    /// Deletes the value `kind/name` of one subject, or of every subject; returns how many went.
    static func deleteDerived(subject: Int64?, kind: String, name: String, _ db: Database) throws -> Int {
        if let subject {
            try db.cachedStatement(sql: "DELETE FROM derived WHERE subject_id = ? AND kind = ? AND name = ?").execute(arguments: [subject, kind, name])
        } else {
            try db.execute(sql: "DELETE FROM derived WHERE kind = ? AND name = ?", arguments: [kind, name])
        }
        return db.changesCount
    }

    /// Calls `body` with each derived value of the subject (kind, name, sealed), by kind and name.
    static func forEachDerived(of subject: Int64, _ db: Database, _ body: (String, String, Data) throws -> Void) throws {
        let rows = try Row.fetchCursor(db, sql: "SELECT kind, name, sealed FROM derived WHERE subject_id = ? ORDER BY kind, name", arguments: [subject])
        while let row = try rows.next() { try body(row[0], row[1], row[2]) }
    }

    /// The kinds and sources of the identifiers the subject is indexed by (unique and shared).
    static func identities(of subject: Int64, _ db: Database) throws -> [(kind: String, source: String)] {
        try Row.fetchAll(
            db, sql: "SELECT kind, source FROM identity WHERE subject_id = ? UNION ALL SELECT kind, source FROM shared_identity WHERE subject_id = ?",
            arguments: [subject, subject]
        ).map { ($0[0], $0[1]) }
    }

    /// How many events the subject has.
    static func eventCount(of subject: Int64, _ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT count(*) FROM event WHERE subject_id = ?", arguments: [subject]) ?? 0
    }

    /// One event as an export shows it.
    struct EventRow {
        let type: String
        let time: Int64
        let itemID: String?
        let category: String?
        let amount: Double?
        let currency: String?
        let campaignID: String?
    }

    /// Calls `body` with each of the subject's events, oldest first.
    static func forEachEvent(of subject: Int64, _ db: Database, _ body: (EventRow) throws -> Void) throws {
        let rows = try Row.fetchCursor(
            db, sql: "SELECT type, time, item_id, category, amount, currency, campaign_id FROM event WHERE subject_id = ? ORDER BY time, id",
            arguments: [subject])
        while let row = try rows.next() {
            try body(EventRow(type: row[0], time: row[1], itemID: row[2], category: row[3], amount: row[4], currency: row[5], campaignID: row[6]))
        }
    }

    /// Holds the connection's page cache small while an export walks a long history, so that memory stays flat.
    static func holdCacheSmall(_ db: Database) throws {
        try db.execute(sql: "PRAGMA cache_size = -4096")
    }

    /// Restores the large page cache imports want.
    static func restoreCache(_ db: Database) {
        try? db.execute(sql: "PRAGMA cache_size = -\(SQLiteStore.writerCacheKiB)")
    }

    /// Replaces the subject's packed sealed profile.
    static func updateFields(of subject: Int64, _ packed: [UInt8], at time: Int64, _ db: Database) throws {
        try db.execute(sql: "UPDATE subject SET fields = ?, updated_at = ? WHERE id = ?", arguments: [Data(packed), time, subject])
    }

    /// Replaces the subject's unique identity of `kind` (e-mail, customer id) with `hash`, bound by `binding`.
    static func replaceIdentity(of subject: Int64, kind: String, hash: Data, binding: [UInt8], source: String, at time: Int64, _ db: Database) throws {
        try db.execute(sql: "DELETE FROM identity WHERE subject_id = ? AND kind = ?", arguments: [subject, kind])
        try db.execute(
            sql: "INSERT INTO identity (hash, kind, subject_id, source, created_at, binding) VALUES (?, ?, ?, ?, ?, ?)",
            arguments: [hash, kind, subject, source, time, Data(binding)])
    }

    /// Replaces the subject's shared phone identity with `hash` (a household line may belong to several subjects).
    static func replacePhone(of subject: Int64, hash: Data, binding: [UInt8], source: String, at time: Int64, _ db: Database) throws {
        try db.execute(sql: "DELETE FROM shared_identity WHERE subject_id = ? AND kind = 'phone'", arguments: [subject])
        try db.execute(
            sql: "INSERT OR IGNORE INTO shared_identity (hash, subject_id, kind, source, created_at, binding) VALUES (?, ?, 'phone', ?, ?, ?)",
            arguments: [hash, subject, source, time, Data(binding)])
    }
}
