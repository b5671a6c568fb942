import ConsentryAudit
public import ConsentryCore
import ConsentryPolicy
import Foundation
import GRDB

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
            let db = scope.db
            let version = (try Int.fetchOne(db, sql: "SELECT max(version) FROM model WHERE name = ?", arguments: [name]) ?? 0) + 1
            let now = nowMillis
            try db.execute(
                sql: "INSERT INTO model (name, version, purpose, metrics, parameters, trained_by, trained_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                arguments: [name, version, purpose.rawValue, metrics, parameters, actor, now])
            scope.entry.reasons.append("model `\(name)` version \(version) stored")
            return StoredModel(name: name, version: version, purpose: purpose, metrics: metrics, parameters: parameters, trainedAt: now)
        }
    }

    /// Every stored model version, newest first per name.
    public func models() throws(GateError) -> [StoredModel] {
        do {
            return try db.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM model ORDER BY name, version DESC").compactMap { row in
                    guard let purpose = Purpose(rawValue: row["purpose"]) else { return nil }
                    return StoredModel(
                        name: row["name"], version: row["version"], purpose: purpose, metrics: row["metrics"], parameters: row["parameters"],
                        trainedAt: row["trained_at"])
                }
            }
        } catch {
            throw Self.storageError(error, "read the models")
        }
    }
}
