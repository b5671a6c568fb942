public import ConsentryCore
public import ConsentryGate
import ConsentryPolicy
public import Foundation

/// The result of running a segment.
public struct SegmentRun: Sendable, Codable, Equatable {
    /// The segment.
    public var segment: String
    /// Permit or deny of the run itself.
    public var decision: Effect
    /// Why a run was denied, or the granting rule.
    public var reasons: [String]
    /// Subjects the gate handed to the rule (consent and flags admitted them).
    public var evaluated: Int
    /// Members, as member pseudonyms for the segment's purpose (sorted); empty for an aggregates-only purpose, which
    /// releases ``memberCount`` only.
    public var members: [String]
    /// How many subjects are members.
    public var memberCount: Int
    /// Whether the purpose releases aggregates only, so that ``members`` stays empty.
    public var countsOnly: Bool
    /// Subjects the gate excluded before the rule saw them, by reason.
    public var excluded: [String: Int]
    /// Memberships stored as derived data.
    public var stored: Int
}

/// Segments on a vault: defining rules for a purpose, running them through the gate, overlaps, and incremental updates.
public struct SegmentDesk: Sendable {
    /// The vault.
    public let vault: Vault
    /// Who acts.
    public let principal: Principal
    /// Who acts, as recorded in the audit log.
    public var actor: String { principal.actor }
    /// The role acted in (`segment` for the purpose).
    public var role: Role { principal.role }
    /// How `engagement` is scored.
    public let engagement: Engagement

    /// Creates a desk.
    public init(vault: Vault, as principal: Principal, engagement: Engagement = Engagement()) {
        self.vault = vault
        self.principal = principal
        self.engagement = engagement
    }

    /// The stored rules by name, parsed.
    func rules() async throws(GateError) -> [String: (StoredSegment, SegmentRule)] {
        var out: [String: (StoredSegment, SegmentRule)] = [:]
        for segment in try await vault.segments() {
            do { out[segment.name] = (segment, try SegmentRule(text: segment.rule)) } catch {
                throw GateError(.integrity, "stored segment `\(segment.name)` no longer parses (\(error)); define it again")
            }
        }
        return out
    }

    /// Profile fields of `rule` and of every segment it refers to, transitively; throws on an unknown reference or a cycle.
    func closure(of rule: SegmentRule, named name: String, in known: [String: (StoredSegment, SegmentRule)]) throws(GateError) -> Set<String> {
        var fields = Set(rule.profileFields)
        func collect(_ rule: SegmentRule, path: [String]) throws(GateError) {
            for reference in rule.segmentReferences {
                guard reference != name, !path.contains(reference) else {
                    throw GateError(
                        .invalidInput, "segment `\(name)` would refer to itself through `\(reference)`; segment references may not form a cycle")
                }
                guard let (_, referenced) = known[reference] else {
                    throw GateError(.invalidInput, "`segment(\(reference.prefix(64)))` refers to no defined segment; define it first")
                }
                fields.formUnion(referenced.profileFields)
                try collect(referenced, path: path + [reference])
            }
        }
        try collect(rule, path: [])
        return fields
    }

