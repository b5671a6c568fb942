import ConsentryAudit
public import ConsentryCore
import ConsentryPolicy
import Foundation
import GRDB

/// A compliance report computed from the policy and the audit log. Definitions are in `audit/REPORTS.md`.
public struct ComplianceReport: Sendable, Codable, Equatable {
    /// `access-summary`, `denials` or `art30`.
    public var name: String
    /// When it was generated (RFC 3339).
    public var generatedAt: String
    /// The policy version in force.
    public var policyVersion: String
    /// The period covered (RFC 3339, inclusive start, exclusive end), when limited.
    public var period: [String]
    /// Column names of ``rows``.
    public var columns: [String]
    /// The rows: one array of cells per row, in ``columns`` order.
    public var rows: [[String]]
    /// Findings: differences between what the policy declares and what the log shows happened.
    public var findings: [String]
}

/// The reports `audit report` can produce.
public enum ReportName: String, Sendable, CaseIterable {
    /// Who used which data for which purpose, with permits and denials.
    case accessSummary = "access-summary"
    /// Every denial, grouped by role, action, purpose and reason.
    case denials
    /// The record of processing activities (GDPR Art. 30) from the policy, compared with the log.
    case art30
}

extension Vault {
    /// Generates a compliance report. Needs `audit_read`; audited.
    public func report(_ name: ReportName, since: Int64? = nil, until: Int64? = nil, as principal: Principal) async throws(GateError) -> ComplianceReport {
        let request = AccessRequest(actor: principal.actor, role: principal.role, action: .auditRead)
        return try await performRead(
            request, requestID: principal.requestID, failure: "compute the report",
            read: { db in
                var report = ComplianceReport(
                    name: name.rawValue, generatedAt: Normalize.formatTimestamp(millis: nowMillis), policyVersion: policyVersion,
                    period: [since, until].compactMap { $0.map { Normalize.formatTimestamp(millis: $0) } }, columns: [], rows: [], findings: [])
                let filter = AuditFilter(since: since, until: until, limit: Int.max)
                switch name {
                case .accessSummary: try accessSummary(db, filter, &report)
                case .denials: try denials(db, filter, &report)
                case .art30: try art30(db, filter, &report)
                }
                return report
            },
            record: { entry, report in
                entry.counts = ["rows": report.rows.count]
                entry.reasons.append("report: \(name.rawValue)")
            })
    }

    private static let dataActions: Set<String> = Set(Action.allCases.filter { !$0.isAdministrative }.map(\.rawValue))

    private func accessSummary(_ db: Database, _ filter: AuditFilter, _ report: inout ComplianceReport) throws {
        struct Key: Hashable { var actor, role, purpose, action: String }
        struct Tally { var permits = 0, denials = 0, subjects = 0, fields = Set<String>() }
        var tallies: [Key: Tally] = [:]
        try forEachAuditEntry(db, filter) { entry in
            guard Self.dataActions.contains(entry.action) else { return }
            let key = Key(actor: entry.actor, role: entry.role ?? "", purpose: entry.purpose ?? "", action: entry.action)
            if entry.decision == "permit" {
                tallies[key, default: Tally()].permits += 1
                tallies[key, default: Tally()].subjects += entry.counts["delivered"] ?? entry.subjectCount
                tallies[key, default: Tally()].fields.formUnion(entry.fields)
            } else {
                tallies[key, default: Tally()].denials += 1
            }
        }
        report.columns = ["actor", "role", "purpose", "action", "permits", "denials", "subjects", "fields"]
        report.rows = tallies.sorted { ($0.key.actor, $0.key.purpose, $0.key.action) < ($1.key.actor, $1.key.purpose, $1.key.action) }.map {
            key, tally in
            [
                key.actor, key.role, key.purpose, key.action, String(tally.permits), String(tally.denials), String(tally.subjects),
                tally.fields.sorted().joined(separator: " "),
            ]
        }
    }

