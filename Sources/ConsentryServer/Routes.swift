import ConsentryAudit
import ConsentryCore
import ConsentryGate
import ConsentryPersonalization
import ConsentryPolicy
import ConsentryRights
import Foundation
import HTTPTypes
import Hummingbird
import NIOPosix

/// Threads for blocking vault work (imports, scans, request steps; renders suspend on the group commit instead).
/// A request holds one while its work waits on the disk, so the pool is sized for concurrent callers, not cores:
/// Dispatch's global queues grow slowly past the core count when their threads block.
let vaultThreads: NIOThreadPool = {
    let pool = NIOThreadPool(numberOfThreads: 64)
    pool.start()
    return pool
}()

/// Runs vault work off the server's event loops and off Swift's cooperative threads: the work's synchronous stretches
/// (a scan, an import batch, a request step waiting for its fsync) run on ``vaultThreads``, and its waits for the
/// store suspend without holding a thread.
func blocking<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
    try await withTaskExecutorPreference(VaultExecutor.shared) { try await body() }
}

/// Runs the jobs of tasks that prefer it on ``vaultThreads`` (see ``blocking(_:)``).
final class VaultExecutor: TaskExecutor {
    static let shared = VaultExecutor()

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        vaultThreads.submit { _ in job.runSynchronously(on: executor) }
    }
}

/// The `/v1` routes. Each takes its actor and role from the token, never from the body.
struct Routes: Sendable {
    let vault: Vault

