public import ConsentryCore
public import ConsentryGate
public import Foundation

/// Answers data-subject requests on a vault: the lifecycle (open, verify, fulfil, reject, extend), deadlines per
/// regime, and the fulfilment of each type through the gate. Every step is audited by the vault.
///
/// ```swift
/// let desk = RightsDesk(vault: vault, as: Principal(actor: "dpo", role: .complianceOfficer))
/// let (request, code) = try desk.open(.access, regime: .gdpr, identifiers: RequestIdentifiers(email: "a@example.test"))
/// _ = try desk.verify(request.id, code: code)
/// let done = try desk.fulfil(request.id)
/// ```
public struct RightsDesk: Sendable {
    /// The vault.
    public let vault: Vault
    /// Who acts (recorded in the audit log).
    public let principal: Principal
    /// Who acts, as recorded in the audit log.
    public var actor: String { principal.actor }
    /// The role acted in; needs `dsr_manage`, and the gate grants for each fulfilment (`export`, `erase`, `rectify`
    /// for `service`, `consent_write` for flags).
    public var role: Role { principal.role }

    /// Creates a desk.
    public init(vault: Vault, as principal: Principal) {
        self.vault = vault
        self.principal = principal
    }

    /// What a request asks for beyond its type: corrected values (rectification), purposes objected to, free text.
    public struct Details: Sendable, Codable, Equatable {
        /// Corrected field values, for a rectification.
        public var set: [String: String]?
        /// Purposes objected to, for an objection (default `profiling` and `email_marketing`).
        public var purposes: [String]?
        /// Free text from the requester.
        public var text: String?

        /// Creates details.
        public init(set: [String: String]? = nil, purposes: [String]? = nil, text: String? = nil) {
            self.set = set
            self.purposes = purposes
            self.text = text
        }
    }

    /// Opens a request and issues its verification code. The code is returned once, to be sent to the subject's address
    /// on file (the CLI prints it when no mail is configured).
    public func open(
        _ type: RequestType, regime: Regime, identifiers: RequestIdentifiers, details: Details = Details(), idempotencyKey: String? = nil
    ) async throws(GateError) -> (record: RequestRecord, code: String?) {
        try validate(type, details)
        try await housekeeping()
        let detailText: String?
        do { detailText = details == Details() ? nil : String(decoding: try JSONEncoder().encode(details), as: UTF8.self) } catch {
            throw GateError(.invalidInput, "the request details could not be encoded")
        }
        let record = try await vault.openRequest(
            type: type, regime: regime, identifiers: identifiers, details: detailText, idempotencyKey: idempotencyKey,
            as: principal
        ) { Deadlines.of(type, regime, receivedAt: $0) }
        // A replayed idempotency key returns the request as it stands; its code was handed out the first time.
        guard record.status == .received else { return (record, nil) }
        let issued = try await vault.issueVerificationCode(record.id, as: principal)
        return (issued.record, issued.code)
    }

    private func validate(_ type: RequestType, _ details: Details) throws(GateError) {
        if type == .rectification && (details.set ?? [:]).isEmpty {
            throw GateError(.invalidInput, "a rectification request names the corrected values, as one field=value pair per field")
        }
        if type == .rectification { try vault.validateCorrections(details.set ?? [:]) }
        if type != .rectification && details.set != nil {
            throw GateError(.invalidInput, "corrected values belong to rectification requests only")
        }
        if let purposes = details.purposes {
            guard type == .objection else { throw GateError(.invalidInput, "purposes belong to objection requests only") }
            for purpose in purposes where Purpose(rawValue: purpose) == nil {
                throw GateError(.invalidInput, "unknown purpose `\(purpose)`; use one of \(Purpose.choiceList)")
            }
        }
    }

    /// Issues a new verification code (the old one stops working).
    public func reissueCode(_ id: String) async throws(GateError) -> (record: RequestRecord, code: String) {
        try await vault.issueVerificationCode(id, as: principal)
    }

