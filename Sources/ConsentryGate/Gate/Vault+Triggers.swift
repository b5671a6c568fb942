import ConsentryAudit
public import ConsentryCore
import ConsentryCrypto
import ConsentryPolicy
import Foundation
import GRDB

/// A trigger definition.
public struct TriggerDefinition: Sendable, Codable, Equatable {
    /// Its name.
    public var name: String
    /// `cart_abandoned`, `viewed_not_purchased` or `browse_abandoned`.
    public var kind: String
    /// The purpose its messages serve.
    public var purpose: Purpose
    /// How long after the causing event it fires if nothing cancels it (ms).
    public var delay: Int64
    /// The role that defined it; checks act in this role.
    public var role: Role
    /// When it was defined (ms): events before this never fire it.
    public var definedAt: Int64
}

/// One occurrence found by a trigger check, before it is queued.
public struct TriggerOccurrence: Sendable, Hashable {
    /// The subject.
    public var subject: SubjectID
    /// What identifies the occurrence for this subject and trigger (for at-most-once firing).
    public var key: String
    /// When the causing event happened (ms).
    public var occurredAt: Int64
    /// The item involved, if any.
    public var item: String?
    /// Its category, if known.
    public var category: String?

    /// Creates an occurrence.
    public init(subject: SubjectID, key: String, occurredAt: Int64, item: String? = nil, category: String? = nil) {
        self.subject = subject
        self.key = key
        self.occurredAt = occurredAt
        self.item = item
        self.category = category
    }
}

/// A fired trigger in the queue, as the campaign platform reads it.
public struct QueuedTrigger: Sendable, Codable, Equatable {
    /// The queue entry (pass it to `render --trigger` to render for its subject).
    public var id: Int64
    /// The trigger.
    public var trigger: String
    /// The subject's audit pseudonym.
    public var subject: String
    /// The item involved.
    public var item: String?
    /// Its category.
    public var category: String?
    /// When the causing event happened (RFC 3339).
    public var occurredAt: String
    /// When it fired (RFC 3339).
    public var firedAt: String
}

extension Vault {
    /// Defines a trigger. The role needs `segment` for the purpose (a trigger is a behavioral segment in time). Audited.
    @discardableResult
    public func defineTrigger(name: String, kind: String, purpose: Purpose, delay: Int64, as principal: Principal) async throws(GateError)
        -> TriggerDefinition
    {
        let (actor, role) = (principal.actor, principal.role)
        guard FieldName.isValid(name) else { throw GateError(.invalidInput, "trigger names are lower-case identifiers") }
        let request = AccessRequest(actor: actor, role: role, action: .segment, purpose: purpose)
        let now = nowMillis
        return try await perform(request, requestID: principal.requestID, failure: "define the trigger (nothing was stored)") { scope in
            // A redefinition keeps the time the trigger first fired from: events it could have fired on stay eligible.
            let since = try await scope.tx.catalogEntry(.trigger, named: name)?.decodeBody(TriggerBody.self).firesSince ?? now
            _ = try await scope.tx.addCatalogVersion(
                .trigger, name: name, purpose: purpose, role: role, body: TriggerBody(kind: kind, delayMillis: delay, firesSince: since),
                definedBy: actor, at: now)
            scope.entry.reasons.append("trigger `\(name)` (\(kind)) defined")
            return TriggerDefinition(name: name, kind: kind, purpose: purpose, delay: delay, role: role, definedAt: since)
        }
    }

    /// Every trigger definition.
    public func triggerDefinitions() async throws(GateError) -> [TriggerDefinition] {
        let entries: [CatalogEntry]
        do { entries = try await store.catalog(.trigger, allVersions: false) } catch { throw Self.storageError(error, "read the triggers") }
        return try entries.map { entry throws(GateError) in
            let body = try entry.decodeBody(TriggerBody.self)
            return TriggerDefinition(
                name: entry.name, kind: body.kind, purpose: entry.purpose, delay: body.delayMillis, role: try entry.actingRole(),
                definedAt: body.firesSince)
        }
    }

