public import ConsentryCore
import ConsentryCrypto
import ConsentryPolicy
import Foundation
import GRDB

/// A flag about a subject that every decision takes into account.
public enum SubjectFlag: String, Sendable, Hashable, CaseIterable, Codable {
    /// Restriction of processing (GDPR Art. 18).
    case restriction
    /// Objection to a purpose (GDPR Art. 21); recorded per purpose.
    case objection
    /// Opt-out of sale and sharing (CCPA/CPRA).
    case optOutSaleShare = "opt_out_sale_share"
    /// A Global Privacy Control signal.
    case gpc
    /// A limit on the use of sensitive personal information (CPRA).
    case limitSensitive = "limit_sensitive"
}

/// One record of the consent ledger, as shown by `consent show` (no personal data but the subject's id).
public struct ConsentRecordInfo: Sendable, Codable, Equatable {
    /// The record id.
    public var id: Int64
    /// The purpose.
    public var purpose: String
    /// `granted`, `withdrawn`, `pending` or `confirmed`.
    public var state: String
    /// When it happened (RFC 3339).
    public var time: String
    /// Where it came from (form, import, api, preference_centre, …).
    public var source: String
    /// The version of the privacy notice shown.
    public var noticeVersion: String?
    /// A reference to the evidence (form submission id, signed document).
    public var evidence: String?
    /// When the consent expires (RFC 3339), if it does.
    public var expiresAt: String?
}

/// The consent and flag state of one subject, with the ledger records it was derived from.
struct DerivedState {
    var state = SubjectState()
    /// The record behind each purpose's current status.
    var recordIDs: [Purpose: Int64] = [:]

    /// Applies one consent record (records come oldest first; the newest per purpose counts). `ordinal` is the
    /// purpose's ``Purpose/ordinal`` and `code` the state as the ledger query maps it; unknown ones are skipped.
    mutating func applyConsent(ordinal: Int, code: Int, expiresAt: Int64?, id: Int64, now: Int64, withRecordID: Bool) {
        guard ordinal >= 0, ordinal < Purpose.allCases.count, code > 0, code <= 4 else { return }
        let purpose = Purpose.allCases[ordinal]
        var status: ConsentStatus = [.none, .granted, .pending, .confirmed, .withdrawn][code]
        if let expiresAt, expiresAt <= now, status == .granted || status == .confirmed { status = .expired }
        state.setConsent(status, for: purpose)
        if withRecordID { recordIDs[purpose] = id }
    }

    /// Applies one flag record (oldest first; the newest per flag, and purpose for objections, counts).
    mutating func applyFlag(_ flag: String, purpose: String, on: Bool) {
        switch SubjectFlag(rawValue: flag) {
        case .restriction: state.restricted = on
        case .optOutSaleShare: state.saleOptOut = on
        case .gpc: state.globalPrivacyControl = on
        case .limitSensitive: state.limitSensitive = on
        case .objection:
            guard let purpose = Purpose(rawValue: purpose) else { return }
            if on { state.objections.insert(purpose) } else { state.objections.remove(purpose) }
        case nil: return
        }
    }
}

extension Vault {
    /// Applies the ledger records of subjects `low…high` that are newer than `after` (consent id, flag id) on top of
    /// `states`, oldest first. Because both ledgers are append-only and the newest record counts, applying the
    /// records added since an earlier derivation brings it up to date. Returns the newest ids seen.
    func applyLedger(
        _ db: Database, from low: Int64, to high: Int64, after: (consent: Int64, flag: Int64), withRecordIDs: Bool,
        to states: inout [Int64: DerivedState]
    ) throws -> (consent: Int64, flag: Int64) {
        var newest = after
        let now = nowMillis
        let verifier = RecordBinding.LedgerVerifier(keys.recordBinding)
        let binder = keys.recordBinding
        try SQLiteLedgerRows.forEachConsent(subjects: low, high, after: after.consent, db) { record in
            // INVARIANT: a ledger record counts only when its binding verifies; an edited or forged one stops the decision.
            guard verifier.consentMatches(record) else { throw Self.unboundLedger }
            states[record.subject, default: DerivedState()].applyConsent(
                ordinal: record.purposeOrdinal, code: record.stateCode, expiresAt: record.expiresAt, id: record.id, now: now,
                withRecordID: withRecordIDs)
            newest.consent = max(newest.consent, record.id)
        }
        try SQLiteLedgerRows.forEachFlag(subjects: low, high, after: after.flag, db) { row in
            let expected = RecordBinding.flag(
                binder, id: row.id, subject: row.subjectID, flag: row.flag, purpose: row.purpose, value: row.value, time: row.time, source: row.source,
                recordedAt: row.recordedAt)
            guard row.binding.count == expected.count, Digest.equal(row.binding, expected) else { throw Self.unboundLedger }
            states[row.subjectID, default: DerivedState()].applyFlag(row.flag, purpose: row.purpose, on: row.value == 1)
            newest.flag = max(newest.flag, row.id)
        }
        return newest
    }

