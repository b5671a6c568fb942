import Foundation
import GRDB

/// The SQLite store's part of opening and checking a vault: the structural check, the subject ids a check walks, the
/// policy version last recorded, and the one-time sealing of experiment arms a vault before schema v16 kept in clear.
enum SQLiteMaintenanceRows {
    /// SQLite's `quick_check` verdict (`ok` for a sound file) and the number of rows that reference nothing.
    static func structure(_ db: Database) throws -> (verdict: String, foreignKeyViolations: Int) {
        (try String.fetchAll(db, sql: "PRAGMA quick_check").joined(separator: "; "), try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").count)
    }

    /// Every subject's id, ascending.
    static func subjectIDs(_ db: Database) throws -> [Int64] {
        try Int64.fetchAll(db, sql: "SELECT id FROM subject ORDER BY id")
    }

    /// The policy version of the newest `policy_loaded` audit entry, or nil.
    static func lastRecordedPolicyVersion(_ db: Database) throws -> String? {
        try String.fetchOne(db, sql: "SELECT policy_version FROM audit_entry WHERE action = 'policy_loaded' ORDER BY sequence DESC LIMIT 1")
    }

    /// One experiment arm kept in clear before schema v16, with what sealing it needs.
    struct ClearArm {
        let experiment: String
        let subjectID: Int64
        let arm: String
        let assignedAt: Int64
        let keys: SubjectKeys
        /// The experiment's purpose, from the catalog.
        let purpose: String?
    }

    /// Whether the vault still has the table of clear arms.
    static func hasClearArms(_ db: Database) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'experiment_assignment')") == true
    }

    static func clearArms(_ db: Database) throws -> [ClearArm] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT a.experiment, a.subject_id, a.arm, a.assigned_at, s.kek_version, s.wrapped_key, s.key_version, s.audit_secret,
                    (SELECT c.purpose FROM catalog c WHERE c.kind = 'experiment' AND c.name = a.experiment ORDER BY c.version DESC LIMIT 1)
                FROM experiment_assignment a JOIN subject s ON s.id = a.subject_id
                """
        ).map { row in
            ClearArm(
                experiment: row[0], subjectID: row[1], arm: row[2], assignedAt: row[3],
                keys: SQLiteSubjectRows.keys(row, from: 4),
                purpose: row[8])
        }
    }

    /// Stores a sealed arm as derived data of its experiment's purpose, unless the subject has one.
    static func storeSealedArm(_ arm: ClearArm, kind: String, sealed: [UInt8], _ db: Database) throws {
        try db.execute(
            sql: "INSERT OR IGNORE INTO derived (subject_id, kind, name, sealed, updated_at, purpose) VALUES (?, ?, ?, ?, ?, ?)",
            arguments: [arm.subjectID, kind, arm.experiment, Data(sealed), arm.assignedAt, arm.purpose])
    }

    /// Drops the table of clear arms once every arm is sealed.
    static func dropClearArms(_ db: Database) throws {
        try db.execute(sql: "DROP TABLE experiment_assignment")
    }
}
