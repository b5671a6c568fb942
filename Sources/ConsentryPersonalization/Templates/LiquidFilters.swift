import ConsentryCore
import Foundation

/// The filters templates may use, with Liquid's semantics (Shopify's reference implementation) where Liquid has them.
enum LiquidFilters {
    /// Every supported filter with the number of arguments it accepts.
    static let arity: [String: ClosedRange<Int>] = [
        "default": 1...2, "upcase": 0...0, "downcase": 0...0, "capitalize": 0...0, "escape": 0...0, "truncate": 0...2, "date": 1...1,
        "plus": 1...1, "minus": 1...1, "times": 1...1, "round": 0...1, "size": 0...0, "first": 0...0, "last": 0...0, "join": 0...1,
        "money": 0...1,
    ]

    static func apply(_ filter: LiquidFilter, _ input: LiquidValue, _ args: [LiquidValue], now: Date) -> LiquidValue {
        switch filter {
        case .default:
            let allowFalse = args.count > 1 && args[1].isTruthy
            if input == .null || input.isEmpty || (!allowFalse && input == .bool(false)) { return args.first ?? .null }
            return input
        case .upcase: return .string(input.text.uppercased())
        case .downcase: return .string(input.text.lowercased())
        case .capitalize:
            let text = input.text
            guard let first = text.first else { return .string("") }
            return .string(first.uppercased() + text.dropFirst().lowercased())
        case .escape: return .string(escapeHTML(input.text))
        case .truncate:
            let text = input.text
            let length = args.first.map { Int($0.doubleValue) } ?? 50
            let ellipsis = args.count > 1 ? args[1].text : "..."
            guard text.count > length else { return .string(text) }
            return .string(String(text.prefix(max(0, length - ellipsis.count))) + ellipsis)
        case .date: return date(input, format: args.first?.text ?? "", now: now)
        case .plus, .minus, .times: return arithmetic(filter.rawValue, input.number, (args.first ?? .null).number)
        case .round:
            let places = args.first.map { Int($0.doubleValue) } ?? 0
            switch input.number {
            case .int(let i): return .int(i)
            case .double(let d):
                // Half away from zero, as Ruby rounds.
                if places <= 0 { return .int(Int(d.rounded(.toNearestOrAwayFromZero))) }
                let scale = pow(10, Double(places))
                return .double((d * scale).rounded(.toNearestOrAwayFromZero) / scale)
            default: return .int(0)
            }
        case .size:
            switch input {
            case .string(let s): return .int(s.count)
            case .array(let a): return .int(a.count)
            case .object(let o): return .int(o.count)
            default: return .int(0)
            }
        case .first:
            if case .array(let a) = input { return a.first ?? .null }
            return .null
        case .last:
            if case .array(let a) = input { return a.last ?? .null }
            return .null
        case .join:
            let separator = args.first?.text ?? " "
            if case .array(let a) = input { return .string(a.map(\.text).joined(separator: separator)) }
            return input
        case .money:
            // Not a Liquid filter: two decimals, optionally followed by a currency code.
            let amount = String(format: "%.2f", input.doubleValue)
            guard let currency = args.first?.text, !currency.isEmpty else { return .string(amount) }
            return .string("\(amount) \(currency)")
        }
    }

