import Foundation

/// Cleans and validates incoming values so that equal things compare equal and bad things are refused.
///
/// Each function trims surrounding white space first. Errors explain the expected form and never echo
/// the input.
public enum Normalize {
    /// Trims white space and control characters at both ends.
    public static func trimmed(_ text: String) -> String {
        let scalars = text.unicodeScalars
        guard let first = scalars.first, let last = scalars.last, isTrimmable(first) || isTrimmable(last) else { return text }
        var start = scalars.startIndex, end = scalars.endIndex
        while start < end, isTrimmable(scalars[start]) { start = scalars.index(after: start) }
        while end > start, isTrimmable(scalars[scalars.index(before: end)]) { end = scalars.index(before: end) }
        return String(scalars[start..<end])
    }

    /// White space (including non-breaking and other Unicode spaces) and control characters.
    @inline(__always)
    private static func isTrimmable(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII { return scalar.value <= 0x20 || scalar.value == 0x7F }
        return scalar.properties.isWhitespace || scalar.properties.generalCategory == .control || scalar.properties.generalCategory == .format
    }

    /// Bytes allowed in the local part of an address (RFC 5322 atext and `.`), as a lookup table.
    private static let localPartBytes: [Bool] = {
        var table = [Bool](repeating: false, count: 256)
        for byte in "abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+/=?^_`{|}~-.".utf8 { table[Int(byte)] = true }
        return table
    }()

    /// Normalizes an e-mail address: trims, folds compatibility forms (full-width `ＡＬＩＣＥ` becomes `ALICE`),
    /// lower-cases and validates it. Non-ASCII addresses are refused, which also stops look-alike letters
    /// such as Cyrillic `а` from posing as Latin `a`.
    public static func email(_ raw: String) throws(ValueError) -> String {
        let text = trimmed(raw)
        // Compatibility folding (full-width letters and the like) only matters for non-ASCII input.
        let folded = (text.utf8.allSatisfy { $0 < 0x80 } ? text : text.precomposedStringWithCompatibilityMapping).lowercased()
        guard !folded.isEmpty else { throw ValueError("e-mail address is empty") }
        guard folded.utf8.count <= 254 else { throw ValueError("e-mail address is longer than 254 characters") }
        guard folded.unicodeScalars.allSatisfy({ $0.isASCII }) else {
            throw ValueError("e-mail address contains non-ASCII characters; only ASCII addresses are accepted (look-alike letters are refused)")
        }
        let parts = folded.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw ValueError("not a valid e-mail address: expected exactly one `@`") }
        let local = parts[0].utf8, domain = parts[1]
        guard (1...64).contains(local.count) else { throw ValueError("not a valid e-mail address: the part before `@` must be 1 to 64 characters") }
        guard local.allSatisfy({ localPartBytes[Int($0)] }), local.first != UInt8(ascii: "."), local.last != UInt8(ascii: "."),
            !parts[0].contains("..")
        else { throw ValueError("not a valid e-mail address: the part before `@` has a character or dot that is not allowed") }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2 else { throw ValueError("not a valid e-mail address: the domain needs a dot, as in `example.com`") }
        for label in labels {
            let bytes = label.utf8
            guard (1...63).contains(bytes.count), bytes.first != UInt8(ascii: "-"), bytes.last != UInt8(ascii: "-"),
                bytes.allSatisfy({ isLowerAlnum($0) || $0 == UInt8(ascii: "-") })
            else { throw ValueError("not a valid e-mail address: the domain has an empty or malformed label") }
        }
        guard let tld = labels.last, tld.count >= 2, tld.utf8.allSatisfy({ $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") }) else {
            throw ValueError("not a valid e-mail address: the top-level domain must be letters")
        }
        return folded
    }

