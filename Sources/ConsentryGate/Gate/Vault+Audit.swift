public import ConsentryAudit
public import ConsentryCore
import ConsentryCrypto
import ConsentryPolicy
public import Foundation
import GRDB

/// Which audit entries a query selects; every condition is optional and they combine with AND.
public struct AuditFilter: Sendable, Hashable {
    /// Entries about this subject (found through its pseudonym; bulk entries whose subject set holds it too).
    public var subject: SubjectReference?
    /// The actor.
    public var actor: String?
    /// The role.
    public var role: Role?
    /// The purpose.
    public var purpose: Purpose?
    /// The action (an audit action name).
    public var action: String?
    /// `permit` or `deny`.
    public var decision: Effect?
    /// From this time on (milliseconds since 1970).
    public var since: Int64?
    /// Until this time (exclusive).
    public var until: Int64?
    /// At most this many entries (newest last). The default is 1,000.
    public var limit: Int

    /// A filter; every condition defaults to "any".
    public init(
        subject: SubjectReference? = nil, actor: String? = nil, role: Role? = nil, purpose: Purpose? = nil, action: String? = nil,
        decision: Effect? = nil,
        since: Int64? = nil, until: Int64? = nil, limit: Int = 1_000
    ) {
        self.subject = subject
        self.actor = actor
        self.role = role
        self.purpose = purpose
        self.action = action
        self.decision = decision
        self.since = since
        self.until = until
        self.limit = limit
    }
}

/// The formats of `audit export`.
public enum AuditExportFormat: String, Sendable, CaseIterable {
    /// One JSON object per line, in the canonical form with `previous_hash` and `hash` (verifiable offline).
    case jsonl
    /// Comma-separated, with a header row; every cell is safe against spreadsheet formula injection.
    case csv
}

extension Vault {
    /// Verifies the audit log: chain, signatures and checkpoints. Needs `audit_read`; the verification
    /// itself is audited after it ran, so it never changes what it checked.
    /// - Parameter expected: (sequence, hash) pairs recorded outside the vault, such as the newest checkpoint that
    ///   `consentry status` printed earlier; the log must still hold each. The configured witness files are checked too.
    public func verifyAudit(as principal: Principal, expected: [(sequence: Int64, hash: String)] = []) async throws(GateError)
        -> AuditVerification
    {
        let request = AccessRequest(actor: principal.actor, role: principal.role, action: .auditRead)
        // A log that failed verification still gets the record that someone looked; the chain continues from its end.
        return try await performRead(
            request, requestID: principal.requestID, failure: "read the audit log", unrecorded: { _, _ in },
            read: { db in
                AuditVerifier.verify(
                    entries: try SQLiteAuditRows.all(db), checkpoints: checkpointFile.read(), witnesses: witnessFiles.map { ($0.url.path, $0.read()) },
                    expected: expected, publicKey: keys.signer.publicKey)
            },
            record: { entry, report in
                entry.reasons.append(report.passed ? "verify: passed" : "verify: failed at \(report.firstBadSequence ?? 0)")
                entry.counts = ["entries": report.entriesChecked, "checkpoints": report.checkpointsChecked]
            })
    }

    /// Queries the audit log. Needs `audit_read`; audited.
    public func queryAudit(_ filter: AuditFilter, as principal: Principal) async throws(GateError) -> [AuditEntry] {
        let request = AccessRequest(actor: principal.actor, role: principal.role, action: .auditRead)
        return try await performRead(
            request, requestID: principal.requestID, failure: "query the audit log",
            read: { db in
                var entries: [AuditEntry] = []
                try forEachAuditEntry(db, filter) { entries.append($0) }
                return entries
            },
            record: { entry, entries in
                entry.counts = ["returned": entries.count]
                entry.reasons.append("query")
            })
    }

    /// Streams the audit log (or the entries `filter` selects) to `output` in `format`, with memory that
    /// does not grow with the log. Needs `audit_read`; audited.
    public func exportAudit(
        _ format: AuditExportFormat, filter: AuditFilter = AuditFilter(limit: Int.max), to output: FileHandle, as principal: Principal
    ) async throws(GateError) -> Int {
        let request = AccessRequest(actor: principal.actor, role: principal.role, action: .auditRead)
        return try await performRead(
            request, requestID: principal.requestID, failure: "export the audit log",
            read: { db -> Int in
                var count = 0
                var buffer = ""
                if format == .csv {
                    buffer =
                        "sequence,time,actor,role,action,purpose,subject,subject_count,fields,counts,decision,reasons,policy_version,request_id,hash\n"
                }
                try forEachAuditEntry(db, filter) { entry in
                    count += 1
                    switch format {
                    case .jsonl: buffer += entry.exportLine + "\n"
                    case .csv:
                        let cells = [
                            String(entry.sequence), Normalize.formatTimestamp(millis: entry.time), entry.actor, entry.role ?? "", entry.action,
                            entry.purpose ?? "",
                            entry.subject ?? "", String(entry.subjectCount), entry.fields.joined(separator: " "),
                            entry.counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "), entry.decision,
                            entry.reasons.joined(separator: "; "), entry.policyVersion, entry.requestID ?? "", entry.hash,
                        ]
                        buffer += cells.map(CSVText.spreadsheetSafe).joined(separator: ",") + "\n"
                    }
                    if buffer.utf8.count > 1 << 16 {
                        output.write(Data(buffer.utf8))
                        buffer = ""
                    }
                }
                output.write(Data(buffer.utf8))
                return count
            },
            record: { entry, count in
                entry.counts = ["exported": count]
                entry.reasons.append("export: \(format.rawValue)")
            })
    }

    /// Calls `body` with each entry `filter` selects, in sequence order.
    func forEachAuditEntry(_ db: Database, _ filter: AuditFilter, _ body: (AuditEntry) throws -> Void) throws {
        var query = AuditQuery(
            actor: filter.actor, role: filter.role?.rawValue, purpose: filter.purpose?.rawValue, action: filter.action,
            decision: filter.decision?.rawValue, since: filter.since, until: filter.until, limit: filter.limit == Int.max ? nil : filter.limit)
        if let reference = filter.subject {
            guard let subject = try resolve(reference, db: db) else { return }
            let secret = try auditSecret(of: subject, db: db)
            query.pseudonym = (pseudonym(secret: secret), Array(pseudonymBytes(secret: secret)))
        }
        try SQLiteAuditRows.forEach(query, db, body)
    }
}
