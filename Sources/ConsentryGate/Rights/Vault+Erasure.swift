import CConsentrySystem
import ConsentryAudit
public import ConsentryCore
import ConsentryCrypto
import ConsentryPolicy
public import Foundation
import GRDB

/// What an erasure did, as signed in its receipt. Holds no personal data and no subject id or pseudonym:
/// the receipt proves the erasure without linking the request to anything the subject did before.
public struct ErasureReceipt: Sendable, Codable, Equatable {
    /// Data kept for a legal obligation, detached from the subject.
    public struct Retained: Sendable, Codable, Equatable {
        /// What was kept (`purchase_events`).
        public var kind: String
        /// How many records.
        public var count: Int
        /// The legal reason from `rights.yaml`.
        public var reason: String
        /// The day they may be deleted (YYYY-MM-DD).
        public var until: String
    }

    enum CodingKeys: String, CodingKey {
        case kind, regime, deleted, retained, suppressed
        case requestID = "request_id"
        case receivedAt = "received_at"
        case erasedAt = "erased_at"
        case auditSequence = "audit_sequence"
        case publicKey = "public_key"
    }

    /// Always `erasure`.
    public var kind: String
    /// The request.
    public var requestID: String
    /// The law it was made under.
    public var regime: String
    /// When the request was received (RFC 3339).
    public var receivedAt: String
    /// When the erasure committed (RFC 3339).
    public var erasedAt: String
    /// Rows and files deleted per kind (`subject`, `identity`, `event`, `consent_record`, `derived`, `export_file`, …).
    public var deleted: [String: Int]
    /// What was kept, and why.
    public var retained: [Retained]
    /// The identifier kinds entered on the suppression list (keyed hashes only).
    public var suppressed: [String]
    /// The audit entry of the erasure.
    public var auditSequence: Int64
    /// The vault's signing key (hex), which `audit/signing.pub` also holds.
    public var publicKey: String
}

/// A receipt with its Ed25519 signature over the receipt's canonical JSON (sorted keys, no extra whitespace).
public struct SignedReceipt: Sendable, Codable, Equatable {
    /// The receipt.
    public var receipt: ErasureReceipt
    /// The signature (hex).
    public var signature: String

    /// The bytes that are signed.
    static func canonical(_ receipt: ErasureReceipt) throws -> [UInt8] {
        [UInt8](try JSONEncoder.sorted.encode(receipt))
    }

