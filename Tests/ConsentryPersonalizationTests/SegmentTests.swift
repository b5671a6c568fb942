import ConsentryAudit
import ConsentryCore
import ConsentryGate
import ConsentryPolicy
import ConsentryTesting
import Foundation
import Testing

@testable import ConsentryPersonalization

/// A fixed "now" (2026-11-20T12:00:00Z) and helpers for events at "n days ago".
let segmentNow = Int64(TestSupport.fixedNow.timeIntervalSince1970 * 1000)
func daysAgo(_ days: Double) -> Int64 { segmentNow - Int64(days * 86_400_000) }

@Suite("segment rules")
struct SegmentRuleTests {
    @Test("text rules parse to the canonical form, which round-trips through text and JSON")
    func roundTrip() throws {
        let sources = [
            #"event(view, category = "running").within(7d) and not event(purchase).within(7d) and engagement >= 10"#,
            #"(country = "DE" or country = "AT") and loyalty_tier in ["gold", "platinum"]"#,
            #"event(purchase, amount >= 50).within(90d).count >= 2 or event(purchase).within(30d).sum > 100"#,
            #"event(purchase).since > 30d and segment(vip)"#,
            #"not (signup_date < "2025-01-01")"#,
        ]
        for source in sources {
            let rule = try SegmentRule(text: source)
            #expect(try SegmentRule(text: rule.text) == rule, "\(rule.text)")
            #expect(try SegmentRule(json: rule.json) == rule, "\(rule.text)")
        }
        #expect(try SegmentRule(text: "a = 1 and b = 2 or c = 3").text == "(a = 1 and b = 2) or c = 3", "and binds tighter than or")
    }

    @Test("errors name the line and column (text) or the JSON path")
    func errors() {
        let cases: [(String, Int, Int, String)] = [
            ("event(vieww)", 1, 7, "unknown event type `vieww`"),
            ("country = ", 1, 11, "expected a value"),
            ("country ~ \"DE\"", 1, 9, "unexpected character"),
            ("event(view).within(7)", 1, 20, "`within` takes a duration"),
            ("country = \"DE\"\n  and\n  event(view).count >= \"x\"", 3, 24, "compared with a number"),
            ("country = \"DE\" country = \"AT\"", 1, 16, "join conditions"),
            // Found by the fuzzer: the product overflowed and trapped.
            ("event(view).within(6666666666667w)", 1, 20, "of at most 36500 days"),
        ]
        for (text, line, column, message) in cases {
            do {
                _ = try SegmentRule(text: text)
                Issue.record("`\(text)` parsed")
            } catch {
                #expect(error.line == line && error.column == column && error.message.contains(message), "\(text): \(error.description)")
            }
        }
        do {
            _ = try SegmentRule(json: ["and": [["field": "country", "op": "~", "value": "DE"]]])
            Issue.record("bad JSON parsed")
        } catch {
            #expect(error.message.hasPrefix("$.and[0]:"))
        }
    }

