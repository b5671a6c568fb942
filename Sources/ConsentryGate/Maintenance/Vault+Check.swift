import ConsentryAudit
public import ConsentryCore
import ConsentryCrypto
import ConsentryPolicy
import Foundation
import GRDB

/// The result of `consentry check`: whether every subject decrypts and the database is consistent.
///
/// It names subjects and fields that fail, never values. Its `--json` keys are stable.
public struct CheckReport: Sendable, Codable, Equatable {
    /// Subjects whose data key and fields were opened.
    public var subjectsChecked = 0
    /// Field values opened and authenticated.
    public var valuesOpened = 0
    /// SQLite's `quick_check` verdict (`ok` when the file is sound).
    public var databaseCheck = "not run"
    /// Foreign-key violations (rows that reference nothing); always 0 in a sound vault.
    public var foreignKeyViolations = 0
    /// Problems found, each naming a subject and field.
    public var problems: [String] = []

    /// Whether nothing was wrong.
    public var passed: Bool { problems.isEmpty && databaseCheck == "ok" && foreignKeyViolations == 0 }
}

extension Vault {
    /// Opens every field (or the given fields) of every subject and checks the database's structure.
    ///
    /// Use it after a crash or a restore: a sound vault passes. No plaintext leaves this function.
    /// - Parameters:
    ///   - fields: the fields to open; nil opens every declared field.
    ///   - structural: also run SQLite's `quick_check` and `foreign_key_check`.
    ///   - principal: who checks; the role needs `key_admin` (the check opens every sealed value with the vault's
    ///     keys). The check is recorded in the audit log as `integrity_check`, permitted or denied.
    /// - Throws: ``GateError/denied`` when the role may not (audited), `storage` when the database cannot be read.
    public func check(fields: [FieldName]? = nil, structural: Bool = true, as principal: Principal) async throws(GateError) -> CheckReport {
        let request = AccessRequest(actor: principal.actor, role: principal.role, action: .keyAdmin)
        let names = fields ?? schema.fields.map(\.name)
        // One read transaction: every value and the structure are checked in the same snapshot.
        return try await performRead(
            request, requestID: principal.requestID, recordedAs: .integrityCheck, failure: "check the vault",
            unrecorded: { report, error in report.problems.append("the check could not be recorded in the audit log: \(error.message)") },
            read: { db in try checkOpening(names, structural: structural, db) },
            record: { entry, report in
                entry.counts = ["subjects": report.subjectsChecked, "values": report.valuesOpened, "problems": report.problems.count]
                entry.fields = names.map(\.rawValue)
                entry.reasons.append(report.passed ? "passed" : "failed")
            })
    }

    /// The check's work in one read transaction: opens `names` of every subject (one pass; on the first failure,
    /// subject by subject so that one bad subject does not hide the others), then the structure and the bindings.
    private func checkOpening(_ names: [FieldName], structural: Bool, _ db: Database) throws -> CheckReport {
        var report = CheckReport()
        let ids = try SQLiteMaintenanceRows.subjectIDs(db)
        let count = { (_: SubjectID, values: [String?]) in
            report.subjectsChecked += 1
            report.valuesOpened += values.reduce(0) { $0 + ($1 == nil ? 0 : 1) }
        }
        if !ids.isEmpty {
            do {
                try openSubjects(db, fields: names, .all, count)
            } catch let error as GateError where error.code == .integrity || error.code == .key {
                report.subjectsChecked = 0
                report.valuesOpened = 0
                for id in ids {
                    do {
                        try openSubjects(db, fields: names, .one(id), count)
                    } catch let error as GateError where error.code == .integrity || error.code == .key {
                        report.problems.append(named(error, db).message)
                    }
                }
            }
        }
        guard structural else { return report }
        do {
            (report.databaseCheck, report.foreignKeyViolations) = try SQLiteMaintenanceRows.structure(db)
            // Index rows moved to another subject and ledger records edited or forged in the file.
            for (table, count) in try unboundRecords(db).sorted(by: { $0.key < $1.key }) {
                report.problems.append(
                    "\(count) row\(count == 1 ? "" : "s") of `\(table)` fail their binding (moved to another subject, edited or forged in the database file); restore the vault from a backup"
                )
            }
            let heads = try ledgerHeadMismatches(db)
            if heads > 0 {
                report.problems.append(
                    "the consent ledger of \(heads) subject\(heads == 1 ? "" : "s") does not match its head (a consent or flag record deleted, or the head edited, in the database file); restore the vault from a backup"
                )
            }
        } catch {
            report.databaseCheck = "failed: \(Self.storageError(error, "check the database").message)"
        }
        return report
    }
}

extension Vault {
    /// `error` with its subject named by the audit pseudonym (for reports that list subjects, such as `check`).
    func named(_ error: GateError, _ db: Database) -> GateError {
        guard let subject = error.subject else { return error }
        return error.naming(subjectLabel(subject, db))
    }
}
