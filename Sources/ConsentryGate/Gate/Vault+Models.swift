import ConsentryAudit
public import ConsentryCore
import ConsentryPolicy
import Foundation

/// A stored model version.
public struct StoredModel: Sendable, Codable, Equatable {
    /// The model's name (`propensity`, `clusters`).
    public var name: String
    /// Its version, increasing.
    public var version: Int
    /// The purpose it was trained for.
    public var purpose: Purpose
    /// Its metrics (JSON object).
    public var metrics: String
    /// Its parameters (JSON object).
    public var parameters: String
    /// When it was trained (ms).
    public var trainedAt: Int64
}

extension Vault {
    /// Stores a new version of a model with its metrics; the role needs `score` for the purpose. Audited.
    @discardableResult
    public func storeModel(name: String, purpose: Purpose, metrics: String, parameters: String, as principal: Principal) async throws(GateError)
        -> StoredModel
    {
        let (actor, role) = (principal.actor, principal.role)
        guard FieldName.isValid(name) else { throw GateError(.invalidInput, "model names are lower-case identifiers") }
        let request = AccessRequest(actor: actor, role: role, action: .score, purpose: purpose)
        return try await perform(request, requestID: principal.requestID, failure: "store the model (nothing was stored)") { scope in
            let now = nowMillis
            let version = try await scope.tx.addCatalogVersion(
                .model, name: name, purpose: purpose, role: nil, body: ModelBody(metrics: metrics, parameters: parameters), definedBy: actor, at: now)
            let stored = StoredModel(name: name, version: version, purpose: purpose, metrics: metrics, parameters: parameters, trainedAt: now)
            scope.entry.reasons.append("model `\(name)` version \(version) stored")
            return stored
        }
    }

    /// Every stored model version, newest first per name.
    public func models() async throws(GateError) -> [StoredModel] {
        let entries: [CatalogEntry]
        do { entries = try await store.catalog(.model, allVersions: true) } catch { throw Self.storageError(error, "read the models") }
        return try entries.map { entry throws(GateError) in
            let body = try entry.decodeBody(ModelBody.self)
            return StoredModel(
                name: entry.name, version: entry.version, purpose: entry.purpose, metrics: body.metrics, parameters: body.parameters,
                trainedAt: entry.definedAt)
        }
    }
}

/// A model version's fields in the catalog: its metrics and parameters, each a JSON object kept as the trainer wrote it.
struct ModelBody: Codable {
    var metrics: String
    var parameters: String
}
