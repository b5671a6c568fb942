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
