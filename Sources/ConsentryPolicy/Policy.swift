public import ConsentryCore
public import Foundation
import Yams

/// How consent must have been given for a consent-based purpose.
public enum ConsentRule: String, Sendable, Hashable, CaseIterable, Codable {
    /// No consent needed (the purpose has another legal basis).
    case none
    /// A `granted` (or `confirmed`) record is enough.
    case explicit
    /// The grant must have been confirmed (double opt-in): only `confirmed` counts.
    case doubleOptIn = "double_opt_in"
}

/// One purpose as declared in `purposes.yaml`.
public struct PurposeSpec: Sendable, Hashable {
    /// The purpose.
    public let purpose: Purpose
    /// What it is for, in words; used in the record of processing activities.
    public let description: String
    /// The lawful basis.
    public let legalBasis: LegalBasis
    /// The consent rule (`none` unless the basis is consent).
    public let consent: ConsentRule
    /// Whether an objection (GDPR Art. 21) stops it.
    public let objectable: Bool
    /// Whether only aggregates may leave the vault (no individual reads or renders).
    public let aggregatesOnly: Bool
    /// Whether it is a sale or sharing of personal information (CCPA opt-out and Global Privacy Control apply).
    public let saleOrShare: Bool
    /// Whether it may go on while the subject's processing is restricted (GDPR Art. 18(2)); purposes based on a
    /// legal obligation always may.
    public let allowedWhenRestricted: Bool
    /// The fields the purpose may use.
    public let fields: [FieldName]
    /// How long data kept for this purpose may be kept, in days.
    public let retentionDays: Int
}

/// One role as declared in `roles.yaml`.
public struct RoleSpec: Sendable, Hashable {
    /// The role.
    public let role: Role
    /// What the role is, in words.
    public let description: String
    /// Actions not tied to a purpose (import, audit, key and policy administration, data-subject requests).
    public let administrative: Set<Action>
    /// Data actions allowed per purpose.
    public let grants: [Purpose: Set<Action>]
    /// Actions for which the actor must state a reason.
    public let reasonRequired: Set<Action>
}

extension Action {
    /// Whether the action is administrative (not tied to a purpose or a subject's consent).
    public var isAdministrative: Bool {
        switch self {
        case .import, .consentWrite, .auditRead, .policyAdmin, .keyAdmin, .dsrManage, .templateAdmin: true
        case .readProfile, .segment, .score, .recommend, .render, .export, .erase, .rectify: false
        }
    }

    /// Whether the action releases values of individual subjects (refused under an aggregates-only purpose).
    public var releasesIndividualData: Bool {
        switch self {
        case .readProfile, .render, .export, .recommend: true
        default: false
        }
    }
}

/// The validated policy: field schema, purposes and roles, with the tables the decision function uses.
///
/// ```swift
/// let policy = try Policy.load(directory: URL(fileURLWithPath: "policies"))
/// let decision = policy.decide(AccessRequest(actor: "ada", role: .marketer, action: .segment, purpose: .emailMarketing, fields: ["email"]))
/// ```
public struct Policy: Sendable {
    /// The file that declares purposes.
    public static let purposesFile = "purposes.yaml"
    /// The file that declares roles.
    public static let rolesFile = "roles.yaml"

    /// The field schema.
    public let schema: FieldSchema
    /// Purposes by name.
    public let purposes: [Purpose: PurposeSpec]
    /// Roles by name.
    public let roles: [Role: RoleSpec]
    /// Warnings from loading (the policy loaded anyway).
    public let warnings: [PolicyDiagnostic]
    /// How data-subject requests are handled (`rights.yaml`, or the defaults).
    public let rights: RightsPolicy

    // Compiled tables: flat arrays indexed by ordinals, so a decision is a few loads, no hashing.
    let fieldIndex: [FieldName: Int]
    let purposeTable: [PurposeRule?]
    let purposeFields: [FieldSet]
    /// The fields of class `special`.
    let specialFields: FieldSet
    let grantTable: [Bool]
    /// The text of each granting rule, at the same index as ``grantTable``: built once, not per decision.
    let ruleTable: [String]
    /// Denial texts, built once so that a decision formats no strings.
    let noRuleText: [String]
    let reasonMissingText: [String]
    let fieldNotAllowedText: [String]
    let purposeText: [String]
    let aggregatesOnlyText: [String]
    let reasonTable: [Bool]

