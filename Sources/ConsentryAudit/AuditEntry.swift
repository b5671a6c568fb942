public import ConsentryCore
import ConsentryCrypto
import Foundation

/// What an audit entry records. A closed set with frozen stored names: renaming a case never changes
/// what is stored.
public enum AuditAction: String, Sendable, Hashable, CaseIterable, Codable {
    // Gated uses of personal data; the same names as the policy's actions.
    /// A profile read.
    case readProfile = "read_profile"
    /// A segment evaluation.
    case segment
    /// A score or model computation.
    case score
    /// A recommendation computation.
    case recommend
    /// A template render.
    case render
    /// An export.
    case export
    /// An erasure.
    case erase
    /// A rectification.
    case rectify
    // Administrative changes and events.
    /// Profiles or events were imported.
    case `import`
    /// A consent record was appended.
    case consentWrite = "consent_write"
    /// Restriction, objection, opt-out or GPC was recorded.
    case flagWrite = "flag_write"
    /// A subject's consent history was read.
    case consentRead = "consent_read"
    /// Every sealed value was opened to check its integrity (no value left the vault).
    case integrityCheck = "integrity_check"
    /// The audit log was read, queried, exported or verified.
    case auditRead = "audit_read"
    /// A vault was created.
    case vaultCreated = "vault_created"
    /// The policy was loaded or changed (its version is in the entry).
    case policyLoaded = "policy_loaded"
    /// A policy decision was explained.
    case policyExplain = "policy_explain"
    /// The key-encryption key was rotated.
    case keysRotated = "keys_rotated"
    /// A data-subject request changed state.
    case dsrManage = "dsr_manage"
    /// An API token was created or revoked.
    case tokenAdmin = "token_admin"
    /// A template was registered for a purpose.
    case templateAdmin = "template_admin"

    /// The audit action of a policy action.
    public init(_ action: Action) {
        switch action {
        case .readProfile: self = .readProfile
        case .segment: self = .segment
        case .score: self = .score
        case .recommend: self = .recommend
        case .render: self = .render
        case .export: self = .export
        case .erase: self = .erase
        case .rectify: self = .rectify
        case .import: self = .import
        case .consentWrite: self = .consentWrite
        case .auditRead: self = .auditRead
        case .policyAdmin: self = .policyLoaded
        case .keyAdmin: self = .keysRotated
        case .dsrManage: self = .dsrManage
        case .templateAdmin: self = .templateAdmin
        }
    }
}

/// An audit entry before it is chained: everything but sequence, time and hashes.
public struct AuditDraft: Sendable, Equatable {
    /// Who acted (a user, token name or `system`).
    public var actor: String
    /// The actor's role, if any.
    public var role: Role?
    /// What happened.
    public var action: AuditAction
    /// For which purpose.
    public var purpose: Purpose?
    /// The subject's pseudonym (hex) for single-subject operations.
    public var subject: String?
    /// The pseudonyms of the subjects a bulk operation released data of, 16 bytes each, back to back;
    /// stored beside the entry and covered by the chain through ``subjectSetDigest``.
    public var subjectSet: [UInt8]
    /// The fields involved.
    public var fields: [String]
    /// Counts: `permitted`, `excluded.<reason>`, `inserted`, …
    public var counts: [String: Int]
    /// `permit` or `deny`.
    public var decision: Effect
    /// The reasons behind the decision, as `code` or `code: detail`.
    public var reasons: [String]
    /// The policy version in force.
    public var policyVersion: String
    /// Consent record ids the decision relied on or the operation wrote.
    public var consentRecordIDs: [Int64]
    /// The caller's request id, to correlate with other logs.
    public var requestID: String?

