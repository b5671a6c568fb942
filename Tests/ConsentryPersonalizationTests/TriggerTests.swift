import ConsentryAudit
import ConsentryCore
import ConsentryGate
import ConsentryPolicy
import ConsentryTesting
import Foundation
import Testing

@testable import ConsentryPersonalization

@Suite("triggers")
struct TriggerTests {
    let s = SubjectID(rawValue: 1)
    let minute: Int64 = 60_000

    @Test("cart_abandoned fires once the delay has passed without a purchase; a purchase within the delay cancels it")
    func cartAbandoned() {
        let cart = BehaviorEvent(type: .cartAdd, time: 0, itemID: "shoe")
        let k = TriggerKind.cartAbandoned
        #expect(k.occurrences([cart], subject: s, delay: 5 * minute, since: 0, now: 5 * minute - 1).isEmpty, "too early")
        #expect(k.occurrences([cart], subject: s, delay: 5 * minute, since: 0, now: 5 * minute).count == 1, "on the edge")
        let bought = [cart, BehaviorEvent(type: .purchase, time: 5 * minute, itemID: "shoe", amount: 1, currency: "EUR")]
        #expect(k.occurrences(bought, subject: s, delay: 5 * minute, since: 0, now: 60 * minute).isEmpty)
        let late = [cart, BehaviorEvent(type: .purchase, time: 6 * minute, itemID: "shoe", amount: 1, currency: "EUR")]
        #expect(
            k.occurrences(late, subject: s, delay: 5 * minute, since: 0, now: 60 * minute).count == 1, "a purchase after the delay does not cancel")
        #expect(k.occurrences([cart], subject: s, delay: 5 * minute, since: 1, now: 60 * minute).isEmpty, "events before the definition never fire")
    }

    @Test("viewed_not_purchased fires once per item and day; browse_abandoned needs a session of three views")
    func otherKinds() {
        let views = [
            BehaviorEvent(type: .view, time: 0, itemID: "a"), BehaviorEvent(type: .view, time: minute, itemID: "a"),
            BehaviorEvent(type: .view, time: 2 * minute, itemID: "b"),
        ]
        #expect(
            TriggerKind.viewedNotPurchased.occurrences(views, subject: s, delay: 60 * minute, since: 0, now: 200 * minute).map(\.item) == ["a", "b"])
        #expect(TriggerKind.browseAbandoned.occurrences(views, subject: s, delay: 60 * minute, since: 0, now: 200 * minute).count == 1)
        #expect(TriggerKind.browseAbandoned.occurrences(Array(views.prefix(2)), subject: s, delay: 60 * minute, since: 0, now: 200 * minute).isEmpty)
        let converted = views + [BehaviorEvent(type: .cartAdd, time: 10 * minute, itemID: "b")]
        #expect(TriggerKind.browseAbandoned.occurrences(converted, subject: s, delay: 60 * minute, since: 0, now: 200 * minute).isEmpty)
    }

    @Test("a check queues each occurrence once, re-checks consent as it fires and when the queue is read; render by entry works")
    func queue() async throws {
        let clock = FixedClock(TestSupport.fixedNow)
        let vault = try TestSupport.makeVault(clock: clock)
        _ = try await vault.importProfiles(
            from: TestSupport.writeFile("p.csv", "email,first_name\nann@example.test,Ann\nbo@example.test,Bo\n"), source: .crm, format: .csv)
        for email in ["ann@example.test", "bo@example.test"] {
            for state in [ConsentState.pending, .confirmed] {
                try await vault.recordConsent(
                    ConsentChange(purpose: .emailMarketing, state: state, source: "form"), subject: .email(email),
                    as: Principal(actor: "t", role: .admin))
            }
        }
        let marketer = TriggerDesk(vault: vault, as: Principal(actor: "mia", role: .marketer))
        _ = try await marketer.define(name: "cart_reminder", kind: .cartAbandoned, purpose: .emailMarketing)
        clock.advance(by: 60)
        let events = [
            #"{"id":"1","email":"ann@example.test","type":"cart_add","item_id":"shoe","category":"running","time":"2026-11-20T12:01:00Z"}"#,
            #"{"id":"2","email":"bo@example.test","type":"cart_add","item_id":"sock","category":"running","time":"2026-11-20T12:01:00Z"}"#,
        ]
        _ = try await vault.importEvents(from: TestSupport.writeFile("e.jsonl", events.joined(separator: "\n") + "\n"))
        let system = TriggerDesk(vault: vault, as: Principal(actor: "scheduler", role: .admin))
        await #expect(try system.check(now: clock.now()).first?.fired == 0, "the delay has not passed")
        clock.advance(by: 10 * 60)
        // Bo withdraws before the check: the occurrence is found but withheld as it fires.
        try await vault.recordConsent(
            ConsentChange(purpose: .emailMarketing, state: .withdrawn, source: "unsubscribe"), subject: .email("bo@example.test"),
            as: Principal(actor: "t", role: .admin))
        let fired = try await #require(try system.check(now: clock.now()).first)
        #expect(fired.fired == 1)
        await #expect(try system.check(now: clock.now()).first?.fired == 0, "at most once per occurrence")
        let campaign = TriggerDesk(vault: vault, as: Principal(actor: "esp", role: .campaignService))
        let entries = try await campaign.queue()
        #expect(entries.count == 1 && entries[0].item == "shoe" && entries[0].trigger == "cart_reminder")
        _ = try await TemplateDesk(vault: vault, as: Principal(actor: "mia", role: .marketer)).register(
            name: "reminder", purpose: .emailMarketing, format: .text, source: "{{ first_name }}, your cart is waiting")
        let rendered = try await TemplateDesk(vault: vault, as: Principal(actor: "esp", role: .campaignService)).render(
            "reminder", subject: .triggerEntry(entries[0].id))
        #expect(rendered.output == "Ann, your cart is waiting")
        // A withdrawal after firing withholds the entry and stops the render.
        try await vault.recordConsent(
            ConsentChange(purpose: .emailMarketing, state: .withdrawn, source: "unsubscribe"), subject: .email("ann@example.test"),
            as: Principal(actor: "t", role: .admin))
        await #expect(try campaign.queue().isEmpty)
        await #expect(
            try TemplateDesk(vault: vault, as: Principal(actor: "esp", role: .campaignService)).render(
                "reminder", subject: .triggerEntry(entries[0].id)
            ).output
                == nil)
        try await campaign.acknowledge(entries[0].id)
        await #expect(throws: GateError.denied) {
            try await TriggerDesk(vault: vault, as: Principal(actor: "al", role: .analyst)).queue(trigger: "cart_reminder")
        }
    }
}