    func register(_ group: RouterGroup<ServerContext>) {
        let vault = self.vault
        group.post("render") { request, context -> Response in
            let body = try await Body.read(request, allowed: ["template", "subject", "campaign"], required: ["template", "subject"])
            let name = try body.string("template", max: 64)!
            let subject = try body.subject()
            guard body.object["campaign"] == nil || body.object["campaign"] is [String: Any] else {
                throw Problem(.unprocessableContent, "validation", "`campaign` must be an object", pointer: "/campaign")
            }
            let campaign = (body.object["campaign"] as? [String: Any] ?? [:]).mapValues { LiquidValue(json: $0) }
            // The render suspends while its audit entry waits for the shared commit; it holds no thread.
            let result = try await TemplateDesk(vault: vault, as: context.principal).render(
                name, subject: subject, campaign: campaign)
            guard let output = result.output else { throw Self.denied(result.decision) }
            var response = JSONObjectWriter()
            response.member("audit_sequence", result.auditSequence)
            // Missing data falls back to the template's defaults, and the response says so.
            if !result.missing.isEmpty { response.member("fallback") { $0.member("defaults_used_for", result.missing) } }
            response.member("output", output)
            response.member("released_fields", result.released)
            response.member("template", result.template)
            response.member("version", Int64(result.version))
            return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: response.buffer()))
        }
        group.post("profiles/read") { request, context -> Response in
            let body = try await Body.read(request, allowed: ["subject", "purpose", "fields", "reason"], required: ["subject", "purpose", "fields"])
            let purpose = try body.choice("purpose", as: Purpose.self)!
            guard let names = body.object["fields"] as? [String], !names.isEmpty, names.count <= 64 else {
                throw Problem(.unprocessableContent, "validation", "`fields` is a list of 1 to 64 field names", pointer: "/fields")
            }
            let fields = try names.map { name -> FieldName in
                guard let field = FieldName(name) else {
                    throw Problem(.unprocessableContent, "validation", "`\(name.prefix(40))` is not a field name", pointer: "/fields")
                }
                return field
            }
            let request = AccessRequest(
                actor: context.actor, role: context.role, action: .readProfile, purpose: purpose, fields: fields, reason: try body.string("reason"))
            let subject = try body.subject()
            let read = try await blocking { try await vault.read(request, subject: subject, requestID: context.principal.requestID) }
            guard read.decision.isPermit else { throw Self.denied(read.decision) }
            return Server.json([
                "subject": read.pseudonym ?? "", "values": Dictionary(uniqueKeysWithValues: read.values.map { ($0.key.rawValue, $0.value) }),
                "audit_sequence": read.auditSequence,
            ])
        }
        group.post("profiles") { request, context -> Response in
            let body = try await Body.read(request, allowed: ["source", "profiles"], required: ["source", "profiles"])
            guard let source = try body.choice("source", as: DataSource.self), [.crm, .web, .pos, .api].contains(source) else {
                throw Problem(.unprocessableContent, "validation", "`source` must be crm, web, pos or api", pointer: "/source")
            }
            guard let profiles = body.object["profiles"] as? [[String: Any]], !profiles.isEmpty, profiles.count <= 1_000 else {
                throw Problem(.unprocessableContent, "validation", "`profiles` is a list of 1 to 1,000 profile objects", pointer: "/profiles")
            }
            let records = try profiles.map { try JSONSerialization.data(withJSONObject: $0) }
            return try await Self.idempotent(request, context, vault, body) {
                let report = try await blocking {
                    try await vault.importProfiles(json: records, source: source, label: "api", as: context.principal)
                }
                return (report.rejected > 0 ? Self.multiStatus : .ok, Server.jsonData(report))
            }
        }
        group.post("events") { request, context -> Response in
            let body = try await Body.read(request, allowed: ["events"], required: ["events"])
            guard let events = body.object["events"] as? [[String: Any]], !events.isEmpty, events.count <= 1_000 else {
                throw Problem(.unprocessableContent, "validation", "`events` is a list of 1 to 1,000 event objects", pointer: "/events")
            }
            let lines = try events.map { try JSONSerialization.data(withJSONObject: $0) }
            let gpc = request.headers[HTTPField.Name("Sec-GPC")!] == "1"
            return try await Self.idempotent(request, context, vault, body) {
                let report = try await blocking { () -> ImportReport in
                    let report = try await vault.importEvents(json: lines, source: "api", as: context.principal)
                    // A failed follow-up leaves the committed import alone; the next `segment run` or `trigger check` catches up.
                    _ = try? await vault.followUpEventImport(report, as: context.principal)
                    return report
                }
                // A Global Privacy Control signal on the request is recorded for the subjects it carried events of.
                if gpc {
                    for subject in report.touchedSubjects {
                        try await blocking {
                            try await vault.recordFlag(
                                .gpc, on: true, subject: .subject(subject), source: "sec-gpc", as: context.principal
                            )
                        }
                    }
                }
                return (report.rejected > 0 ? Self.multiStatus : .ok, Server.jsonData(report))
            }
        }
        group.post("consent") { request, context -> Response in
            let body = try await Body.read(
                request, allowed: ["subject", "purpose", "state", "source", "notice_version"], required: ["subject", "purpose", "state"])
            let change = ConsentChange(
                purpose: try body.choice("purpose", as: Purpose.self)!, state: try body.choice("state", as: ConsentState.self)!,
                source: try body.string("source", max: 64) ?? "api", noticeVersion: try body.string("notice_version", max: 64))
            let subject = try body.subject()
            let id = try await blocking { try await vault.recordConsent(change, subject: subject, as: context.principal) }
            return Server.json(["record_id": id], status: .created)
        }
        group.post("segments/:name/run") { _, context -> Response in
            let name = try context.parameters.require("name")
            let run = try await blocking { try await SegmentDesk(vault: vault, as: context.principal).run(name) }
            guard run.decision == .permit else { throw Self.denied(reasons: run.reasons) }
            return Server.json(run)
        }
        group.get("segments/:name/members") { request, context -> Response in
            let name = try context.parameters.require("name")
            var limit = 100
            if let text = request.uri.queryParameters["limit"] {
                guard let given = Int(String(text)), (1...1_000).contains(given) else {
                    throw Problem(.unprocessableContent, "validation", "`limit` is a whole number from 1 to 1000", pointer: "/limit")
                }
                limit = given
            }
            let after = request.uri.queryParameters["after"].map(String.init) ?? ""
            guard after.isEmpty || (after.count == 32 && after.allSatisfy(\.isHexDigit)) else {
                throw Problem(.unprocessableContent, "validation", "`after` is a member pseudonym from the previous page", pointer: "/after")
            }
            let run = try await blocking {
                try await SegmentDesk(vault: vault, as: context.principal).run(name, store: false)
            }
            guard run.decision == .permit else { throw Self.denied(reasons: run.reasons) }
            guard !run.countsOnly else {
                throw Problem(
                    .forbidden, "forbidden", "the segment's purpose releases aggregates only: run it for its member count, members are not listed",
                    reasons: ["aggregates_only"])
            }
            // Members are sorted pseudonyms: a page starts after the last one of the previous page.
            let page = Array(run.members.filter { $0 > after }.prefix(limit))
            var response: [String: Any] = ["segment": name, "count": run.members.count, "members": page]
            if page.count == limit, let last = page.last, run.members.last != last { response["next"] = last }
            return Server.json(response)
        }
        group.get("triggers/queue") { _, context -> Response in
            let entries = try await blocking { try await TriggerDesk(vault: vault, as: context.principal).queue() }
            return Server.json(entries)
        }
        group.post("triggers/:id/ack") { _, context -> Response in
            guard let id = Int64(try context.parameters.require("id")) else { throw Problem(.notFound, "not_found", "no such queue entry") }
            try await blocking { try await TriggerDesk(vault: vault, as: context.principal).acknowledge(id) }
            return Server.json(["acknowledged": id])
        }
        group.post("dsr") { request, context -> Response in
            let body = try await Body.read(request, allowed: ["type", "regime", "email", "customer_id", "details"], required: ["type", "regime"])
            let type = try body.choice("type", as: RequestType.self)!, regime = try body.choice("regime", as: Regime.self)!
            let identifiers = RequestIdentifiers(email: try body.string("email", max: 320), customerID: try body.string("customer_id", max: 128))
            let details = RightsDesk.Details(text: try body.string("details", max: 2000))
            let idempotency = request.headers[Self.idempotencyKey]
            let opened = try await blocking {
                try await RightsDesk(vault: vault, as: context.principal).open(
                    type, regime: regime, identifiers: identifiers, details: details, idempotencyKey: idempotency)
            }
            var response = Self.request(opened.record)
            // No mail is configured: the code goes back to the caller, who sends it to the address on file.
            if let code = opened.code { response["verification_code"] = code }
            return Server.json(response, status: .created)
        }
        group.get("dsr/:id") { _, context -> Response in
            let id = try context.parameters.require("id")
            let record = try await RightsDesk(vault: vault, as: context.principal).show(id)
            return Server.json(Self.request(record))
        }
        group.post("dsr/:id/verify") { request, context -> Response in
            let id = try context.parameters.require("id")
            let body = try await Body.read(request, allowed: ["code"], required: ["code"])
            let code = try body.string("code", max: 16)!
            let result = try await blocking {
                try await RightsDesk(vault: vault, as: context.principal).verify(id, code: code)
            }
            switch result.check {
            case .verified: break
            case .wrong(let remaining):
                throw Problem(
                    .unprocessableContent, "validation", "the code is wrong; \(remaining) attempt\(remaining == 1 ? "" : "s") left before it locks",
                    pointer: "/code")
            case .expired:
                throw Problem(.unprocessableContent, "validation", "the code expired; issue a new one and send it to the requester", pointer: "/code")
            case .locked:
                throw Problem(
                    .unprocessableContent, "validation", "too many wrong codes; issue a new one and send it to the requester", pointer: "/code")
            }
            return Server.json(Self.request(result.record))
        }
        group.post("dsr/:id/fulfil") { _, context -> Response in
            let id = try context.parameters.require("id")
            let done = try await blocking { try await RightsDesk(vault: vault, as: context.principal).fulfil(id) }
            var response = Self.request(done.record)
            if let receipt = done.receipt { response["receipt"] = (try? JSONSerialization.jsonObject(with: Data(receipt.json.utf8))) ?? [:] }
            if let verification = done.verification {
                response["verification"] = [
                    "passed": verification.passed, "store_guarantee": verification.storeGuarantee,
                    "checks": verification.checks.map { ["name": $0.name, "passed": $0.passed, "detail": $0.detail] as [String: Any] },
                ]
            }
            return Server.json(response)
        }
        group.post("consent/history") { request, context -> Response in
            let body = try await Body.read(request, allowed: ["subject"], required: ["subject"])
            let subject = try body.subject()
            let history = try await blocking { try await vault.consentHistory(subject: subject, as: context.principal) }
            return Server.json(history)
        }
        group.post("templates") { request, context -> Response in
            let body = try await Body.read(request, allowed: ["name", "purpose", "format", "source"], required: ["name", "purpose", "source"])
            let name = try body.string("name", max: 64)!, source = try body.string("source", max: 256 * 1024)!
            let purpose = try body.choice("purpose", as: Purpose.self)!
            let format = try body.choice("format", as: LiquidTemplate.Format.self) ?? .html
            let stored = try await blocking {
                try await TemplateDesk(vault: vault, as: context.principal).register(
                    name: name, purpose: purpose, format: format, source: source)
            }
            return Server.json(
                ["name": stored.name, "version": stored.version, "purpose": stored.purpose.rawValue, "fields": stored.fields], status: .created)
        }
        group.post("segments") { request, context -> Response in
            let body = try await Body.read(request, allowed: ["name", "purpose", "rule"], required: ["name", "purpose", "rule"])
            let name = try body.string("name", max: 64)!
            let purpose = try body.choice("purpose", as: Purpose.self)!
            let rule: SegmentRule
            do {
                if let text = body.object["rule"] as? String {
                    rule = try SegmentRule(text: text)
                } else {
                    rule = try SegmentRule(json: body.object["rule"]!)
                }
            } catch {
                throw Problem(.unprocessableContent, "validation", "the rule does not parse: \(error)", pointer: "/rule")
            }
            let stored = try await blocking {
                try await SegmentDesk(vault: vault, as: context.principal).define(
                    name: name, purpose: purpose, rule: rule)
            }
            return Server.json(["name": stored.name, "version": stored.version, "rule": stored.rule, "fields": stored.fields], status: .created)
        }
        group.post("recommendations/run") { _, context -> Response in
            let run = try await blocking { try await RecommendationDesk(vault: vault, as: context.principal).run() }
            guard run.decision == .permit else { throw Self.denied(reasons: run.reasons) }
            return Server.json(run)
        }
        group.post("sendtime") { request, context -> Response in
            let body = try await Body.read(request, allowed: ["subject"], required: ["subject"])
            let subject = try body.subject()
            let result = try await blocking { try await SendTimeDesk(vault: vault, as: context.principal).show(subject) }
            guard result.decision.isPermit else { throw Self.denied(result.decision) }
            guard let time = result.time else {
                throw Problem(.notFound, "not_found", "no send time computed for this subject; run `consentry sendtime compute`")
            }
            return Server.json(["hour_of_week": time.hourOfWeek, "label": time.label, "source": time.source, "evidence": time.evidence])
        }
        group.post("experiments") { request, context -> Response in
            let body = try await Body.read(request, allowed: ["name", "purpose", "arms", "holdout"], required: ["name", "purpose", "arms"])
            let name = try body.string("name", max: 64)!
            let purpose = try body.choice("purpose", as: Purpose.self)!
            guard let arms = body.object["arms"] as? [String: Any], arms.count >= 2, arms.count <= 20 else {
                throw Problem(.unprocessableContent, "validation", "`arms` maps 2 to 20 arm names to weights", pointer: "/arms")
            }
            let parsed = try arms.sorted { $0.key < $1.key }.map { key, value -> ExperimentDefinition.Arm in
                guard let weight = (value as? NSNumber)?.doubleValue else {
                    throw Problem(
                        .unprocessableContent, "validation", "the weight of `\(key.prefix(40))` must be a number", pointer: "/arms/\(key.prefix(40))")
                }
                return ExperimentDefinition.Arm(name: key, weight: weight)
            }
            let holdout = (body.object["holdout"] as? NSNumber)?.doubleValue ?? 0.1
            let created = try await blocking {
                try await ExperimentDesk(vault: vault, as: context.principal).create(
                    name: name, purpose: purpose, arms: parsed, holdout: holdout)
            }
            return Server.json(created, status: .created)
        }
        group.post("experiments/:name/assign") { _, context -> Response in
            let name = try context.parameters.require("name")
            let arms = try await blocking { try await ExperimentDesk(vault: vault, as: context.principal).assign(name) }
            return Server.json(arms)
        }
        group.post("experiments/:name/outcomes") { request, context -> Response in
            let name = try context.parameters.require("name")
            let body = try await Body.read(request, allowed: ["outcomes"], required: ["outcomes"])
            guard let items = body.object["outcomes"] as? [[String: Any]], !items.isEmpty, items.count <= 1_000 else {
                throw Problem(.unprocessableContent, "validation", "`outcomes` is a list of 1 to 1,000 objects", pointer: "/outcomes")
            }
            let outcomes = try items.enumerated().map { index, item -> ExperimentOutcome in
                let entry = Body(object: item)
                guard let id = try entry.string("id", max: 128), let kind = try entry.string("kind", max: 16) else {
                    throw Problem(.unprocessableContent, "validation", "each outcome needs `id` and `kind`", pointer: "/outcomes/\(index)")
                }
                var subject: SubjectReference
                if let email = try entry.string("email", max: 320) {
                    subject = .email(email)
                } else if let customer = try entry.string("customer_id", max: 128) {
                    subject = .customerID(customer)
                } else {
                    throw Problem(.unprocessableContent, "validation", "each outcome names `email` or `customer_id`", pointer: "/outcomes/\(index)")
                }
                let time =
                    try entry.string("time", max: 40).flatMap { try? Normalize.timestampMillis($0) } ?? Int64(Date().timeIntervalSince1970 * 1000)
                return ExperimentOutcome(id: id, subject: subject, kind: kind, value: (item["value"] as? NSNumber)?.doubleValue ?? 1, time: time)
            }
            let result = try await blocking {
                try await ExperimentDesk(vault: vault, as: context.principal).record(name, outcomes)
            }
            return Server.json(
                [
                    "recorded": result.recorded, "duplicates": result.duplicates,
                    "rejected": result.rejected.map { ["index": $0.0, "reason": $0.1] as [String: Any] },
                ], status: result.rejected.isEmpty ? .ok : Self.multiStatus)
        }
        group.post("scores/:name") { _, context -> Response in
            let name = try context.parameters.require("name")
            let desk = ScoreDesk(vault: vault, as: context.principal)
            let run: ScoreRun
            switch name {
            case "engagement": run = try await blocking { try await desk.engagement() }
            case "rfm": run = try await blocking { try await desk.rfm() }
            // Models train a new version from the admitted subjects, store it with its metrics and score everyone admitted.
            case "propensity":
                let models = ModelDesk(vault: vault, as: context.principal)
                return Server.json(try await blocking { try await models.trainPropensity() })
            case "clusters":
                let models = ModelDesk(vault: vault, as: context.principal)
                let report = try await blocking { try await models.cluster() }
                return Server.json([
                    "version": report.version, "k": report.k, "sizes": report.sizes, "scored": report.scored, "excluded": report.excluded,
                    "silhouettes": Dictionary(uniqueKeysWithValues: report.silhouettes.map { (String($0.key), $0.value) }),
                ])
            default: throw Problem(.notFound, "not_found", "no score `\(name.prefix(40))`; use engagement, rfm, propensity or clusters")
            }
            guard run.decision == .permit else { throw Self.denied(reasons: run.reasons) }
            return Server.json(run)
        }
        group.get("experiments/:name/report") { _, context -> Response in
            let name = try context.parameters.require("name")
            let report = try await blocking { try await ExperimentDesk(vault: vault, as: context.principal).report(name) }
            return Server.json(report)
        }
        group.get("dsr/:id/receipt") { _, context -> Response in
            let id = try context.parameters.require("id")
            let record = try await RightsDesk(vault: vault, as: context.principal).show(id)
            guard let receipt = record.receipt else { throw Problem(.notFound, "not_found", "only a completed erasure has a receipt") }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: receipt)))
        }
        group.get("dsr/:id/export") { _, context -> Response in
            let id = try context.parameters.require("id")
            let data = try await blocking { try await RightsDesk(vault: vault, as: context.principal).downloadExport(id) }
            return Response(
                status: .ok, headers: [.contentType: "application/json", .contentDisposition: "attachment; filename=\"\(id).json\""],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
        }
        group.get("audit/verify") { _, context -> Response in
            let result = try await blocking { try await vault.verifyAudit(as: context.principal) }
            return Server.json(result)
        }
        group.post("audit/query") { request, context -> Response in
            let body = try await Body.read(
                request, allowed: ["subject", "actor", "role", "purpose", "action", "decision", "since", "until", "limit"])
            var filter = AuditFilter(limit: 100)
            // Identifiers travel in the body, never in the URL, so a subject filter makes this a POST.
            if body.object["subject"] != nil { filter.subject = try body.subject() }
            filter.actor = try body.string("actor", max: 128)
            filter.role = try body.choice("role", as: Role.self)
            filter.purpose = try body.choice("purpose", as: Purpose.self)
            filter.action = try body.choice("action", as: AuditAction.self)?.rawValue
            filter.decision = try body.choice("decision", as: Effect.self)
            filter.since = try body.timestamp("since")
            filter.until = try body.timestamp("until")
            if let limit = body.object["limit"] {
                guard let number = limit as? Int, (1...1_000).contains(number) else {
                    throw Problem(.unprocessableContent, "validation", "`limit` is a whole number from 1 to 1,000", pointer: "/limit")
                }
                filter.limit = number
            }
            let query = filter
            let entries = try await blocking { try await vault.queryAudit(query, as: context.principal) }
            // The entries in their canonical form with hashes, exactly as the log's JSON Lines export has them.
            let text = "{\"count\":\(entries.count),\"entries\":[" + entries.map(\.exportLine).joined(separator: ",") + "]}"
            return Server.json(data: Data(text.utf8))
        }
        group.get("audit/export") { request, context -> Response in
            let name = request.uri.queryParameters["format"].map(String.init) ?? "jsonl"
            guard let format = AuditExportFormat(rawValue: name) else {
                throw Problem(.unprocessableContent, "validation", "`format` must be jsonl or csv", pointer: "/format")
            }
            // The log is written to a private file first (the export is audited when it completes), then streamed
            // and deleted, so a large log never sits in memory.
            let folder = vault.directory.appendingPathComponent("exports")
            let file = folder.appendingPathComponent(".audit-\(UUID().uuidString.lowercased()).\(format.rawValue)")
            let count = try await blocking { () throws -> Int in
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                guard FileManager.default.createFile(atPath: file.path, contents: nil, attributes: [.posixPermissions: 0o600]),
                    let handle = FileHandle(forWritingAtPath: file.path)
                else { throw Problem(.serviceUnavailable, "unavailable", "the vault's exports folder is not writable") }
                defer { try? handle.close() }
                do { return try await vault.exportAudit(format, to: handle, as: context.principal) } catch {
                    try? FileManager.default.removeItem(at: file)
                    throw error
                }
            }
            let body = ResponseBody { writer in
                defer { try? FileManager.default.removeItem(at: file) }
                let handle = try FileHandle(forReadingFrom: file)
                defer { try? handle.close() }
                while let chunk = try handle.read(upToCount: 1 << 16), !chunk.isEmpty { try await writer.write(ByteBuffer(bytes: chunk)) }
                try await writer.finish(nil)
            }
            return Response(
                status: .ok,
                headers: [
                    .contentType: format == .jsonl ? "application/x-ndjson" : "text/csv; charset=utf-8",
                    .contentDisposition: "attachment; filename=\"audit.\(format.rawValue)\"",
                    HTTPField.Name("X-Entry-Count")!: String(count),
                ], body: body)
        }
        group.get("audit/reports/:name") { _, context -> Response in
            guard let name = ReportName(rawValue: try context.parameters.require("name")) else {
                throw Problem(.notFound, "not_found", "no such report; use access-summary, denials or art30")
            }
            let report = try await blocking { try await vault.report(name, as: context.principal) }
            return Server.json(report)
        }
        group.post("policy/explain") { request, context -> Response in
            let body = try await Body.read(request, allowed: ["action", "purpose", "fields", "reason", "subject"], required: ["action"])
            let fields = try (body.object["fields"] as? [String] ?? []).map { name -> FieldName in
                guard let field = FieldName(name) else {
                    throw Problem(.unprocessableContent, "validation", "`\(name.prefix(40))` is not a field name", pointer: "/fields")
                }
                return field
            }
            // The role is the token's: a caller cannot ask as another role.
            let access = AccessRequest(
                actor: context.actor, role: context.role, action: try body.choice("action", as: Action.self)!,
                purpose: try body.choice("purpose", as: Purpose.self),
                fields: fields, reason: try body.string("reason"))
            let subject = body.object["subject"] == nil ? nil : try body.subject()
            let explanation = try await blocking { try await vault.explain(access, subject: subject, requestID: context.principal.requestID) }
            return Server.json(explanation)
        }
    }

    static let multiStatus = HTTPResponse.Status(code: 207, reasonPhrase: "Multi-Status")
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!

    /// Runs an import once per `Idempotency-Key`, when one is sent: a retry with the same key and body gets the first
    /// response again (marked `Idempotent-Replayed: true`) and imports nothing; the same key with another body is a
    /// 422, and a retry while the first is still running a 409. Keys are scoped to the token and kept 24 hours.
    static func idempotent(
        _ request: Request, _ context: ServerContext, _ vault: Vault, _ body: Body,
        _ run: @Sendable () async throws -> (HTTPResponse.Status, Data)
    ) async throws -> Response {
        guard let key = request.headers[idempotencyKey] else {
            let (status, data) = try await run()
            return Server.json(data: data, status: status)
        }
        let raw = body.raw
        switch try await vault.beginIdempotent(key: key, scope: context.actor, body: raw) {
        case .replay(let first):
            var response = Server.json(data: first.body, status: HTTPResponse.Status(code: first.status))
            response.headers[HTTPField.Name("Idempotent-Replayed")!] = "true"
            return response
        case .mismatch:
            throw Problem(
                .unprocessableContent, "validation", "this Idempotency-Key was used with a different body; send a new key with a new request")
        case .inFlight:
            throw Problem(.conflict, "conflict", "a request with this Idempotency-Key is still running; retry when it has finished")
        case .new(let claim):
            do {
                let (status, data) = try await run()
                await vault.finishIdempotent(claim, response: IdempotentResponse(status: Int(status.code), body: data))
                return Server.json(data: data, status: status)
            } catch {
                await vault.finishIdempotent(claim, response: nil)
                throw error
            }
        }
    }

    /// A gated batch run (segment, score, recommendations) the gate refused, with the reasons it gave.
    static func denied(reasons: [String]) -> Problem {
        Problem(.forbidden, "forbidden", "denied: " + reasons.joined(separator: "; "))
    }

    static func denied(_ decision: Decision) -> Problem {
        // The gate looks a subject up only for a role the policy allows the action and purpose (others are denied
        // before, whether or not the subject exists), and such a role learns of existence from any permit anyway:
        // an unknown subject is therefore a 404 for it, and never an oracle for a role without the permission.
        if decision.reasons.contains(where: { $0.code == .subjectNotFound }) {
            return Problem(
                .notFound, "not_found", "no subject with that identifier; check the e-mail address or customer id",
                reasons: [DecisionReason.Code.subjectNotFound.rawValue])
        }
        return Problem(
            .forbidden, "forbidden", "denied: " + decision.reasons.map(\.description).joined(separator: "; "),
            reasons: decision.reasons.map(\.code.rawValue))
    }

    static func request(_ record: RequestRecord) -> [String: Any] {
        var out: [String: Any] = [
            "id": record.id, "type": record.type.rawValue, "regime": record.regime.rawValue, "status": record.status.rawValue,
            "received_at": Normalize.formatTimestamp(millis: record.receivedAt), "due": Normalize.formatTimestamp(millis: record.effectiveDueAt),
            "verified": record.verifiedAt != nil,
        ]
        if let file = record.exportFile { out["export_file"] = file }
        if let outcome = record.outcome { out["outcome"] = outcome }
        return out
    }
}
