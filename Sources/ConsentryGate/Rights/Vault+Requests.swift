import ConsentryAudit
public import ConsentryCore
import ConsentryCrypto
import ConsentryPolicy
public import Foundation
import GRDB

/// A data-subject request as stored: its lifecycle and deadlines. Holds no personal data; the requester's
/// identifiers and the details are sealed in the vault and never part of this record.
public struct RequestRecord: Sendable, Codable, Equatable {
    /// `dsr_` and 16 hex digits, random.
    public var id: String
    /// The kind of request.
    public var type: RequestType
    /// The law it is made under.
    public var regime: Regime
    /// Where it stands.
    public var status: RequestStatus
    /// Whether the identifiers matched a subject in the vault when the request was opened or last acted on.
    public var subjectFound: Bool
    /// When it was received (ms since 1970).
    public var receivedAt: Int64
    /// CCPA: when receipt must be confirmed by (ms).
    public var confirmDueAt: Int64?
    /// When the answer is due (ms), before any extension.
    public var dueAt: Int64
    /// The extended deadline (ms), once extended.
    public var extendedDueAt: Int64?
    /// Why it was extended.
    public var extensionReason: String?
    /// Why it was rejected.
    public var rejectionReason: String?
    /// When the current verification code expires (ms).
    public var codeExpiresAt: Int64?
    /// Wrong codes entered for the current code.
    public var codeAttempts: Int
    /// When the requester was verified (ms).
    public var verifiedAt: Int64?
    /// When it was completed or rejected (ms).
    public var completedAt: Int64?
    /// What fulfilment did (JSON written by the fulfilment).
    public var outcome: String?
    /// The signed erasure receipt (JSON).
    public var receipt: String?
    /// The export file, relative to the vault directory.
    public var exportFile: String?
    /// Whether the requester's identifiers are still held (sealed); they are deleted when the identifier retention ends.
    public var identifiersKept: Bool
    /// Last change (ms).
    public var updatedAt: Int64

    /// The deadline in force: the extended one when extended.
    public var effectiveDueAt: Int64 { extendedDueAt ?? dueAt }
}

/// The identifiers a request was opened with. Personal data: sealed at rest, never logged.
public struct RequestIdentifiers: Sendable, Codable, Equatable {
    /// The e-mail address the subject gave.
    public var email: String?
    /// The customer id the subject gave.
    public var customerID: String?

    /// Creates identifiers.
    public init(email: String? = nil, customerID: String? = nil) {
        self.email = email
        self.customerID = customerID
    }
}

/// The outcome of entering a verification code.
public enum CodeCheck: Sendable, Equatable {
    /// The code was right: the request is verified.
    case verified
    /// Wrong code; this many attempts remain.
    case wrong(remaining: Int)
    /// The code expired; issue a new one.
    case expired
    /// Too many wrong codes; issue a new one.
    case locked
}

/// What the vault keeps sealed for a request: the identifiers given, and after an erasure the subject's former id
/// and known identifier values, which `verify-erasure` searches for.
struct SealedRequestData: Codable {
    var email: String?
    var customerID: String?
    var details: String?
    var erasedSubject: Int64?
    var known: [String]?
    /// What the erasure did, kept sealed until its verification passes and the receipt is signed.
    var pendingReceipt: ErasureReceipt?
}

extension Vault {
    /// The vault's clock, in milliseconds since 1970 (a fixed clock in tests).
    public var currentTimeMillis: Int64 { nowMillis }

    /// The public record of a stored request.
    static func requestRecord(_ row: RequestRow) throws(GateError) -> RequestRecord {
        guard let type = RequestType(rawValue: row.type), let regime = Regime(rawValue: row.regime), let status = RequestStatus(rawValue: row.status)
        else { throw GateError(.integrity, "request \(row.id) has an unknown type, regime or status") }
        return RequestRecord(
            id: row.id, type: type, regime: regime, status: status, subjectFound: row.subjectID != nil, receivedAt: row.receivedAt,
            confirmDueAt: row.confirmDueAt, dueAt: row.dueAt, extendedDueAt: row.extendedDueAt, extensionReason: row.extensionReason,
            rejectionReason: row.rejectionReason, codeExpiresAt: row.codeExpiresAt, codeAttempts: row.codeAttempts, verifiedAt: row.verifiedAt,
            completedAt: row.completedAt, outcome: row.outcome, receipt: row.receipt, exportFile: row.exportFile,
            identifiersKept: row.identifiers != nil, updatedAt: row.updatedAt)
    }