    /// Queues occurrences of `trigger`. Each subject's consent is checked again as it fires (a withdrawal since the
    /// check means no entry); an occurrence already queued is not queued again. One audit entry holds the subject set.
    /// - Returns: (fired, already fired, skipped by the gate).
    @discardableResult
    public func enqueueTriggers(_ trigger: TriggerDefinition, occurrences: [TriggerOccurrence], actor: String) async throws(GateError) -> (
        fired: Int, duplicates: Int, skipped: Int
    ) {
        guard !occurrences.isEmpty else { return (0, 0, 0) }
        let request = AccessRequest(actor: actor, role: trigger.role, action: .segment, purpose: trigger.purpose)
        return try await perform(request, requestID: nil, failure: "queue the trigger (nothing was queued)") { scope -> (Int, Int, Int) in
            let db = scope.db
            // The policy the decision was taken under; a reload that broke it since denies, audited.
            guard let policy = loadedPolicy else { throw Refusal(request: request, decision: decide(request)) }
            try refreshKEKs(db)
            var states: [Int64: DerivedState] = [:]
            let ids = occurrences.map(\.subject.rawValue)
            _ = try applyLedger(db, from: ids.min()!, to: ids.max()!, after: (0, 0), withRecordIDs: false, to: &states)
            var fired = 0, duplicates = 0, skipped = 0
            var pseudonyms: [UInt8] = []
            var scratch = try SecretBytes(count: Sealing.keyLength)
            defer { scratch.zero() }
            let nonces = NonceSource()
            let now = nowMillis
            for occurrence in occurrences {
                let subject = occurrence.subject
                // INVARIANT: consent is re-checked when the trigger fires, not only when it was found.
                if policy.admit(states[subject.rawValue]?.state ?? SubjectState(), purpose: trigger.purpose) != nil {
                    skipped += 1
                    continue
                }
                guard let row = try subjectRow(subject, db: db) else {
                    skipped += 1
                    continue
                }
                let key = Data(keys.eventIDs.hash(tag: 0x40, "\(trigger.name)|\(subject.rawValue)|\(occurrence.key)"))
                if try await scope.tx.triggerOccurrenceQueued(key) {
                    duplicates += 1
                    continue
                }
                try unwrapDataKey(of: subject, kekVersion: row.kekVersion, wrapped: row.wrappedKey, into: &scratch)
                var payload: [String: String] = [:]
                payload["item"] = occurrence.item
                payload["category"] = occurrence.category
                let sealed = Sealing.seal(
                    String(decoding: try JSONEncoder.sorted.encode(payload), as: UTF8.self), key: scratch,
                    associatedData: Sealing.derivedAssociatedData(
                        subject: subject, kind: "trigger", name: trigger.name, keyVersion: row.keyVersion),
                    nonces: nonces)
                scratch.zero()
                try await scope.tx.enqueueTrigger(
                    QueuedTriggerRow(
                        id: 0, trigger: trigger.name, subjectID: subject.rawValue, occurrence: key, payload: Data(sealed),
                        occurredAt: occurrence.occurredAt, firedAt: now, acknowledgedAt: nil))
                pseudonyms += pseudonymBytes(secret: row.auditSecret)
                fired += 1
            }
            scope.entry.subjectSet = pseudonyms
            scope.entry.counts = ["fired": fired, "duplicates": duplicates, "skipped": skipped]
            scope.entry.reasons.append("trigger `\(trigger.name)` fired")
            return (fired, duplicates, skipped)
        }
    }

