/// A registered kind of derived data: per-subject results a feature computes (a segment membership, a score, a
/// recommendation, an experiment arm), sealed with the subject's data key, exported with the subject and erased with it.
///
/// Each value is stored with the purpose it was computed for (the purpose of the request that wrote it). A kind
/// released with reads leaves with a gated read of that same purpose, and only then; the others leave only in the
/// subject's own export. Export and erasure treat every kind alike, so adding a kind is one line in ``registered``.
struct DerivedKind: Sendable, Hashable {
    /// The kind's name, the first half of a value's `kind/name` key.
    let name: String
    /// Whether a gated read with derived data (a render) releases values of this kind for their purpose.
    let releasedWithReads: Bool

    /// Segment memberships (name: the segment), released to renders of the segment's purpose.
    static let segment = DerivedKind(name: "segment", releasedWithReads: true)
    /// Recommendations and send times (`top`, `send_time`), released to renders of their purpose.
    static let recommendation = DerivedKind(name: "recommendation", releasedWithReads: true)
    /// Scores and model outputs (`engagement`, `propensity`, `cluster`): used for segments and exported, never rendered.
    static let score = DerivedKind(name: "score", releasedWithReads: false)
    /// The arm a subject is in (name: the experiment); the report counts them, nothing renders them.
    static let experimentArm = DerivedKind(name: "experiment", releasedWithReads: false)

    /// Every kind the gate stores.
    static let registered: [DerivedKind] = [.segment, .recommendation, .score, .experimentArm]

    /// The registered kind named `name`, or nil.
    static func named(_ name: String) -> DerivedKind? { registered.first { $0.name == name } }

    /// The names of the kinds released with reads, for the store's query.
    static let releasedNames: [String] = registered.filter(\.releasedWithReads).map(\.name)
}
