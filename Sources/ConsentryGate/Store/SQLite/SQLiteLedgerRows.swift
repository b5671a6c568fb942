import ConsentryCore
import Foundation
import GRDB

/// The consent and flag ledgers in the SQLite store (`consent_record`, `subject_flag`, and the ledger head kept in the
/// subject row): their writes, per-subject reads, and the walks every decision reads them with.
enum SQLiteLedgerRows {
    /// Maps stored purpose names to `Purpose.ordinal`, so that SQLite hands back integers, not strings.
    private static let purposeOrdinalSQL =
        "CASE purpose " + Purpose.allCases.map { "WHEN '\($0.rawValue)' THEN \($0.ordinal)" }.joined(separator: " ") + " ELSE -1 END"

    // Only the order within one subject's purpose (or flag) matters to a decision: the newest record wins. One
    // subject's records are read through the per-subject index (in rowid order SQLite would walk the whole ledger to
    // find them); a range of subjects is read in rowid order from `after`, one sequential pass that skips what was seen.
    private static let consentBySubjectSQL = consentSQL(order: "subject_id, purpose, id")
    private static let consentByIDSQL = consentSQL(order: "id")

    private static func consentSQL(order: String) -> String {
        """
        SELECT id, subject_id, \(purposeOrdinalSQL),
            CASE state WHEN 'granted' THEN 1 WHEN 'pending' THEN 2 WHEN 'confirmed' THEN 3 WHEN 'withdrawn' THEN 4 ELSE 0 END,
            purpose, state, time, source, notice_version, evidence_ref, expires_at, recorded_at, binding
        FROM consent_record WHERE subject_id BETWEEN ? AND ? AND id > ? ORDER BY \(order)
        """
    }

    /// The statement a walk of the consent (or flag) ledger runs, for the test of its query plans.
    static func walkSQL(consent: Bool, bySubject: Bool) -> String {
        consent ? (bySubject ? consentBySubjectSQL : consentByIDSQL) : (bySubject ? flagBySubjectSQL : flagByIDSQL)
    }

    private static let flagBySubjectSQL = flagSQL(order: "subject_id, flag, purpose, id")
    private static let flagByIDSQL = flagSQL(order: "id")

    private static func flagSQL(order: String) -> String {
        "SELECT id, subject_id, flag, purpose, value, time, source, recorded_at, binding FROM subject_flag WHERE subject_id BETWEEN ? AND ? AND id > ? ORDER BY \(order)"
    }

    /// Calls `body` with each consent record of the subjects `low…high` whose id is above `after`: by subject, purpose
    /// and id for one subject, in id order for a range. The view's pointers are SQLite's, valid during the call only.
    static func forEachConsent(
        subjects low: Int64, _ high: Int64, after: Int64, _ db: Database, _ body: (ConsentRecordView) throws -> Void
    ) throws {
        let query = try RawQuery(db, low == high ? consentBySubjectSQL : consentByIDSQL)
        query.bind(1, low)
        query.bind(2, high)
        query.bind(3, after)
        while try query.step() {
            try query.withText(4) { purpose in
                try query.withText(5) { state in
                    try query.withText(7) { source in
                        try query.withOptionalText(8) { notice in
                            try query.withOptionalText(9) { evidence in
                                try query.withBytes(12) { binding in
                                    try body(
                                        ConsentRecordView(
                                            id: query.int64(0), subject: query.int64(1), purposeOrdinal: Int(query.int64(2)),
                                            stateCode: Int(query.int64(3)), purpose: purpose, state: state, time: query.int64(6), source: source,
                                            noticeVersion: notice, evidence: evidence, expiresAt: query.isNull(10) ? nil : query.int64(10),
                                            recordedAt: query.int64(11), binding: binding))
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Calls `body` with each flag record of the subjects `low…high` whose id is above `after`, in the order of
    /// ``forEachConsent(subjects:_:after:_:_:)``.
    static func forEachFlag(subjects low: Int64, _ high: Int64, after: Int64, _ db: Database, _ body: (FlagRecordRow) throws -> Void) throws {
        let query = try RawQuery(db, low == high ? flagBySubjectSQL : flagByIDSQL)
        query.bind(1, low)
        query.bind(2, high)
        query.bind(3, after)
        while try query.step() {
            try body(
                FlagRecordRow(
                    id: query.int64(0), subjectID: query.int64(1), flag: query.text(2) ?? "", purpose: query.text(3) ?? "", value: query.int64(4),
                    time: query.int64(5), source: query.text(6) ?? "", recordedAt: query.int64(7), binding: query.bytes(8)))
        }
    }

    /// The id the next consent record gets: chosen inside the write transaction, so that its binding can cover it.
    static func nextConsentID(_ db: Database) throws -> Int64 {
        (try Int64.fetchOne(db.cachedStatement(sql: "SELECT max(id) FROM consent_record")) ?? 0) + 1
    }

    /// The id the next flag record gets.
    static func nextFlagID(_ db: Database) throws -> Int64 {
        (try Int64.fetchOne(db.cachedStatement(sql: "SELECT max(id) FROM subject_flag")) ?? 0) + 1
    }

    static func insertConsent(_ r: ConsentRecordRow, _ db: Database) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO consent_record (id, subject_id, purpose, state, time, source, notice_version, evidence_ref, expires_at, recorded_at,
                    binding)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            r.id, r.subjectID, r.purpose, r.state, r.time, r.source, r.noticeVersion, r.evidence, r.expiresAt, r.recordedAt, Data(r.binding),
        ])
    }

    static func insertFlag(_ r: FlagRecordRow, _ db: Database) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO subject_flag (id, subject_id, flag, purpose, value, time, source, recorded_at, binding)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [r.id, r.subjectID, r.flag, r.purpose, r.value, r.time, r.source, r.recordedAt, Data(r.binding)])
    }

    /// The state of the subject's newest consent record for `purpose`, or nil.
    static func lastConsentState(subject: Int64, purpose: String, _ db: Database) throws -> String? {
        try String.fetchOne(
            db, sql: "SELECT state FROM consent_record WHERE subject_id = ? AND purpose = ? ORDER BY id DESC LIMIT 1", arguments: [subject, purpose])
    }

    /// The subject's consent records, oldest first.
    static func consentRecords(of subject: Int64, _ db: Database) throws -> [ConsentRecordRow] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT id, subject_id, purpose, state, time, source, notice_version, evidence_ref, expires_at, recorded_at, binding
                FROM consent_record WHERE subject_id = ? ORDER BY id
                """, arguments: [subject]
        ).map { row in
            ConsentRecordRow(
                id: row[0], subjectID: row[1], purpose: row[2], state: row[3], time: row[4], source: row[5], noticeVersion: row[6], evidence: row[7],
                expiresAt: row[8], recordedAt: row[9], binding: (row[10] as Data?).map { [UInt8]($0) } ?? [])
        }
    }

    /// How many consent records of `source` the subject has.
    static func consentCount(subject: Int64, source: String, _ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT count(*) FROM consent_record WHERE subject_id = ? AND source = ?", arguments: [subject, source]) ?? 0
    }

    /// The subject's sealed ledger head, or nil.
    static func ledgerHead(of subject: Int64, _ db: Database) throws -> Data? {
        try Data.fetchOne(db.cachedStatement(sql: "SELECT ledger_head FROM subject WHERE id = ?"), arguments: [subject])
    }

    static func setLedgerHead(of subject: Int64, _ head: [UInt8], _ db: Database) throws {
        try db.cachedStatement(sql: "UPDATE subject SET ledger_head = ? WHERE id = ?").execute(arguments: [Data(head), subject])
    }
}