    /// Request `id` in the operation's transaction; not found is an error that says how to list them.
    func loadRequestRow(_ id: String, _ tx: SQLiteTransaction) async throws -> RequestRow {
        guard RequestIDs.isValid(id), let row = try await tx.request(id) else { throw Self.requestNotFound(id) }
        return row
    }

    /// ``loadRequestRow(_:_:)`` as its public record.
    func loadRequest(_ id: String, _ tx: SQLiteTransaction) async throws -> RequestRecord {
        try Self.requestRecord(try await loadRequestRow(id, tx))
    }

    /// ``loadRequest(_:_:)`` for the synchronous paths (erasure verification).
    func loadRequest(_ id: String, db: Database) throws -> RequestRecord {
        guard RequestIDs.isValid(id), let row = try SQLiteRequestRows.request(id, db) else { throw Self.requestNotFound(id) }
        return try Self.requestRecord(row)
    }

    static func requestNotFound(_ id: String) -> GateError {
        GateError(.notFound, "no request `\(id)`; `consentry dsr list` shows the requests")
    }

    func sealRequestData(_ data: SealedRequestData, id: String) throws -> Data {
        let json = try JSONEncoder().encode(data)
        return Data(
            Sealing.seal(
                String(decoding: json, as: UTF8.self), key: keys.requestSealing.key, associatedData: Array("dsr|\(id)".utf8),
                nonces: NonceSource(blockNonces: 1)))
    }

    /// The sealed data of a stored request, opened; nil once its identifiers were deleted.
    func openRequestData(_ row: RequestRow) throws -> SealedRequestData? {
        guard let sealed = row.identifiers else { return nil }
        guard
            let text = sealed.withUnsafeBytes({ Sealing.openString($0, key: keys.requestSealing.key, associatedData: Array("dsr|\(row.id)".utf8)) })
        else { throw GateError(.integrity, "the sealed identifiers of request \(row.id) failed their integrity check") }
        return try JSONDecoder().decode(SealedRequestData.self, from: Data(text.utf8))
    }

    /// ``openRequestData(_:)`` of request `id`, for the synchronous paths (resolving a request's subject).
    func openRequestData(_ id: String, db: Database) throws -> SealedRequestData? {
        guard let row = try SQLiteRequestRows.request(id, db) else { return nil }
        return try openRequestData(row)
    }

    /// Audits a step of a request's lifecycle inside the caller's transaction. Entries name the request, never the subject:
    /// after an erasure nothing links the request to the subject's earlier audit entries.
    @discardableResult
    func auditRequestStep(_ id: String, _ step: String, decision: Decision, actor: String, role: Role, db: Database) throws -> AuditEntry {
        try audit(requestStep(id, step, decision: decision, actor: actor, role: role), db: db)
    }

    /// The audit entry of one step of request `id`, recorded under the `dsr_manage` decision.
    func requestStep(_ id: String, _ step: String, decision: Decision, actor: String, role: Role) -> AuditDraft {
        var entry = draft(AccessRequest(actor: actor, role: role, action: .dsrManage), decision, requestID: id)
        entry.reasons.append(step)
        return entry
    }

