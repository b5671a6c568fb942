import ConsentryAudit
public import ConsentryCore
import ConsentryPolicy
import Foundation
import GRDB

/// A segment definition, as stored.
public struct StoredSegment: Sendable, Codable, Equatable {
    /// Its name.
    public var name: String
    /// The purpose it serves.
    public var purpose: Purpose
    /// The rule, in canonical text form.
    public var rule: String
    /// The profile fields the rule reads.
    public var fields: [String]
    /// Whether the rule looks at events (incremental updates re-evaluate it when events arrive).
    public var readsEvents: Bool
    /// The role that defined it; runs and incremental updates act in this role.
    public var role: Role
    /// Increases with each definition under the same name.
    public var version: Int
    /// When it was last defined (ms).
    public var definedAt: Int64
}

extension Vault {
    /// Stores a segment definition. The role must be granted `segment` for the purpose and the rule's fields must be
    /// allowed for it (the gate decides and audits, so a rule cannot become an oracle on a field the purpose may not see).
    @discardableResult
    public func defineSegment(
        name: String, purpose: Purpose, rule: String, fields: [String], readsEvents: Bool, as principal: Principal
    ) async throws(GateError) -> StoredSegment {
        let (actor, role) = (principal.actor, principal.role)
        guard FieldName.isValid(name) else {
            throw GateError(.invalidInput, "segment names are lower-case identifiers such as `running_fans` (letters, digits, `_`)")
        }
        let request = AccessRequest(actor: actor, role: role, action: .segment, purpose: purpose, fields: fields.compactMap(FieldName.init))
        return try await perform(request, requestID: principal.requestID, failure: "define the segment (nothing was stored)") { scope in
            let db = scope.db
            let version = (try Int.fetchOne(db, sql: "SELECT version FROM segment WHERE name = ?", arguments: [name]) ?? 0) + 1
            let now = nowMillis
            try db.execute(
                sql: """
                    INSERT INTO segment (name, purpose, rule, fields, reads_events, role, version, defined_by, defined_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (name) DO UPDATE SET purpose = excluded.purpose, rule = excluded.rule, fields = excluded.fields,
                        reads_events = excluded.reads_events, role = excluded.role, version = excluded.version,
                        defined_by = excluded.defined_by, defined_at = excluded.defined_at
                    """,
                arguments: [
                    name, purpose.rawValue, rule, String(decoding: try JSONEncoder().encode(fields.sorted()), as: UTF8.self), readsEvents,
                    role.rawValue, version, actor, now,
                ])
            scope.entry.reasons.append("segment `\(name)` version \(version) defined")
            return StoredSegment(
                name: name, purpose: purpose, rule: rule, fields: fields.sorted(), readsEvents: readsEvents, role: role, version: version,
                definedAt: now)
        }
    }

    /// Every segment definition, by name.
    public func segments() throws(GateError) -> [StoredSegment] {
        do {
            return try db.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM segment ORDER BY name").map { row in
                    guard let purpose = Purpose(rawValue: row["purpose"]), let role = Role(rawValue: row["role"]) else {
                        throw GateError(.integrity, "segment `\(row["name"] as String? ?? "?")` names an unknown purpose or role")
                    }
                    return StoredSegment(
                        name: row["name"], purpose: purpose, rule: row["rule"],
                        fields: (try? JSONDecoder().decode([String].self, from: Data((row["fields"] as String).utf8))) ?? [],
                        readsEvents: row["reads_events"], role: role, version: row["version"], definedAt: row["defined_at"])
                }
            }
        } catch {
            throw Self.storageError(error, "read the segments")
        }
    }
}
