import ConsentryAudit
import Foundation
import GRDB

/// The audit log's rows in the SQLite store: `audit_entry`, and `audit_subject_set` for entries that name a set.
enum SQLiteAuditRows {
    /// The sequence and hash of the log's last entry (0 and the genesis hash for an empty log). SQLite has one writer,
    /// so the transaction that reads the head is the one that appends after it.
    static func head(_ db: Database) throws -> (sequence: Int64, hash: String) {
        let last = try RawQuery(db, "SELECT sequence, hash FROM audit_entry ORDER BY sequence DESC LIMIT 1")
        guard try last.step() else { return (0, AuditEntry.genesisHash) }
        guard let hash = last.text(1) else { throw AuditError(.tampered, "the last audit entry has no hash; run `consentry audit verify`") }
        return (last.int64(0), hash)
    }

    /// Inserts a chained entry and its subject set.
    static func insert(_ row: AuditRow, _ db: Database) throws {
        let entry = row.entry
        // Every gated read appends an entry on the shared writer, so the insert binds its values with SQLite's own
        // calls: GRDB's argument boxing cost about half of the insert in profiles of the API's renders.
        let insert = try RawQuery(
            db,
            """
            INSERT INTO audit_entry (sequence, time, actor, role, action, purpose, subject, subject_count, subject_set_digest, fields, counts,
                decision, reasons, policy_version, consent_record_ids, request_id, previous_hash, hash)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        let texts: [(Int32, String?)] = [
            (3, entry.actor), (4, entry.role), (5, entry.action), (6, entry.purpose), (7, entry.subject), (9, entry.subjectSetDigest),
            (10, row.columns.fields), (11, row.columns.counts), (12, entry.decision), (13, row.columns.reasons), (14, entry.policyVersion),
            (15, AuditJSON.array(entry.consentRecordIDs.map(String.init))), (16, entry.requestID), (17, entry.previousHash), (18, entry.hash),
        ]
        insert.bind(1, entry.sequence)
        insert.bind(2, entry.time)
        insert.bind(8, Int64(entry.subjectCount))
        for (index, text) in texts { insert.bind(index, text) }
        try insert.execute()
        if !row.subjectSet.isEmpty {
            try db.cachedStatement(sql: "INSERT INTO audit_subject_set (sequence, pseudonyms) VALUES (?, ?)").execute(arguments: [
                entry.sequence, Data(row.subjectSet),
            ])
        }
    }

    /// Reads an entry back from a row of `audit_entry`.
    static func entry(_ row: Row) -> AuditEntry {
        func list(_ column: String) -> [String] {
            (try? JSONDecoder().decode([String].self, from: Data((row[column] as String? ?? "[]").utf8))) ?? ["<unreadable>"]
        }
        let counts = (try? JSONDecoder().decode([String: Int].self, from: Data((row["counts"] as String? ?? "{}").utf8))) ?? ["<unreadable>": -1]
        return AuditEntry(
            sequence: row["sequence"], time: row["time"], actor: row["actor"], role: row["role"], action: row["action"], purpose: row["purpose"],
            subject: row["subject"], subjectCount: row["subject_count"], subjectSetDigest: row["subject_set_digest"], fields: list("fields"),
            counts: counts, decision: row["decision"], reasons: list("reasons"), policyVersion: row["policy_version"],
            consentRecordIDs: list("consent_record_ids").compactMap { Int64($0) }, requestID: row["request_id"],
            previousHash: row["previous_hash"], hash: row["hash"])
    }

    /// Calls `body` with each entry `query` matches, in sequence order, through a cursor (memory does not grow with the
    /// log).
    static func forEach(_ query: AuditQuery, _ db: Database, _ body: (AuditEntry) throws -> Void) throws {
        var conditions: [String] = []
        var arguments: [any DatabaseValueConvertible] = []
        if let pseudonym = query.pseudonym {
            // Bulk entries hold packed 16-byte pseudonyms; a match must start on a 16-byte boundary.
            conditions.append("(subject = ? OR sequence IN (SELECT sequence FROM audit_subject_set WHERE instr(pseudonyms, ?) % 16 = 1))")
            arguments += [pseudonym.hex, Data(pseudonym.bytes)]
        }
        let columns: [(String, (any DatabaseValueConvertible)?)] = [
            ("actor = ?", query.actor), ("role = ?", query.role), ("purpose = ?", query.purpose), ("action = ?", query.action),
            ("decision = ?", query.decision), ("time >= ?", query.since), ("time < ?", query.until),
        ]
        for case let (condition, value?) in columns {
            conditions.append(condition)
            arguments.append(value)
        }
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let limit = query.limit.map { " LIMIT \(max(0, $0))" } ?? ""
        let cursor = try Row.fetchCursor(
            db, sql: "SELECT * FROM (SELECT * FROM audit_entry \(whereClause) ORDER BY sequence DESC\(limit)) ORDER BY sequence",
            arguments: StatementArguments(arguments))
        while let row = try cursor.next() { try body(entry(row)) }
    }

    /// Every entry in the order it is stored, for verification: an entry moved or reordered in the file shows.
    static func all(_ db: Database) throws -> AnySequence<AuditEntry> {
        let cursor = try Row.fetchCursor(db, sql: "SELECT * FROM audit_entry ORDER BY rowid")
        return AnySequence { AnyIterator { (try? cursor.next()).flatMap { $0.map(entry) } } }
    }
}