    static let actions = Action.allCases
    static let purposeCount = Purpose.allCases.count

    /// Builds a policy from validated parts.
    init(
        schema: FieldSchema, purposes: [Purpose: PurposeSpec], roles: [Role: RoleSpec], rights: RightsPolicy = RightsPolicy(),
        warnings: [PolicyDiagnostic]
    ) {
        self.schema = schema
        self.rights = rights
        self.purposes = purposes
        self.roles = roles
        self.warnings = warnings
        var index: [FieldName: Int] = [:]
        for (i, field) in schema.fields.enumerated() { index[field.name] = i }
        fieldIndex = index
        purposeTable = Purpose.allCases.map { purposes[$0].map(PurposeRule.init) }
        purposeFields = Purpose.allCases.map { purpose in
            var set = FieldSet()
            for field in purposes[purpose]?.fields ?? [] { if let i = index[field] { set.insert(i) } }
            return set
        }
        var special = FieldSet()
        for (i, field) in schema.fields.enumerated() where field.fieldClass == .special { special.insert(i) }
        specialFields = special
        let a = Self.actions.count, p = Self.purposeCount
        var grants = [Bool](repeating: false, count: Role.allCases.count * a * (p + 1))
        var rules = [String](repeating: "", count: grants.count)
        var reasons = [Bool](repeating: false, count: Role.allCases.count * a)
        for (r, role) in Role.allCases.enumerated() {
            guard let spec = roles[role] else { continue }
            for action in spec.administrative {
                grants[(r * a + action.ordinal) * (p + 1) + p] = true
                rules[(r * a + action.ordinal) * (p + 1) + p] = "roles.yaml: \(role.rawValue) administrative \(action.rawValue)"
            }
            for (purpose, actions) in spec.grants {
                for action in actions {
                    grants[(r * a + action.ordinal) * (p + 1) + purpose.ordinal] = true
                    rules[(r * a + action.ordinal) * (p + 1) + purpose.ordinal] =
                        "roles.yaml: \(role.rawValue) → \(purpose.rawValue): \(action.rawValue)"
                }
            }
            for action in spec.reasonRequired { reasons[r * a + action.ordinal] = true }
        }
        grantTable = grants
        ruleTable = rules
        var noRule = [String](repeating: "", count: grants.count)
        var reasonMissing = [String](repeating: "", count: Role.allCases.count * a)
        for role in Role.allCases {
            for action in Self.actions {
                let base = (role.ordinal * a + action.ordinal) * (p + 1)
                noRule[base + p] = "role `\(role.rawValue)` may not `\(action.rawValue)`"
                for purpose in Purpose.allCases {
                    noRule[base + purpose.ordinal] = "role `\(role.rawValue)` may not `\(action.rawValue)` for `\(purpose.rawValue)`"
                }
                reasonMissing[role.ordinal * a + action.ordinal] = "role `\(role.rawValue)` must state a reason to `\(action.rawValue)`"
            }
        }
        noRuleText = noRule
        reasonMissingText = reasonMissing
        fieldNotAllowedText = Purpose.allCases.flatMap { purpose in schema.fields.map { "`\($0.name)` is not allowed for `\(purpose.rawValue)`" } }
        purposeText = Purpose.allCases.map { "for `\($0.rawValue)`" }
        aggregatesOnlyText = Purpose.allCases.map { "`\($0.rawValue)` releases aggregates only" }
        reasonTable = reasons
    }

    /// The granting rule's text, or nil when no rule grants `role` the `action` for `purpose` (nil: administrative).
    @inline(__always)
    func rule(_ role: Role, _ action: Action, _ purpose: Purpose?) -> String? {
        let p = Self.purposeCount
        let index = (role.ordinal * Self.actions.count + action.ordinal) * (p + 1) + (purpose?.ordinal ?? p)
        return grantTable[index] ? ruleTable[index] : nil
    }

    @inline(__always)
    func reasonRequired(_ role: Role, _ action: Action) -> Bool { reasonTable[role.ordinal * Self.actions.count + action.ordinal] }

