import ConsentryTesting
import Foundation
import Testing

@testable import ConsentryPersonalization

/// The conformance table (`Tests/Fixtures/liquid-cases.json`): expected outputs checked against python-liquid.
struct LiquidCase: CustomStringConvertible, Sendable {
    let name: String
    let template: String
    let context: [String: LiquidValue]
    let expected: String
    var description: String { name }

    static let fixture = TestSupport.repositoryRoot.appendingPathComponent("Tests/Fixtures/liquid-cases.json")

    /// Reads one group of cases; a missing file, a missing group, a malformed case or a group of fewer than
    /// `minimum` cases throws, so that a broken fixture fails the tests instead of running none.
    static func load(_ group: String, minimum: Int = 1) throws -> [LiquidCase] {
        struct FixtureError: Error, CustomStringConvertible { let description: String }
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: fixture)) as? [String: Any]
        guard let cases = object?[group] as? [[String: Any]], cases.count >= minimum else {
            throw FixtureError(description: "`\(fixture.path)` has no group `\(group)` of at least \(minimum) cases")
        }
        return try cases.enumerated().map { index, c in
            guard let name = c["name"] as? String, let template = c["template"] as? String, let expected = c["expected"] as? String else {
                throw FixtureError(description: "case \(index) of `\(group)` lacks a name, template or expected output")
            }
            return LiquidCase(
                name: name, template: template, context: (c["context"] as? [String: Any] ?? [:]).mapValues { LiquidValue(json: $0) }, expected: expected)
        }
    }
}

/// The profile fields the conformance cases may read.
let caseFields: Set<String> = ["first_name", "city", "birth_date", "loyalty_tier", "n", "flag"]
let fixedNow = Date(timeIntervalSince1970: 1_795_176_000)

@Suite("templates")
struct TemplateTests {
    @Test("Liquid cases render as python-liquid renders them", arguments: try LiquidCase.load("render", minimum: 50))
    func render(_ c: LiquidCase) throws {
        let template = try LiquidTemplate(source: c.template, format: .text, profileFields: caseFields)
        #expect(template.render(c.context, now: fixedNow) == c.expected)
    }

    @Test("HTML templates escape every output once", arguments: try LiquidCase.load("html"))
    func html(_ c: LiquidCase) throws {
        let template = try LiquidTemplate(source: c.template, format: .html, profileFields: caseFields)
        #expect(template.render(c.context, now: fixedNow) == c.expected)
    }

    @Test("filters of our own and Ruby Liquid's rounding", arguments: try LiquidCase.load("ours"))
    func ours(_ c: LiquidCase) throws {
        #expect(try LiquidTemplate(source: c.template, format: .text, profileFields: caseFields).render(c.context) == c.expected)
    }