    /// Pending queue entries (oldest first), for a role that may render for the trigger's purpose. Audited with the set
    /// of subjects released; entries of subjects whose consent was withdrawn since they fired are withheld.
    public func triggerQueue(trigger name: String? = nil, limit: Int = 100, as principal: Principal) async throws(GateError) -> [QueuedTrigger] {
        let (actor, role) = (principal.actor, principal.role)
        // A policy that does not load denies every queue: say so (audited) rather than answer with an empty list.
        if loadedPolicy == nil {
            let request = AccessRequest(actor: actor, role: role, action: .render)
            try await refuse(request, decide(request), requestID: principal.requestID)
        }
        var result: [QueuedTrigger] = []
        for trigger in try await triggerDefinitions() where name == nil || trigger.name == name {
            let request = AccessRequest(actor: actor, role: role, action: .render, purpose: trigger.purpose)
            // Asked for every queue, a role sees the queues of the purposes it may render for; asked for one, a denial
            // is audited and thrown.
            let decision = decide(request)
            guard decision.isPermit || name != nil else { continue }
            await result += try perform(request, requestID: principal.requestID, decision: decision, failure: "read the trigger queue") {
                scope -> [QueuedTrigger] in
                let db = scope.db
                guard let policy = loadedPolicy else { throw Refusal(request: request, decision: decide(request)) }
                let rows = try await scope.tx.pendingTriggers(trigger.name, limit: max(1, min(limit, 10_000)))
                guard !rows.isEmpty else {
                    scope.records = false
                    return []
                }
                try refreshKEKs(db)
                var states: [Int64: DerivedState] = [:]
                let ids = rows.map(\.0.subjectID)
                _ = try applyLedger(db, from: ids.min()!, to: ids.max()!, after: (0, 0), withRecordIDs: false, to: &states)
                var scratch = try SecretBytes(count: Sealing.keyLength)
                defer { scratch.zero() }
                var out: [QueuedTrigger] = []
                var pseudonyms: [UInt8] = []
                for (entry, keys) in rows {
                    let subject = SubjectID(rawValue: entry.subjectID)
                    guard policy.admit(states[subject.rawValue]?.state ?? SubjectState(), purpose: trigger.purpose) == nil else { continue }
                    try unwrapDataKey(of: subject, kekVersion: keys.kekVersion, wrapped: keys.wrappedKey, into: &scratch)
                    let ad = Sealing.derivedAssociatedData(subject: subject, kind: "trigger", name: trigger.name, keyVersion: keys.keyVersion)
                    guard let text = entry.payload.withUnsafeBytes({ Sealing.openString($0, key: scratch, associatedData: ad) }) else {
                        throw GateError(.integrity, "a queued trigger of \(subjectLabel(subject, db)) failed its integrity check")
                    }
                    scratch.zero()
                    let payload = (try? JSONDecoder().decode([String: String].self, from: Data(text.utf8))) ?? [:]
                    pseudonyms += pseudonymBytes(secret: keys.auditSecret)
                    out.append(
                        QueuedTrigger(
                            id: entry.id, trigger: trigger.name, subject: pseudonym(secret: keys.auditSecret), item: payload["item"],
                            category: payload["category"], occurredAt: Normalize.formatTimestamp(millis: entry.occurredAt),
                            firedAt: Normalize.formatTimestamp(millis: entry.firedAt)))
                }
                scope.entry.subjectSet = pseudonyms
                scope.entry.counts = ["released": out.count]
                scope.entry.reasons.append("trigger queue `\(trigger.name)` read")
                return out
            }
        }
        return result
    }

    /// Marks a queue entry handled. Needs `render` for the trigger's purpose.
    public func acknowledgeTrigger(_ id: Int64, as principal: Principal) async throws(GateError) {
        let (actor, role) = (principal.actor, principal.role)
        let definitions = try await triggerDefinitions()
        let name: String?
        do { name = try await store.queuedTrigger(id)?.trigger } catch { throw Self.storageError(error, "acknowledge the trigger") }
        guard let name, let trigger = definitions.first(where: { $0.name == name }) else { throw GateError(.notFound, "no queued trigger \(id)") }
        let request = AccessRequest(actor: actor, role: role, action: .render, purpose: trigger.purpose)
        try await perform(request, requestID: principal.requestID, failure: "acknowledge the trigger") { scope in
            _ = try await scope.tx.acknowledgeTrigger(id, at: nowMillis)
            scope.entry.reasons.append("trigger queue entry \(id) acknowledged")
        }
    }
}

/// A trigger's fields in the catalog, beside its name, version, purpose and role.
struct TriggerBody: Codable {
    /// `cart_abandoned`, `viewed_not_purchased` or `browse_abandoned`.
    var kind: String
    /// How long after the causing event it fires (ms).
    var delayMillis: Int64
    /// When it was first defined (ms): events before this never fire it.
    var firesSince: Int64
}