    /// A consent or flag record whose binding fails: the ledger was edited in the file, so no decision can rest on it.
    static let unboundLedger = GateError(
        .integrity,
        "a consent or flag record fails its binding (edited or forged in the database file); nothing was released, run `consentry check` and restore the vault from a backup"
    )

    /// The current consent and flag state of one subject, derived from its ledger records.
    ///
    /// Per purpose the newest record counts; `pending` followed by `confirmed` is confirmed; a granted or
    /// confirmed consent whose expiry has passed is expired. Per flag (and purpose, for objections) the
    /// newest record counts.
    func derivedState(of subject: SubjectID, db: Database) throws -> DerivedState {
        var states: [Int64: DerivedState] = [:]
        _ = try applyLedger(db, from: subject.rawValue, to: subject.rawValue, after: (0, 0), withRecordIDs: true, to: &states)
        return states[subject.rawValue] ?? DerivedState()
    }

    /// A reference made ready for look-up: normalized and hashed, which needs no database.
    enum IdentityLookup {
        case subject(SubjectID)
        case request(String)
        case triggerEntry(Int64)
        case hash(IdentityKind, [UInt8])
        case invalid
    }

    func identityLookup(_ reference: SubjectReference) -> IdentityLookup {
        switch reference {
        case .subject(let id): return .subject(id)
        case .request(let id): return RequestIDs.isValid(id) ? .request(id) : .invalid
        case .triggerEntry(let id): return .triggerEntry(id)
        case .email(let raw):
            guard let value = try? Normalize.email(raw) else { return .invalid }
            return .hash(.email, keys.blindIndex.index(.email, value))
        case .customerID(let raw):
            guard let value = try? Normalize.customerID(raw) else { return .invalid }
            return .hash(.customerID, keys.blindIndex.index(.customerID, value))
        }
    }

    /// Resolves a prepared look-up inside a transaction.
    func resolve(_ lookup: IdentityLookup, db: Database) throws -> SubjectID? {
        switch lookup {
        case .subject(let id):
            return try SQLiteReadRows.subjectExists(id.rawValue, db) ? id : nil
        case .hash(let kind, let hash): return try ProfileIngest.lookup(kind, hash, binder: keys.recordBinding, db: db)
        case .request(let id):
            // INVARIANT: a verification unlocks its own request's subject only, and only while the request is open.
            guard let row = try SQLiteRequestRows.request(id, db), row.verifiedAt != nil,
                row.status != RequestStatus.completed.rawValue, row.status != RequestStatus.rejected.rawValue
            else { return nil }
            if let bound = row.subjectID { return try resolve(SubjectReference.subject(SubjectID(rawValue: bound)), db: db) }
            // No subject matched when the request was opened; one may have been imported since.
            guard let sealed = try openRequestData(row) else { return nil }
            let found = try [sealed.email.map(SubjectReference.email), sealed.customerID.map(SubjectReference.customerID)].compactMap { $0 }
                .compactMap { try resolve($0, db: db) }
            return Set(found).count == 1 ? found.first : nil
        case .triggerEntry(let id):
            return try SQLiteQueueRows.entry(id, db).map { SubjectID(rawValue: $0.subjectID) }
        case .invalid: return nil
        }
    }

    /// Resolves a reference to a subject inside a transaction.
    func resolve(_ reference: SubjectReference, db: Database) throws -> SubjectID? {
        try resolve(identityLookup(reference), db: db)
    }

    func auditSecret(of subject: SubjectID, db: Database) throws -> Data? {
        try SQLiteReadRows.auditSecret(of: subject.rawValue, db)
    }
}

/// How a caller names a subject: by an identifier (looked up through its blind index) or by id.
public enum SubjectReference: Sendable, Hashable {
    /// By e-mail address (normalized first).
    case email(String)
    /// By customer id.
    case customerID(String)
    /// By the vault's internal id.
    case subject(SubjectID)
    /// The subject of a verified, open data-subject request.
    case request(String)
    /// The subject of a queued trigger entry (a campaign platform renders for it without learning an identifier).
    case triggerEntry(Int64)
}