    @Test("errors name the line, the column and the problem")
    func errors() throws {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: LiquidCase.fixture)) as? [String: Any]
        let cases = try #require(object?["errors"] as? [[String: Any]])
        #expect(cases.count >= 10)
        for c in cases {
            let name = c["name"] as? String ?? ""
            do {
                _ = try LiquidTemplate(source: c["template"] as? String ?? "", format: .text, profileFields: caseFields)
                Issue.record("\(name): compiled, but should fail")
            } catch {
                #expect(error.line == c["line"] as? Int && error.column == c["column"] as? Int, "\(name): \(error)")
                #expect(error.message.contains(c["contains"] as? String ?? "?"), "\(name): \(error)")
            }
        }
    }

    @Test("the fields a template reads are extracted statically; loop and assigned variables and namespaces are not fields")
    func fields() throws {
        let source = """
            {% assign name = first_name | default: 'friend' %}
            {% for r in recommendations limit: 3 %}{{ r.id }} {{ forloop.index }}{% endfor %}
            {% if loyalty_tier == 'gold' and segments contains 'vip' %}{{ campaign.name }}{% endif %}
            {{ city | upcase }} {{ name }}
            """
        let template = try LiquidTemplate(source: source, format: .html, profileFields: ["first_name", "city", "loyalty_tier", "birth_date"])
        #expect(template.fields == ["city", "first_name", "loyalty_tier"])
    }

    @Test("property: text without markup renders as itself, and escaping round-trips through the escape filter")
    func textProperty() throws {
        var (rng, seed) = TestSupport.propertyGenerator("textProperty")
        let alphabet = Array("ab <>&\"'\n\t{}%-xyz")
        for _ in 0..<300 {
            let text = String((0..<Int.random(in: 0..<40, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            // Text that happens to form markup is the parser's business; plain text must pass through untouched.
            guard !text.contains("{{"), !text.contains("{%") else { continue }
            #expect(try LiquidTemplate(source: text, format: .html, profileFields: []).render([:]) == text, "seed \(seed)")
            let escaped = try LiquidTemplate(source: "{{ v }}", format: .html, profileFields: ["v"]).render(["v": .string(text)])
            let unescaped = escaped.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
                .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'").replacingOccurrences(
                    of: "&amp;", with: "&")
            #expect(unescaped == text, "seed \(seed)")
            #expect(!escaped.contains("<") && !escaped.contains(">"), "seed \(seed)")
        }
    }

    @Test("property: the date filter agrees with Foundation's calendar from 1900 to 2100")
    func dateProperty() {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        var (rng, seed) = TestSupport.propertyGenerator("dateProperty")
        for _ in 0..<2_000 {
            let seconds = Int.random(in: -2_208_988_800...4_102_444_800, using: &rng)
            let date = Date(timeIntervalSince1970: Double(seconds))
            let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
            let dayOfYear = calendar.ordinality(of: .day, in: .year, for: date)!
            let expected = String(
                format: "%04d-%02d-%02d %02d:%02d:%02d %03d %d", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!, dayOfYear, c.weekday! - 1)
            let days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
            let rendered = LiquidFilters.date(.int(seconds), format: "%Y-%m-%d %H:%M:%S %j %A", now: Date()).text
            #expect(rendered == String(expected.dropLast(1)) + days[c.weekday! - 1], "\(seconds), seed \(seed)")
        }
    }

    @Test("hostile input: deep nesting, a huge range, and a template-shaped profile value stay inert")
    func hostile() throws {
        let deep = String(repeating: "{% if true %}", count: 200) + "x" + String(repeating: "{% endif %}", count: 200)
        #expect(try LiquidTemplate(source: deep, format: .text, profileFields: []).render([:]) == "x")
        #expect(try LiquidTemplate(source: "{% for i in (1..100000000) %}x{% endfor %}", format: .text, profileFields: []).render([:]) == "")
        let injected = try LiquidTemplate(source: "{{ first_name }}", format: .html, profileFields: ["first_name"])
        #expect(injected.render(["first_name": .string("{{ secret }}{% raw %}")]) == "{{ secret }}{% raw %}")
    }

    @Test("nesting is bounded: the deepest allowed template renders on a task's stack; deeper blocks or conditions are refused with where")
    func depthLimit() async throws {
        let limit = LiquidParser.maximumDepth
        let deepest = String(repeating: "{% if true %}", count: limit) + "x" + String(repeating: "{% endif %}", count: limit)
        #expect(try await Task { try LiquidTemplate(source: deepest, format: .text, profileFields: []).render([:]) }.value == "x")
        let hostile: [(String, Int, Int, String)] = [
            (String(repeating: "{% if true %}", count: 50_000) + "x", 1, 13 * limit + 1, "blocks nest deeper"),
            ("a\n" + String(repeating: "{% for i in (1..2) %}", count: limit + 1), 2, 21 * limit + 1, "blocks nest deeper"),
            ("{% if " + Array(repeating: "true", count: 100_000).joined(separator: " and ") + " %}x{% endif %}", 1, 7 + 9 * (limit - 1), "expression nests deeper"),
            ("{{ " + String(repeating: "(", count: 10_000) + "1..2" + " }}", 1, 4 + limit, "expression nests deeper"),
        ]
        for (source, line, column, message) in hostile {
            do {
                _ = try await Task { try LiquidTemplate(source: source, format: .text, profileFields: []) }.value
                Issue.record("a template nested past the limit compiled")
            } catch let error as TemplateError {
                #expect(error.line == line && error.column == column && error.message.contains(message), "\(error.description)")
            }
        }
    }

    @Test("the expected outputs agree with python-liquid, run on the same table")
    func peer() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", TestSupport.repositoryRoot.appendingPathComponent("Tests/peer/liquid_peer.py").path, LiquidCase.fixture.path]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "python-liquid is not available (`make test-peers` installs it): \(errors.suffix(300))")
        let results = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for c in try LiquidCase.load("render") + LiquidCase.load("html") {
            #expect(results[c.name] as? String == c.expected, "\(c.name): python-liquid renders \(String(describing: results[c.name]))")
        }
    }
}
