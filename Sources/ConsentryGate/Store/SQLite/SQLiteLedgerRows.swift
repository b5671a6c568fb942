import Foundation
import GRDB

/// The consent and flag ledgers' writes and per-subject reads in the SQLite store (`consent_record`, `subject_flag`,
/// and the ledger head kept in the subject row). The ledgers' bulk reads, which bind columns straight from SQLite's
/// buffers, are still beside the gate's decision code (`ConsentLedger.swift`).
enum SQLiteLedgerRows {
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
