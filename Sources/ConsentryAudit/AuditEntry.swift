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
    public var canonicalText: String { String(decoding: canonicalBytes(columns), as: UTF8.self) }

    /// The text-valued list members as compact JSON, as stored in their columns.
    public var columns: AuditColumns {
        AuditColumns(fields: AuditJSON.array(fields), counts: AuditJSON.object(counts), reasons: AuditJSON.array(reasons))
    }

    /// The canonical text's UTF-8, after `prefix`, with the list-valued members taken from `columns`.
    private func canonicalBytes(_ columns: AuditColumns, prefix: String = "") -> [UInt8] {
        var json = JSONWriter(prefix: prefix)
        json.field("sequence", sequence)
        json.field("time", time)
        json.field("actor", actor)
        json.field("role", role)
        json.field("action", action)
        json.field("purpose", purpose)
        json.field("subject", subject)
        json.field("subject_count", Int64(subjectCount))
        json.field("subject_set_digest", subjectSetDigest)
        json.field("fields", json: columns.fields)
        json.field("counts", json: columns.counts)
        json.field("decision", decision)
        json.field("reasons", json: columns.reasons)
        json.field("policy_version", policyVersion)
        json.field("consent_record_ids", json: "[" + consentRecordIDs.map(String.init).joined(separator: ",") + "]")
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
    public func computedHash() -> String { computedHash(columns) }

    private func computedHash(_ columns: AuditColumns) -> String {
        Digest.hex(Digest.blake2b(canonicalBytes(columns, prefix: previousHash + "\n")))
    }

    /// Chains a draft after the entry with `previous` hash.
    public static func chain(_ draft: AuditDraft, sequence: Int64, time: Int64, previousHash: String, subjectSetDigest: String?) -> AuditEntry {
        chained(draft, sequence: sequence, time: time, previousHash: previousHash, subjectSetDigest: subjectSetDigest).entry
    }

    /// ``chain(_:sequence:time:previousHash:subjectSetDigest:)``, also handing back the list-valued members as JSON
    /// (the stored columns), which the hash was computed over: a writer need not render them twice.
    public static func chained(
        _ draft: AuditDraft, sequence: Int64, time: Int64, previousHash: String, subjectSetDigest: String?
    ) -> (entry: AuditEntry, columns: AuditColumns) {
        var entry = AuditEntry(
            sequence: sequence, time: time, actor: draft.actor, role: draft.role?.rawValue, action: draft.action.rawValue,
            purpose: draft.purpose?.rawValue, subject: draft.subject,
            subjectCount: draft.subject != nil ? 1 : draft.subjectSet.count / AuditEntry.pseudonymLength,
            subjectSetDigest: subjectSetDigest, fields: draft.fields, counts: draft.counts, decision: draft.decision.rawValue,
            reasons: draft.reasons, policyVersion: draft.policyVersion, consentRecordIDs: draft.consentRecordIDs, requestID: draft.requestID,
            previousHash: previousHash, hash: "")
        let columns = entry.columns
        entry.hash = entry.computedHash(columns)
        return (entry, columns)
    }

    /// The length of a pseudonym in bytes (shown as 32 hex digits).
    public static let pseudonymLength = 16

    /// The digest of a subject set: BLAKE2b-256 over the packed pseudonyms as stored.
    public static func digest(ofSubjectSet pseudonyms: [UInt8]) -> String? {
        guard !pseudonyms.isEmpty else { return nil }
        return Digest.hex(Digest.blake2b(pseudonyms))
    }
}

/// The text-valued list members of an entry as compact JSON: the text of their stored columns and of the canonical text.
public struct AuditColumns: Sendable, Equatable {
    /// `fields`, such as `["email","first_name"]`.
    public let fields: String
    /// `counts`, keys sorted, such as `{"permitted":3}`.
    public let counts: String
    /// `reasons`.
    public let reasons: String
}

/// Compact JSON for the list-valued columns of the stored log (the same text as in the canonical form).
public enum AuditJSON {
    /// `["a","b"]`.
    public static func array(_ values: [String]) -> String {
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (i, value) in values.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendQuoted(value, to: &out)
        }
        out.append(UInt8(ascii: "]"))
        return String(decoding: out, as: UTF8.self)
    }

    /// `{"k":1}` with sorted keys.
    public static func object(_ values: [String: Int]) -> String {
        var out: [UInt8] = [UInt8(ascii: "{")]
        for (i, key) in values.keys.sorted().enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            JSONWriter.appendQuoted(key, to: &out)
            out.append(UInt8(ascii: ":"))
            out.append(contentsOf: String(values[key]!).utf8)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }
}

/// Writes compact JSON objects with keys in the order given, as UTF-8; the canonical form of audit entries.
struct JSONWriter {
    private var bytes: [UInt8]
    // A flag, not a look at `bytes`: a prefix may come before the object.
    private var empty = true

    /// Starts an object after `prefix` (the hash covers the previous hash, a newline, then the object).
    init(prefix: String = "") {
        bytes = Array(prefix.utf8)
        bytes.reserveCapacity(bytes.count + 512)
        bytes.append(UInt8(ascii: "{"))
    }

    mutating func key(_ name: String) {
        if !empty { bytes.append(UInt8(ascii: ",")) }
        empty = false
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: name.utf8)
        bytes.append(contentsOf: "\":".utf8)
    }

    mutating func field(_ name: String, _ value: String?) {
        key(name)
        if let value { Self.appendQuoted(value, to: &bytes) } else { bytes.append(contentsOf: "null".utf8) }
    }

    mutating func field(_ name: String, _ value: Int64) {
        key(name)
        bytes.append(contentsOf: String(value).utf8)
    }

    /// A member whose value is JSON text already.
    mutating func field(_ name: String, json: String) {
        key(name)
        bytes.append(contentsOf: json.utf8)
    }

    func finished() -> [UInt8] { bytes + [UInt8(ascii: "}")] }

    /// Appends `value` as a JSON string literal to `out`; control characters and non-ASCII are escaped, so lines stay
    /// one line and ASCII.
    static func appendQuoted(_ value: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Most values (ids, role and field names, reasons) are plain ASCII and need no escaping: checked and copied
        // as one buffer.
        func plain(_ byte: UInt8) -> Bool { byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") }
        let copied =
            value.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
                guard bytes.allSatisfy(plain) else { return false }
                out.append(contentsOf: bytes)
                return true
            } ?? false
        if !copied {
            for scalar in value.unicodeScalars {
                switch scalar {
                case "\"": out.append(contentsOf: "\\\"".utf8)
                case "\\": out.append(contentsOf: "\\\\".utf8)
                case "\n": out.append(contentsOf: "\\n".utf8)
                case "\r": out.append(contentsOf: "\\r".utf8)
                case "\t": out.append(contentsOf: "\\t".utf8)
                case _ where scalar.value < 0x20 || scalar.value >= 0x7F:
                    if scalar.value > 0xFFFF {
                        let v = scalar.value - 0x10000
                        appendEscape(0xD800 + (v >> 10), to: &out)
                        appendEscape(0xDC00 + (v & 0x3FF), to: &out)
                    } else {
                        appendEscape(scalar.value, to: &out)
                    }
                default: out.append(UInt8(scalar.value))
                }
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// `\\uXXXX` in lower-case hex.
    private static func appendEscape(_ unit: UInt32, to out: inout [UInt8]) {
        let digits = Array("0123456789abcdef".utf8)
        out.append(contentsOf: "\\u".utf8)
        for shift in stride(from: 12, through: 0, by: -4) { out.append(digits[Int((unit >> UInt32(shift)) & 0xF)]) }
    }
}