    /// Checks a verification code.
    public func verify(_ id: String, code: String) async throws(GateError) -> (record: RequestRecord, check: CodeCheck) {
        try await vault.checkVerificationCode(id, code: code, as: principal)
    }

    /// One request.
    public func show(_ id: String) async throws(GateError) -> RequestRecord { try await vault.request(id, as: principal) }

    /// Requests, ordered by the deadline in force. `overdue` keeps open requests past it; `dueWithinDays` open requests
    /// due within that many days from now (overdue ones included).
    public func list(status: RequestStatus? = nil, overdue: Bool = false, dueWithinDays: Int? = nil) async throws(GateError) -> [RequestRecord] {
        try await housekeeping()
        let now = vault.currentTimeMillis
        return try await vault.requests(status: status, as: principal).filter { record in
            if overdue && (record.status.isClosed || record.effectiveDueAt >= now) { return false }
            if let days = dueWithinDays, record.status.isClosed || record.effectiveDueAt > now + Int64(days) * 86_400_000 { return false }
            return true
        }.sorted { ($0.effectiveDueAt, $0.id) < ($1.effectiveDueAt, $1.id) }
    }

    /// Rejects a request (manifestly unfounded, identity not verified, an exemption applies) with a reason.
    public func reject(_ id: String, reason: String) async throws(GateError) -> RequestRecord {
        let reason = try Self.reasonText(reason)
        let now = vault.currentTimeMillis
        return try await vault.updateRequest(id, as: principal) { record throws(GateError) in
            guard !record.status.isClosed else { throw GateError(.invalidInput, "request \(id) is already \(record.status.rawValue)") }
            record.status = .rejected
            record.rejectionReason = reason
            record.completedAt = now
            return "rejected"
        }
    }

    /// Extends the deadline once, where the regime allows it, with a reason (to be told to the subject).
    public func extend(_ id: String, reason: String) async throws(GateError) -> RequestRecord {
        let reason = try Self.reasonText(reason)
        return try await vault.updateRequest(id, as: principal) { record throws(GateError) in
            guard !record.status.isClosed else { throw GateError(.invalidInput, "request \(id) is already \(record.status.rawValue)") }
            guard record.extendedDueAt == nil else { throw GateError(.invalidInput, "request \(id) was already extended; a deadline extends once") }
            guard let extended = Deadlines.extended(record.type, record.regime, receivedAt: record.receivedAt) else {
                throw GateError(
                    .invalidInput,
                    "\(record.regime.rawValue.uppercased()) allows no extension for a \(record.type.rawValue) request; answer by the due date")
            }
            record.extendedDueAt = extended
            record.extensionReason = reason
            // Before verification the status stays (verifying goes on); afterwards it shows the extension.
            if record.status == .verified || record.status == .inProgress { record.status = .extended }
            return "extended"
        }
    }

    static func reasonText(_ reason: String) throws(GateError) -> String {
        let text = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty, text.count <= 500 else {
            throw GateError(.invalidInput, "give a reason of 1 to 500 characters (it is kept with the request for 24 months; no personal data)")
        }
        return text
    }

    /// What ``fulfil(_:format:)`` did.
    public struct Fulfilment: Sendable {
        /// The request as it stands afterwards.
        public var record: RequestRecord
        /// The export written (access, portability), relative to the vault directory.
        public var exportFile: String?
        /// The signed receipt (erasure).
        public var receipt: SignedReceipt?
        /// The checks made right after an erasure.
        public var verification: ErasureVerification?
    }

