import Foundation
import GRDB

/// The trigger queue (`trigger_queue`) and experiment outcomes (`experiment_outcome`) in the SQLite store.
enum SQLiteQueueRows {
    private static let queueColumns = "q.id, q.trigger, q.subject_id, q.occurrence, q.payload, q.occurred_at, q.fired_at, q.acknowledged_at"

    static func occurrenceQueued(_ occurrence: Data, _ db: Database) throws -> Bool {
        try Bool.fetchOne(
            db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM trigger_queue WHERE occurrence = ?)"), arguments: [occurrence]) == true
    }

    static func enqueue(_ row: QueuedTriggerRow, _ db: Database) throws {
        try db.cachedStatement(
            sql: "INSERT INTO trigger_queue (trigger, subject_id, occurrence, payload, occurred_at, fired_at) VALUES (?, ?, ?, ?, ?, ?)"
        ).execute(arguments: [row.trigger, row.subjectID, row.occurrence, row.payload, row.occurredAt, row.firedAt])
    }

    /// The oldest `limit` unacknowledged entries of `trigger`, with their subjects' keys.
    static func pending(_ trigger: String, limit: Int, _ db: Database) throws -> [(QueuedTriggerRow, SubjectKeys)] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT \(queueColumns), s.kek_version, s.wrapped_key, s.key_version, s.audit_secret
                FROM trigger_queue q JOIN subject s ON s.id = q.subject_id
                WHERE q.trigger = ? AND q.acknowledged_at IS NULL ORDER BY q.id LIMIT ?
                """, arguments: [trigger, limit]
        ).map { row in (queued(row), SQLiteSubjectRows.keys(row, from: 8)) }
    }

    /// The entries of one subject, oldest first.
    static func entries(ofSubject subject: Int64, _ db: Database) throws -> [QueuedTriggerRow] {
        try Row.fetchAll(db, sql: "SELECT \(queueColumns) FROM trigger_queue q WHERE q.subject_id = ? ORDER BY q.id", arguments: [subject])
            .map(queued)
    }

    static func entry(_ id: Int64, _ db: Database) throws -> QueuedTriggerRow? {
        try Row.fetchOne(db, sql: "SELECT \(queueColumns) FROM trigger_queue q WHERE q.id = ?", arguments: [id]).map(queued)
    }

    /// Marks entry `id` handled; false when it was handled already or is gone.
    static func acknowledge(_ id: Int64, at time: Int64, _ db: Database) throws -> Bool {
        try db.execute(sql: "UPDATE trigger_queue SET acknowledged_at = ? WHERE id = ? AND acknowledged_at IS NULL", arguments: [time, id])
        return db.changesCount == 1
    }

    /// Records an outcome; false when one with its key is recorded already.
    static func recordOutcome(_ outcome: OutcomeRow, _ db: Database) throws -> Bool {
        try db.cachedStatement(
            sql: "INSERT OR IGNORE INTO experiment_outcome (key, experiment, subject_id, kind, value, time) VALUES (?, ?, ?, ?, ?, ?)"
        ).execute(arguments: [outcome.key, outcome.experiment, outcome.subjectID, outcome.kind, outcome.value, outcome.time])
        return db.changesCount == 1
    }

    /// Every outcome of `experiment`.
    static func outcomes(of experiment: String, _ db: Database) throws -> [OutcomeRow] {
        try Row.fetchAll(
            db, sql: "SELECT key, experiment, subject_id, kind, value, time FROM experiment_outcome WHERE experiment = ? ORDER BY id",
            arguments: [experiment]
        ).map { OutcomeRow(key: $0[0], experiment: $0[1], subjectID: $0[2], kind: $0[3], value: $0[4], time: $0[5]) }
    }

    private static func queued(_ row: Row) -> QueuedTriggerRow {
        QueuedTriggerRow(
            id: row[0], trigger: row[1], subjectID: row[2], occurrence: row[3], payload: row[4], occurredAt: row[5], firedAt: row[6],
            acknowledgedAt: row[7])
    }
}