    /// Opens a data-subject request: resolves the identifiers to a subject (if any), seals them, and audits it.
    ///
    /// With an `idempotencyKey` already used, returns the request it opened instead of opening another.
    /// - Parameters:
    ///   - deadlines: the due date and (CCPA) the confirmation date for a request received at the given time.
    /// - Throws: ``GateError`` `invalidInput` when no identifier is given, one is malformed, or the two name different subjects.
    public func openRequest(
        type: RequestType, regime: Regime, identifiers: RequestIdentifiers, details: String?, idempotencyKey: String? = nil,
        as principal: Principal, deadlines: (Int64) -> (due: Int64, confirmBy: Int64?)
    ) async throws(GateError) -> RequestRecord {
        let (actor, role) = (principal.actor, principal.role)
        let request = AccessRequest(actor: actor, role: role, action: .dsrManage)
        var lookups: [IdentityLookup] = []
        if let email = identifiers.email {
            guard case .hash = identityLookup(.email(email)) else {
                throw GateError(.invalidInput, "the e-mail address is not valid; give the address the subject uses with the vault")
            }
            lookups.append(identityLookup(.email(email)))
        }
        if let customerID = identifiers.customerID {
            guard case .hash = identityLookup(.customerID(customerID)) else {
                throw GateError(.invalidInput, "the customer id is empty or malformed; give the id as the source systems write it")
            }
            lookups.append(identityLookup(.customerID(customerID)))
        }
        guard !lookups.isEmpty else { throw GateError(.invalidInput, "a request names the subject: give an e-mail address, a customer id or both") }
        if let key = idempotencyKey, key.isEmpty || key.count > 200 {
            throw GateError(.invalidInput, "the idempotency key must be 1 to 200 characters")
        }
        let record = try await perform(request, requestID: nil, failure: "open the request (nothing was stored)") { scope -> RequestRecord in
            if let key = idempotencyKey, let existing = try await scope.tx.requestID(idempotencyKey: key) {
                // A replay opens nothing: the first opening is the one on record.
                scope.records = false
                return try await loadRequest(existing, scope.tx)
            }
            let db = scope.db
            let subjects = Set(try lookups.compactMap { try resolve($0, db: db) })
            guard subjects.count <= 1 else {
                throw GateError(
                    .invalidInput, "the e-mail address and the customer id belong to two different subjects; open one request for each")
            }
            let id = RequestIDs.new()
            let now = nowMillis
            let due = deadlines(now)
            let sealed = try sealRequestData(
                SealedRequestData(email: identifiers.email, customerID: identifiers.customerID, details: details), id: id)
            let row = RequestRow(
                id: id, type: type.rawValue, regime: regime.rawValue, status: RequestStatus.received.rawValue, subjectID: subjects.first?.rawValue,
                identifiers: sealed, receivedAt: now, confirmDueAt: due.confirmBy, dueAt: due.due, codeAttempts: 0, idempotencyKey: idempotencyKey,
                updatedAt: now)
            try await scope.tx.insertRequest(row)
            scope.requestStep(id, "opened: \(type.rawValue) under \(regime.rawValue)\(subjects.isEmpty ? "; no subject matches" : "")")
            return try Self.requestRecord(row)
        }
        return record
    }

    /// One request.
    public func request(_ id: String, as principal: Principal) async throws(GateError) -> RequestRecord {
        let (actor, role) = (principal.actor, principal.role)
        _ = try await requireAdministrative(.dsrManage, actor: actor, role: role, requestID: id)
        let row: RequestRow?
        do { row = RequestIDs.isValid(id) ? try await store.request(id) : nil } catch { throw Self.storageError(error, "read the request") }
        guard let row else { throw Self.requestNotFound(id) }
        return try Self.requestRecord(row)
    }

    /// Requests, oldest first, optionally only those in one status.
    public func requests(status: RequestStatus? = nil, as principal: Principal) async throws(GateError) -> [RequestRecord] {
        let (actor, role) = (principal.actor, principal.role)
        _ = try await requireAdministrative(.dsrManage, actor: actor, role: role, requestID: nil)
        let rows: [RequestRow]
        do { rows = try await store.requests(status: status?.rawValue) } catch { throw Self.storageError(error, "list the requests") }
        return try rows.map { row throws(GateError) in try Self.requestRecord(row) }
    }

    /// Changes a request in one transaction with its audit entry. `body` gets the current record and returns the
    /// step to audit; the vault stores the status, deadline, reasons, outcome and export file it sets.
    ///
    /// Fail closed: a request cannot become `in_progress` or `completed` unless it was verified, whatever `body` does.
    public func updateRequest(
        _ id: String, as principal: Principal, _ body: (inout RequestRecord) throws(GateError) -> String
    ) async throws(GateError) -> RequestRecord {
        let (actor, role) = (principal.actor, principal.role)
        let request = AccessRequest(actor: actor, role: role, action: .dsrManage)
        let record = try await perform(request, requestID: id, failure: "update request \(id) (nothing was changed)") { scope -> RequestRecord in
            var row = try await loadRequestRow(id, scope.tx)
            var record = try Self.requestRecord(row)
            let step = try body(&record)
            if (record.status == .inProgress || record.status == .completed) && record.verifiedAt == nil {
                throw GateError(.invalidInput, "request \(id) is not verified; enter the verification code with `consentry dsr verify` first")
            }
            // The body changes the lifecycle only: status, deadline extension, reasons, completion, outcome, export file.
            row.status = record.status.rawValue
            row.extendedDueAt = record.extendedDueAt
            row.extensionReason = record.extensionReason
            row.rejectionReason = record.rejectionReason
            row.completedAt = record.completedAt
            row.outcome = record.outcome
            row.exportFile = record.exportFile
            row.updatedAt = nowMillis
            try await scope.tx.updateRequest(row)
            scope.requestStep(id, step)
            return try Self.requestRecord(row)
        }
        return record
    }

