public import ConsentryCore

/// What an import did: counts, dropped fields, and every rejected record with its line, field and reason.
///
/// The `--json` output of `consentry import` is this structure; its keys are stable.
public struct ImportReport: Sendable, Codable, Equatable {
    /// One record that was not imported.
    public struct Rejection: Sendable, Codable, Equatable, CustomStringConvertible {
        /// The 1-based line the record starts on.
        public let line: Int
        /// The field at fault, when one field is.
        public let field: String?
        /// Why, and how to fix it; never the value itself.
        public let reason: String

        /// Creates a rejection.
        public init(line: Int, field: String?, reason: String) {
            self.line = line
            self.field = field
            self.reason = reason
        }

        /// `line N: field `f`: reason`.
        public var description: String {
            "line \(line): " + (field.map { "field `\($0)`: " } ?? "") + reason
        }
    }

    /// The imported file's path.
    public var file: String
    /// `profiles` or `events`.
    public var kind: String
    /// Records read (not counting the CSV header and blank lines).
    public var records = 0
    /// New subjects created (profiles) or events stored (events).
    public var inserted = 0
    /// Records merged into an existing subject that changed it.
    public var merged = 0
    /// Records that matched an existing subject and changed nothing (older or equal values).
    public var unchanged = 0
    /// Events already imported with the same id and content (skipped, idempotent).
    public var duplicates = 0
    /// Records refused because their e-mail address or customer id belongs to an erased subject (counted in ``rejected`` too).
    public var suppressed = 0
    /// Records rejected; see ``rejections``.
    public var rejected = 0
    /// Undeclared fields that were not stored, by name, with how many values were dropped.
    public var droppedFields: [String: Int] = [:]
    /// The first rejections (up to the configured limit), in file order.
    public var rejections: [Rejection] = []
    /// Subjects that received new events, for incremental segment updates. Internal ids: never printed.
    public var touchedSubjects: Set<SubjectID> = []

    enum CodingKeys: String, CodingKey {
        case file, kind, records, inserted, merged, unchanged, duplicates, suppressed, rejected, droppedFields, rejections
    }

    /// Creates an empty report.
    public init(file: String, kind: String) {
        self.file = file
        self.kind = kind
    }

    mutating func reject(_ rejection: Rejection, limit: Int) {
        rejected += 1
        if rejections.count < limit { rejections.append(rejection) }
    }
}
