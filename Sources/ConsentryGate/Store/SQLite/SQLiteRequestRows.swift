import Foundation
import GRDB

/// Data-subject requests in the SQLite store: `dsr_request`.
enum SQLiteRequestRows {
    private static let columns = """
        id, type, regime, status, subject_id, identifiers, received_at, confirm_due_at, due_at, extended_due_at, extension_reason,
        rejection_reason, code_hash, code_expires_at, code_attempts, verified_at, completed_at, outcome, receipt, export_file,
        idempotency_key, updated_at
        """

    static func request(_ id: String, _ db: Database) throws -> RequestRow? {
        try Row.fetchOne(db, sql: "SELECT \(columns) FROM dsr_request WHERE id = ?", arguments: [id]).map(row)
    }

    static func requestID(idempotencyKey key: String, _ db: Database) throws -> String? {
        try String.fetchOne(db, sql: "SELECT id FROM dsr_request WHERE idempotency_key = ?", arguments: [key])
    }

    /// Requests oldest first, or those in `status` only.
    static func all(status: String?, _ db: Database) throws -> [RequestRow] {
        try Row.fetchAll(
            db, sql: "SELECT \(columns) FROM dsr_request \(status == nil ? "" : "WHERE status = ?") ORDER BY received_at, id",
            arguments: status.map { [$0] } ?? []
        ).map(row)
    }

    static func insert(_ request: RequestRow, _ db: Database) throws {
        try db.execute(
            sql: "INSERT INTO dsr_request (\(columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            arguments: arguments(request))
    }

    /// Writes every column of the stored request `request.id`.
    static func update(_ request: RequestRow, _ db: Database) throws {
        var values = arguments(request)
        values += [request.id]
        try db.execute(
            sql: """
                UPDATE dsr_request SET id = ?, type = ?, regime = ?, status = ?, subject_id = ?, identifiers = ?, received_at = ?,
                    confirm_due_at = ?, due_at = ?, extended_due_at = ?, extension_reason = ?, rejection_reason = ?, code_hash = ?,
                    code_expires_at = ?, code_attempts = ?, verified_at = ?, completed_at = ?, outcome = ?, receipt = ?, export_file = ?,
                    idempotency_key = ?, updated_at = ?
                WHERE id = ?
                """, arguments: values)
    }

    /// Deletes the sealed identifiers of requests closed before `identifierCutoff`, then the requests closed before
    /// `recordCutoff`; returns how many lost their identifiers and the ids deleted.
    static func expire(identifiersClosedBefore identifierCutoff: Int64, recordsClosedBefore recordCutoff: Int64, now: Int64, _ db: Database)
        throws -> (shredded: Int, deleted: [String])
    {
        try db.execute(
            sql: """
                UPDATE dsr_request SET identifiers = NULL, details = NULL, updated_at = ?
                WHERE status IN ('completed', 'rejected') AND completed_at < ? AND identifiers IS NOT NULL
                """, arguments: [now, identifierCutoff])
        let shredded = db.changesCount
        let deleted = try String.fetchAll(
            db, sql: "SELECT id FROM dsr_request WHERE status IN ('completed', 'rejected') AND completed_at < ?", arguments: [recordCutoff])
        try db.execute(sql: "DELETE FROM dsr_request WHERE status IN ('completed', 'rejected') AND completed_at < ?", arguments: [recordCutoff])
        return (shredded, deleted)
    }

    /// Unlinks the requests that name `subject` (it is being erased); returns their ids.
    static func detach(subject: Int64, _ db: Database) throws -> [String] {
        let ids = try String.fetchAll(db, sql: "SELECT id FROM dsr_request WHERE subject_id = ?", arguments: [subject])
        try db.execute(sql: "UPDATE dsr_request SET subject_id = NULL WHERE subject_id = ?", arguments: [subject])
        return ids
    }

    private static func arguments(_ r: RequestRow) -> StatementArguments {
        [
            r.id, r.type, r.regime, r.status, r.subjectID, r.identifiers, r.receivedAt, r.confirmDueAt, r.dueAt, r.extendedDueAt, r.extensionReason,
            r.rejectionReason, r.codeHash, r.codeExpiresAt, r.codeAttempts, r.verifiedAt, r.completedAt, r.outcome, r.receipt, r.exportFile,
            r.idempotencyKey, r.updatedAt,
        ]
    }

    private static func row(_ row: Row) -> RequestRow {
        RequestRow(
            id: row["id"], type: row["type"], regime: row["regime"], status: row["status"], subjectID: row["subject_id"],
            identifiers: row["identifiers"], receivedAt: row["received_at"], confirmDueAt: row["confirm_due_at"], dueAt: row["due_at"],
            extendedDueAt: row["extended_due_at"], extensionReason: row["extension_reason"], rejectionReason: row["rejection_reason"],
            codeHash: row["code_hash"], codeExpiresAt: row["code_expires_at"], codeAttempts: row["code_attempts"], verifiedAt: row["verified_at"],
            completedAt: row["completed_at"], outcome: row["outcome"], receipt: row["receipt"], exportFile: row["export_file"],
            idempotencyKey: row["idempotency_key"], updatedAt: row["updated_at"])
    }
}
