import ConsentryCore
import Foundation
import GRDB

/// The statements of profile and event imports and of identity look-ups in the SQLite store: the identity index (a
/// unique row per e-mail address and customer id, shared rows for phone numbers), new subject rows, merged profiles,
/// the suppression list and behavioral events. Bound with SQLite's own calls: an import runs several per record, and
/// every gated read by e-mail address runs the look-up.
enum SQLiteIngestRows {
    /// Calls `body` with the subject id and the stored binding of the identity-index row of `hash`, or returns nil
    /// when there is none. A shared (phone) identity answers with one of its subjects.
    static func withIdentity<R>(
        _ kind: IdentityKind, _ hash: [UInt8], _ db: Database, _ body: (Int64, UnsafeRawBufferPointer) throws -> R
    ) throws -> R? {
        let query = try RawQuery(
            db,
            kind == .phone
                ? "SELECT subject_id, binding FROM shared_identity WHERE hash = ? LIMIT 1" : "SELECT subject_id, binding FROM identity WHERE hash = ?"
        )
        query.bind(1, hash)
        guard try query.step() else { return nil }
        return try query.withBytes(1) { try body(query.int64(0), $0) }
    }

    /// Adds an identity-index row unless `hash` is indexed already (for a shared kind: already for this subject).
    static func insertIdentity(
        _ kind: IdentityKind, hash: [UInt8], subject: Int64, source: String, at time: Int64, binding: [UInt8], _ db: Database
    ) throws {
        let insert = try RawQuery(
            db,
            kind == .phone
                ? "INSERT OR IGNORE INTO shared_identity (hash, subject_id, kind, source, created_at, binding) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                : "INSERT OR IGNORE INTO identity (hash, subject_id, kind, source, created_at, binding) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        insert.bind(1, hash)
        insert.bind(2, subject)
        insert.bind(3, kind.rawValue)
        insert.bind(4, source)
        insert.bind(5, time)
        insert.bind(6, binding)
        try insert.execute()
    }

    /// Adds a subject row (data key version 1); false, changing nothing, when its random id is taken already.
    static func insertSubject(
        id: Int64, kekVersion: UInt32, wrappedKey: [UInt8], fields: [UInt8], auditSecret: [UInt8], ledgerHead: [UInt8], at time: Int64,
        _ db: Database
    ) throws -> Bool {
        let insert = try RawQuery(
            db,
            """
            INSERT INTO subject (id, kek_version, wrapped_key, key_version, fields, created_at, updated_at, audit_secret, ledger_head)
            VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?)
            """)
        insert.bind(1, id)
        insert.bind(2, Int64(kekVersion))
        insert.bind(3, wrappedKey)
        insert.bind(4, fields)
        insert.bind(5, time)
        insert.bind(6, time)
        insert.bind(7, auditSecret)
        insert.bind(8, ledgerHead)
        do {
            try insert.execute()
            return true
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY {
            return false
        }
    }

    /// Replaces a subject's packed profile after a merge; `updatedAt` moves the row's update time forward only.
    static func updateMergedFields(of subject: Int64, _ packed: [UInt8], updatedAt: Int64, _ db: Database) throws {
        try db.cachedStatement(sql: "UPDATE subject SET fields = ?, updated_at = max(updated_at, ?) WHERE id = ?").execute(arguments: [
            Data(packed), updatedAt, subject,
        ])
    }

    /// Whether the suppression list holds anything (read once per batch: most vaults have erased nobody).
    static func suppressionInUse(_ db: Database) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM suppression)") ?? true
    }

    /// Whether the keyed hash of an identifier is on the suppression list.
    static func isSuppressed(_ hash: [UInt8], _ db: Database) throws -> Bool {
        try Int.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM suppression WHERE hash = ?"), arguments: [Data(hash)]) != nil
    }

    /// One behavioral event as an import stores it.
    struct EventInsert {
        let key: [UInt8]
        let digest: [UInt8]
        let subject: Int64
        let type: String
        let time: Int64
        let itemID: String?
        let category: String?
        let amount: Double?
        let currency: String?
        let campaignID: String?
        let receivedAt: Int64
    }

    /// Stores an event unless one with its key is stored: true when it was stored, false when the key was taken (then
    /// `storedDigest(ofEventKey:)` tells whether it is the same event).
    static func insertEvent(_ event: EventInsert, _ db: Database) throws -> Bool {
        let insert = try RawQuery(
            db,
            """
            INSERT INTO event (key, digest, subject_id, type, time, item_id, category, amount, currency, campaign_id, received_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING
            """)
        insert.bind(1, event.key)
        insert.bind(2, event.digest)
        insert.bind(3, event.subject)
        insert.bind(4, event.type)
        insert.bind(5, event.time)
        insert.bind(6, event.itemID)
        insert.bind(7, event.category)
        insert.bind(8, event.amount)
        insert.bind(9, event.currency)
        insert.bind(10, event.campaignID)
        insert.bind(11, event.receivedAt)
        try insert.execute()
        return db.changesCount == 1
    }

    /// The digest of the event stored under `key`, or nil.
    static func storedDigest(ofEventKey key: [UInt8], _ db: Database) throws -> Data? {
        try Data.fetchOne(db.cachedStatement(sql: "SELECT digest FROM event WHERE key = ?"), arguments: [Data(key)])
    }
}