    /// Fulfils a verified request: writes the export (access, portability), erases (erasure), corrects (rectification)
    /// or sets the flag (restriction, objection, opt-out, limit-sensitive), then completes it.
    public func fulfil(_ id: String, format: ExportFormat = .json) async throws(GateError) -> Fulfilment {
        let current = try await vault.request(id, as: principal)
        guard current.verifiedAt != nil, [.verified, .inProgress, .extended].contains(current.status) else {
            throw GateError(
                .invalidInput,
                current.status.isClosed
                    ? "request \(id) is already \(current.status.rawValue)"
                    : "request \(id) is \(current.status.rawValue); verify the requester first with the code sent to the address on file")
        }
        let details =
            try await vault.requestDetails(id, as: principal).flatMap {
                try? JSONDecoder().decode(Details.self, from: Data($0.utf8))
            }
            ?? Details()
        switch current.type {
        case .erasure:
            // The receipt is signed only when the erasure's own verification passes; otherwise the request stays open.
            _ = try await vault.eraseForRequest(id, as: principal)
            let completed = try await vault.completeErasure(id, as: principal)
            return Fulfilment(record: completed.record, receipt: completed.receipt, verification: completed.verification)
        case .access, .portability:
            _ = try await vault.updateRequest(id, as: principal) { record throws(GateError) in
                record.status = .inProgress
                return "export started"
            }
            let (file, counts) = try await writeExport(current, format: format)
            let record = try await vault.updateRequest(id, as: principal) { record throws(GateError) in
                record.status = .completed
                record.completedAt = vault.currentTimeMillis
                record.exportFile = file
                record.outcome = Self.json(counts)
                return "completed: export (\(format.rawValue))"
            }
            return Fulfilment(record: record, exportFile: file)
        case .rectification:
            let changed = try await rectify(id, details.set ?? [:])
            return await Fulfilment(
                record: try complete(id, outcome: ["changed": changed.count], step: "completed: rectified \(changed.joined(separator: ", "))"))
        case .restriction:
            return await Fulfilment(record: try setFlags(id, [(.restriction, nil)]))
        case .objection:
            let purposes = (details.purposes ?? [Purpose.profiling.rawValue, Purpose.emailMarketing.rawValue]).compactMap(Purpose.init(rawValue:))
            return await Fulfilment(record: try setFlags(id, purposes.map { (.objection, $0) }))
        case .optOutSaleShare:
            return await Fulfilment(record: try setFlags(id, [(.optOutSaleShare, nil)]))
        case .limitSensitive:
            return await Fulfilment(record: try setFlags(id, [(.limitSensitive, nil)]))
        }
    }

    private func setFlags(_ id: String, _ flags: [(SubjectFlag, Purpose?)]) async throws(GateError) -> RequestRecord {
        var set = 0
        for (flag, purpose) in flags where try await setFlag(id, flag, purpose) { set += 1 }
        let names = flags.map { flag, purpose in purpose.map { "\(flag.rawValue):\($0.rawValue)" } ?? flag.rawValue }.joined(separator: ", ")
        return try await complete(id, outcome: ["flags_set": set], step: set == 0 ? "completed: no subject held" : "completed: \(names) set")
    }

    /// Sets one flag on the request's subject; false when no subject is held (nothing to flag).
    private func setFlag(_ id: String, _ flag: SubjectFlag, _ purpose: Purpose?) async throws(GateError) -> Bool {
        do {
            try await vault.recordFlag(
                flag, purpose: purpose, on: true, subject: .request(id), source: "dsr", as: Principal(actor: actor, role: role, requestID: id))
            return true
        } catch let error where error.code == .notFound {
            return false
        }
    }

    /// Corrects the request's subject; no fields change when no subject is held.
    private func rectify(_ id: String, _ values: [String: String]) async throws(GateError) -> [String] {
        do {
            return try await vault.rectify(.request(id), values: values, as: Principal(actor: actor, role: role, requestID: id))
        } catch let error where error.code == .notFound {
            return []
        }
    }

    private func complete(_ id: String, outcome: [String: Int], step: String) async throws(GateError) -> RequestRecord {
        let now = vault.currentTimeMillis
        return try await vault.updateRequest(id, as: principal) { record throws(GateError) in
            record.status = .completed
            record.completedAt = now
            record.outcome = Self.json(outcome)
            return step
        }
    }