    /// Creates a draft.
    public init(
        actor: String, role: Role?, action: AuditAction, purpose: Purpose? = nil, subject: String? = nil, subjectSet: [UInt8] = [],
        fields: [String] = [], counts: [String: Int] = [:], decision: Effect, reasons: [String] = [], policyVersion: String,
        consentRecordIDs: [Int64] = [], requestID: String? = nil
    ) {
        self.actor = actor
        self.role = role
        self.action = action
        self.purpose = purpose
        self.subject = subject
        self.subjectSet = subjectSet
        self.fields = fields
        self.counts = counts
        self.decision = decision
        self.reasons = reasons
        self.policyVersion = policyVersion
        self.consentRecordIDs = consentRecordIDs
        self.requestID = requestID
    }
}

/// One entry of the tamper-evident audit log. The format is specified in `audit/FORMAT.md`.
public struct AuditEntry: Sendable, Equatable, Codable {
    /// 1, 2, 3, … without gaps.
    public var sequence: Int64
    /// Milliseconds since 1970-01-01 UTC.
    public var time: Int64
    /// Who acted.
    public var actor: String
    /// The actor's role (`nil` for the system).
    public var role: String?
    /// What happened (an ``AuditAction`` stored name).
    public var action: String
    /// The purpose, if any.
    public var purpose: String?
    /// The subject's pseudonym for single-subject operations.
    public var subject: String?
    /// How many subjects the operation released data of (bulk) or concerned (single).
    public var subjectCount: Int
    /// BLAKE2b of the sorted pseudonyms of a bulk operation's subject set, or nil.
    public var subjectSetDigest: String?
    /// The fields involved.
    public var fields: [String]
    /// Counts (`permitted`, `excluded.<reason>`, …).
    public var counts: [String: Int]
    /// `permit` or `deny`.
    public var decision: String
    /// Reasons.
    public var reasons: [String]
    /// The policy version in force.
    public var policyVersion: String
    /// Consent record ids.
    public var consentRecordIDs: [Int64]
    /// The caller's request id.
    public var requestID: String?
    /// The hash of the entry before (64 zeros for the first).
    public var previousHash: String
    /// BLAKE2b-256 of `previousHash`, a newline, and ``canonicalText``.
    public var hash: String

    /// Creates an entry from stored values (reading the log back); use ``chain(_:sequence:time:previousHash:subjectSetDigest:)`` to write.
    public init(
        sequence: Int64, time: Int64, actor: String, role: String?, action: String, purpose: String?, subject: String?, subjectCount: Int,
        subjectSetDigest: String?, fields: [String], counts: [String: Int], decision: String, reasons: [String], policyVersion: String,
        consentRecordIDs: [Int64], requestID: String?, previousHash: String, hash: String
    ) {
        self.sequence = sequence
        self.time = time
        self.actor = actor
        self.role = role
        self.action = action
        self.purpose = purpose
        self.subject = subject
        self.subjectCount = subjectCount
        self.subjectSetDigest = subjectSetDigest
        self.fields = fields
        self.counts = counts
        self.decision = decision
        self.reasons = reasons
        self.policyVersion = policyVersion
        self.consentRecordIDs = consentRecordIDs
        self.requestID = requestID
        self.previousHash = previousHash
        self.hash = hash
    }

    /// The hash that stands before the first entry.
    public static let genesisHash = String(repeating: "0", count: 64)

    /// The entry's content in a canonical, deterministic JSON form (fixed key order, no white space),
    /// without `previous_hash` and `hash`. It is what the hash covers.
    public var canonicalText: String {
        var json = JSONWriter()
        json.field("sequence", sequence)
        json.field("time", time)
        json.field("actor", actor)
        json.field("role", role)
        json.field("action", action)
        json.field("purpose", purpose)
        json.field("subject", subject)
        json.field("subject_count", Int64(subjectCount))
        json.field("subject_set_digest", subjectSetDigest)
        json.field("fields", fields)
        json.field("counts", counts)
        json.field("decision", decision)
        json.field("reasons", reasons)
        json.field("policy_version", policyVersion)
        json.field("consent_record_ids", consentRecordIDs)
        json.field("request_id", requestID)
        return json.finished()
    }