    static func escapeHTML(_ text: String) -> String {
        // Bytes, not Characters: the five characters are ASCII, and most values contain none of them.
        let utf8 = text.utf8
        guard utf8.contains(where: { $0 == 0x26 || $0 == 0x3C || $0 == 0x3E || $0 == 0x22 || $0 == 0x27 }) else { return text }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count + 16)
        for byte in utf8 {
            switch byte {
            case 0x26: out += Array("&amp;".utf8)
            case 0x3C: out += Array("&lt;".utf8)
            case 0x3E: out += Array("&gt;".utf8)
            case 0x22: out += Array("&quot;".utf8)
            case 0x27: out += Array("&#39;".utf8)
            default: out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func arithmetic(_ op: String, _ a: LiquidValue, _ b: LiquidValue) -> LiquidValue {
        if case .int(let x) = a, case .int(let y) = b {
            let (result, overflow): (Int, Bool) =
                op == "plus" ? x.addingReportingOverflow(y) : op == "minus" ? x.subtractingReportingOverflow(y) : x.multipliedReportingOverflow(by: y)
            if !overflow { return .int(result) }
        }
        let x = a.doubleValue, y = b.doubleValue
        return .double(op == "plus" ? x + y : op == "minus" ? x - y : x * y)
    }

    // MARK: - date

    /// Seconds since 1970 of a date input: Unix seconds, `now`/`today`, `YYYY-MM-DD`, or an RFC 3339 time.
    private static func parseSeconds(_ input: LiquidValue, now: Date) -> Int64? {
        switch input {
        case .int(let seconds): return Int64(seconds)
        case .double(let seconds): return Int64(seconds.rounded(.down))
        case .string(let text):
            let t = text.trimmingCharacters(in: .whitespaces)
            if t == "now" || t == "today" { return Int64(now.timeIntervalSince1970.rounded(.down)) }
            if let seconds = Int64(t) { return seconds }
            if t.count == 10, let millis = try? Normalize.timestampMillis(t + "T00:00:00Z") { return millis / 1000 }
            if let millis = try? Normalize.timestampMillis(t.replacingOccurrences(of: " ", with: "T")) {
                return Int64((Double(millis) / 1000).rounded(.down))
            }
            return nil
        default: return nil
        }
    }

    private static let monthNames = [
        "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December",
    ]
    private static let dayNames = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]

    /// strftime in UTC. An input that is not a date, or an empty format, returns the input unchanged (as Liquid does).
    static func date(_ input: LiquidValue, format: String, now: Date) -> LiquidValue {
        guard !format.isEmpty, let seconds = parseSeconds(input, now: now) else { return input }
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = Int(seconds - days * 86_400)
        let (y, m, d) = Normalize.civilFromDays(days)
        let (year, month, day) = (Int(y), Int(m), Int(d))
        let weekday = Int(((days + 4) % 7 + 7) % 7)  // 0 = Sunday; 1970-01-01 was a Thursday
        let dayOfYear = Int(days - Normalize.daysFromCivil(year: y, month: 1, day: 1)) + 1
        let c = (year: year, month: month, day: day, hour: secondOfDay / 3600, minute: secondOfDay / 60 % 60, second: secondOfDay % 60)
        var out = ""
        var chars = format.makeIterator()
        func pad(_ v: Int, _ width: Int = 2, _ padding: Character = "0") -> String {
            let s = String(v)
            return String(repeating: padding, count: max(0, width - s.count)) + s
        }
        while let ch = chars.next() {
            guard ch == "%" else {
                out.append(ch)
                continue
            }
            guard var spec = chars.next() else {
                out.append("%")
                break
            }
            var noPad = false
            if spec == "-", let next = chars.next() {
                noPad = true
                spec = next
            }
            let hour = c.hour
            switch spec {
            case "Y": out += String(c.year)
            case "y": out += pad(c.year % 100)
            case "m": out += noPad ? String(c.month) : pad(c.month)
            case "d": out += noPad ? String(c.day) : pad(c.day)
            case "e": out += noPad ? String(c.day) : pad(c.day, 2, " ")
            case "H": out += noPad ? String(hour) : pad(hour)
            case "I": out += noPad ? String((hour + 11) % 12 + 1) : pad((hour + 11) % 12 + 1)
            case "l": out += noPad ? String((hour + 11) % 12 + 1) : pad((hour + 11) % 12 + 1, 2, " ")
            case "M": out += pad(c.minute)
            case "S": out += pad(c.second)
            case "p": out += hour < 12 ? "AM" : "PM"
            case "P": out += hour < 12 ? "am" : "pm"
            case "b", "h": out += String(monthNames[c.month - 1].prefix(3))
            case "B": out += monthNames[c.month - 1]
            case "a": out += String(dayNames[weekday].prefix(3))
            case "A": out += dayNames[weekday]
            case "j": out += noPad ? String(dayOfYear) : pad(dayOfYear, 3)
            case "F": out += "\(c.year)-\(pad(c.month))-\(pad(c.day))"
            case "T": out += "\(pad(hour)):\(pad(c.minute)):\(pad(c.second))"
            case "Z": out += "UTC"
            case "z": out += "+0000"
            case "s": out += String(seconds)
            case "%": out += "%"
            default: out += "%" + (noPad ? "-" : "") + String(spec)
            }
        }
        return .string(out)
    }
}