    /// Defines (or redefines) a segment for `purpose`: checks names against the vault's fields, references and cycles;
    /// the gate then refuses a field the purpose does not allow.
    public func define(name: String, purpose: Purpose, rule: SegmentRule) async throws(GateError) -> StoredSegment {
        let known = Set(vault.profileFieldNames)
        let identifiers = Set(vault.schema.fields.filter { $0.identityKind != nil }.map(\.name.rawValue))
        var problems: [String] = []
        rule.visit { node in
            if case .attribute(let field, _, let values) = node {
                if field != SegmentRule.engagement && !known.contains(field) {
                    problems.append("`\(field.prefix(40))` is not a profile field (fields.yaml) or `engagement`")
                }
                // A literal compared with an identifier is one person's e-mail, phone or id kept in the definition,
                // where no erasure reaches it; a segment of named people is no segment.
                if identifiers.contains(field) && !values.allSatisfy({ $0 == .text("") }) {
                    problems.append(
                        "`\(field)` identifies a person: a rule may not compare it with a value (the value would be personal data kept in the definition); segment on other fields or on events"
                    )
                }
                if values.contains(where: { if case .duration = $0 { return true } else { return false } }) {
                    problems.append("`\(field.prefix(40))` is compared with a duration; durations belong to event windows")
                }
            }
        }
        if let problem = problems.first { throw GateError(.invalidInput, problem) }
        var existing = try await rules()
        existing[name] = nil
        let fields = try closure(of: rule, named: name, in: existing)
        return try await vault.defineSegment(
            name: name, purpose: purpose, rule: rule.text, fields: fields.sorted(),
            readsEvents: rule.readsEvents || rule.segmentReferences.contains { existing[$0]?.1.readsEvents == true },
            as: principal)
    }

    /// Runs a segment through the gate: every admitted subject is evaluated, members are returned as pseudonyms and (with
    /// `store`) stored as derived data `segment/<name>`, replacing the previous members.
    public func run(_ name: String, store: Bool = true, now: Date = Date()) async throws(GateError) -> SegmentRun {
        try await evaluate(name, store: store, now: now).run
    }

    /// ``run(_:store:now:)`` with the members' internal ids, which never leave this module, and the segment's purpose.
    private func evaluate(_ name: String, store: Bool, now: Date) async throws(GateError) -> (run: SegmentRun, members: Set<SubjectID>, purpose: Purpose) {
        let all = try await rules()
        guard let (segment, rule) = all[name] else {
            throw GateError(.notFound, "no segment `\(name.prefix(64))`; `consentry segment list` shows the defined ones")
        }
        let nowMillis = Int64(now.timeIntervalSince1970 * 1000)
        let evaluator = SegmentEvaluator(now: nowMillis, engagement: engagement, segments: all.mapValues(\.1))
        let request = AccessRequest(
            actor: actor, role: role, action: .segment, purpose: segment.purpose, fields: segment.fields.compactMap(FieldName.init))
        var members: [SubjectID: String] = [:]
        var pseudonyms: [String] = []
        var memberCount = 0
        var evaluated = 0
        let readsEvents = segment.readsEvents
        let horizon = readsEvents ? horizon(rule, all) : nil
        let visit = { (member: ScanMember, values: [String?], events: [BehaviorEvent]) in
            evaluated += 1
            var profile: [String: String] = [:]
            for (field, value) in zip(segment.fields, values) { if let value { profile[field] = value } }
            if evaluator.holds(rule, profile: profile, events: events) {
                members[member.subject] = Normalize.formatTimestamp(millis: nowMillis)
                if let pseudonym = member.pseudonym { pseudonyms.append(pseudonym) }
                memberCount += 1
            }
        }
        // A rule without events needs no event reads at all.
        let summary =
            readsEvents
            ? try await vault.scanBehavior(request, eventsSince: horizon.map { nowMillis - $0 }, requestID: principal.requestID, visit)
            : try await vault.scan(request, requestID: principal.requestID) { member, values in visit(member, values, []) }
        var run = SegmentRun(
            segment: name, decision: summary.decision, reasons: summary.reasons, evaluated: evaluated, members: pseudonyms.sorted(),
            memberCount: memberCount, countsOnly: (try? vault.policy.get())?.purposes[segment.purpose]?.aggregatesOnly ?? true,
            excluded: summary.excluded.merging(summary.excludedDuringScan, uniquingKeysWith: +), stored: 0)
        guard summary.decision == .permit else { return (run, [], segment.purpose) }
        if store {
            let write = try await vault.writeDerived(
                AccessRequest(actor: actor, role: role, action: .segment, purpose: segment.purpose), kind: "segment", name: name, values: members,
                replaceAll: true, requestID: principal.requestID)
            run.stored = write.written
        }
        return (run, Set(members.keys), segment.purpose)
    }

