import ConsentryCore
import Yams

/// Parsers for `purposes.yaml` and `roles.yaml`; each reports every problem with its position.
enum PolicyFiles {
    static func purposes(_ reader: YAMLReader, _ root: Node, _ schema: FieldSchema?) -> [Purpose: PurposeSpec]? {
        guard let top = reader.mapping(root, Policy.purposesFile) else { return nil }
        reader.rejectUnknownKeys(top, allowed: ["version", "purposes"], in: Policy.purposesFile)
        guard let entry = top.first(where: { $0.key == "purposes" }), let entries = reader.mapping(entry.value, "`purposes`") else {
            reader.error(root, "missing the `purposes` mapping", hint: "add `purposes:` with one entry per purpose")
            return nil
        }
        var result: [Purpose: PurposeSpec] = [:]
        for item in entries {
            guard let purpose = Purpose(rawValue: item.key) else {
                reader.error(item.keyNode, "unknown purpose `\(item.key)`", hint: "use one of \(Purpose.choiceList)")
                continue
            }
            guard let keys = reader.mapping(item.value, "purpose `\(purpose.rawValue)`") else { continue }
            let what = "purpose `\(purpose.rawValue)`"
            reader.rejectUnknownKeys(
                keys,
                allowed: [
                    "description", "legal_basis", "consent", "objectable", "aggregates_only", "sale_or_share", "allowed_when_restricted", "fields",
                    "retention",
                ],
                in: what)
            func value(_ key: String) -> Node? { keys.first { $0.key == key }?.value }
            guard let basisNode = value("legal_basis") else {
                reader.error(item.keyNode, "\(what) has no legal basis", hint: "add `legal_basis:` with one of \(LegalBasis.choiceList)")
                continue
            }
            guard let basis = reader.choice(basisNode, "legal basis", as: LegalBasis.self) else { continue }
            var consent = ConsentRule.none
            if let node = value("consent") {
                guard let rule = reader.choice(node, "consent rule", as: ConsentRule.self) else { continue }
                consent = rule
            }
            if basis == .consent && consent == .none {
                reader.error(
                    item.keyNode, "\(what) is based on consent but has no consent rule", hint: "add `consent: explicit` or `consent: double_opt_in`")
            }
            if basis != .consent && consent != .none {
                reader.error(
                    value("consent"), "\(what) has a consent rule but its legal basis is `\(basis.rawValue)`",
                    hint: "remove `consent:` or change `legal_basis` to `consent`")
            }
            var fields: [FieldName] = []
            if let node = value("fields"), let list = reader.list(node, "`fields` of \(what)") {
                for fieldNode in list {
                    guard let name = reader.string(fieldNode, "a field"), let field = FieldName(name) else {
                        reader.error(fieldNode, "`\(fieldNode.string ?? "")` is not a valid field name", hint: "use a name declared in fields.yaml")
                        continue
                    }
                    if let schema, schema[name] == nil {
                        reader.error(
                            fieldNode, "\(what) uses field `\(name)`, which fields.yaml does not declare",
                            hint: "declare it in fields.yaml or remove it here")
                        continue
                    }
                    if fields.contains(field) {
                        reader.error(fieldNode, "field `\(name)` is listed twice in \(what)", hint: "list each field once")
                        continue
                    }
                    fields.append(field)
                }
            } else if value("fields") == nil {
                reader.error(item.keyNode, "\(what) declares no fields", hint: "add `fields: [...]` with the fields it needs (minimization)")
            }
            var retention = 0
            if let node = value("retention") {
                if let days = retentionDays(node.string ?? "") {
                    retention = days
                } else {
                    reader.error(node, "retention `\(node.string ?? "")` is not a duration", hint: "write a number and a unit: `30d`, `6m` or `2y`")
                }
            } else {
                reader.error(
                    item.keyNode, "\(what) has no retention period", hint: "add `retention:` such as `2y` (storage limitation, GDPR Art. 5(1)(e))")
            }
            let flags = ["objectable", "aggregates_only", "sale_or_share", "allowed_when_restricted"].map { key in
                value(key).flatMap { reader.bool($0, "`\(key)`") } ?? false
            }
            result[purpose] = PurposeSpec(
                purpose: purpose, description: value("description").flatMap { reader.string($0, "`description`") } ?? "", legalBasis: basis,
                consent: consent, objectable: flags[0], aggregatesOnly: flags[1], saleOrShare: flags[2], allowedWhenRestricted: flags[3],
                fields: fields, retentionDays: retention)
        }
        for purpose in Purpose.allCases where result[purpose] == nil && !reader.hasErrors {
            reader.warning(
                entry.value, "purpose `\(purpose.rawValue)` is not declared, so every use of it is denied", hint: "declare it if it is used")
        }
        return result
    }

