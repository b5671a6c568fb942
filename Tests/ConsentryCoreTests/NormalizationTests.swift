import ConsentryCore
import Foundation
import Testing

@Suite("Normalization")
struct NormalizationTests {
    @Test("e-mail addresses are trimmed, case-folded and compatibility-folded")
    func emailFolding() throws {
        #expect(try Normalize.email("  Alice@Example.COM ") == "alice@example.com")
        #expect(try Normalize.email("ＡＬＩＣＥ@example.com") == "alice@example.com")
    }

    @Test(
        "look-alike and malformed e-mail addresses are refused without echoing them",
        arguments: [
            "аlice@example.com",  // Cyrillic а
            "alice", "alice@", "@example.com", "a@@example.com", "alice@example", "al..ice@example.com", ".alice@example.com",
            "alice@-example.com", "alice@example.c0m", "ali ce@example.com", "",
        ])
    func emailRejected(_ input: String) {
        #expect(throws: ValueError.self) { try Normalize.email(input) }
        do { _ = try Normalize.email(input) } catch {
            #expect(input.isEmpty || !error.message.contains(input))
        }
    }

    @Test("phone numbers normalize to E.164 and need a country code")
    func phones() throws {
        #expect(try Normalize.phone("+49 (151) 123-45.678") == "+4915112345678")
        #expect(try Normalize.phone("0049 151 12345678") == "+4915112345678")
        #expect(throws: ValueError("phone number has no country code; write it in international form such as `+4915112345678`")) {
            try Normalize.phone("0151 12345678")
        }
        #expect(throws: ValueError.self) { try Normalize.phone("+49 151 CALL-ME") }
        #expect(throws: ValueError.self) { try Normalize.phone("+123") }
    }

    @Test("dates must exist in the calendar")
    func dates() throws {
        #expect(try Normalize.date("2024-02-29") == "2024-02-29")
        for bad in ["2023-02-29", "2026-13-01", "2026-04-31", "26-01-01", "2026/01/01", "2026-01-01T00:00:00Z"] {
            #expect(throws: ValueError.self, "\(bad)") { try Normalize.date(bad) }
        }
    }

    @Test("RFC 3339 time stamps parse with zones and fractions")
    func timestamps() throws {
        #expect(try Normalize.timestampMillis("1970-01-01T00:00:00Z") == 0)
        #expect(try Normalize.timestampMillis("2026-11-20T10:00:00Z") == 1_795_168_800_000)
        #expect(try Normalize.timestampMillis("2026-11-20T11:00:00+01:00") == 1_795_168_800_000)
        #expect(try Normalize.timestampMillis("2026-11-20T10:00:00.250Z") == 1_795_168_800_250)
        for bad in ["2026-11-20T10:00:00", "2026-11-20 25:00:00Z", "2026-11-20T10:00Z", "yesterday", "2026-11-20T10:00:00.Z"] {
            #expect(throws: ValueError.self, "\(bad)") { try Normalize.timestampMillis(bad) }
        }
    }

    @Test("formatting and parsing time stamps round-trip (property)")
    func timestampRoundTrip() throws {
        var state: UInt64 = 0x1234_5678
        for _ in 0..<5_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let millis = Int64(state >> 24) % 8_000_000_000_000 - 1_000_000_000_000
            let text = Normalize.formatTimestamp(millis: millis)
            #expect(try Normalize.timestampMillis(text) == millis, "\(text)")
        }
    }

    @Test("numbers, booleans, countries and currencies are validated")
    func scalars() throws {
        #expect(try Normalize.number("12.50") == 12.5)
        #expect(try Normalize.number("-3e2") == -300)
        for bad in ["1,000", "NaN", "inf", "0x10", "", "1.2.3"] { #expect(throws: ValueError.self, "\(bad)") { try Normalize.number(bad) } }
        #expect(try Normalize.boolean("Yes") == true)
        #expect(try Normalize.country("de") == "DE")
        #expect(throws: ValueError.self) { try Normalize.country("XX") }
        #expect(try Normalize.currency("eur") == "EUR")
        #expect(throws: ValueError.self) { try Normalize.currency("EURO") }
        #expect(try Normalize.value("12.0", as: .number) == "12")
    }

    @Test("free text refuses control characters such as CR, LF and NUL")
    func textControl() {
        for bad in ["a\u{0}b", "a\r\nSet-Cookie: x", "a\nb"] { #expect(throws: ValueError.self) { try Normalize.text(bad) } }
        #expect((try? Normalize.text("  café\tbar ")) == "café\tbar")
    }
}

@Suite("Vocabulary")
struct VocabularyTests {
    @Test("subject ids print and parse as s_ and 16 hex digits")
    func subjectIDText() {
        let id = SubjectID(rawValue: 0x1234_abcd)
        #expect(id.description == "s_000000001234abcd")
        #expect(SubjectID(id.description) == id)
        #expect(SubjectID("s_zz") == nil)
    }

    @Test("field names are lower-case identifiers")
    func fieldNames() {
        // Through a variable: a literal would pick the string-literal initializer, which cannot fail.
        let good = "birth_date"
        #expect(FieldName(good)?.rawValue == "birth_date")
        for bad in ["Birth", "1st", "a-b", "", String(repeating: "a", count: 65)] { #expect(FieldName(bad) == nil) }
    }

    @Test("redacted values never print")
    func redacted() {
        let secret = Redacted("canary-7f3a@example.test")
        #expect("\(secret)" == "<redacted>")
        #expect(String(reflecting: secret) == "<redacted>")
        var dumped = ""
        dump(secret, to: &dumped)
        #expect(!dumped.contains("canary"))
    }

    @Test(
        "special-category names are recognized by whole words",
        arguments: [
            ("religion", "religion"), ("health_status", "health"), ("sexual_orientation", "sexual orientation"), ("gps_lat", "precise geolocation"),
            ("ethnic_origin", "ethnicity"), ("trade_union_member", "trade-union membership"),
        ])
    func specialCategories(_ name: String, _ category: String) {
        #expect(SpecialCategory.category(ofName: name) == category)
    }

    @Test("ordinary names are not mistaken for special categories", arguments: ["trace_id", "bracelet_size", "city", "latest_order", "orientation"])
    func notSpecial(_ name: String) {
        #expect(SpecialCategory.category(ofName: name) == nil)
    }

    @Test("persisted raw values are frozen")
    func frozenRawValues() {
        #expect(Purpose.allCases.map(\.rawValue) == ["service", "email_marketing", "personalization", "profiling", "analytics", "sale_share"])
        #expect(
            EventType.allCases.map(\.rawValue) == [
                "view", "cart_add", "cart_remove", "purchase", "email_sent", "email_open", "email_click", "unsubscribe",
            ])
        #expect(IdentityKind.allCases.map(\.tag) == [1, 2, 3])
    }
}
