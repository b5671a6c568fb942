import Foundation

/// What the gate needs of a subject's row to open a value sealed with its data key, and to name it in the audit log:
/// the wrapped data key (never the key), the versions bound into every seal, and the pseudonym secret.
struct SubjectKeys: Sendable, Equatable {
    /// The key-encryption key version the data key is wrapped under.
    let kekVersion: UInt32
    /// The wrapped data key.
    let wrappedKey: Data
    /// The data key's version.
    let keyVersion: UInt32
    /// The secret behind the subject's audit pseudonym.
    let auditSecret: Data?
}

/// One fired trigger waiting for (or handled by) the campaign platform. The item and category are sealed with the
/// subject's key (`payload`); `occurrence` is a keyed hash of the trigger, the subject and the causing event.
struct QueuedTriggerRow: Sendable, Equatable {
    /// The queue entry's id, increasing.
    let id: Int64
    /// The trigger's name.
    let trigger: String
    /// The subject.
    let subjectID: Int64
    /// The keyed hash that makes an occurrence fire at most once.
    let occurrence: Data
    /// The sealed item and category.
    let payload: Data
    /// When the causing event happened (ms).
    let occurredAt: Int64
    /// When it fired (ms).
    let firedAt: Int64
    /// When the campaign platform acknowledged it (ms).
    let acknowledgedAt: Int64?
}

/// One outcome of an experiment for a subject (a send, an open, a click, a conversion, revenue).
struct OutcomeRow: Sendable, Equatable {
    /// A keyed hash of the experiment and the source's outcome id: an outcome counts once.
    let key: Data
    /// The experiment's name.
    let experiment: String
    /// The subject.
    let subjectID: Int64
    /// `send`, `open`, `click`, `conversion` or `revenue`.
    let kind: String
    /// 1 for counts; the amount for revenue.
    let value: Double
    /// When (ms).
    let time: Int64
}

/// A derived value as a store keeps it, with the keys of its subject: sealed with the subject's data key.
struct SealedDerived: Sendable, Equatable {
    /// The subject.
    let subjectID: Int64
    /// The sealed value.
    let sealed: Data
    /// The subject's keys, to open it.
    let keys: SubjectKeys
}

/// How many records a store holds, and its own metadata: no personal data (`consentry status`).
struct StoreCensus: Sendable, Equatable {
    /// Data subjects.
    let subjects: Int
    /// Identity index entries (unique and shared).
    let identities: Int
    /// Behavioral events.
    let events: Int
    /// Consent ledger records.
    let consentRecords: Int
    /// Derived values.
    let derivedRecords: Int
    /// Key-encryption keys held (more than one while a rotation is unfinished).
    let keks: Int
    /// When the vault was created (ms), if recorded.
    let createdAt: Int64?
    /// The newest applied schema migration.
    let schemaVersion: String?
}

/// A key-encryption key as a store keeps it: wrapped under the master key, never in clear.
struct KEKRecord: Sendable, Equatable {
    /// Its version, from 1.
    let version: UInt32
    /// The KEK wrapped under the master key.
    let wrapped: Data
    /// Whether new data keys are wrapped under it (`active`, exactly one) or it waits to be deleted (`retiring`).
    let active: Bool
    /// When it was made (ms).
    let createdAt: Int64
}

/// A subject's data key as wrapped, for key rotation.
struct WrappedDataKey: Sendable, Equatable {
    /// The subject.
    let subjectID: Int64
    /// The KEK version it is wrapped under.
    let kekVersion: UInt32
    /// The wrapped data key.
    let wrappedKey: Data
}

/// Which audit entries to read, as a store matches them: every condition is on the entry's own columns, and a
/// subject is named by its pseudonym (the gate derives it), never by its id.
struct AuditQuery: Sendable {
    /// The subject's pseudonym, as hex (single-subject entries) and as its 16 bytes (subject sets).
    var pseudonym: (hex: String, bytes: [UInt8])?
    var actor: String?
    var role: String?
    var purpose: String?
    var action: String?
    var decision: String?
    /// From this time on (ms).
    var since: Int64?
    /// Until this time (ms, exclusive).
    var until: Int64?
    /// The newest `limit` matching entries (in sequence order); nil for all.
    var limit: Int?
}

/// A purchase of a subject being erased, as a retention rule keeps it: no link to the subject.
struct PurchaseRecord: Sendable, Equatable {
    let time: Int64
    let itemID: String?
    let category: String?
    let amount: Double?
    let currency: String?
}

/// A record an erasure keeps for a legal obligation, detached from the erased subject.
struct RetainedRecord: Sendable, Equatable {
    /// The retention rule's kind (`purchase_events`).
    let kind: String
    /// The obligation.
    let reason: String
    /// When it may be deleted (ms).
    let retainUntil: Int64
    /// The kept fields, as a JSON object.
    let data: String
    /// When it was kept (ms).
    let createdAt: Int64
}
