public import ConsentryCore
public import ConsentryGate
import ConsentryPolicy
public import Foundation
import Synchronization

/// The result of a gated render.
public struct RenderResult: Sendable {
    /// The gate's decision (a deny releases nothing and renders nothing).
    public let decision: Decision
    /// The rendered message, on permit.
    public let output: String?
    /// The template and its version.
    public let template: String
    /// The registration version rendered.
    public let version: Int
    /// Fields the gate released with a value.
    public let released: [String]
    /// Fields the template reads that the subject has no value for: the template's defaults were used.
    public let missing: [String]
    /// The audit entry of the read.
    public let auditSequence: Int64
}

/// Templates on a vault: strict compilation against the vault's fields, purpose-bound registration, gated rendering.
public struct TemplateDesk: Sendable {
    /// The vault.
    public let vault: Vault
    /// Who acts.
    public let principal: Principal
    /// Who acts, as recorded in the audit log.
    public var actor: String { principal.actor }
    /// The role acted in: `template_admin` to register; `render` for the template's purpose to render.
    public var role: Role { principal.role }

    /// Creates a desk.
    public init(vault: Vault, as principal: Principal) {
        self.vault = vault
        self.principal = principal
    }

    /// Compiles `source` strictly against the vault's profile fields.
    public func compile(_ source: String, format: LiquidTemplate.Format) throws(TemplateError) -> LiquidTemplate {
        try LiquidTemplate(
            source: source, format: format, profileFields: Set(vault.profileFieldNames),
            identifierFields: Set(vault.schema.fields.filter { $0.identityKind != nil }.map(\.name.rawValue)))
    }

    /// Compiles and registers a template for `purpose`; refused when it reads a field the purpose does not allow.
    /// - Throws: ``GateError`` `invalidInput` with the template error's line and column, or `denied` from the gate.
    public func register(name: String, purpose: Purpose, format: LiquidTemplate.Format, source: String) async throws(GateError) -> StoredTemplate {
        let template: LiquidTemplate
        do { template = try compile(source, format: format) } catch {
            throw GateError(.invalidInput, "the template does not compile: \(error)")
        }
        return try await vault.registerTemplate(
            name: name, purpose: purpose, format: format.rawValue, source: source, fields: template.fields, as: principal)
    }

    /// Renders a registered template for one subject: the gate decides on the template's purpose and fields, audits, and
    /// releases only those fields; values the subject lacks fall back to the template's defaults.
    /// - Parameters:
    ///   - campaign: the `campaign` namespace (name, subject line, links) supplied by the caller.
    ///   - recommendations: the `recommendations` namespace (items with `id`, `category`, `score`).
    ///   - segments: the `segments` namespace (names of segments the subject is in).
    public func render(
        _ name: String, subject: SubjectReference, campaign: [String: LiquidValue] = [:], recommendations: [LiquidValue] = [],
        segments: [String] = [], requestID: String? = nil, now: Date = Date()
    ) async throws(GateError) -> RenderResult {
        let (stored, template, request) = try await prepare(name)
        let read = try await vault.read(request, subject: subject, includeDerived: Self.readsDerived(template), requestID: requestID ?? principal.requestID)
        return finish(stored, template, read, campaign: campaign, recommendations: recommendations, segments: segments, now: now)
    }

    /// Whether a render of `template` needs the subject's derived data (segments it is in, recommendations): only
    /// when the template reads those namespaces. Minimization: a template that does not is rendered without them,
    /// and its audit entry says no derived data was released.
    static func readsDerived(_ template: LiquidTemplate) -> Bool {
        !template.namespacesRead.isDisjoint(with: ["segments", "recommendations"])
    }

    /// The registered template, compiled, and the gate request that renders it.
    private func prepare(_ name: String) async throws(GateError) -> (StoredTemplate, LiquidTemplate, AccessRequest) {
        guard let stored = try await vault.template(named: name) else {
            throw GateError(.notFound, "no template `\(name.prefix(64))`; `consentry template list` shows the registered ones")
        }
        let template = try Self.compiled(stored, vault: vault) { () throws(GateError) -> LiquidTemplate in
            do { return try compile(stored.source, format: stored.format == "html" ? .html : .text) } catch {
                throw GateError(.integrity, "template `\(name)` no longer compiles against the vault's fields (\(error)); register it again")
            }
        }
        let request = AccessRequest(
            actor: actor, role: role, action: .render, purpose: stored.purpose, fields: template.fields.compactMap(FieldName.init))
        return (stored, template, request)
    }

    private func finish(
        _ stored: StoredTemplate, _ template: LiquidTemplate, _ read: GateRead, campaign: [String: LiquidValue], recommendations: [LiquidValue],
        segments: [String], now: Date
    ) -> RenderResult {
        guard read.decision.isPermit else {
            return RenderResult(
                decision: read.decision, output: nil, template: stored.name, version: stored.version, released: [], missing: [],
                auditSequence: read.auditSequence)
        }
        // Segments the subject is in and recommendations come from derived data of the template's purpose, unless given.
        let storedSegments = read.derived.keys.filter { $0.hasPrefix("segment/") }.map { String($0.dropFirst(8)) }.sorted()
        var storedRecommendations: [LiquidValue] = []
        if let json = read.derived["recommendation/top"], let items = try? JSONSerialization.jsonObject(with: Data(json.utf8)) {
            if case .array(let list) = LiquidValue(json: items) { storedRecommendations = list }
        }
        var context: [String: LiquidValue] = [
            "campaign": .object(campaign), "recommendations": .array(recommendations.isEmpty ? storedRecommendations : recommendations),
            "segments": .array((segments.isEmpty ? storedSegments : segments).map(LiquidValue.string)),
        ]
        for (field, value) in read.values { context[field.rawValue] = .string(value) }
        let released = read.values.keys.map(\.rawValue).sorted()
        return RenderResult(
            decision: read.decision, output: template.render(context, now: now), template: stored.name, version: stored.version,
            released: released, missing: template.fields.filter { !released.contains($0) }, auditSequence: read.auditSequence)
    }

    /// Compiled templates by vault, name and version: a send-time render compiles a template once, not per recipient.
    /// An entry is used only while its source is the stored one, so a re-registration is never served stale.
    private static let compiledTemplates = Mutex<[String: (source: String, template: LiquidTemplate)]>([:])

    private static func compiled(
        _ stored: StoredTemplate, vault: Vault, compile: () throws(GateError) -> LiquidTemplate
    ) throws(GateError) -> LiquidTemplate {
        // The database path, not the directory URL: `URL.path` decodes the URL on every call.
        let key = "\(vault.databasePath)\u{0}\(stored.name)\u{0}\(stored.version)"
        if let hit = compiledTemplates.withLock({ $0[key] }), hit.source == stored.source { return hit.template }
        let template = try compile()
        compiledTemplates.withLock { cache in
            if cache.count >= 256 { cache.removeAll(keepingCapacity: true) }
            cache[key] = (stored.source, template)
        }
        return template
    }
}
