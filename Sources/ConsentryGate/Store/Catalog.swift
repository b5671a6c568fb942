import ConsentryCore
import Foundation

/// A kind of definition in the catalog: the non-personal definitions features store (templates, segments, triggers,
/// experiments, model versions). A feature names its kind; the store keeps every kind in the same records.
struct CatalogKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    let rawValue: String
    init(rawValue: String) { self.rawValue = rawValue }

    var description: String { rawValue }

    static let template = CatalogKind(rawValue: "template")
    static let segment = CatalogKind(rawValue: "segment")
    static let model = CatalogKind(rawValue: "model")
    static let trigger = CatalogKind(rawValue: "trigger")
    static let experiment = CatalogKind(rawValue: "experiment")
}

/// One version of a definition in the catalog. The catalog is versioned: defining a name again adds a version, and the
/// newest version is the one in force. It holds no personal data, so it is stored in clear.
struct CatalogEntry: Sendable, Equatable {
    /// What kind of definition it is.
    let kind: CatalogKind
    /// Its name, unique within its kind (a lower-case identifier).
    let name: String
    /// 1 for the first definition under the name, one more for each after it.
    let version: Int
    /// The purpose the definition serves; what it produces is released for that purpose only.
    let purpose: Purpose
    /// The role it acts in (a segment's incremental updates, a trigger's firing), when it acts at all.
    let role: Role?
    /// The feature's own fields, as a JSON object.
    let body: Data
    /// The actor that defined it.
    let definedBy: String
    /// When (ms).
    let definedAt: Int64

    /// An entry whose body is `value` encoded as JSON (keys sorted, so that equal definitions store equal bytes).
    init<Body: Encodable>(
        kind: CatalogKind, name: String, version: Int, purpose: Purpose, role: Role?, body value: Body, definedBy: String, definedAt: Int64
    ) throws {
        self.init(
            kind: kind, name: name, version: version, purpose: purpose, role: role, body: try JSONEncoder.sorted.encode(value),
            definedBy: definedBy, definedAt: definedAt)
    }

    /// An entry with its body as stored.
    init(kind: CatalogKind, name: String, version: Int, purpose: Purpose, role: Role?, body: Data, definedBy: String, definedAt: Int64) {
        self.kind = kind
        self.name = name
        self.version = version
        self.purpose = purpose
        self.role = role
        self.body = body
        self.definedBy = definedBy
        self.definedAt = definedAt
    }

    /// The body as the feature's type; a body that does not decode is an integrity error naming the definition.
    func decodeBody<Body: Decodable>(_ type: Body.Type) throws(GateError) -> Body {
        do { return try JSONDecoder().decode(type, from: body) } catch {
            throw GateError(.integrity, "the stored \(kind) `\(name)` version \(version) does not decode; define it again")
        }
    }

    /// The role, which a definition that acts must name.
    func actingRole() throws(GateError) -> Role {
        guard let role else { throw GateError(.integrity, "the stored \(kind) `\(name)` names no role; define it again") }
        return role
    }
}

extension StoreTransaction {
    /// Adds the next version of definition `name` of `kind` (1 for a new name) with the feature's fields `body`, and
    /// returns the version added.
    func addCatalogVersion<Body: Encodable>(
        _ kind: CatalogKind, name: String, purpose: Purpose, role: Role?, body: Body, definedBy: String, at time: Int64
    ) async throws -> Int {
        let version = (try await catalogEntry(kind, named: name)?.version ?? 0) + 1
        try await insertCatalogEntry(
            try CatalogEntry(kind: kind, name: name, version: version, purpose: purpose, role: role, body: body, definedBy: definedBy, definedAt: time))
        return version
    }
}
