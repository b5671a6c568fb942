public import ConsentryCore
import Foundation

/// Answer deadlines per regime, counted from the day a request is received (UTC).
///
/// | regime | request | answer due | extension | confirmation |
/// |---|---|---|---|---|
/// | GDPR (Art. 12(3)) | all | 1 month | +2 months (3 in all) | — |
/// | CCPA (§ 7021, § 7026) | opt-out of sale/sharing, limit sensitive | 15 business days | none | — |
/// | CCPA (§ 7021) | all others | 45 days | +45 days (90 in all) | 10 business days |
/// | LGPD (Art. 19 II) | all | 15 days | none | — |
///
/// A month ends on the same day number of the next month, or on that month's last day when it is shorter
/// (31 January → 28 or 29 February). Business days are Monday to Friday; public holidays are not skipped, which
/// errs on the early side. A deadline lasts to the end of its day (23:59:59.999 UTC).
public enum Deadlines {
    /// The deadlines of a request received at `receivedAt` (ms since 1970).
    public static func of(_ type: RequestType, _ regime: Regime, receivedAt: Int64) -> (due: Int64, confirmBy: Int64?) {
        let day = startOfDay(receivedAt)
        switch regime {
        case .gdpr: return (endOfDay(addMonths(day, 1)), nil)
        case .lgpd: return (endOfDay(addDays(day, 15)), nil)
        case .ccpa:
            if isCCPAOptOut(type) { return (endOfDay(addBusinessDays(day, 15)), nil) }
            return (endOfDay(addDays(day, 45)), endOfDay(addBusinessDays(day, 10)))
        }
    }

    /// The extended deadline, or nil when the regime allows no extension for this type of request.
    public static func extended(_ type: RequestType, _ regime: Regime, receivedAt: Int64) -> Int64? {
        let day = startOfDay(receivedAt)
        switch regime {
        case .gdpr: return endOfDay(addMonths(day, 3))
        case .lgpd: return nil
        case .ccpa: return isCCPAOptOut(type) ? nil : endOfDay(addDays(day, 90))
        }
    }

    /// Requests the CCPA regulations answer within 15 business days, with no confirmation step and no extension.
    static func isCCPAOptOut(_ type: RequestType) -> Bool { type == .optOutSaleShare || type == .limitSensitive }

    static let dayMillis: Int64 = 86_400_000

    static var calendar: Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }

    static func startOfDay(_ millis: Int64) -> Int64 { millis - ((millis % dayMillis) + dayMillis) % dayMillis }
    static func endOfDay(_ dayStart: Int64) -> Int64 { dayStart + dayMillis - 1 }
    static func addDays(_ dayStart: Int64, _ days: Int) -> Int64 { dayStart + Int64(days) * dayMillis }

    static func addMonths(_ dayStart: Int64, _ months: Int) -> Int64 {
        let date = Date(timeIntervalSince1970: Double(dayStart) / 1000)
        return Int64(calendar.date(byAdding: .month, value: months, to: date)!.timeIntervalSince1970 * 1000)
    }

    /// Counts `days` working days after the day itself: received on a Friday, 1 business day is the Monday.
    static func addBusinessDays(_ dayStart: Int64, _ days: Int) -> Int64 {
        var current = dayStart
        var left = days
        while left > 0 {
            current += dayMillis
            if !isWeekend(current) { left -= 1 }
        }
        return current
    }

    /// 1970-01-01 was a Thursday; day 2 and 3 after it in each week are Saturday and Sunday.
    static func isWeekend(_ dayStart: Int64) -> Bool {
        let weekday = ((dayStart / dayMillis) % 7 + 7) % 7  // 0 = Thursday
        return weekday == 2 || weekday == 3
    }
}
