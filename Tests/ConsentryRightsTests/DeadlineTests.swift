import ConsentryCore
import Foundation
import Testing

@testable import ConsentryRights

/// Deadline arithmetic against fixed dates: month ends, leap years, business days over weekends, extensions.
@Suite("deadlines")
struct DeadlineTests {
    /// Milliseconds of `yyyy-mm-dd` at `hh:mm` UTC.
    static func at(_ date: String, _ time: String = "10:00") -> Int64 {
        try! Normalize.timestampMillis(date + "T" + time + ":00Z")
    }

    /// The day (YYYY-MM-DD) a deadline falls on.
    static func day(_ millis: Int64) -> String { String(Normalize.formatTimestamp(millis: millis).prefix(10)) }

    @Test("GDPR: one month, clamped to the end of a shorter month; three months when extended")
    func gdpr() {
        #expect(Self.day(Deadlines.of(.access, .gdpr, receivedAt: Self.at("2026-03-15")).due) == "2026-04-15")
        #expect(Self.day(Deadlines.of(.access, .gdpr, receivedAt: Self.at("2026-01-31")).due) == "2026-02-28")
        #expect(Self.day(Deadlines.of(.erasure, .gdpr, receivedAt: Self.at("2028-01-31")).due) == "2028-02-29", "leap year")
        #expect(Self.day(Deadlines.of(.erasure, .gdpr, receivedAt: Self.at("2026-12-31", "23:59")).due) == "2027-01-31")
        #expect(Self.day(Deadlines.extended(.access, .gdpr, receivedAt: Self.at("2026-11-30"))!) == "2027-02-28")
        #expect(Deadlines.of(.access, .gdpr, receivedAt: Self.at("2026-03-15")).confirmBy == nil)
    }

    @Test("a deadline lasts to the end of its day (UTC)")
    func endOfDay() {
        let due = Deadlines.of(.access, .gdpr, receivedAt: Self.at("2026-03-15", "00:00")).due
        #expect(Normalize.formatTimestamp(millis: due) == "2026-04-15T23:59:59.999Z")
    }

    @Test("CCPA: 10 business days to confirm, 45 days to answer, +45; opt-outs 15 business days and no extension")
    func ccpa() {
        // Received on Monday 2026-11-23: 10 business days → Monday 2026-12-07.
        let monday = Deadlines.of(.access, .ccpa, receivedAt: Self.at("2026-11-23"))
        #expect(Self.day(monday.confirmBy!) == "2026-12-07")
        #expect(Self.day(monday.due) == "2027-01-07")
        #expect(Self.day(Deadlines.extended(.access, .ccpa, receivedAt: Self.at("2026-11-23"))!) == "2027-02-21")
        // Received on Friday 2026-11-27: day 1 is Monday 11-30, day 10 is Friday 12-11.
        #expect(Self.day(Deadlines.of(.erasure, .ccpa, receivedAt: Self.at("2026-11-27")).confirmBy!) == "2026-12-11")
        // Received on Saturday: the weekend does not count; Monday is day 1, so day 10 is Friday two weeks on.
        #expect(Self.day(Deadlines.of(.erasure, .ccpa, receivedAt: Self.at("2026-11-28")).confirmBy!) == "2026-12-11")
        // Opt-out: 15 business days from Wednesday 2026-11-25 → Wednesday 2026-12-16.
        let optOut = Deadlines.of(.optOutSaleShare, .ccpa, receivedAt: Self.at("2026-11-25"))
        #expect(Self.day(optOut.due) == "2026-12-16")
        #expect(optOut.confirmBy == nil)
        #expect(Deadlines.extended(.optOutSaleShare, .ccpa, receivedAt: Self.at("2026-11-25")) == nil)
        #expect(Deadlines.extended(.limitSensitive, .ccpa, receivedAt: Self.at("2026-11-25")) == nil)
    }

    @Test("LGPD: 15 days, no extension")
    func lgpd() {
        #expect(Self.day(Deadlines.of(.access, .lgpd, receivedAt: Self.at("2026-02-20")).due) == "2026-03-07")
        #expect(Deadlines.extended(.access, .lgpd, receivedAt: Self.at("2026-02-20")) == nil)
    }

    @Test("property: business-day deadlines never land on a weekend and count exactly n weekdays")
    func businessDaysProperty() {
        var day = Deadlines.startOfDay(Self.at("2026-01-01"))
        for _ in 0..<400 {
            for n in [1, 5, 10, 15] {
                let end = Deadlines.addBusinessDays(day, n)
                #expect(!Deadlines.isWeekend(end))
                // Reference: walk the calendar with Foundation's weekday.
                var count = 0
                var cursor = day
                while cursor < end {
                    cursor += Deadlines.dayMillis
                    let weekday = Deadlines.calendar.component(.weekday, from: Date(timeIntervalSince1970: Double(cursor) / 1000))
                    if weekday != 1 && weekday != 7 { count += 1 }
                }
                #expect(count == n)
            }
            day += Deadlines.dayMillis
        }
    }
}