    /// Issues a new one-time verification code for a request (any earlier code stops working) and returns it once.
    /// Only its keyed hash is stored; it expires after `rights.yaml` `code_ttl_hours`.
    public func issueVerificationCode(_ id: String, as principal: Principal) async throws(GateError) -> (record: RequestRecord, code: String) {
        let (actor, role) = (principal.actor, principal.role)
        let request = AccessRequest(actor: actor, role: role, action: .dsrManage)
        let ttl = Int64(loadedPolicy?.rights.codeTTLHours ?? 24) * 3_600_000
        // 8 decimal digits from 64 random bits: the modulo bias is below 10^-11.
        let random = SecureRandom.bytes(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let code = String(format: "%08llu", random % 100_000_000)
        let record = try await perform(request, requestID: id, failure: "issue a verification code (none was issued)") { scope -> RequestRecord in
            var row = try await loadRequestRow(id, scope.tx)
            guard row.status == RequestStatus.received.rawValue || row.status == RequestStatus.verifying.rawValue else {
                throw GateError(.invalidInput, "request \(id) is \(row.status); only a request awaiting verification takes a code")
            }
            row.status = RequestStatus.verifying.rawValue
            row.codeHash = Data(codeHash(id: id, subject: row.subjectID ?? 0, code: code))
            row.codeExpiresAt = nowMillis + ttl
            row.codeAttempts = 0
            row.updatedAt = nowMillis
            try await scope.tx.updateRequest(row)
            scope.requestStep(id, "verification code issued")
            return try Self.requestRecord(row)
        }
        return (record, code)
    }

    /// The code's keyed hash binds the request and the subject it was issued for: a code never verifies another request.
    private func codeHash(id: String, subject: Int64, code: String) -> [UInt8] {
        keys.requestCodes.hash(tag: 0x31, "\(id)|\(subject)|\(code)")
    }

    /// Checks a verification code. A wrong code counts an attempt (audited); after `max_attempts` the code is locked.
    public func checkVerificationCode(_ id: String, code: String, as principal: Principal) async throws(GateError) -> (
        record: RequestRecord, check: CodeCheck
    ) {
        let (actor, role) = (principal.actor, principal.role)
        let request = AccessRequest(actor: actor, role: role, action: .dsrManage)
        let maxAttempts = loadedPolicy?.rights.maxAttempts ?? 5
        let result = try await perform(request, requestID: id, failure: "check the verification code") { scope -> (RequestRecord, CodeCheck) in
            var row = try await loadRequestRow(id, scope.tx)
            guard row.status == RequestStatus.verifying.rawValue, let stored = row.codeHash else {
                throw GateError(
                    .invalidInput, "request \(id) is \(row.status) and has no code outstanding; `consentry dsr code \(id)` issues one")
            }
            let check: CodeCheck
            if row.codeAttempts >= maxAttempts {
                check = .locked
            } else if let expires = row.codeExpiresAt, nowMillis >= expires {
                check = .expired
            } else if Digest.equal([UInt8](stored), codeHash(id: id, subject: row.subjectID ?? 0, code: code)) {
                check = .verified
                row.status = RequestStatus.verified.rawValue
                row.verifiedAt = nowMillis
                row.codeHash = nil
                row.updatedAt = nowMillis
                try await scope.tx.updateRequest(row)
            } else {
                check = .wrong(remaining: max(0, maxAttempts - row.codeAttempts - 1))
                row.codeAttempts += 1
                row.updatedAt = nowMillis
                try await scope.tx.updateRequest(row)
            }
            let step: String
            switch check {
            case .verified: step = "identity verified"
            case .wrong(let remaining): step = "wrong verification code; \(remaining) attempts left"
            case .expired: step = "verification code expired"
            case .locked: step = "verification code locked after \(maxAttempts) wrong attempts"
            }
            scope.requestStep(id, step)
            return (try Self.requestRecord(row), check)
        }
        return result
    }

    /// The details given when the request was opened (personal data: the caller must not log them). Reading them
    /// is audited as a step of the request, in the same transaction, before they are returned.
    public func requestDetails(_ id: String, as principal: Principal) async throws(GateError) -> String? {
        let (actor, role) = (principal.actor, principal.role)
        let request = AccessRequest(actor: actor, role: role, action: .dsrManage)
        return try await perform(request, requestID: id, failure: "read the request") { scope -> String? in
            guard let row = try await scope.tx.request(id), let details = try openRequestData(row)?.details else {
                scope.records = false
                return nil
            }
            scope.entry.reasons.append("request details read")
            return details
        }
    }

    /// Housekeeping run by every `dsr` command: deletes the sealed identifiers of requests closed longer than
    /// `keep_identifiers_days`, and the records (and export files) of requests closed longer than `keep_records_months`.
    /// - Returns: (identifiers deleted, records deleted).
    @discardableResult
    public func expireRequestData(as principal: Principal) async throws(GateError) -> (identifiers: Int, records: Int) {
        let (actor, role) = (principal.actor, principal.role)
        let request = AccessRequest(actor: actor, role: role, action: .dsrManage)
        let rights = loadedPolicy?.rights ?? RightsPolicy()
        let now = nowMillis
        let identifierCutoff = now - Int64(rights.keepIdentifiersDays) * 86_400_000
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let recordCutoff =
            calendar.date(byAdding: .month, value: -rights.keepRecordsMonths, to: Date(timeIntervalSince1970: Double(now) / 1000))
            .map { Int64($0.timeIntervalSince1970 * 1000) } ?? 0
        var files: [String] = []
        let result = try await perform(request, requestID: principal.requestID, failure: "apply the request retention") { scope -> (Int, Int) in
            let expired = try await scope.tx.expireRequests(identifiersClosedBefore: identifierCutoff, recordsClosedBefore: recordCutoff, now: now)
            files = expired.deleted
            let (shredded, deleted) = (expired.shredded, expired.deleted.count)
            // Housekeeping that found nothing to do is not an event of the record of processing.
            scope.records = shredded + deleted > 0
            scope.entry.counts = ["identifiers_deleted": shredded, "records_deleted": deleted]
            scope.entry.reasons.append(
                "request retention: identifiers after \(rights.keepIdentifiersDays) days, records after \(rights.keepRecordsMonths) months")
            return (shredded, deleted)
        }
        _ = removeExportFiles(ofRequests: files)
        return result
    }

    /// The directory export files are written to.
    public var exportsDirectory: URL { directory.appendingPathComponent("exports") }

    /// Deletes the export files (and folders) of the given requests; returns how many entries were removed.
    func removeExportFiles(ofRequests ids: [String]) -> Int {
        guard !ids.isEmpty, let names = try? FileManager.default.contentsOfDirectory(atPath: exportsDirectory.path) else { return 0 }
        var removed = 0
        for name in names where ids.contains(where: { name.hasPrefix($0 + "-") || name.hasPrefix("." + $0 + "-") }) {
            if (try? FileManager.default.removeItem(at: exportsDirectory.appendingPathComponent(name))) != nil { removed += 1 }
        }
        return removed
    }
}

/// Request ids: `dsr_` and 16 random hex digits, safe in file names and URLs.
public enum RequestIDs {
    /// A new random id.
    public static func new() -> String { "dsr_" + Digest.hex(SecureRandom.bytes(8)) }

    /// Whether `id` has the form of a request id (checked before it is used in a query or a file name).
    public static func isValid(_ id: String) -> Bool {
        id.count == 20 && id.hasPrefix("dsr_") && id.dropFirst(4).allSatisfy { $0.isHexDigit && !$0.isUppercase }
    }
}

extension OperationScope {
    /// Records a step of data-subject request `id` in the operation's audit entry.
    mutating func requestStep(_ id: String, _ step: String) {
        entry.requestID = id
        entry.reasons.append(step)
    }
}