    /// Normalizes a phone number to E.164: `+` followed by 8 to 15 digits. Spaces, dots, dashes and
    /// parentheses are dropped and a leading `00` becomes `+`. Numbers without a country code are refused
    /// rather than guessed.
    public static func phone(_ raw: String) throws(ValueError) -> String {
        let text = trimmed(raw)
        guard !text.isEmpty else { throw ValueError("phone number is empty") }
        var digits: [UInt8] = []
        var international = false
        for (index, byte) in text.utf8.enumerated() {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digits.append(byte)
            case UInt8(ascii: "+") where index == 0: international = true
            case UInt8(ascii: " "), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "/"): continue
            default: throw ValueError("not a valid phone number: only digits, spaces, `+`, `-`, `.`, `/` and parentheses are allowed")
            }
        }
        if !international, digits.starts(with: [UInt8(ascii: "0"), UInt8(ascii: "0")]) {
            international = true
            digits.removeFirst(2)
        }
        guard international else {
            throw ValueError("phone number has no country code; write it in international form such as `+4915112345678`")
        }
        guard (8...15).contains(digits.count), digits.first != UInt8(ascii: "0") else {
            throw ValueError("not a valid phone number: expected a country code and 8 to 15 digits in all")
        }
        return "+" + String(decoding: digits, as: UTF8.self)
    }

    /// Normalizes a customer id: trimmed, 1 to 128 characters, no control characters. Case is kept,
    /// since source systems treat ids as case-sensitive.
    public static func customerID(_ raw: String) throws(ValueError) -> String {
        let text = trimmed(raw)
        guard !text.isEmpty else { throw ValueError("customer id is empty") }
        guard text.count <= 128 else { throw ValueError("customer id is longer than 128 characters") }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw ValueError("customer id contains control characters")
        }
        return text
    }

    /// Validates a calendar date `YYYY-MM-DD` (ISO 8601) and returns it unchanged after trimming.
    public static func date(_ raw: String) throws(ValueError) -> String {
        let text = trimmed(raw)
        guard let parts = parseDate(Array(text.utf8)[...]), parts.rest.isEmpty else {
            throw ValueError("not a valid date: expected ISO 8601 `YYYY-MM-DD` with a real month and day")
        }
        return text
    }

    /// Parses an RFC 3339 time stamp (`2026-11-20T10:00:00Z`, optional fraction, `Z` or `±HH:MM`) into
    /// milliseconds since 1970-01-01 UTC.
    public static func timestampMillis(_ raw: String) throws(ValueError) -> Int64 {
        let error = ValueError("not a valid time: expected RFC 3339 such as `2026-11-20T10:00:00Z`, with a zone")
        let bytes = Array(trimmed(raw).utf8)
        guard let date = parseDate(bytes[...]) else { throw error }
        var rest = date.rest
        guard let sep = rest.first, sep == UInt8(ascii: "T") || sep == UInt8(ascii: "t") || sep == UInt8(ascii: " ") else { throw error }
        rest = rest.dropFirst()
        guard let hour = number(&rest, 2), hour < 24, rest.popFirst() == UInt8(ascii: ":"), let minute = number(&rest, 2), minute < 60,
            rest.popFirst() == UInt8(ascii: ":"), let second = number(&rest, 2), second < 61
        else { throw error }
        var millis: Int64 = 0
        if rest.first == UInt8(ascii: ".") {
            rest = rest.dropFirst()
            var scale: Int64 = 100
            var count = 0
            while let d = rest.first, d >= UInt8(ascii: "0"), d <= UInt8(ascii: "9") {
                millis += Int64(d - UInt8(ascii: "0")) * scale
                scale /= 10
                count += 1
                rest = rest.dropFirst()
            }
            guard (1...9).contains(count) else { throw error }
        }
        var offsetMinutes: Int64 = 0
        switch rest.popFirst() {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"): break
        case let sign? where sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-"):
            guard let oh = number(&rest, 2), oh < 24, rest.popFirst() == UInt8(ascii: ":"), let om = number(&rest, 2), om < 60 else { throw error }
            offsetMinutes = Int64(oh * 60 + om) * (sign == UInt8(ascii: "-") ? -1 : 1)
        default: throw error
        }
        guard rest.isEmpty else { throw error }
        let days = daysFromCivil(year: date.year, month: date.month, day: date.day)
        let seconds = days * 86_400 + Int64(hour * 3600 + minute * 60 + min(second, 59)) - offsetMinutes * 60
        return seconds * 1000 + millis
    }

    /// Formats milliseconds since the epoch as RFC 3339 UTC (`2026-11-20T10:00:00Z`, with `.mmm` when not whole seconds).
    public static func formatTimestamp(millis: Int64) -> String {
        let seconds = millis >= 0 ? millis / 1000 : (millis - 999) / 1000
        let ms = millis - seconds * 1000
        var days = seconds / 86_400
        var secOfDay = seconds % 86_400
        if secOfDay < 0 { secOfDay += 86_400; days -= 1 }
        let (y, m, d) = civilFromDays(days)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        var text = "\(String(format: "%04lld", y))-\(two(m))-\(two(d))T\(two(secOfDay / 3600)):\(two(secOfDay % 3600 / 60)):\(two(secOfDay % 60))"
        if ms != 0 { text += "." + String(format: "%03lld", ms) }
        return text + "Z"
    }

    /// Validates a decimal number (optional sign, digits, optional fraction, optional exponent) and returns
    /// its value. Infinity, NaN, hexadecimal and thousands separators are refused.
    public static func number(_ raw: String) throws(ValueError) -> Double {
        let text = trimmed(raw)
        var bytes = Array(text.utf8)[...]
        let error = ValueError("not a valid number: expected digits with an optional sign and `.` fraction, such as `12.50`")
        if bytes.first == UInt8(ascii: "-") || bytes.first == UInt8(ascii: "+") { bytes = bytes.dropFirst() }
        var digits = 0
        while let b = bytes.first, isDigit(b) { digits += 1; bytes = bytes.dropFirst() }
        if bytes.first == UInt8(ascii: ".") {
            bytes = bytes.dropFirst()
            while let b = bytes.first, isDigit(b) { digits += 1; bytes = bytes.dropFirst() }
        }
        guard digits > 0 else { throw error }
        if let e = bytes.first, e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            bytes = bytes.dropFirst()
            if bytes.first == UInt8(ascii: "-") || bytes.first == UInt8(ascii: "+") { bytes = bytes.dropFirst() }
            guard let b = bytes.first, isDigit(b) else { throw error }
            while let b = bytes.first, isDigit(b) { bytes = bytes.dropFirst() }
        }
        guard bytes.isEmpty, let value = Double(text), value.isFinite else { throw error }
        return value
    }

    /// Validates a whole number and returns it.
    public static func integer(_ raw: String) throws(ValueError) -> Int64 {
        guard let value = Int64(trimmed(raw)) else { throw ValueError("not a valid whole number: expected digits with an optional sign") }
        return value
    }

    /// Reads `true`/`false`, `yes`/`no`, `1`/`0` (any case) as a boolean.
    public static func boolean(_ raw: String) throws(ValueError) -> Bool {
        switch trimmed(raw).lowercased() {
        case "true", "yes", "1", "y": return true
        case "false", "no", "0", "n": return false
        default: throw ValueError("not a valid boolean: expected `true` or `false`")
        }
    }

    /// Validates an ISO 3166-1 alpha-2 country code and returns it upper-cased.
    public static func country(_ raw: String) throws(ValueError) -> String {
        let code = trimmed(raw).uppercased()
        guard code.utf8.count == 2, ISOCodes.countries.contains(code) else {
            throw ValueError("not a valid country: expected an ISO 3166-1 alpha-2 code such as `DE` or `US`")
        }
        return code
    }

    /// Validates an ISO 4217 currency code and returns it upper-cased.
    public static func currency(_ raw: String) throws(ValueError) -> String {
        let code = trimmed(raw).uppercased()
        guard code.utf8.count == 3, ISOCodes.currencies.contains(code) else {
            throw ValueError("not a valid currency: expected an ISO 4217 code such as `EUR` or `USD`")
        }
        return code
    }

    /// Validates free text: no NUL or other control characters except tab, at most `maxLength` characters.
    public static func text(_ raw: String, maxLength: Int = 1024) throws(ValueError) -> String {
        let text = trimmed(raw)
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" || $0.value == 0x7F }) else {
            throw ValueError("text contains control characters (NUL, CR, LF or similar); remove them")
        }
        guard text.count <= maxLength else { throw ValueError("text is longer than \(maxLength) characters") }
        return text
    }

    /// Normalizes `raw` according to `type` and returns the canonical text that is sealed and stored.
    public static func value(_ raw: String, as type: FieldType) throws(ValueError) -> String {
        switch type {
        case .string: return try text(raw)
        case .email: return try email(raw)
        case .phone: return try phone(raw)
        case .date: return try date(raw)
        case .datetime: return formatTimestamp(millis: try timestampMillis(raw))
        case .number:
            let v = try number(raw)
            return v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
        case .integer: return String(try integer(raw))
        case .boolean: return try boolean(raw) ? "true" : "false"
        case .country: return try country(raw)
        case .currency: return try currency(raw)
        }
    }

    // MARK: - Calendar arithmetic (proleptic Gregorian, after H. Hinnant's civil-days algorithms)

    private static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
    private static func isLowerAlnum(_ b: UInt8) -> Bool { isDigit(b) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) }

    private static func number(_ bytes: inout ArraySlice<UInt8>, _ count: Int) -> Int? {
        guard bytes.count >= count else { return nil }
        var value = 0
        for _ in 0..<count {
            guard let b = bytes.popFirst(), isDigit(b) else { return nil }
            value = value * 10 + Int(b - UInt8(ascii: "0"))
        }
        return value
    }

    private static func parseDate(_ input: ArraySlice<UInt8>) -> (year: Int64, month: Int64, day: Int64, rest: ArraySlice<UInt8>)? {
        var bytes = input
        guard let y = number(&bytes, 4), bytes.popFirst() == UInt8(ascii: "-"), let m = number(&bytes, 2), bytes.popFirst() == UInt8(ascii: "-"),
            let d = number(&bytes, 2), y >= 1, (1...12).contains(m), d >= 1, d <= daysIn(month: m, year: y)
        else { return nil }
        return (Int64(y), Int64(m), Int64(d), bytes)
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date.
    public static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The proleptic Gregorian date (year, month, day) of a day counted from 1970-01-01.
    public static func civilFromDays(_ z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
