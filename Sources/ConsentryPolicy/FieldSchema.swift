public import ConsentryCore
public import Foundation
import Yams

/// One profile field as declared in `policies/fields.yaml`.
public struct FieldSpec: Sendable, Hashable {
    /// The field's name, as used in import headers, rules and templates.
    public let name: FieldName
    /// The value type that ingest validates and normalizes.
    public let type: FieldType
    /// The data class, which purposes and reports group by.
    public let fieldClass: FieldClass
    /// Whether values are also stored as a blind index for look-up (only `email`, `phone`, `customer_id`).
    public let blindIndex: Bool
    /// What the field means, for people reading the policy and the Art. 30 record.
    public let description: String

    /// Creates a field declaration.
    public init(name: FieldName, type: FieldType, fieldClass: FieldClass, blindIndex: Bool, description: String = "") {
        self.name = name
        self.type = type
        self.fieldClass = fieldClass
        self.blindIndex = blindIndex
        self.description = description
    }

    /// The identity kind this field feeds, if it is one of the three look-up fields.
    public var identityKind: IdentityKind? {
        switch name.rawValue {
        case "email": .email
        case "phone": .phone
        case "customer_id": .customerID
        default: nil
        }
    }
}

/// The validated field schema: which profile fields exist, their types and classes, and how merges rank sources.
///
/// ```swift
/// let schema = try FieldSchema.load(directory: URL(fileURLWithPath: "policies"))
/// schema["email"]?.type // .email
/// ```
public struct FieldSchema: Sendable {
    /// The file inside a policy directory that declares fields.
    public static let fileName = "fields.yaml"

    /// Declared fields in file order.
    public let fields: [FieldSpec]
    /// Sources from highest to lowest precedence for merges; empty means "the newest value wins" for every source.
    public let sourcePrecedence: [DataSource]
    /// Warnings found while loading (the schema loaded anyway).
    public let warnings: [PolicyDiagnostic]
    /// The exact bytes the schema was read from, for hashing into the policy version.
    public let sourceBytes: Data
    private let byName: [String: FieldSpec]

    /// Creates a schema from declarations (used by tests and by ``load(directory:)``).
    public init(fields: [FieldSpec], sourcePrecedence: [DataSource] = [], warnings: [PolicyDiagnostic] = [], sourceBytes: Data = Data()) {
        self.fields = fields
        self.sourcePrecedence = sourcePrecedence
        self.warnings = warnings
        self.sourceBytes = sourceBytes
        var byName: [String: FieldSpec] = [:]
        for field in fields { byName[field.name.rawValue] = field }
        self.byName = byName
    }

    /// The declaration of the field named `name`, if declared.
    public subscript(name: String) -> FieldSpec? { byName[name] }

    /// The merge rank of `source`: lower wins. Sources not listed share the lowest precedence.
    public func rank(of source: DataSource) -> Int {
        sourcePrecedence.firstIndex(of: source) ?? sourcePrecedence.count
    }

