import ConsentryAudit
public import ConsentryCore
import ConsentryPolicy
import Foundation

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
            let now = nowMillis
            let version = try await scope.tx.addCatalogVersion(
                .segment, name: name, purpose: purpose, role: role, body: SegmentBody(rule: rule, fields: fields.sorted(), readsEvents: readsEvents),
                definedBy: actor, at: now)
            let stored = StoredSegment(
                name: name, purpose: purpose, rule: rule, fields: fields.sorted(), readsEvents: readsEvents, role: role, version: version, definedAt: now)
            scope.entry.reasons.append("segment `\(name)` version \(version) defined")
            return stored
        }
    }

    /// Every segment definition, by name.
    public func segments() async throws(GateError) -> [StoredSegment] {
        let entries: [CatalogEntry]
        do { entries = try await store.catalog(.segment, allVersions: false) } catch { throw Self.storageError(error, "read the segments") }
        return try entries.map { entry throws(GateError) in
            let body = try entry.decodeBody(SegmentBody.self)
            return StoredSegment(
                name: entry.name, purpose: entry.purpose, rule: body.rule, fields: body.fields, readsEvents: body.readsEvents,
                role: try entry.actingRole(), version: entry.version, definedAt: entry.definedAt)
        }
    }
}

/// A segment's fields in the catalog, beside its name, version, purpose and role.
struct SegmentBody: Codable {
    var rule: String
    var fields: [String]
    var readsEvents: Bool
}
