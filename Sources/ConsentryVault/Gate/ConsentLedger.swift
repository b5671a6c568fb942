public import ConsentryCore
public import ConsentryPolicy
import ConsentryCrypto
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
}

extension Vault {
    /// Derives the current state of the subjects with ids in `range` from the consent ledger and flags.
    ///
    /// Per purpose the newest record counts; `pending` followed by `confirmed` is confirmed; a granted or
    /// confirmed consent whose expiry has passed is expired. Per flag (and purpose, for objections) the
    /// newest record counts.
    func derivedStates(_ db: Database, from low: Int64, to high: Int64) throws -> [Int64: DerivedState] {
        var states: [Int64: DerivedState] = [:]
        let now = nowMillis
        let consents = try Row.fetchCursor(
            db.cachedStatement(sql: "SELECT subject_id, purpose, state, expires_at, id FROM consent_record WHERE subject_id BETWEEN ? AND ? ORDER BY id"),
            arguments: [low, high])
        while let row = try consents.next() {
            guard let purpose = Purpose(rawValue: row[1]), let recorded = ConsentState(rawValue: row[2]) else { continue }
            let expiresAt: Int64? = row[3]
            var status: ConsentStatus
            switch recorded {
            case .granted: status = .granted
            case .withdrawn: status = .withdrawn
            case .pending: status = .pending
            case .confirmed: status = .confirmed
            }
            if let expiresAt, expiresAt <= now, status == .granted || status == .confirmed { status = .expired }
            states[row[0], default: DerivedState()].state.consents[purpose.ordinal] = status
            states[row[0], default: DerivedState()].recordIDs[purpose] = row[4]
        }
        let flags = try Row.fetchCursor(
            db.cachedStatement(sql: "SELECT subject_id, flag, purpose, value FROM subject_flag WHERE subject_id BETWEEN ? AND ? ORDER BY id"),
            arguments: [low, high])
        while let row = try flags.next() {
            let on = (row[3] as Int64) == 1
            let id: Int64 = row[0]
            switch SubjectFlag(rawValue: row[1]) {
            case .restriction: states[id, default: DerivedState()].state.restricted = on
            case .optOutSaleShare: states[id, default: DerivedState()].state.saleOptOut = on
            case .gpc: states[id, default: DerivedState()].state.globalPrivacyControl = on
            case .objection:
                if let purpose = Purpose(rawValue: row[2]) {
                    if on {
                        states[id, default: DerivedState()].state.objections.insert(purpose)
                    } else {
                        states[id, default: DerivedState()].state.objections.remove(purpose)
                    }
                }
            case nil: continue
            }
        }
        return states
    }

    /// Resolves a reference to a subject inside a transaction.
    func resolve(_ reference: SubjectReference, db: Database) throws -> SubjectID? {
        switch reference {
        case .subject(let id):
            return try Int64.fetchOne(db.cachedStatement(sql: "SELECT id FROM subject WHERE id = ?"), arguments: [id.rawValue]).map(SubjectID.init(rawValue:))
        case .email(let raw):
            guard let value = try? Normalize.email(raw) else { return nil }
            return try ProfileIngest.lookup(.email, keys.blindIndex.index(.email, value), db: db)
        case .customerID(let raw):
            guard let value = try? Normalize.customerID(raw) else { return nil }
            return try ProfileIngest.lookup(.customerID, keys.blindIndex.index(.customerID, value), db: db)
        }
    }

    func auditSecret(of subject: SubjectID, db: Database) throws -> Data? {
        try Data.fetchOne(db.cachedStatement(sql: "SELECT audit_secret FROM subject WHERE id = ?"), arguments: [subject.rawValue])
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
}