    /// Loads and validates `fields.yaml` from a policy directory.
    /// - Throws: ``PolicyError`` with every problem found, each with file, line and a fix hint.
    public static func load(directory: URL) throws(PolicyError) -> FieldSchema {
        let url = directory.appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw PolicyError([
                PolicyDiagnostic(
                    .error, file: fileName, line: 0, column: 0, message: "cannot read `\(url.path)`",
                    hint: "point `--policies` at a directory holding fields.yaml, or copy the default `policies/` folder")
            ])
        }
        return try parse(data, file: fileName)
    }

    /// Parses and validates the text of a `fields.yaml` file.
    public static func parse(_ data: Data, file: String = fileName) throws(PolicyError) -> FieldSchema {
        let reader = YAMLReader(file: file)
        guard let root = reader.parse(data), let top = reader.mapping(root, "fields.yaml") else { throw PolicyError(reader.diagnostics) }
        reader.rejectUnknownKeys(top, allowed: ["version", "fields", "merge"], in: "fields.yaml")
        var fields: [FieldSpec] = []
        var precedence: [DataSource] = []
        if let version = top.first(where: { $0.key == "version" }), reader.string(version.value, "`version`") != "1" {
            reader.error(version.value, "unsupported schema version", hint: "this release reads `version: 1`")
        }
        if let fieldsEntry = top.first(where: { $0.key == "fields" }) {
            for entry in reader.mapping(fieldsEntry.value, "`fields`") ?? [] {
                if let spec = readField(entry, reader) { fields.append(spec) }
            }
            if fields.isEmpty && !reader.hasErrors {
                reader.error(
                    fieldsEntry.value, "no fields are declared", hint: "declare at least `email` or `customer_id` so subjects can be identified")
            }
        } else {
            reader.error(root, "missing the `fields` mapping", hint: "add `fields:` with one entry per profile field")
        }
        if !fields.isEmpty, !fields.contains(where: { $0.name == "email" || $0.name == "customer_id" }) {
            reader.error(
                root, "neither `email` nor `customer_id` is declared",
                hint: "declare at least one of them so imported records can be matched to subjects")
        }
        if let merge = top.first(where: { $0.key == "merge" }), let entries = reader.mapping(merge.value, "`merge`") {
            reader.rejectUnknownKeys(entries, allowed: ["source_precedence"], in: "`merge`")
            if let list = entries.first(where: { $0.key == "source_precedence" }), let items = reader.list(list.value, "`source_precedence`") {
                for item in items {
                    guard let source = reader.choice(item, "source", as: DataSource.self) else { continue }
                    if precedence.contains(source) {
                        reader.error(item, "source `\(source.rawValue)` is listed twice in `source_precedence`", hint: "list each source once")
                    } else {
                        precedence.append(source)
                    }
                }
            }
        }
        if reader.hasErrors { throw PolicyError(reader.diagnostics) }
        return FieldSchema(fields: fields, sourcePrecedence: precedence, warnings: reader.diagnostics, sourceBytes: data)
    }

    private static func readField(_ entry: (key: String, keyNode: Node, value: Node), _ reader: YAMLReader) -> FieldSpec? {
        guard let name = FieldName(entry.key) else {
            reader.error(
                entry.keyNode, "`\(entry.key)` is not a valid field name",
                hint: "use lower-case letters, digits and `_`, starting with a letter, at most 64 characters")
            return nil
        }
        guard let entries = reader.mapping(entry.value, "field `\(name)`") else { return nil }
        reader.rejectUnknownKeys(entries, allowed: ["type", "class", "blind_index", "description"], in: "field `\(name)`")
        let typeNode = entries.first { $0.key == "type" }
        let classNode = entries.first { $0.key == "class" }
        if typeNode == nil { reader.error(entry.keyNode, "field `\(name)` has no `type`", hint: "add `type:` with one of \(FieldType.choiceList)") }
        if classNode == nil {
            reader.error(entry.keyNode, "field `\(name)` has no `class`", hint: "add `class:` with one of \(FieldClass.choiceList)")
        }
        let type = typeNode.flatMap { reader.choice($0.value, "field type", as: FieldType.self) }
        let fieldClass = classNode.flatMap { reader.choice($0.value, "field class", as: FieldClass.self) }
        let blindIndex = entries.first { $0.key == "blind_index" }.flatMap { reader.bool($0.value, "`blind_index`") } ?? false
        let description = entries.first { $0.key == "description" }.flatMap { reader.string($0.value, "`description`") } ?? ""
        guard let type, let fieldClass else { return nil }
        let spec = FieldSpec(name: name, type: type, fieldClass: fieldClass, blindIndex: blindIndex, description: description)
        let expected: [String: FieldType] = ["email": .email, "phone": .phone, "customer_id": .string]
        if let required = expected[name.rawValue], required != type {
            reader.error(
                entry.value, "field `\(name)` must have type `\(required.rawValue)`",
                hint: "it is a look-up identity; change its type to `\(required.rawValue)`")
        }
        if blindIndex && spec.identityKind == nil {
            reader.error(
                entry.value, "`blind_index` is only supported on `email`, `phone` and `customer_id`",
                hint: "remove `blind_index` from field `\(name)`")
        }
        if let category = SpecialCategory.category(ofName: name.rawValue), fieldClass != .special {
            reader.warning(
                entry.keyNode, "field `\(name)` looks like special-category data (\(category)) but has class `\(fieldClass.rawValue)`",
                hint: "declare it with `class: special` if it is, so that purposes must name it explicitly")
        }
        return spec
    }
}