    @Test("nesting is bounded: the deepest allowed rule parses and prints on a task's stack, one level more is refused with where")
    func depthLimit() async throws {
        let limit = SegmentRule.maximumDepth
        let allowed = String(repeating: "(", count: limit) + #"country = "DE""# + String(repeating: ")", count: limit)
        let parsed = try await Task { try SegmentRule(text: allowed) }.value
        #expect(parsed == (try SegmentRule(text: #"country = "DE""#)))
        let nots = try await Task { try SegmentRule(text: String(repeating: "not ", count: limit) + #"country = "DE""#) }.value
        #expect(nots.text.hasPrefix("not "))
        let hostile: [(String, Int)] = [
            (String(repeating: "(", count: 100_000) + "a = 1" + String(repeating: ")", count: 100_000), limit + 1),
            (String(repeating: "not ", count: 100_000) + "a = 1", 4 * limit + 1),
            ("a = 1 and\n" + String(repeating: "(", count: limit + 1) + "b = 2" + String(repeating: ")", count: limit + 1), limit + 1),
        ]
        for (text, column) in hostile {
            do {
                _ = try await Task { try SegmentRule(text: text) }.value
                Issue.record("a rule nested past the limit parsed")
            } catch let error as RuleError {
                #expect(error.column == column && error.message.contains("nests deeper than \(limit) levels"), "\(error.description)")
                #expect(error.line == (text.contains("\n") ? 2 : 1))
            }
        }
        var json: Any = ["field": "a", "op": "=", "value": 1]
        for _ in 0..<(limit + 1) { json = ["not": json] }
        do {
            _ = try SegmentRule(json: json)
            Issue.record("a JSON rule nested past the limit parsed")
        } catch {
            #expect(error.message.contains("nests deeper than \(limit) levels"))
        }
    }

    @Test("evaluation matches hand-computed memberships, including window edges")
    func evaluation() throws {
        let e = SegmentEvaluator(now: segmentNow)
        let runner: [BehaviorEvent] = [
            BehaviorEvent(type: .view, time: daysAgo(7), category: "running"),  // exactly on the 7-day edge: inside
            BehaviorEvent(type: .purchase, time: daysAgo(7.001), amount: 60, currency: "EUR"),  // just outside 7 days
            BehaviorEvent(type: .purchase, time: daysAgo(20), amount: 55, currency: "EUR"),
        ]
        let browse = try SegmentRule(text: #"event(view, category = "running").within(7d) and not event(purchase).within(7d)"#)
        #expect(e.holds(browse, profile: [:], events: runner))
        #expect(!e.holds(browse, profile: [:], events: runner + [BehaviorEvent(type: .purchase, time: daysAgo(1))]))
        #expect(!e.holds(browse, profile: [:], events: [BehaviorEvent(type: .view, time: daysAgo(7.0001), category: "running")]))
        #expect(!e.holds(browse, profile: [:], events: [BehaviorEvent(type: .view, time: daysAgo(1), category: "tennis")]))
        #expect(e.holds(try SegmentRule(text: "event(purchase, amount >= 50).within(30d).count >= 2"), profile: [:], events: runner))
        #expect(!e.holds(try SegmentRule(text: "event(purchase, amount >= 56).within(30d).count >= 2"), profile: [:], events: runner))
        #expect(e.holds(try SegmentRule(text: "event(purchase).sum = 115"), profile: [:], events: runner))
        #expect(e.holds(try SegmentRule(text: "event(purchase).since > 7d"), profile: [:], events: runner))
        #expect(!e.holds(try SegmentRule(text: "event(purchase).since > 8d"), profile: [:], events: runner))
        #expect(e.holds(try SegmentRule(text: "event(purchase).since > 8d"), profile: [:], events: []), "no purchase ever: infinitely long ago")
        #expect(!e.holds(try SegmentRule(text: "event(purchase).since < 8d"), profile: [:], events: []))
        // Profile attributes: text, numbers, dates, `in`, and a missing value that makes every comparison false.
        let profile = ["country": "DE", "loyalty_tier": "gold", "signup_date": "2024-05-01"]
        #expect(e.holds(try SegmentRule(text: #"country in ["AT", "DE"] and signup_date < "2025-01-01""#), profile: profile, events: []))
        #expect(!e.holds(try SegmentRule(text: #"city = "Berlin""#), profile: profile, events: []))
        #expect(!e.holds(try SegmentRule(text: #"city != "Berlin""#), profile: profile, events: []))
        #expect(e.holds(try SegmentRule(text: #"not city = "Berlin""#), profile: profile, events: []))
        // Engagement: open 1, click 3, cart_add 5, purchase 10, halved every 30 days.
        let engaged = [BehaviorEvent(type: .purchase, time: segmentNow), BehaviorEvent(type: .emailClick, time: daysAgo(30))]
        #expect(e.holds(try SegmentRule(text: "engagement >= 11.5"), profile: [:], events: engaged))
        #expect(!e.holds(try SegmentRule(text: "engagement > 11.5"), profile: [:], events: engaged))
        // References.
        let withVIP = SegmentEvaluator(now: segmentNow, segments: ["vip": try SegmentRule(text: #"loyalty_tier = "gold""#)])
        #expect(withVIP.holds(try SegmentRule(text: "segment(vip) and country = \"DE\""), profile: profile, events: []))
    }

    @Test("property: `not` complements, and `and`/`or` agree with set intersection and union over random subjects")
    func algebra() throws {
        var (rng, seed) = TestSupport.propertyGenerator("algebra")
        let a = try SegmentRule(text: #"event(view, category = "running").within(10d)"#)
        let b = try SegmentRule(text: "event(purchase).within(20d).count >= 2")
        let e = SegmentEvaluator(now: segmentNow)
        for _ in 0..<500 {
            let events = (0..<Int.random(in: 0..<6, using: &rng)).map { _ in
                BehaviorEvent(
                    type: Bool.random(using: &rng) ? .view : .purchase, time: daysAgo(Double.random(in: 0..<30, using: &rng)),
                    category: ["running", "tennis"].randomElement(using: &rng))
            }
            let (x, y) = (e.holds(a, profile: [:], events: events), e.holds(b, profile: [:], events: events))
            #expect(e.holds(.not(a), profile: [:], events: events) == !x, "seed \(seed)")
            #expect(e.holds(.and([a, b]), profile: [:], events: events) == (x && y), "seed \(seed)")
            #expect(e.holds(.or([a, b]), profile: [:], events: events) == (x || y), "seed \(seed)")
        }
    }
}

@Suite("segments through the gate")
struct SegmentGateTests {
    /// Four subjects: two with confirmed e-mail-marketing consent (one a running browser), one without consent, one withdrawn.
    func vault() async throws -> (Vault, FixedClock) {
        let clock = FixedClock(TestSupport.fixedNow)
        let vault = try TestSupport.makeVault(clock: clock)
        let csv = """
            email,customer_id,country
            run@example.test,R-1,DE
            calm@example.test,C-1,DE
            none@example.test,N-1,DE
            gone@example.test,G-1,AT

            """
        _ = try await vault.importProfiles(from: TestSupport.writeFile("p.csv", csv), source: .crm, format: .csv)
        for email in ["run@example.test", "calm@example.test", "gone@example.test"] {
            for state in [ConsentState.pending, .confirmed] {
                try await vault.recordConsent(
                    ConsentChange(purpose: .emailMarketing, state: state, source: "form"), subject: .email(email),
                    as: Principal(actor: "t", role: .admin))
            }
        }
        try await vault.recordConsent(
            ConsentChange(purpose: .emailMarketing, state: .withdrawn, source: "unsubscribe"), subject: .email("gone@example.test"),
            as: Principal(actor: "t", role: .admin))
        let events = [
            #"{"id":"1","email":"run@example.test","type":"view","item_id":"shoe-1","category":"running","time":"2026-11-18T10:00:00Z"}"#,
            #"{"id":"2","email":"none@example.test","type":"view","item_id":"shoe-1","category":"running","time":"2026-11-18T10:00:00Z"}"#,
            #"{"id":"3","email":"gone@example.test","type":"view","item_id":"shoe-1","category":"running","time":"2026-11-18T10:00:00Z"}"#,
        ].joined(separator: "\n")
        let report = try await vault.importEvents(from: TestSupport.writeFile("e.jsonl", events + "\n"))
        #expect(report.inserted == 3, "\(report.rejections)")
        return (vault, clock)
    }

    static let browsers = #"event(view, category = "running").within(7d) and not event(purchase).within(7d)"#

    @Test("a run evaluates only admitted subjects, returns members as pseudonyms, stores them as derived data, and audits")
    func run() async throws {
        let (vault, _) = try await vault()
        let desk = SegmentDesk(vault: vault, as: Principal(actor: "mia", role: .marketer))
        let stored = try await desk.define(name: "running_browsers", purpose: .emailMarketing, rule: try SegmentRule(text: Self.browsers))
        #expect(stored.readsEvents && stored.fields.isEmpty)
        let run = try await desk.run("running_browsers", now: TestSupport.fixedNow)
        #expect(run.decision == .permit && run.evaluated == 2 && run.members.count == 1 && run.stored == 1)
        #expect(run.excluded == ["consent_missing": 1, "consent_withdrawn": 1], "the subjects without consent never reach the rule")
        #expect(run.members.allSatisfy { $0.count == 32 && $0.allSatisfy(\.isHexDigit) })
        let export = try await vault.exportSubject(.email("run@example.test"), as: Principal(actor: "t", role: .complianceOfficer))
        #expect(export.derived.keys.contains("segment/running_browsers"), "memberships are in the subject's export")
        await #expect(try vault.queryAudit(AuditFilter(action: "segment"), as: Principal(actor: "t", role: .admin)).contains { $0.subjectCount == 2 })
    }

    @Test("pseudonyms do not link purposes: members are keyed by purpose, aggregates-only runs release counts, overlaps stay in one purpose")
    func purposesStayApart() async throws {
        let (vault, _) = try await vault()
        let desk = SegmentDesk(vault: vault, as: Principal(actor: "mia", role: .marketer))
        _ = try await desk.define(name: "de_mail", purpose: .emailMarketing, rule: try SegmentRule(text: #"country = "DE""#))
        _ = try await desk.define(name: "de_stats", purpose: .analytics, rule: try SegmentRule(text: #"country = "DE""#))
        _ = try await desk.define(name: "at_stats", purpose: .analytics, rule: try SegmentRule(text: #"country = "AT""#))
        let mail = try await desk.run("de_mail", now: TestSupport.fixedNow)
        #expect(mail.members.count == 2 && mail.memberCount == 2 && !mail.countsOnly)
        let stats = try await desk.run("de_stats", now: TestSupport.fixedNow)
        #expect(stats.decision == .permit && stats.members.isEmpty && stats.memberCount == 3 && stats.countsOnly, "analytics releases counts only")
        let audited = try await vault.queryAudit(AuditFilter(), as: Principal(actor: "t", role: .admin)).compactMap(\.subject)
        #expect(!audited.isEmpty && Set(mail.members).isDisjoint(with: audited), "member pseudonyms are not audit pseudonyms")
        let explained = try await vault.explain(
            AccessRequest(actor: "mia", role: .marketer, action: .segment, purpose: .emailMarketing, fields: ["country"]),
            subject: .email("run@example.test"))
        for member in mail.members { #expect(!explained.trace.joined().contains(member)) }
        let refused = await #expect(throws: GateError.denied) { _ = try await desk.overlap("de_mail", "de_stats", now: TestSupport.fixedNow) }
        #expect(refused?.code == .denied && refused?.message.contains("join results across purposes") == true)
        let within = try await desk.overlap("de_stats", "at_stats", now: TestSupport.fixedNow)
        #expect(within.a == 3 && within.b == 1 && within.both == 0, "an overlap within one aggregates-only purpose is counted")
    }

    @Test("rules and templates may not compare an identifier with a literal, which would keep one person's identifier in a definition")
    func identifierLiterals() async throws {
        let (vault, _) = try await vault()
        let segments = SegmentDesk(vault: vault, as: Principal(actor: "mia", role: .marketer))
        let refused = await #expect(throws: GateError.invalidInput) {
            _ = try await segments.define(name: "one", purpose: .emailMarketing, rule: try SegmentRule(text: #"email = "\#(Canary.email)""#))
        }
        #expect(refused?.code == .invalidInput && refused?.message.contains("`email` identifies a person") == true)
        #expect(refused?.message.contains(Canary.email) == false)
        _ = try await segments.define(name: "with_mail", purpose: .emailMarketing, rule: try SegmentRule(text: #"email != """#))
        let templates = TemplateDesk(vault: vault, as: Principal(actor: "mia", role: .marketer))
        let template = await #expect(throws: GateError.invalidInput) {
            _ = try await templates.register(
                name: "one", purpose: .emailMarketing, format: .text, source: "{% if \"\(Canary.email)\" == email %}hi{% endif %}")
        }
        #expect(
            template?.message.contains("`email` identifies a person") == true && template?.message.contains("line 1") == true,
            "\(template?.message ?? "")")
        _ = try await templates.register(name: "ok", purpose: .emailMarketing, format: .text, source: "{% if email != blank %}{{ first_name }}{% endif %}")
    }

    @Test("definitions are refused for a forbidden field, an unknown reference, a cycle and a role without the grant")
    func refusals() async throws {
        let (vault, _) = try await vault()
        let desk = SegmentDesk(vault: vault, as: Principal(actor: "mia", role: .marketer))
        await #expect(throws: GateError.denied) {
            try await desk.define(name: "old", purpose: .emailMarketing, rule: try SegmentRule(text: #"birth_date < "1970-01-01""#))
        }
        await #expect(throws: GateError.invalidInput) {
            try await desk.define(name: "ref", purpose: .emailMarketing, rule: try SegmentRule(text: "segment(nothing)"))
        }
        _ = try await desk.define(name: "a", purpose: .emailMarketing, rule: try SegmentRule(text: #"country = "DE""#))
        _ = try await desk.define(name: "b", purpose: .emailMarketing, rule: try SegmentRule(text: "segment(a)"))
        await #expect(throws: GateError.invalidInput) { try await desk.define(name: "a", purpose: .emailMarketing, rule: try SegmentRule(text: "segment(b)")) }
        await #expect(throws: GateError.invalidInput) { try await desk.define(name: "c", purpose: .emailMarketing, rule: try SegmentRule(text: "segment(c)")) }
        await #expect(throws: GateError.invalidInput) {
            try await desk.define(name: "shoe", purpose: .emailMarketing, rule: try SegmentRule(text: #"shoe_size = "9""#))
        }
        let analyst = SegmentDesk(vault: vault, as: Principal(actor: "al", role: .analyst))
        await #expect(throws: GateError.denied) { try await analyst.define(name: "x", purpose: .emailMarketing, rule: try SegmentRule(text: #"country = "DE""#)) }
        await #expect(try vault.segments().map(\.name) == ["a", "b"])
    }

    @Test("new events update memberships incrementally; a withdrawal removes the subject at the next update")
    func incremental() async throws {
        let (vault, _) = try await vault()
        let desk = SegmentDesk(vault: vault, as: Principal(actor: "mia", role: .marketer))
        _ = try await desk.define(name: "running_browsers", purpose: .emailMarketing, rule: try SegmentRule(text: Self.browsers))
        _ = try await desk.run("running_browsers", now: TestSupport.fixedNow)
        // `calm` browses running shoes: the import touches only `calm`, and the update adds it without a full re-scan.
        let view = #"{"id":"4","email":"calm@example.test","type":"view","item_id":"shoe-1","category":"running","time":"2026-11-20T09:00:00Z"}"#
        let report = try await vault.importEvents(from: TestSupport.writeFile("v.jsonl", view + "\n"))
        #expect(report.touchedSubjects.count == 1)
        await #expect(try desk.refresh(subjects: report.touchedSubjects, now: TestSupport.fixedNow) == ["running_browsers": 1])
        await #expect(try members(vault) == 2)
        // `run` buys: the purchase removes it from the segment.
        let buy = #"{"id":"5","email":"run@example.test","type":"purchase","amount":80,"currency":"EUR","time":"2026-11-20T10:00:00Z"}"#
        let second = try await vault.importEvents(from: TestSupport.writeFile("b.jsonl", buy + "\n"))
        _ = try await desk.refresh(subjects: second.touchedSubjects, now: TestSupport.fixedNow)
        await #expect(try members(vault) == 1)
        // `calm` withdraws; its next event's update drops the stored membership.
        try await vault.recordConsent(
            ConsentChange(purpose: .emailMarketing, state: .withdrawn, source: "unsubscribe"), subject: .email("calm@example.test"),
            as: Principal(actor: "t", role: .admin))
        let again = #"{"id":"6","email":"calm@example.test","type":"view","item_id":"shoe-1","category":"running","time":"2026-11-20T11:00:00Z"}"#
        _ = try await desk.refresh(
            subjects: try vault.importEvents(from: TestSupport.writeFile("c.jsonl", again + "\n")).touchedSubjects, now: TestSupport.fixedNow)
        await #expect(try members(vault) == 0)
    }

    /// Stored members of `running_browsers` (counted from derived data, as tests may).
    func members(_ vault: Vault) async throws -> Int {
        var count = 0
        for email in ["run@example.test", "calm@example.test", "none@example.test", "gone@example.test"] {
            if try await vault.exportSubject(.email(email), as: Principal(actor: "t", role: .complianceOfficer)).derived["segment/running_browsers"] != nil
            {
                count += 1
            }
        }
        return count
    }
}
