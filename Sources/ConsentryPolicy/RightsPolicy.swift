import ConsentryCore
import Foundation
import Yams

/// How data-subject requests are handled, from the optional `rights.yaml`: verification codes, how long request
/// records are kept, suppression of re-imports after an erasure, and data kept for a legal obligation.
///
/// Every setting has a default, so a policy directory without `rights.yaml` is valid.
public struct RightsPolicy: Sendable, Hashable {
    /// Data an erasure keeps because a law requires it, detached from the subject.
    public struct Retention: Sendable, Hashable {
        /// What is kept. `purchase_events` is the one kind Consentry holds that bookkeeping laws cover.
        public let kind: RetainedKind
        /// How long, in years from the erasure.
        public let years: Int
        /// The legal reason, quoted in the erasure receipt.
        public let reason: String

        /// Creates a rule.
        public init(kind: RetainedKind, years: Int, reason: String) {
            self.kind = kind
            self.years = years
            self.reason = reason
        }
    }

    /// Kinds of data that may be retained after an erasure.
    public enum RetainedKind: String, Sendable, Hashable, CaseIterable {
        /// Purchase events (item, amount, currency, time), kept as invoice records without any link to the subject.
        case purchaseEvents = "purchase_events"
    }

    /// How long a verification code stays valid, in hours.
    public var codeTTLHours: Int = 24
    /// Wrong codes allowed before a code is locked and a new one must be issued.
    public var maxAttempts: Int = 5
    /// How long request records and their outcomes are kept, in months (CCPA § 7101: at least 24).
    public var keepRecordsMonths: Int = 24
    /// How long after a request is closed the requester's identifiers (sealed) are kept, in days, for questions
    /// about the answer and for `dsr verify-erasure`; then they are deleted and only the pseudonymous record remains.
    public var keepIdentifiersDays: Int = 30
    /// Whether an erasure leaves a suppression entry that stops a re-import of the same e-mail or customer id.
    public var suppressReimport: Bool = true
    /// Data an erasure keeps for a legal obligation.
    public var retain: [Retention] = []

    /// The defaults used when `rights.yaml` is absent.
    public init() {}

    /// The file name in the policy directory.
    public static let file = "rights.yaml"

    static func parse(_ reader: YAMLReader, _ root: Node) -> RightsPolicy? {
        guard let top = reader.mapping(root, file) else { return nil }
        reader.rejectUnknownKeys(top, allowed: ["version", "verification", "requests", "erasure"], in: file)
        var result = RightsPolicy()
        func section(_ name: String, _ allowed: [String]) -> [(key: String, keyNode: Node, value: Node)] {
            guard let node = top.first(where: { $0.key == name })?.value, let entries = reader.mapping(node, "`\(name)`") else { return [] }
            reader.rejectUnknownKeys(entries, allowed: allowed, in: "`\(name)`")
            return entries
        }
        func integer(_ node: Node, _ what: String, _ range: ClosedRange<Int>) -> Int? {
            guard let value = node.scalar.flatMap({ Int($0.string) }), range.contains(value) else {
                reader.error(
                    node, "\(what) must be a whole number from \(range.lowerBound) to \(range.upperBound)",
                    hint: "write a number such as `\(range.lowerBound)`")
                return nil
            }
            return value
        }
        for entry in section("verification", ["code_ttl_hours", "max_attempts"]) {
            switch entry.key {
            case "code_ttl_hours": result.codeTTLHours = integer(entry.value, "`code_ttl_hours`", 1...168) ?? result.codeTTLHours
            default: result.maxAttempts = integer(entry.value, "`max_attempts`", 1...20) ?? result.maxAttempts
            }
        }
        for entry in section("requests", ["keep_records_months", "keep_identifiers_days"]) {
            switch entry.key {
            case "keep_records_months":
                // Below 24 months the CCPA record-keeping rule would be broken.
                result.keepRecordsMonths = integer(entry.value, "`keep_records_months`", 24...120) ?? result.keepRecordsMonths
            default: result.keepIdentifiersDays = integer(entry.value, "`keep_identifiers_days`", 0...365) ?? result.keepIdentifiersDays
            }
        }
        for entry in section("erasure", ["suppress_reimport", "retain"]) {
            switch entry.key {
            case "suppress_reimport": result.suppressReimport = reader.bool(entry.value, "`suppress_reimport`") ?? true
            default:
                guard let kinds = reader.mapping(entry.value, "`erasure.retain`") else { continue }
                for item in kinds {
                    guard let kind = RetainedKind(rawValue: item.key) else {
                        reader.error(item.keyNode, "unknown retained kind `\(item.key)`", hint: "use one of \(RetainedKind.choiceList)")
                        continue
                    }
                    guard let keys = reader.mapping(item.value, "`\(item.key)`") else { continue }
                    reader.rejectUnknownKeys(keys, allowed: ["years", "reason"], in: "`\(item.key)`")
                    let years = keys.first { $0.key == "years" }.flatMap { integer($0.value, "`years`", 1...30) }
                    let reason = keys.first { $0.key == "reason" }.flatMap { reader.string($0.value, "`reason`") }
                    guard let years, let reason, !reason.isEmpty else {
                        reader.error(item.keyNode, "`\(item.key)` needs `years` and `reason`", hint: "name the law that requires keeping the data")
                        continue
                    }
                    result.retain.append(Retention(kind: kind, years: years, reason: reason))
                }
            }
        }
        return result
    }
}
