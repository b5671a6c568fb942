public import ConsentryCore
public import ConsentryGate
import ConsentryPolicy
public import Foundation

/// The best hour of the week to send to a subject, and where the estimate came from.
public struct SendTime: Sendable, Codable, Equatable {
    /// 0 = Monday 00:00–00:59 UTC … 167 = Sunday 23:00–23:59 UTC.
    public var hourOfWeek: Int
    /// `own_history` (at least 3 opens or clicks), `country` (the subject's country cohort) or `global`.
    public var source: String
    /// Opens and clicks behind the estimate.
    public var evidence: Int

    /// "Tue 18:00 UTC".
    public var label: String {
        let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        return "\(days[hourOfWeek / 24]) \(String(format: "%02d", hourOfWeek % 24)):00 UTC"
    }

    /// The hour of week of a time (ms since 1970, UTC). 1970-01-01 was a Thursday.
    public static func hourOfWeek(_ millis: Int64) -> Int {
        let hours = Int(floor(Double(millis) / 3_600_000))
        return ((hours + 3 * 24) % 168 + 168) % 168
    }
}

/// Send-time optimization under `personalization`: each subject's best hour of week from the opens (weight 1) and
/// clicks (weight 2) of the last year, falling back to the subject's country cohort and then to everyone.
public struct SendTimeDesk: Sendable {
    /// The vault.
    public let vault: Vault
    /// Who acts.
    public let principal: Principal
    /// Who acts, as recorded in the audit log.
    public var actor: String { principal.actor }
    /// The role (`recommend` for `personalization`; the default policy grants it to `campaign_service`).
    public var role: Role { principal.role }

    /// Creates a desk.
    public init(vault: Vault, as principal: Principal) {
        self.vault = vault
        self.principal = principal
    }

    /// Own history needs this many opens and clicks before it is trusted.
    public static let minimumEvidence = 3

    static func best(_ histogram: [Double]) -> Int { histogram.indices.max { (histogram[$0], -$0) < (histogram[$1], -$1) } ?? 0 }

    /// Computes and stores (`recommendation/send_time`) the best hour for every admitted subject. Returns counts per source.
    public func compute(now: Date = Date()) async throws(GateError) -> [String: Int] {
        let request = AccessRequest(actor: actor, role: role, action: .recommend, purpose: .personalization, fields: ["country"])
        var own: [SubjectID: [Double]] = [:]
        var country: [SubjectID: String] = [:]
        var cohorts: [String: [Double]] = [:]
        var global = [Double](repeating: 0, count: 168)
        let since = Int64(now.timeIntervalSince1970 * 1000) - 365 * 86_400_000
        let summary = try await vault.scanBehavior(request, eventsSince: since, requestID: principal.requestID) { member, values, events in
            var histogram = [Double](repeating: 0, count: 168)
            for e in events where e.type == .emailOpen || e.type == .emailClick {
                histogram[SendTime.hourOfWeek(e.time)] += e.type == .emailClick ? 2 : 1
            }
            own[member.subject] = histogram
            if let c = values.first ?? nil {
                country[member.subject] = c
                for h in 0..<168 { cohorts[c, default: [Double](repeating: 0, count: 168)][h] += histogram[h] }
            }
            for h in 0..<168 { global[h] += histogram[h] }
        }
        guard summary.decision == .permit else { throw GateError(.denied, "denied: " + summary.reasons.joined(separator: "; ")) }
        var values: [SubjectID: String] = [:]
        var sources: [String: Int] = [:]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        for (subject, histogram) in own {
            let evidence = Int(histogram.reduce(0, +))
            let time: SendTime
            if histogram.filter({ $0 > 0 }).count > 0 && histogram.reduce(0, +) >= Double(Self.minimumEvidence) {
                time = SendTime(hourOfWeek: Self.best(histogram), source: "own_history", evidence: evidence)
            } else if let c = country[subject], let cohort = cohorts[c], cohort.reduce(0, +) >= Double(Self.minimumEvidence) {
                time = SendTime(hourOfWeek: Self.best(cohort), source: "country", evidence: Int(cohort.reduce(0, +)))
            } else {
                time = SendTime(hourOfWeek: Self.best(global), source: "global", evidence: Int(global.reduce(0, +)))
            }
            values[subject] = (try? encoder.encode(time)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
            sources[time.source, default: 0] += 1
        }
        _ = try await vault.writeDerived(
            AccessRequest(actor: actor, role: role, action: .recommend, purpose: .personalization), kind: "recommendation", name: "send_time",
            values: values, replaceAll: true, requestID: principal.requestID)
        return sources
    }

    /// One subject's stored send time, through an audited gated read (nil when none was computed for them).
    public func show(_ subject: SubjectReference) async throws(GateError) -> (decision: Decision, time: SendTime?) {
        let request = AccessRequest(actor: actor, role: role, action: .recommend, purpose: .personalization)
        let read = try await vault.read(request, subject: subject, includeDerived: true, requestID: principal.requestID)
        guard read.decision.isPermit else { return (read.decision, nil) }
        let time = read.derived["recommendation/send_time"].flatMap { try? JSONDecoder().decode(SendTime.self, from: Data($0.utf8)) }
        return (read.decision, time)
    }
}