    // INVARIANT: minimization is structural. A purpose's field set is checked here against fields.yaml when the
    // policy loads, and against every request in `authorize`.

    /// The fields `purpose` may use.
    public func fields(for purpose: Purpose) -> [FieldName] { purposes[purpose]?.fields ?? [] }

    /// Loads and validates `fields.yaml`, `purposes.yaml`, `roles.yaml` and the optional `rights.yaml` from `directory`.
    /// - Throws: ``PolicyError`` with every error found in any file, each with file, line and a fix hint.
    public static func load(directory: URL) throws(PolicyError) -> Policy {
        var diagnostics: [PolicyDiagnostic] = []
        var schema: FieldSchema?
        do { schema = try FieldSchema.load(directory: directory) } catch { diagnostics += error.diagnostics }
        let purposes = readFile(directory, purposesFile, &diagnostics) { reader, root in PolicyFiles.purposes(reader, root, schema) }
        let roles = readFile(directory, rolesFile, &diagnostics) { reader, root in PolicyFiles.roles(reader, root, purposes) }
        var rights: RightsPolicy? = RightsPolicy()
        if FileManager.default.fileExists(atPath: directory.appendingPathComponent(RightsPolicy.file).path) {
            rights = readFile(directory, RightsPolicy.file, &diagnostics) { reader, root in RightsPolicy.parse(reader, root) }
        }
        diagnostics += schema?.warnings ?? []
        guard let schema, let purposes, let roles, let rights, !diagnostics.contains(where: { $0.severity == .error }) else {
            throw PolicyError(diagnostics.filter { $0.severity == .error } + diagnostics.filter { $0.severity == .warning })
        }
        return Policy(schema: schema, purposes: purposes, roles: roles, rights: rights, warnings: diagnostics)
    }

    private static func readFile<T>(
        _ directory: URL, _ name: String, _ diagnostics: inout [PolicyDiagnostic], _ body: (YAMLReader, Node) -> T?
    ) -> T? {
        let reader = YAMLReader(file: name)
        guard let data = FileManager.default.contents(atPath: directory.appendingPathComponent(name).path) else {
            diagnostics.append(
                PolicyDiagnostic(
                    .error, file: name, line: 0, column: 0, message: "cannot read `\(directory.appendingPathComponent(name).path)`",
                    hint: "every policy directory needs fields.yaml, purposes.yaml and roles.yaml; copy them from the default `policies/` folder"))
            return nil
        }
        guard let root = reader.parse(data) else {
            diagnostics += reader.diagnostics
            return nil
        }
        let result = body(reader, root)
        diagnostics += reader.diagnostics
        return reader.hasErrors ? nil : result
    }
}

/// The parts of a purpose the decision function reads, as plain values (no references to retain per decision).
struct PurposeRule: Sendable {
    let legalBasis: LegalBasis
    let consent: ConsentRule
    let objectable: Bool
    let aggregatesOnly: Bool
    let saleOrShare: Bool
    let allowedWhenRestricted: Bool
    /// Contract and legal obligation: the uses of sensitive data a CPRA limit request leaves allowed.
    let necessaryForService: Bool

    init(_ spec: PurposeSpec) {
        legalBasis = spec.legalBasis
        consent = spec.consent
        objectable = spec.objectable
        aggregatesOnly = spec.aggregatesOnly
        saleOrShare = spec.saleOrShare
        allowedWhenRestricted = spec.allowedWhenRestricted || spec.legalBasis == .legalObligation
        necessaryForService = spec.legalBasis == .contract || spec.legalBasis == .legalObligation
    }
}

/// A set of field ordinals (the schema holds at most 128 fields).
struct FieldSet: Sendable, Hashable {
    var low: UInt64 = 0
    var high: UInt64 = 0

    mutating func insert(_ index: Int) {
        if index < 64 { low |= 1 << UInt64(index) } else { high |= 1 << UInt64(index - 64) }
    }

    func contains(_ index: Int) -> Bool {
        index < 64 ? low & (1 << UInt64(index)) != 0 : high & (1 << UInt64(index - 64)) != 0
    }

    func isSubset(of other: FieldSet) -> Bool { low & ~other.low == 0 && high & ~other.high == 0 }
}
