public import ConsentryCore
public import ConsentryGate
import ConsentryPolicy
public import Foundation

/// The kinds of trigger.
public enum TriggerKind: String, Sendable, CaseIterable, Codable {
    /// An item was put in the cart and nothing was bought within the delay (default 5 minutes).
    case cartAbandoned = "cart_abandoned"
    /// An item was viewed and not bought within the delay (default 1 day); at most once per item per day.
    case viewedNotPurchased = "viewed_not_purchased"
    /// A browsing session (3 or more views less than 30 minutes apart) ended with no cart add or purchase within the
    /// delay (default 1 hour).
    case browseAbandoned = "browse_abandoned"

    /// The delay used when none is given.
    public var defaultDelay: Int64 {
        switch self {
        case .cartAbandoned: 5 * 60_000
        case .viewedNotPurchased: 86_400_000
        case .browseAbandoned: 3_600_000
        }
    }

    /// Occurrences in one subject's events (oldest first) whose delay has passed by `now`, among events at or after `since`.
    public func occurrences(_ events: [BehaviorEvent], subject: SubjectID, delay: Int64, since: Int64, now: Int64) -> [TriggerOccurrence] {
        var out: [TriggerOccurrence] = []
        func bought(after t: Int64, item: String?) -> Bool {
            events.contains { $0.type == .purchase && $0.time > t && $0.time <= t + delay && (item == nil || $0.itemID == item) }
        }
        switch self {
        case .cartAbandoned:
            for e in events where e.type == .cartAdd && e.time >= since && e.time + delay <= now && !bought(after: e.time, item: nil) {
                out.append(
                    TriggerOccurrence(
                        subject: subject, key: "cart|\(e.time)|\(e.itemID ?? "")", occurredAt: e.time, item: e.itemID, category: e.category))
            }
        case .viewedNotPurchased:
            var seen: Set<String> = []
            for e in events where e.type == .view && e.time >= since && e.time + delay <= now && !bought(after: e.time, item: e.itemID) {
                let key = "view|\(e.itemID ?? "")|\(e.time / 86_400_000)"
                if seen.insert(key).inserted {
                    out.append(TriggerOccurrence(subject: subject, key: key, occurredAt: e.time, item: e.itemID, category: e.category))
                }
            }
        case .browseAbandoned:
            let views = events.filter { $0.type == .view && $0.time >= since }
            var start = 0
            while start < views.count {
                var end = start
                while end + 1 < views.count && views[end + 1].time - views[end].time <= 30 * 60_000 { end += 1 }
                let last = views[end]
                let converted = events.contains {
                    ($0.type == .cartAdd || $0.type == .purchase) && $0.time >= views[start].time && $0.time <= last.time + delay
                }
                if end - start + 1 >= 3 && last.time + delay <= now && !converted {
                    out.append(
                        TriggerOccurrence(
                            subject: subject, key: "browse|\(views[start].time)", occurredAt: last.time, item: last.itemID, category: last.category))
                }
                start = end + 1
            }
        }
        return out
    }
}

/// What a trigger check did.
public struct TriggerCheck: Sendable, Codable, Equatable {
    /// The trigger.
    public var trigger: String
    /// Newly queued occurrences.
    public var fired: Int
    /// Occurrences already queued before.
    public var duplicates: Int
    /// Occurrences withheld because the subject's consent no longer admits the purpose.
    public var skipped: Int
}

/// Triggers: definitions, checks (after event imports and on a schedule), and the queue the campaign platform reads.
public struct TriggerDesk: Sendable {
    /// The vault.
    public let vault: Vault
    /// Who acts.
    public let principal: Principal
    /// Who acts, as recorded in the audit log.
    public var actor: String { principal.actor }
    /// The role: `segment` for the purpose to define; `render` for it to read the queue.
    public var role: Role { principal.role }

    /// Creates a desk.
    public init(vault: Vault, as principal: Principal) {
        self.vault = vault
        self.principal = principal
    }

    /// Defines a trigger for `purpose`.
    public func define(name: String, kind: TriggerKind, purpose: Purpose, delay: Int64? = nil) async throws(GateError) -> TriggerDefinition {
        if let delay, delay <= 0 || delay > 30 * 86_400_000 { throw GateError(.invalidInput, "a trigger delay is between 1 minute and 30 days") }
        return try await vault.defineTrigger(
            name: name, kind: kind.rawValue, purpose: purpose, delay: delay ?? kind.defaultDelay, as: principal)
    }

    /// Checks every trigger (for `subjects` only, when given) and queues occurrences whose delay has passed. Events from
    /// before a trigger was defined, or older than a week, never fire it. Each check scans through the gate in the role
    /// that defined the trigger, and consent is checked again as each occurrence is queued.
    public func check(subjects: Set<SubjectID>? = nil, now: Date = Date()) async throws(GateError) -> [TriggerCheck] {
        if let subjects, subjects.isEmpty { return [] }
        let nowMillis = Int64(now.timeIntervalSince1970 * 1000)
        var results: [TriggerCheck] = []
        for trigger in try await vault.triggerDefinitions() {
            guard let kind = TriggerKind(rawValue: trigger.kind) else { continue }
            let since = max(trigger.definedAt, nowMillis - 7 * 86_400_000)
            let request = AccessRequest(actor: actor, role: trigger.role, action: .segment, purpose: trigger.purpose)
            var found: [TriggerOccurrence] = []
            let summary = try await vault.scanBehavior(request, eventsSince: since - 30 * 60_000, only: subjects, requestID: principal.requestID) { member, _, events in
                found += kind.occurrences(events, subject: member.subject, delay: trigger.delay, since: since, now: nowMillis)
            }
            guard summary.decision == .permit else { continue }
            let queued = try await vault.enqueueTriggers(trigger, occurrences: found, actor: actor)
            results.append(TriggerCheck(trigger: trigger.name, fired: queued.fired, duplicates: queued.duplicates, skipped: queued.skipped))
        }
        return results
    }

    /// Pending entries the role may act on.
    public func queue(trigger: String? = nil, limit: Int = 100) async throws(GateError) -> [QueuedTrigger] {
        try await vault.triggerQueue(trigger: trigger, limit: limit, as: principal)
    }

    /// Marks an entry handled.
    public func acknowledge(_ id: Int64) async throws(GateError) { try await vault.acknowledgeTrigger(id, as: principal) }
}

/// What an event import set in motion.
public struct ImportFollowUp: Sendable {
    /// Memberships written per event-based segment, for the touched subjects.
    public var segments: [String: Int]
    /// Trigger checks that fired something.
    public var triggers: [TriggerCheck]
}

extension Vault {
    /// After an event import: brings event-based segments up to date and checks triggers for the subjects that
    /// received events, each in the role that defined it. Every import path (CLI, API) calls this one function.
    public func followUpEventImport(_ report: ImportReport, as principal: Principal) async throws(GateError) -> ImportFollowUp {
        let segments = try await SegmentDesk(vault: self, as: principal).refresh(subjects: report.touchedSubjects)
        let triggers = try await TriggerDesk(vault: self, as: principal).check(subjects: report.touchedSubjects).filter {
            $0.fired > 0
        }
        return ImportFollowUp(segments: segments, triggers: triggers)
    }
}