    /// The widest event window `rule` (with its references) needs, or nil for the whole history.
    func horizon(_ rule: SegmentRule, _ all: [String: (StoredSegment, SegmentRule)]) -> Int64? {
        var result = rule.eventHorizon
        for reference in rule.segmentReferences {
            guard let (_, referenced) = all[reference] else { continue }
            guard let current = result, let other = horizon(referenced, all) else { return nil }
            result = max(current, other)
        }
        return result
    }

    /// Members of two segments and their overlap, as counts (each segment is run through the gate; nothing is stored).
    /// Both segments must serve the same purpose: an overlap across purposes would join one purpose's results with
    /// another's, which the policy keeps apart.
    public func overlap(_ a: String, _ b: String, now: Date = Date()) async throws(GateError) -> (a: Int, b: Int, both: Int, jaccard: Double) {
        let known = try await rules()
        for name in [a, b] where known[name] == nil {
            throw GateError(.notFound, "no segment `\(name.prefix(64))`; `consentry segment list` shows the defined ones")
        }
        let (purposeA, purposeB) = (known[a]!.0.purpose, known[b]!.0.purpose)
        guard purposeA == purposeB else {
            throw GateError(
                .denied,
                "denied: `\(a.prefix(64))` serves \(purposeA.rawValue) and `\(b.prefix(64))` serves \(purposeB.rawValue); an overlap would join results across purposes, so compare segments of one purpose"
            )
        }
        let firstRun = try await evaluate(a, store: false, now: now), secondRun = try await evaluate(b, store: false, now: now)
        for run in [firstRun.run, secondRun.run] where run.decision != .permit {
            throw GateError(.denied, "denied: " + run.reasons.joined(separator: "; "))
        }
        let first = firstRun.members, second = secondRun.members
        let both = first.intersection(second).count
        let union = first.union(second).count
        return (first.count, second.count, both, union == 0 ? 0 : Double(both) / Double(union))
    }

    /// Re-evaluates the event-based segments for `subjects` only (those that just received events), each in the role
    /// that defined it, and updates their stored memberships: the incremental path that keeps segments current without
    /// a full re-scan. Returns how many memberships were added or confirmed per segment.
    @discardableResult
    public func refresh(subjects: Set<SubjectID>, now: Date = Date()) async throws(GateError) -> [String: Int] {
        guard !subjects.isEmpty else { return [:] }
        let all = try await rules()
        let nowMillis = Int64(now.timeIntervalSince1970 * 1000)
        let evaluator = SegmentEvaluator(now: nowMillis, engagement: engagement, segments: all.mapValues(\.1))
        var result: [String: Int] = [:]
        for (name, (segment, rule)) in all.sorted(by: { $0.key < $1.key }) where segment.readsEvents {
            let request = AccessRequest(
                actor: actor, role: segment.role, action: .segment, purpose: segment.purpose, fields: segment.fields.compactMap(FieldName.init))
            var members: [SubjectID: String] = [:]
            let since = horizon(rule, all).map { nowMillis - $0 }
            let summary = try await vault.scanBehavior(request, eventsSince: since, only: subjects, requestID: principal.requestID) { member, values, events in
                var profile: [String: String] = [:]
                for (field, value) in zip(segment.fields, values) { if let value { profile[field] = value } }
                if evaluator.holds(rule, profile: profile, events: events) { members[member.subject] = Normalize.formatTimestamp(millis: nowMillis) }
            }
            guard summary.decision == .permit else { continue }
            let write = try await vault.writeDerived(
                AccessRequest(actor: actor, role: segment.role, action: .segment, purpose: segment.purpose), kind: "segment", name: name,
                values: members, removing: subjects, requestID: principal.requestID)
            result[name] = write.written
        }
        return result
    }
}
