import ConsentryCore
import ConsentryPolicy
import ConsentryTesting
import Foundation
import Testing

@Suite("Field schema")
struct FieldSchemaTests {
    func parse(_ yaml: String) throws(PolicyError) -> FieldSchema {
        try FieldSchema.parse(Data(yaml.utf8))
    }

    func diagnostics(_ yaml: String) -> [PolicyDiagnostic] {
        do {
            _ = try parse(yaml)
            return []
        } catch { return error.diagnostics }
    }

    @Test("the shipped fields.yaml loads without warnings")
    func shippedSchema() throws {
        let schema = try FieldSchema.load(directory: TestSupport.policies)
        #expect(schema["email"]?.type == .email)
        #expect(schema["email"]?.blindIndex == true)
        #expect(schema["customer_id"]?.identityKind == .customerID)
        #expect(schema["birth_date"]?.fieldClass == .demographic)
        #expect(schema.warnings.isEmpty)
        #expect(schema.sourcePrecedence == [.crm, .pos, .web])
        #expect(schema.rank(of: .crm) < schema.rank(of: .web))
        #expect(schema.rank(of: .api) == 3)
    }

    @Test("an unknown type is reported with its line, column and the allowed values")
    func unknownType() {
        let found = diagnostics(
            """
            version: 1
            fields:
              email:
                type: email
                class: contact
              nickname:
                type: strng
                class: identifier
            """)
        #expect(found.count == 1)
        #expect(found.first?.line == 7)
        #expect(found.first?.column == 11)
        #expect(found.first?.description.hasPrefix("fields.yaml:7:11: error: unknown field type `strng`; use one of `string`") == true)
    }

    @Test("every problem in a file is reported, not only the first")
    func allProblems() {
        let found = diagnostics(
            """
            fields:
              email:
                type: email
                clas: contact
              Phone:
                type: phone
                class: contact
              city:
                type: string
                class: demographic
                blind_index: true
            merge:
              source_precedence: [crm, crm, fax]
            """)
        let messages = found.map(\.message)
        #expect(messages.contains("unknown key `clas` in field `email`"))
        #expect(messages.contains("field `email` has no `class`"))
        #expect(messages.contains("`Phone` is not a valid field name"))
        #expect(messages.contains("`blind_index` is only supported on `email`, `phone` and `customer_id`"))
        #expect(messages.contains("source `crm` is listed twice in `source_precedence`"))
        #expect(messages.contains("unknown source `fax`"))
        #expect(found.allSatisfy { $0.line > 0 && !$0.hint.isEmpty })
    }

    @Test("YAML syntax errors carry the parser's position")
    func syntaxError() {
        let found = diagnostics("fields:\n  email:\n    type: [email\n")
        #expect(found.count == 1)
        #expect(found.first?.message.hasPrefix("YAML syntax error") == true)
        #expect((found.first?.line ?? 0) > 0)
    }

    @Test("empty files, non-UTF-8 files and NUL bytes are clear errors")
    func badFiles() {
        #expect(diagnostics("").first?.message == "the file is empty")
        do {
            _ = try FieldSchema.parse(Data([0x66, 0x69, 0xFF, 0xFE]))
            Issue.record("accepted non-UTF-8")
        } catch { #expect(error.diagnostics.first?.message == "the file is not valid UTF-8") }
        #expect(diagnostics("fields:\n  a\u{0}: x\n").first?.message == "the file contains a NUL byte")
    }

    @Test("deeply nested YAML is refused with its position, on a task's stack, without a crash")
    func deepNesting() async {
        let deep = "fields: " + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "\n"
        let found = await Task { diagnostics(deep) }.value
        #expect(found.first?.message == "the YAML nests deeper than 1000 levels" && found.first?.line == 1, "\(found)")
    }

    @Test("identity fields must have their identity types and at least one identity must exist")
    func identities() {
        #expect(
            diagnostics("fields:\n  email:\n    type: string\n    class: contact\n").map(\.message).contains("field `email` must have type `email`"))
        #expect(
            diagnostics("fields:\n  city:\n    type: string\n    class: demographic\n").map(\.message)
                == ["neither `email` nor `customer_id` is declared"])
    }

    @Test("a field that looks special-category but is not declared special gets a warning, not an error")
    func specialWarning() throws {
        let schema = try parse("fields:\n  email:\n    type: email\n    class: contact\n  religion:\n    type: string\n    class: demographic\n")
        #expect(schema.warnings.count == 1)
        #expect(schema.warnings.first?.severity == .warning)
        #expect(schema.warnings.first?.line == 5)
        let declared = try parse("fields:\n  email:\n    type: email\n    class: contact\n  religion:\n    type: string\n    class: special\n")
        #expect(declared.warnings.isEmpty)
    }
}
