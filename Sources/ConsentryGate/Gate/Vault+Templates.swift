import ConsentryAudit
public import ConsentryCore
import ConsentryPolicy
import Foundation
import GRDB

/// A registered template, as stored.
public struct StoredTemplate: Sendable, Codable, Equatable {
    /// Its name.
    public var name: String
    /// The purpose it is bound to.
    public var purpose: Purpose
    /// `html` or `text`.
    public var format: String
    /// The source.
    public var source: String
    /// The profile fields it reads.
    public var fields: [String]
    /// Increases with each registration under the same name.
    public var version: Int
    /// When it was last registered (ms).
    public var registeredAt: Int64
}

extension Vault {
    /// The names of the profile fields `fields.yaml` declares.
    public var profileFieldNames: [String] { schema.fields.map(\.name.rawValue) }

    /// The fields `purpose` may use, or nil when the policy does not load or does not declare the purpose.
    public func allowedFields(for purpose: Purpose) -> [String]? {
        guard let spec = loadedPolicy?.purposes[purpose] else { return nil }
        return spec.fields.map(\.rawValue)
    }

    /// Stores a template under `name` for `purpose`. Refuses (and audits the refusal) when the role may not register
    /// templates or when the template reads a field the purpose does not allow, so a template cannot become an
    /// oracle on a field its purpose may not see.
    /// - Parameter fields: the profile fields the template reads, extracted from its source by the caller.
    @discardableResult
    public func registerTemplate(
        name: String, purpose: Purpose, format: String, source: String, fields: [String], as principal: Principal
    ) async throws(GateError) -> StoredTemplate {
        let (actor, role) = (principal.actor, principal.role)
        guard FieldName.isValid(name) else {
            throw GateError(.invalidInput, "template names are lower-case identifiers such as `welcome_mail` (letters, digits, `_`)")
        }
        guard format == "html" || format == "text" else { throw GateError(.invalidInput, "a template's format is `html` or `text`") }
        guard source.utf8.count <= 256 * 1024 else { throw GateError(.invalidInput, "the template is larger than 256 KiB") }
        // Decided in steps: the role's grant first, then the purpose, then each field the template reads.
        let request = AccessRequest(actor: actor, role: role, action: .templateAdmin, purpose: purpose, fields: fields.compactMap(FieldName.init))
        var decision = decide(AccessRequest(actor: actor, role: role, action: .templateAdmin))
        if decision.isPermit {
            if let allowed = allowedFields(for: purpose) {
                let forbidden = fields.filter { !allowed.contains($0) }
                if !forbidden.isEmpty {
                    decision = Decision(.deny, forbidden.map { DecisionReason(.fieldNotAllowed, "`\($0)` is not allowed for `\(purpose.rawValue)`") })
                }
            } else {
                decision = .deny(.purposeUndeclared, "`\(purpose.rawValue)`")
            }
        }
        let stored = try await perform(request, requestID: principal.requestID, decision: decision, failure: "register the template (nothing was stored)") {
            scope -> StoredTemplate in
            let db = scope.db
            let version = (try Int.fetchOne(db, sql: "SELECT version FROM template WHERE name = ?", arguments: [name]) ?? 0) + 1
            let now = nowMillis
            let fieldList = String(decoding: try JSONEncoder().encode(fields.sorted()), as: UTF8.self)
            try db.execute(
                sql: """
                    INSERT INTO template (name, purpose, format, source, fields, version, registered_by, registered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (name) DO UPDATE SET purpose = excluded.purpose, format = excluded.format, source = excluded.source,
                        fields = excluded.fields, version = excluded.version, registered_by = excluded.registered_by,
                        registered_at = excluded.registered_at
                    """, arguments: [name, purpose.rawValue, format, source, fieldList, version, actor, now])
            scope.entry.reasons.append("template `\(name)` version \(version) registered")
            return StoredTemplate(
                name: name, purpose: purpose, format: format, source: source, fields: fields.sorted(), version: version, registeredAt: now)
        }
        templateCache.remove(name)
        return stored
    }

    /// A registered template, or nil.
    public func template(named name: String) throws(GateError) -> StoredTemplate? {
        guard FieldName.isValid(name) else { return nil }
        return try templateCache.value(name) { () throws(GateError) -> StoredTemplate? in
            do {
                return try db.read { db in
                    try Row.fetchOne(db, sql: "SELECT * FROM template WHERE name = ?", arguments: [name]).map(Self.storedTemplate)
                }
            } catch {
                throw Self.storageError(error, "read the template")
            }
        }
    }

    /// Every registered template, by name.
    public func templates() throws(GateError) -> [StoredTemplate] {
        do {
            return try db.read { db in try Row.fetchAll(db, sql: "SELECT * FROM template ORDER BY name").map(Self.storedTemplate) }
        } catch {
            throw Self.storageError(error, "list the templates")
        }
    }

    static func storedTemplate(_ row: Row) throws -> StoredTemplate {
        guard let purpose = Purpose(rawValue: row["purpose"]) else { throw GateError(.integrity, "a stored template names an unknown purpose") }
        let fields = (try? JSONDecoder().decode([String].self, from: Data((row["fields"] as String).utf8))) ?? []
        return StoredTemplate(
            name: row["name"], purpose: purpose, format: row["format"], source: row["source"], fields: fields, version: row["version"],
            registeredAt: row["registered_at"])
    }
}
