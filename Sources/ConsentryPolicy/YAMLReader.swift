import ConsentryCore
import Foundation
import Yams

/// Reads one policy file into YAML nodes and collects findings with their positions.
///
/// Validation keeps going after an error so that one run reports every problem in a file.
final class YAMLReader {
    let file: String
    private(set) var diagnostics: [PolicyDiagnostic] = []

    init(file: String) { self.file = file }

    var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }

    func error(_ node: Node?, _ message: String, hint: String) {
        diagnostics.append(
            PolicyDiagnostic(.error, file: file, line: node?.mark?.line ?? 0, column: node?.mark?.column ?? 0, message: message, hint: hint))
    }

    func warning(_ node: Node?, _ message: String, hint: String) {
        diagnostics.append(
            PolicyDiagnostic(.warning, file: file, line: node?.mark?.line ?? 0, column: node?.mark?.column ?? 0, message: message, hint: hint))
    }

    /// Parses `data` as one YAML document; records an error (with the parser's position) and returns nil on failure.
    func parse(_ data: Data) -> Node? {
        guard let text = String(data: data, encoding: .utf8) else {
            error(nil, "the file is not valid UTF-8", hint: "save it as UTF-8")
            return nil
        }
        guard !text.unicodeScalars.contains("\u{0}") else {
            error(nil, "the file contains a NUL byte", hint: "remove it; policy files are plain text")
            return nil
        }
        do {
            guard let node = try Yams.compose(yaml: text) else {
                error(nil, "the file is empty", hint: "add the top-level keys described in policies/README.md")
                return nil
            }
            return node
        } catch let yamlError as YamlError {
            switch yamlError {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
                // libyaml bounds nesting itself (1,000 levels); say so in the file's terms, not the library's.
                let nesting = problem.hasPrefix("Maximum nesting level reached")
                diagnostics.append(
                    PolicyDiagnostic(
                        .error, file: file, line: mark.line, column: mark.column,
                        message: nesting ? "the YAML nests deeper than 1000 levels" : "YAML syntax error: \(problem)",
                        hint: nesting ? "policy files need a few levels; flatten it" : "fix the YAML at this position"))
            default:
                error(nil, "YAML syntax error", hint: "check the file with a YAML linter")
            }
            return nil
        } catch {
            self.error(nil, "YAML syntax error", hint: "check the file with a YAML linter")
            return nil
        }
    }

    /// The entries of a mapping node with their keys as text; records an error for a non-mapping or a non-text key.
    func mapping(_ node: Node, _ what: String) -> [(key: String, keyNode: Node, value: Node)]? {
        guard let mapping = node.mapping else {
            error(node, "\(what) must be a mapping of keys to values", hint: "write it as `key: value` lines")
            return nil
        }
        var entries: [(String, Node, Node)] = []
        var seen = Set<String>()
        for (key, value) in mapping {
            guard let text = key.scalar?.string else {
                error(key, "a key in \(what) is not plain text", hint: "use simple names as keys")
                continue
            }
            if !seen.insert(text).inserted {
                error(key, "`\(text)` appears twice in \(what)", hint: "keep one of them")
                continue
            }
            entries.append((text, key, value))
        }
        return entries
    }

    /// Reports keys of `entries` that are not in `allowed`.
    func rejectUnknownKeys(_ entries: [(key: String, keyNode: Node, value: Node)], allowed: [String], in what: String) {
        for entry in entries where !allowed.contains(entry.key) {
            error(
                entry.keyNode, "unknown key `\(entry.key)` in \(what)", hint: "allowed keys are " + allowed.map { "`\($0)`" }.joined(separator: ", "))
        }
    }

    func string(_ node: Node, _ what: String) -> String? {
        guard let scalar = node.scalar else {
            error(node, "\(what) must be a single value", hint: "write it as plain text")
            return nil
        }
        return scalar.string
    }

    func bool(_ node: Node, _ what: String) -> Bool? {
        switch node.scalar?.string.lowercased() {
        case "true": return true
        case "false": return false
        default:
            error(node, "\(what) must be `true` or `false`", hint: "write `true` or `false`")
            return nil
        }
    }

    func list(_ node: Node, _ what: String) -> [Node]? {
        guard let sequence = node.sequence else {
            error(node, "\(what) must be a list", hint: "write it as `[a, b]` or as `- a` lines")
            return nil
        }
        return Array(sequence)
    }

    /// Reads a value that must be one of an enum's stored names.
    func choice<T: RawRepresentable & CaseIterable>(_ node: Node, _ what: String, as type: T.Type) -> T? where T.RawValue == String {
        guard let text = string(node, what) else { return nil }
        guard let value = T(rawValue: text) else {
            error(node, "unknown \(what) `\(text)`", hint: "use one of \(T.choiceList)")
            return nil
        }
        return value
    }
}
