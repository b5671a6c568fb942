/// One finding of the policy validator: where it is, what is wrong, and how to fix it.
public struct PolicyDiagnostic: Sendable, Hashable, CustomStringConvertible {
    /// Whether the finding stops the policy from loading.
    public enum Severity: String, Sendable, Hashable {
        /// The policy cannot be used; every decision denies until it is fixed.
        case error
        /// Worth fixing, but the policy still loads.
        case warning
    }

    /// Error or warning.
    public let severity: Severity
    /// The policy file, relative to the policy directory.
    public let file: String
    /// 1-based line, or 0 when the finding is about the file as a whole.
    public let line: Int
    /// 1-based column, or 0 when unknown.
    public let column: Int
    /// What is wrong, lower-case, one line.
    public let message: String
    /// How to fix it.
    public let hint: String

    /// Creates a finding.
    public init(_ severity: Severity, file: String, line: Int, column: Int, message: String, hint: String) {
        self.severity = severity
        self.file = file
        self.line = line
        self.column = column
        self.message = message
        self.hint = hint
    }

    /// `file:line:column: severity: message (hint)`.
    public var description: String {
        let place = line > 0 ? "\(file):\(line):\(column)" : file
        return "\(place): \(severity.rawValue): \(message)" + (hint.isEmpty ? "" : "; \(hint)")
    }
}

/// The policy could not be loaded. It carries every error found, each with file, line and a fix hint.
public struct PolicyError: Error, Sendable, CustomStringConvertible {
    /// All findings; at least one has severity `error`.
    public let diagnostics: [PolicyDiagnostic]

    /// Creates an error from findings.
    public init(_ diagnostics: [PolicyDiagnostic]) { self.diagnostics = diagnostics }

    /// The findings, one per line.
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
