/// One consent record as a store keeps it (append-only), with the binding the gate computed over its deciding columns.
struct ConsentRecordRow: Sendable, Equatable {
    let id: Int64
    let subjectID: Int64
    let purpose: String
    let state: String
    let time: Int64
    let source: String
    let noticeVersion: String?
    let evidence: String?
    let expiresAt: Int64?
    let recordedAt: Int64
    let binding: [UInt8]
}

/// One flag record (restriction, objection, opt-out, GPC, limit-sensitive) as a store keeps it (append-only).
struct FlagRecordRow: Sendable, Equatable {
    let id: Int64
    let subjectID: Int64
    let flag: String
    /// The purpose objected to; empty for the flags that apply to every purpose.
    let purpose: String
    /// 1 set, 0 cleared.
    let value: Int64
    let time: Int64
    let source: String
    let recordedAt: Int64
    let binding: [UInt8]
}