    /// `30d`, `6m` (30-day months), `2y` (365-day years) → days.
    static func retentionDays(_ text: String) -> Int? {
        guard let unit = text.last, let count = Int(text.dropLast()), count > 0, count < 1000 else { return nil }
        switch unit {
        case "d": return count
        case "m": return count * 30
        case "y": return count * 365
        default: return nil
        }
    }

    static func roles(_ reader: YAMLReader, _ root: Node, _ purposes: [Purpose: PurposeSpec]?) -> [Role: RoleSpec]? {
        guard let top = reader.mapping(root, Policy.rolesFile) else { return nil }
        reader.rejectUnknownKeys(top, allowed: ["version", "roles"], in: Policy.rolesFile)
        guard let entry = top.first(where: { $0.key == "roles" }), let entries = reader.mapping(entry.value, "`roles`") else {
            reader.error(root, "missing the `roles` mapping", hint: "add `roles:` with one entry per role")
            return nil
        }
        var result: [Role: RoleSpec] = [:]
        for item in entries {
            guard let role = Role(rawValue: item.key) else {
                reader.error(item.keyNode, "unknown role `\(item.key)`", hint: "use one of \(Role.choiceList)")
                continue
            }
            let what = "role `\(role.rawValue)`"
            guard let keys = reader.mapping(item.value, what) else { continue }
            reader.rejectUnknownKeys(keys, allowed: ["description", "administrative", "purposes", "reason_required"], in: what)
            func value(_ key: String) -> Node? { keys.first { $0.key == key }?.value }
            func actions(_ node: Node?, _ context: String) -> Set<Action> {
                guard let node, let list = reader.list(node, context) else { return [] }
                var set = Set<Action>()
                for actionNode in list {
                    guard let action = reader.choice(actionNode, "action", as: Action.self) else { continue }
                    set.insert(action)
                }
                return set
            }
            let administrative = actions(value("administrative"), "`administrative` of \(what)")
            for action in administrative where !action.isAdministrative {
                reader.error(
                    value("administrative"), "`\(action.rawValue)` in \(what) is a data action and needs a purpose",
                    hint: "list it under `purposes:` for the purposes it serves")
            }
            var grants: [Purpose: Set<Action>] = [:]
            if let node = value("purposes"), let purposeEntries = reader.mapping(node, "`purposes` of \(what)") {
                for grant in purposeEntries {
                    guard let purpose = Purpose(rawValue: grant.key) else {
                        reader.error(grant.keyNode, "unknown purpose `\(grant.key)` in \(what)", hint: "use one of \(Purpose.choiceList)")
                        continue
                    }
                    if let purposes, purposes[purpose] == nil {
                        reader.error(
                            grant.keyNode, "\(what) is granted purpose `\(purpose.rawValue)`, which purposes.yaml does not declare",
                            hint: "declare the purpose in purposes.yaml or remove the grant")
                    }
                    let granted = actions(grant.value, "actions of \(what) for `\(purpose.rawValue)`")
                    for action in granted where action.isAdministrative {
                        reader.error(
                            grant.value, "`\(action.rawValue)` is administrative and is not granted per purpose",
                            hint: "list it under `administrative:` of \(what)")
                    }
                    grants[purpose] = granted.filter { !$0.isAdministrative }
                }
            }
            result[role] = RoleSpec(
                role: role, description: value("description").flatMap { reader.string($0, "`description`") } ?? "",
                administrative: administrative.filter(\.isAdministrative), grants: grants,
                reasonRequired: actions(value("reason_required"), "`reason_required` of \(what)"))
        }
        return result
    }
}