    /// One JSON Lines record of the export: the canonical text plus `previous_hash` and `hash`.
    public var exportLine: String {
        var text = canonicalText
        text.removeLast()
        return text + ",\"previous_hash\":\"\(previousHash)\",\"hash\":\"\(hash)\"}"
    }

    /// Computes the hash this entry should have.
    public func computedHash() -> String {
        Digest.hex(Digest.blake2b(Array((previousHash + "\n" + canonicalText).utf8)))
    }

    /// Chains a draft after the entry with `previous` hash.
    public static func chain(_ draft: AuditDraft, sequence: Int64, time: Int64, previousHash: String, subjectSetDigest: String?) -> AuditEntry {
        var entry = AuditEntry(
            sequence: sequence, time: time, actor: draft.actor, role: draft.role?.rawValue, action: draft.action.rawValue,
            purpose: draft.purpose?.rawValue, subject: draft.subject,
            subjectCount: draft.subject != nil ? 1 : draft.subjectSet.count / AuditEntry.pseudonymLength,
            subjectSetDigest: subjectSetDigest, fields: draft.fields, counts: draft.counts, decision: draft.decision.rawValue,
            reasons: draft.reasons, policyVersion: draft.policyVersion, consentRecordIDs: draft.consentRecordIDs, requestID: draft.requestID,
            previousHash: previousHash, hash: "")
        entry.hash = entry.computedHash()
        return entry
    }

    /// The length of a pseudonym in bytes (shown as 32 hex digits).
    public static let pseudonymLength = 16

    /// The digest of a subject set: BLAKE2b-256 over the packed pseudonyms as stored.
    public static func digest(ofSubjectSet pseudonyms: [UInt8]) -> String? {
        guard !pseudonyms.isEmpty else { return nil }
        return Digest.hex(Digest.blake2b(pseudonyms))
    }
}

/// Compact JSON for the list-valued columns of the stored log (the same text as in the canonical form).
public enum AuditJSON {
    /// `["a","b"]`.
    public static func array(_ values: [String]) -> String { "[" + values.map(JSONWriter.quote).joined(separator: ",") + "]" }
    /// `{"k":1}` with sorted keys.
    public static func object(_ values: [String: Int]) -> String {
        "{" + values.keys.sorted().map { JSONWriter.quote($0) + ":" + String(values[$0]!) }.joined(separator: ",") + "}"
    }
}

/// Writes compact JSON objects with keys in the order given; the canonical form of audit entries.
struct JSONWriter {
    private var text = "{"
    // A flag, not `text.count > 1`: counting a String's characters walks all of it, on every member.
    private var empty = true

    mutating func key(_ name: String) {
        if !empty { text += "," }
        empty = false
        text += "\"\(name)\":"
    }

    mutating func field(_ name: String, _ value: String?) {
        key(name)
        text += value.map(Self.quote) ?? "null"
    }

    mutating func field(_ name: String, _ value: Int64) {
        key(name)
        text += String(value)
    }

    mutating func field(_ name: String, _ values: [String]) {
        key(name)
        text += "[" + values.map(Self.quote).joined(separator: ",") + "]"
    }

    mutating func field(_ name: String, _ values: [Int64]) {
        key(name)
        text += "[" + values.map(String.init).joined(separator: ",") + "]"
    }

    mutating func field(_ name: String, _ values: [String: Int]) {
        key(name)
        text += "{" + values.keys.sorted().map { Self.quote($0) + ":" + String(values[$0]!) }.joined(separator: ",") + "}"
    }

    func finished() -> String { text + "}" }

    /// A JSON string literal; control characters and non-ASCII are escaped, so lines stay one line and ASCII.
    static func quote(_ value: String) -> String {
        // Most values (ids, role and field names, reasons) are plain ASCII and need no escaping.
        if value.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
            return "\"" + value + "\""
        }
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value >= 0x7F:
                if scalar.value > 0xFFFF {
                    let v = scalar.value - 0x10000
                    out += String(format: "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF))
                } else {
                    out += String(format: "\\u%04x", scalar.value)
                }
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