    /// Writes the export under a temporary dot-name and renames it when complete, so a failed export leaves no
    /// partial file where a download would find it.
    private func writeExport(_ record: RequestRecord, format: ExportFormat) async throws(GateError) -> (String, [String: Int]) {
        let exports = vault.exportsDirectory
        let name = "\(record.id)-\(UUID().uuidString.prefix(8).lowercased())" + (format == .json ? ".json" : "-csv")
        let partial = exports.appendingPathComponent("." + name)
        let header = [
            "id": record.id, "type": record.type.rawValue, "regime": record.regime.rawValue,
            "received_at": ISO8601.format(record.receivedAt), "exported_at": ISO8601.format(vault.currentTimeMillis),
        ]
        let counts: [String: Int]
        do {
            try FileManager.default.createDirectory(at: exports, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            switch format {
            case .json:
                var writer = JSONExportWriter(file: try BufferedFile(creating: partial), header: header)
                counts = try await export(record.id, into: &writer)
            case .csv:
                try FileManager.default.createDirectory(at: partial, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
                var writer = try CSVExportWriter(folder: partial, header: header)
                counts = try await export(record.id, into: &writer)
            }
            try FileManager.default.moveItem(at: partial, to: exports.appendingPathComponent(name))
        } catch {
            try? FileManager.default.removeItem(at: partial)
            if let error = error as? GateError { throw error }
            throw GateError(.storage, "could not write the export: \(error.localizedDescription)")
        }
        return ("exports/" + name, counts)
    }

    /// Streams the request's subject into `writer`; a request that matches no subject gets the empty document.
    private func export<Writer: ExportDocument>(_ id: String, into writer: inout Writer) async throws -> [String: Int] {
        var missing = false
        var counts: [String: Int] = [:]
        do {
            counts = try await vault.exportSubject(.request(id), as: Principal(actor: actor, role: role, requestID: id), into: &writer)
        } catch {
            guard error.code == .notFound else { throw error }
            missing = true
        }
        if missing { try writer.nothingHeld() }
        return counts
    }

    /// The JSON export of a completed access or portability request, for handing to the subject. Every download is
    /// audited as a step of the request, and needs the grant that produces exports (`export` for `service`), not only
    /// `dsr_manage`. The file name comes from the stored record, never from the caller.
    public func downloadExport(_ id: String) async throws(GateError) -> Data {
        try await vault.requireExportGrant(as: Principal(actor: actor, role: role, requestID: id))
        let record = try await show(id)
        guard let file = record.exportFile, file.hasSuffix(".json"), !file.contains(".."),
            FileManager.default.fileExists(atPath: vault.directory.appendingPathComponent(file).path)
        else { throw GateError(.notFound, "request \(id) has no JSON export (CSV exports are folders; fetch them on the vault host)") }
        _ = try await vault.updateRequest(id, as: principal) { _ throws(GateError) in "export downloaded" }
        guard let data = FileManager.default.contents(atPath: vault.directory.appendingPathComponent(file).path) else {
            throw GateError(.notFound, "the export of request \(id) is gone (an erasure or the retention removed it)")
        }
        return data
    }

    /// Re-checks a completed erasure (see ``Vault/verifyErasure(_:as:)``).
    public func verifyErasure(_ id: String) async throws(GateError) -> ErasureVerification {
        try await vault.verifyErasure(id, as: principal)
    }

    /// Applies the request retention of `rights.yaml`; run before every listing and opening.
    public func housekeeping() async throws(GateError) {
        try await vault.expireRequestData(as: principal)
    }

    static func json(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

/// RFC 3339 timestamps with milliseconds, UTC.
enum ISO8601 {
    static func format(_ millis: Int64) -> String { Normalize.formatTimestamp(millis: millis) }
}
