import ConsentryCore

extension Policy {
    /// The policy's rules written in Cedar, for comparing decision rates with a Cedar engine in the
    /// benchmarks. Requests carry role, purpose, fields, reason and the subject's state in their context.
    /// Only the permit/deny outcome is comparable; Cedar reports no Consentry reason codes.
    public var cedarText: String {
        var policies: [String] = []
        for role in Role.allCases {
            guard let spec = roles[role] else { continue }
            for action in spec.administrative.sorted(by: { $0.rawValue < $1.rawValue }) {
                policies.append(
                    "permit(principal, action == Action::\"\(action.rawValue)\", resource) when { context.role == \"\(role.rawValue)\" };")
            }
            for (purpose, actions) in spec.grants.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                guard let purposeSpec = purposes[purpose] else { continue }
                let fields = "[" + purposeSpec.fields.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
                var conditions = [
                    "context.role == \"\(role.rawValue)\"", "context.purpose == \"\(purpose.rawValue)\"", "\(fields).containsAll(context.fields)",
                ]
                if !purposeSpec.allowedWhenRestricted && purposeSpec.legalBasis != .legalObligation { conditions.append("!context.restricted") }
                if purposeSpec.objectable { conditions.append("!context.objected") }
                if purposeSpec.saleOrShare { conditions += ["!context.opt_out", "!context.gpc"] }
                switch purposeSpec.consent {
                case .none: break
                case .explicit: conditions.append("(context.consent == \"granted\" || context.consent == \"confirmed\")")
                case .doubleOptIn: conditions.append("context.consent == \"confirmed\"")
                }
                for action in actions.sorted(by: { $0.rawValue < $1.rawValue }) {
                    var all = conditions
                    if spec.reasonRequired.contains(action) { all.append("context.has_reason") }
                    if purposeSpec.aggregatesOnly && action.releasesIndividualData { continue }
                    policies.append(
                        "permit(principal, action == Action::\"\(action.rawValue)\", resource) when { \(all.joined(separator: " && ")) };")
                }
            }
        }
        return policies.joined(separator: "\n") + "\n"
    }
}
