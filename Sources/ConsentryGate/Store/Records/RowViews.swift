import Foundation

// Views of stored rows that the hot paths (every gated read, every scan, every profile import) walk without copying:
// the store fills one from its own buffers and hands it to a callback, and its pointers are valid only during that
// call. Decoding each column into a Swift value first cost more than the work done with it (the record binding's hash,
// the opening of a seal); profiles of the scan and the API's reads showed it.

/// One consent record, as the ledger walk receives it.
struct ConsentRecordView {
    /// The record's id (the ledger's order).
    var id: Int64
    /// The subject's id.
    var subject: Int64
    /// The purpose's ``ConsentryCore/Purpose/ordinal``, or -1 for a purpose this build does not know.
    var purposeOrdinal: Int
    /// The state as a code: 1 granted, 2 pending, 3 confirmed, 4 withdrawn, 0 anything else.
    var stateCode: Int
    /// The purpose's name (UTF-8).
    var purpose: UnsafeRawBufferPointer
    /// The state's name (UTF-8).
    var state: UnsafeRawBufferPointer
    /// When the consent was given or withdrawn (ms).
    var time: Int64
    /// Where it came from (UTF-8).
    var source: UnsafeRawBufferPointer
    /// The notice version shown (UTF-8), or nil.
    var noticeVersion: UnsafeRawBufferPointer?
    /// The evidence reference (UTF-8), or nil.
    var evidence: UnsafeRawBufferPointer?
    /// When the consent expires (ms), or nil.
    var expiresAt: Int64?
    /// When the vault recorded it (ms).
    var recordedAt: Int64
    /// The stored record binding (empty when there is none).
    var binding: UnsafeRawBufferPointer

    /// The code of a state name, as ``stateCode`` holds it.
    static func code(ofState state: String) -> Int {
        switch state {
        case "granted": 1
        case "pending": 2
        case "confirmed": 3
        case "withdrawn": 4
        default: 0
        }
    }
}

/// One subject's sealed row, as a read or a scan receives it: what opening its fields needs, never a key.
struct SealedSubjectView {
    /// The subject's id.
    var subject: Int64
    /// The key-encryption key version its data key is wrapped under.
    var kekVersion: UInt32
    /// The wrapped data key.
    var wrappedKey: UnsafeRawBufferPointer
    /// The data key's version.
    var keyVersion: UInt32
    /// The sealed profile (``PackedFields``), or nil when the row has none.
    var fields: UnsafeRawBufferPointer?
    /// The secret behind the subject's audit pseudonym (empty when there is none).
    var auditSecret: UnsafeRawBufferPointer
}

/// Which subjects a walk of the subject table covers, in id order.
enum SubjectRange {
    /// Every subject.
    case all
    /// The subjects whose ids lie in the range.
    case ids(ClosedRange<Int64>)
    /// One subject.
    case one(Int64)
}