    /// The receipt as one line of JSON, as stored and printed.
    public var json: String {
        (try? JSONEncoder.sorted.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// Checks a receipt file's signature against `publicKey` (hex). A changed byte in the receipt, or a receipt signed
    /// by another vault, fails.
    public static func verify(_ data: Data, publicKey: String) -> Bool {
        guard let signed = try? JSONDecoder().decode(SignedReceipt.self, from: data), let key = hexBytes(publicKey),
            let signature = hexBytes(signed.signature), let message = try? canonical(signed.receipt)
        else { return false }
        return signed.receipt.publicKey == publicKey.lowercased() && Signer.verify(signature, of: message, publicKey: key)
    }

    static func hexBytes(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0, !chars.isEmpty else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let high = hexValue(chars[i]), let low = hexValue(chars[i + 1]) else { return nil }
            out.append(high << 4 | low)
            i += 2
        }
        return out
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// The result of `dsr verify-erasure`: each check with whether it passed. Details never hold identifiers.
public struct ErasureVerification: Sendable, Codable, Equatable {
    /// One check.
    public struct Check: Sendable, Codable, Equatable {
        /// What was checked.
        public var name: String
        /// Whether nothing of the subject was found.
        public var passed: Bool
        /// Where something was found (table or file name), or what was searched.
        public var detail: String
    }

    /// What the vault's store guarantees about the bytes of erased records (``ErasureGuarantee/summary``); the checks
    /// below are the ones that apply to it.
    public var storeGuarantee: String
    /// Every check, in order.
    public var checks: [Check]
    /// Whether all passed.
    public var passed: Bool { checks.allSatisfy(\.passed) }
}

extension Vault {
    /// Deletes a subject and everything that references it, inside the operation's transaction: the subject row (the
    /// wrapped data key and the pseudonym secret go with it) and by the store's cascade its identities, events, ledgers,
    /// derived data and queue entries; then the link from its requests, then its export files. Returns the counts.
    func eraseRows(of subject: SubjectID, _ tx: SQLiteTransaction) async throws -> [String: Int] {
        // INVARIANT: erasure is final. The row holds the wrapped data key and the pseudonym secret;
        // deleting it crypto-shreds every sealed value and unlinks past audit entries.
        var (deleted, requests) = try await tx.eraseSubject(subject.rawValue)
        deleted["export_file"] = removeExportFiles(ofRequests: requests)
        return deleted
    }

    /// Erases the subject of a verified erasure request: keeps what `rights.yaml` retains for a legal obligation
    /// (detached from the subject), enters the identifiers on the suppression list, deletes the subject and everything
    /// that references it (crypto-shredding its data key and pseudonym secret), and truncates the WAL so that old page
    /// copies are overwritten. One transaction: the subject is wholly present or wholly gone for every concurrent
    /// import, scan, read or render.
    ///
    /// The request stays `in_progress` with the receipt unsigned: ``completeErasure(_:as:)`` verifies the
    /// erasure and signs the receipt only when every check passes. Called again on a request already erased, it
    /// erases nothing more and returns the pending receipt.
    ///
    /// Needs `dsr_manage` and `erase` for `service`.
    public func eraseForRequest(_ id: String, as principal: Principal) async throws(GateError) -> (record: RequestRecord, receipt: ErasureReceipt) {
        let (actor, role) = (principal.actor, principal.role)
        let manage = try await requireAdministrative(.dsrManage, actor: actor, role: role, requestID: id)
        let request = AccessRequest(actor: actor, role: role, action: .erase, purpose: .service)
        let rights = loadedPolicy?.rights ?? RightsPolicy()
        // Forced either way: the record of an erasure (or of a retried one) leaves for the checkpoints at once.
        return try await perform(request, requestID: id, failure: "erase the subject of request \(id) (nothing was erased)") {
            scope -> (RequestRecord, ErasureReceipt) in
            let db = scope.db
            scope.forcesCheckpoint = true
            var row = try await loadRequestRow(id, scope.tx)
            let record = try Self.requestRecord(row)
            guard record.type == .erasure else {
                throw GateError(.invalidInput, "request \(id) is a \(record.type.rawValue) request, not an erasure")
            }
            guard record.verifiedAt != nil, [.verified, .inProgress, .extended].contains(record.status) else {
                throw GateError(.invalidInput, "request \(id) is \(record.status.rawValue); an erasure needs a verified, open request")
            }
            let sealed = try openRequestData(row) ?? SealedRequestData()
            // Erased before, its verification not yet passed: nothing more to erase, and nothing new to record.
            if let pending = sealed.pendingReceipt {
                scope.records = false
                return (record, pending)
            }
            // Freed pages were zeroed by secure_delete in the database file; truncating the WAL removes the old copies there.
            scope.truncatesLog = true
            let subject = try resolve(SubjectReference.request(id), db: db)
            let now = nowMillis
            // Every identifier the subject is known by: what the request gave and what the profile holds.
            var known: [IdentityKind: Set<String>] = [:]
            if let email = sealed.email, let value = try? Normalize.email(email) { known[.email, default: []].insert(value) }
            if let customer = sealed.customerID, let value = try? Normalize.customerID(customer) { known[.customerID, default: []].insert(value) }
            var deleted: [String: Int] = [:]
            var retained: [ErasureReceipt.Retained] = []
            if let subject {
                let indexed = schema.fields.filter { $0.identityKind != nil }
                guard let row = try subjectRow(subject, db: db) else {
                    throw GateError(.integrity, "a subject has no row (its identity points nowhere); run `consentry check`")
                }
                var scratch = try SecretBytes(count: Sealing.keyLength)
                defer { scratch.zero() }
                for (spec, value) in zip(indexed, try openFields(indexed.map(\.name), of: subject, row: row, db: db, scratch: &scratch)) {
                    if let value, let kind = spec.identityKind { known[kind, default: []].insert(value) }
                }
                for rule in rights.retain {
                    retained.append(try await retain(rule, of: subject, now: now, scope.tx))
                }
                deleted = try await eraseRows(of: subject, scope.tx)
            }
            deleted["export_file", default: 0] += removeExportFiles(ofRequests: [id])
            var suppressed: [String] = []
            if rights.suppressReimport {
                // Phone numbers may be shared by a household, so only e-mail and customer id are suppressed.
                for kind in [IdentityKind.email, .customerID] {
                    for value in known[kind] ?? [] {
                        try await scope.tx.suppress(Data(keys.suppression.index(kind, value)), kind: kind.rawValue, at: now)
                    }
                    if known[kind]?.isEmpty == false { suppressed.append(kind.rawValue) }
                }
            }
            scope.entry.counts = deleted.mapKeys { "deleted.\($0)" }
            for item in retained { scope.entry.counts["retained.\(item.kind)"] = item.count }
            scope.entry.reasons.append(subject == nil ? "erased: no subject held" : "erased: data key destroyed")
            let audited = try scope.recordNow()
            let receipt = ErasureReceipt(
                kind: "erasure", requestID: id, regime: record.regime.rawValue, receivedAt: Normalize.formatTimestamp(millis: record.receivedAt),
                erasedAt: Normalize.formatTimestamp(millis: now), deleted: deleted, retained: retained, suppressed: suppressed,
                auditSequence: audited.sequence, publicKey: signingPublicKey)
            // The identifiers stay sealed (with the former id) for `verify-erasure` until the identifier retention ends;
            // the receipt waits, sealed with them, for the verification to pass.
            var keep = sealed
            keep.erasedSubject = subject?.rawValue
            keep.known = known.flatMap { kind, values in values.map { "\(kind.rawValue):\($0)" } }.sorted()
            keep.pendingReceipt = receipt
            let outcome = String(decoding: try JSONEncoder.sorted.encode(["deleted": deleted]), as: UTF8.self)
            // The erasure above unlinked the request from the subject in the store; the row written whole says so too.
            row.status = RequestStatus.inProgress.rawValue
            row.outcome = outcome
            row.identifiers = try sealRequestData(keep, id: id)
            row.subjectID = nil
            row.updatedAt = now
            try await scope.tx.updateRequest(row)
            try scope.record(requestStep(id, "erased: awaiting verification", decision: manage, actor: actor, role: role))
            return (try Self.requestRecord(row), receipt)
        }
    }

    /// Verifies an erased request (``verifyErasure(_:as:)``) and, only when every check passes, signs its
    /// receipt and completes it. When a check fails the request stays open (`in_progress`) with what was found in its
    /// outcome and no receipt is signed: a receipt must never claim an erasure its own check contradicts. Remove what
    /// was found and call it again. On a request already completed it verifies again and returns the signed receipt.
    ///
    /// Needs `dsr_manage`.
    public func completeErasure(_ id: String, as principal: Principal) async throws(GateError) -> (
        record: RequestRecord, receipt: SignedReceipt?, verification: ErasureVerification
    ) {
        let (actor, role) = (principal.actor, principal.role)
        let verification = try await verifyErasure(id, as: Principal(actor: actor, role: role))
        let request = AccessRequest(actor: actor, role: role, action: .dsrManage)
        let result = try await perform(request, requestID: id, failure: "complete the erasure of request \(id)") {
            scope -> (RequestRecord, SignedReceipt?) in
            var row = try await loadRequestRow(id, scope.tx)
            let record = try Self.requestRecord(row)
            var sealed = try openRequestData(row) ?? SealedRequestData()
            guard let pending = sealed.pendingReceipt else {
                // Completed before: the receipt is returned as it was signed, and nothing new is recorded.
                scope.records = false
                let signed = try record.receipt.map { try JSONDecoder().decode(SignedReceipt.self, from: Data($0.utf8)) }
                return (record, signed)
            }
            let now = nowMillis
            let failed = verification.checks.filter { !$0.passed }
            guard failed.isEmpty else {
                var outcome: [String: [String: Int]] = ["deleted": pending.deleted, "verification": ["failed": failed.count]]
                outcome["failed_checks"] = Dictionary(failed.map { ($0.name, 1) }, uniquingKeysWith: +)
                row.outcome = String(decoding: try JSONEncoder.sorted.encode(outcome), as: UTF8.self)
                row.updatedAt = now
                try await scope.tx.updateRequest(row)
                scope.requestStep(
                    id, "erasure not completed: verification failed (" + failed.map(\.name).joined(separator: ", ") + "); no receipt signed")
                return (try Self.requestRecord(row), nil)
            }
            let signed = SignedReceipt(receipt: pending, signature: Digest.hex(keys.signer.sign(try SignedReceipt.canonical(pending))))
            sealed.pendingReceipt = nil
            let outcome: [String: [String: Int]] = ["deleted": pending.deleted, "verification": ["passed": 1]]
            row.status = RequestStatus.completed.rawValue
            row.completedAt = now
            row.outcome = String(decoding: try JSONEncoder.sorted.encode(outcome), as: UTF8.self)
            row.receipt = signed.json
            row.identifiers = try sealRequestData(sealed, id: id)
            row.updatedAt = now
            try await scope.tx.updateRequest(row)
            scope.requestStep(id, "completed: erasure")
            return (try Self.requestRecord(row), signed)
        }
        return (result.0, result.1, verification)
    }

    /// Copies the records a retention rule keeps, without the subject's id.
    private func retain(_ rule: RightsPolicy.Retention, of subject: SubjectID, now: Int64, _ tx: SQLiteTransaction) async throws
        -> ErasureReceipt.Retained
    {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let until = calendar.date(byAdding: .year, value: rule.years, to: Date(timeIntervalSince1970: Double(now) / 1000))!
        let untilMillis = Int64(until.timeIntervalSince1970 * 1000)
        var count = 0
        switch rule.kind {
        case .purchaseEvents:
            for purchase in try await tx.purchases(of: subject.rawValue) {
                var data: [String: String] = ["time": Normalize.formatTimestamp(millis: purchase.time)]
                if let item = purchase.itemID { data["item_id"] = item }
                if let category = purchase.category { data["category"] = category }
                if let amount = purchase.amount { data["amount"] = String(amount) }
                if let currency = purchase.currency { data["currency"] = currency }
                try await tx.retain(
                    RetainedRecord(
                        kind: rule.kind.rawValue, reason: rule.reason, retainUntil: untilMillis,
                        data: String(decoding: try JSONEncoder.sorted.encode(data), as: UTF8.self), createdAt: now))
                count += 1
            }
        }
        return ErasureReceipt.Retained(
            kind: rule.kind.rawValue, count: count, reason: rule.reason, until: String(Normalize.formatTimestamp(millis: untilMillis).prefix(10)))
    }

    /// Re-checks a completed erasure: no blind-index look-up finds the subject's identifiers, no row references its
    /// former id, and no file in the vault directory (database, WAL, shared memory, exports, audit) holds any of its
    /// known identifiers in plain, lower-cased or base64 form. Audited.
    ///
    /// Possible while the request's sealed identifiers are kept (`keep_identifiers_days` after completion).
    public func verifyErasure(_ id: String, as principal: Principal) async throws(GateError) -> ErasureVerification {
        let (actor, role) = (principal.actor, principal.role)
        let decision = try await requireAdministrative(.dsrManage, actor: actor, role: role, requestID: id)
        var verification = ErasureVerification(storeGuarantee: erasureGuarantee.summary, checks: [])
        var needles: [[UInt8]] = []
        do {
            try await store.read { db in
                let record = try loadRequest(id, db: db)
                let sealed = try openRequestData(id, db: db)
                guard record.type == .erasure, record.status == .completed || sealed?.pendingReceipt != nil else {
                    throw GateError(.invalidInput, "request \(id) is not an erased erasure request; fulfil it first")
                }
                guard let sealed else {
                    throw GateError(
                        .invalidInput,
                        "the identifiers of request \(id) were deleted when the identifier retention ended; the receipt records what the erasure did")
                }
                var found: [String] = []
                for item in sealed.known ?? [] {
                    let parts = item.split(separator: ":", maxSplits: 1).map(String.init)
                    guard parts.count == 2, let kind = IdentityKind(rawValue: parts[0]) else { continue }
                    if try ProfileIngest.lookup(kind, keys.blindIndex.index(kind, parts[1]), binder: keys.recordBinding, db: db) != nil {
                        found.append(kind.rawValue)
                    }
                    for form in [parts[1], parts[1].lowercased(), Data(parts[1].utf8).base64EncodedString()] {
                        let bytes = Array(form.utf8)
                        if bytes.count >= 4 && !needles.contains(bytes) { needles.append(bytes) }
                    }
                }
                verification.checks.append(
                    .init(
                        name: "blind-index look-ups", passed: found.isEmpty,
                        detail: found.isEmpty
                            ? "\((sealed.known ?? []).count) identifiers looked up, none found" : "still found by " + found.joined(separator: ", ")))
                let referencing = try sealed.erasedSubject.map { try SQLiteErasureRows.references(to: $0, db) } ?? []
                verification.checks.append(
                    .init(
                        name: "rows referencing the subject", passed: referencing.isEmpty,
                        detail: referencing.isEmpty ? "no table references the former id" : "referenced in " + referencing.joined(separator: ", ")))
            }
        } catch {
            throw Self.storageError(error, "verify the erasure")
        }
        // A networked store's pages are on its server, out of this scan's reach; its guarantee says what holds there.
        if erasureGuarantee.rawFilesScannable {
            let hits = Self.filesContaining(needles, under: directory, skipping: ["keys"])
            verification.checks.append(
                .init(
                    name: "raw files", passed: hits?.isEmpty == true,
                    detail: hits.map {
                        $0.isEmpty
                            ? "no file in the vault directory holds the identifiers (plain, lower-cased, base64)"
                            : "found in " + $0.joined(separator: ", ")
                    } ?? "the vault's files could not be read for the scan; check their permissions and retry"
                ))
        }
        do {
            let step = "erasure verification: \(verification.passed ? "passed" : "FAILED")"
            try await store.write { tx in
                try tx.run { db in _ = try auditRequestStep(id, step, decision: decision, actor: actor, role: role, db: db) }
            }
        } catch {
            throw Self.storageError(error, "audit the verification")
        }
        try checkpointIfDue()
        return verification
    }

    /// Relative paths of regular files under `root` (not under `skipping`) that contain any of `needles`; nil when
    /// the files could not be read (the check then fails).
    ///
    /// INVARIANT: this process never opens the vault's database files. It holds SQLite connections, and POSIX record
    /// locks belong to the process: closing any descriptor of `vault.sqlite`, `-wal` or `-shm` would drop SQLite's
    /// locks, and the next process to close the vault would take itself for the last one and delete the live WAL.
    /// The files are read in a forked child (`consentry_scan_files_in_child`), which holds no locks; this process
    /// only lists the directory and stats its entries. Reads go in chunks with an overlap, so memory stays flat.
    static func filesContaining(_ needles: [[UInt8]], under root: URL, skipping: Set<String>) -> [String]? {
        guard !needles.isEmpty, let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey]) else {
            return []
        }
        var relatives: [String] = [], paths: [String] = []
        let rootPath = root.standardizedFileURL.path
        for case let url as URL in walker {
            let path = url.standardizedFileURL.path
            let relative = path.hasPrefix(rootPath + "/") ? String(path.dropFirst(rootPath.count + 1)) : url.lastPathComponent
            if let first = relative.split(separator: "/").first, skipping.contains(String(first)) { continue }
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true else { continue }
            relatives.append(relative)
            paths.append(path)
        }
        guard !paths.isEmpty else { return [] }
        let joined = needles.flatMap { $0 }
        let lengths = needles.map(\.count)
        let chunk = 1 << 20
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: chunk + (lengths.max() ?? 0))
        defer { buffer.deallocate() }
        var hits = [UInt8](repeating: 0, count: paths.count)
        let cPaths = paths.map { strdup($0) }
        defer { cPaths.forEach { free($0) } }
        let status = cPaths.map { UnsafePointer($0) }.withUnsafeBufferPointer { pathList in
            joined.withUnsafeBufferPointer { needleBytes in
                consentry_scan_files_in_child(
                    pathList.baseAddress, Int32(paths.count), needleBytes.baseAddress, lengths, Int32(needles.count), buffer, chunk, &hits)
            }
        }
        guard status == 0, !hits.contains(2) else { return nil }
        return zip(relatives, hits).filter { $0.1 == 1 }.map(\.0).sorted()
    }
}

extension JSONEncoder {
    /// Sorted keys, no escaped slashes: stable output for stored JSON.
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