    private func denials(_ db: Database, _ filter: AuditFilter, _ report: inout ComplianceReport) throws {
        struct Key: Hashable { var role, action, purpose, reason: String }
        var tallies: [Key: (count: Int, last: Int64, actors: Set<String>)] = [:]
        var denied = filter
        denied.decision = .deny
        try forEachAuditEntry(db, denied) { entry in
            // Entries also carry notes after the decision's reasons ("with derived data of the purpose", "trigger queue
            // entry 4 acknowledged"); only the gate's reason codes are tallied.
            let codes = entry.reasons.map { String($0.prefix { $0 != " " && $0 != ":" }) }.filter { DecisionReason.Code(rawValue: $0) != nil }
            for code in codes.isEmpty ? ["(none)"] : codes {
                let key = Key(role: entry.role ?? "system", action: entry.action, purpose: entry.purpose ?? "", reason: code)
                var tally = tallies[key] ?? (0, 0, [])
                tally.count += 1
                tally.last = max(tally.last, entry.time)
                tally.actors.insert(entry.actor)
                tallies[key] = tally
            }
        }
        report.columns = ["role", "action", "purpose", "reason", "count", "actors", "last"]
        report.rows = tallies.sorted { $0.value.count > $1.value.count }.map { key, tally in
            [
                key.role, key.action, key.purpose, key.reason, String(tally.count), tally.actors.sorted().joined(separator: " "),
                Normalize.formatTimestamp(millis: tally.last),
            ]
        }
    }

    private func art30(_ db: Database, _ filter: AuditFilter, _ report: inout ComplianceReport) throws {
        report.columns = [
            "purpose", "description", "legal_basis", "consent", "data_categories", "fields", "roles", "retention_days", "observed_uses",
            "observed_fields",
        ]
        guard let policy = loadedPolicy else {
            report.findings.append("the policy failed to load; no record of processing can be generated until it is fixed")
            return
        }
        struct Observed { var uses = 0, roles = Set<String>(), fields = Set<String>(), versions = Set<String>() }
        var observed: [String: Observed] = [:]
        try forEachAuditEntry(db, filter) { entry in
            guard Self.dataActions.contains(entry.action), entry.decision == "permit", let purpose = entry.purpose else { return }
            observed[purpose, default: Observed()].uses += 1
            observed[purpose, default: Observed()].roles.insert(entry.role ?? "")
            observed[purpose, default: Observed()].fields.formUnion(entry.fields)
            observed[purpose, default: Observed()].versions.insert(entry.policyVersion)
        }
        for purpose in Purpose.allCases {
            guard let spec = policy.purposes[purpose] else {
                if observed[purpose.rawValue] != nil {
                    report.findings.append("`\(purpose.rawValue)` was used but the current policy does not declare it")
                }
                continue
            }
            let classes = Set(spec.fields.compactMap { policy.schema[$0.rawValue]?.fieldClass.rawValue }).sorted()
            let roles = policy.roles.values.filter { !($0.grants[purpose] ?? []).isEmpty }.map(\.role.rawValue).sorted()
            let seen = observed[purpose.rawValue] ?? Observed()
            report.rows.append([
                purpose.rawValue, spec.description, spec.legalBasis.rawValue, spec.consent.rawValue, classes.joined(separator: " "),
                spec.fields.map(\.rawValue).joined(separator: " "), roles.joined(separator: " "), String(spec.retentionDays), String(seen.uses),
                seen.fields.sorted().joined(separator: " "),
            ])
            let undeclaredFields = seen.fields.subtracting(spec.fields.map(\.rawValue))
            if !undeclaredFields.isEmpty {
                report.findings.append(
                    "`\(purpose.rawValue)` used fields the policy does not declare for it: \(undeclaredFields.sorted().joined(separator: ", "))")
            }
            let ungranted = seen.roles.subtracting(roles)
            if !ungranted.isEmpty {
                report.findings.append(
                    "`\(purpose.rawValue)` was used by roles the current policy does not grant it: \(ungranted.sorted().joined(separator: ", "))")
            }
            if seen.versions.contains(where: { $0 != policyVersion }) {
                report.findings.append(
                    "`\(purpose.rawValue)` was used under earlier policy versions: \(seen.versions.subtracting([policyVersion]).sorted().joined(separator: ", "))"
                )
            }
            if seen.uses == 0 { report.findings.append("`\(purpose.rawValue)` is declared but was not used in the period") }
        }
    }
}
