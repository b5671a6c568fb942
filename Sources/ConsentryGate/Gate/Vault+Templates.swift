import ConsentryAudit
public import ConsentryCore
import ConsentryPolicy
import Foundation

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
            let now = nowMillis
            let version = try await scope.tx.addCatalogVersion(
                .template, name: name, purpose: purpose, role: nil, body: TemplateBody(format: format, source: source, fields: fields.sorted()),
                definedBy: actor, at: now)
            let stored = StoredTemplate(
                name: name, purpose: purpose, format: format, source: source, fields: fields.sorted(), version: version, registeredAt: now)
            scope.entry.reasons.append("template `\(name)` version \(version) registered")
            return stored
        }
        templateCache.remove(name)
        return stored
    }

    /// A registered template, or nil.
    public func template(named name: String) async throws(GateError) -> StoredTemplate? {
        guard FieldName.isValid(name) else { return nil }
        if let cached = templateCache.fresh(name) { return cached }
        let entry: CatalogEntry?
        do { entry = try await store.catalogEntry(.template, named: name) } catch { throw Self.storageError(error, "read the template") }
        guard let entry else {
            templateCache.remove(name)
            return nil
        }
        let stored = try StoredTemplate(entry)
        templateCache.keep(name, stored)
        return stored
    }

    /// Every registered template, by name.
    public func templates() async throws(GateError) -> [StoredTemplate] {
        let entries: [CatalogEntry]
        do { entries = try await store.catalog(.template, allVersions: false) } catch { throw Self.storageError(error, "list the templates") }
        return try entries.map { entry throws(GateError) in try StoredTemplate(entry) }
    }
}

/// A template's fields in the catalog, beside its name, version and purpose.
struct TemplateBody: Codable {
    var format: String
    var source: String
    var fields: [String]
}

extension StoredTemplate {
    init(_ entry: CatalogEntry) throws(GateError) {
        let body = try entry.decodeBody(TemplateBody.self)
        self.init(
            name: entry.name, purpose: entry.purpose, format: body.format, source: body.source, fields: body.fields, version: entry.version,
            registeredAt: entry.definedAt)
    }
}
