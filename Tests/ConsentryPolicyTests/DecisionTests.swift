import ConsentryCore
import ConsentryPolicy
import ConsentryTesting
import Foundation
import Testing

/// A deliberately simple second implementation of the decision rules, written from the policy's
/// declarations and the documented rules rather than from the compiled tables. Property tests require
/// the real decision function to agree with it.
struct ReferenceModel {
    let policy: Policy

    func decide(_ request: AccessRequest, _ subject: SubjectState) -> (Effect, Set<DecisionReason.Code>) {
        var failures = Set<DecisionReason.Code>()
        let role = policy.roles[request.role]
        if request.action.isAdministrative {
            if !(role?.administrative.contains(request.action) ?? false) { failures.insert(.noRule) }
        } else if let purpose = request.purpose {
            if let spec = policy.purposes[purpose] {
                if !(role?.grants[purpose]?.contains(request.action) ?? false) { failures.insert(.noRule) }
                if spec.aggregatesOnly && [.readProfile, .render, .export, .recommend].contains(request.action) { failures.insert(.aggregatesOnly) }
                for field in request.fields {
                    if policy.schema[field.rawValue] == nil {
                        failures.insert(.unknownField)
                    } else if !spec.fields.contains(field) {
                        failures.insert(.fieldNotAllowed)
                    }
                }
            } else {
                failures.insert(.purposeUndeclared)
            }
        } else {
            failures.insert(.purposeRequired)
        }
        if role?.reasonRequired.contains(request.action) == true && (request.reason ?? "").allSatisfy({ $0 == " " }) {
            failures.insert(.reasonMissing)
        }
        if !failures.isEmpty { return (.deny, failures) }
        guard !request.action.isAdministrative, let purpose = request.purpose, let spec = policy.purposes[purpose] else {
            return (.permit, [.granted])
        }
        // Subject rules, in the documented order of precedence.
        if subject.restricted && spec.legalBasis != .legalObligation && !spec.allowedWhenRestricted { return (.deny, [.restricted]) }
        let special = request.fields.contains { policy.schema[$0.rawValue]?.fieldClass == .special }
        if special && subject.limitSensitive && spec.legalBasis != .contract && spec.legalBasis != .legalObligation {
            return (.deny, [.sensitiveLimited])
        }
        if spec.objectable && subject.objections.contains(purpose) { return (.deny, [.objection]) }
        if spec.saleOrShare && subject.saleOptOut { return (.deny, [.optOut]) }
        if spec.saleOrShare && subject.globalPrivacyControl { return (.deny, [.globalPrivacyControl]) }
        if spec.legalBasis == .consent {
            let status = subject.consent(purpose)
            let ok = spec.consent == .doubleOptIn ? status == .confirmed : (status == .granted || status == .confirmed)
            if !ok {
                switch status {
                case .withdrawn: return (.deny, [.consentWithdrawn])
                case .expired: return (.deny, [.consentExpired])
                case .none: return (.deny, [.consentMissing])
                default: return (.deny, [.consentUnconfirmed])
                }
            }
        }
        return (.permit, [.granted])
    }
}

@Suite("Decisions")
struct DecisionTests {
    static let policy = try! Policy.load(directory: TestSupport.policies)

    @Test("the shipped policy loads without errors or warnings")
    func shippedPolicy() {
        #expect(Self.policy.warnings.isEmpty)
        #expect(Self.policy.purposes.count == 6)
        #expect(Self.policy.roles.count == 6)
        #expect(Self.policy.purposes[.emailMarketing]?.consent == .doubleOptIn)
    }

    @Test("ordinals follow declaration order")
    func ordinals() {
        #expect(Purpose.allCases.enumerated().allSatisfy { $0.offset == $0.element.ordinal })
        #expect(Role.allCases.enumerated().allSatisfy { $0.offset == $0.element.ordinal })
        #expect(Action.allCases.enumerated().allSatisfy { $0.offset == $0.element.ordinal })
    }

    @Test("a marketer may segment consenting subjects for e-mail marketing")
    func permit() {
        let request = AccessRequest(actor: "mia", role: .marketer, action: .segment, purpose: .emailMarketing, fields: ["email", "first_name"])
        let decision = Self.policy.decide(request, subject: SubjectState(consents: [.emailMarketing: .confirmed]))
        #expect(decision.isPermit)
        #expect(decision.reasons == [DecisionReason(.granted, "roles.yaml: marketer → email_marketing: segment")])
    }

    @Test("a rule must not become an oracle: a field outside the purpose is denied even if the role may act")
    func fieldOracle() {
        let request = AccessRequest(actor: "mia", role: .marketer, action: .segment, purpose: .emailMarketing, fields: ["birth_date"])
        let decision = Self.policy.authorize(request)
        #expect(decision.effect == .deny)
        #expect(decision.reasons.map(\.code) == [.fieldNotAllowed])
    }

    @Test("function-level access: roles cannot use actions they lack")
    func functionLevel() {
        #expect(Self.policy.authorize(AccessRequest(actor: "m", role: .marketer, action: .auditRead)).reasons.map(\.code) == [.noRule])
        #expect(
            Self.policy.authorize(AccessRequest(actor: "a", role: .analyst, action: .render, purpose: .personalization)).reasons.map(\.code) == [
                .noRule
            ])
        #expect(Self.policy.authorize(AccessRequest(actor: "c", role: .complianceOfficer, action: .auditRead)).isPermit)
    }

    @Test("a support read needs a stated reason")
    func reasonRequired() {
        let request = AccessRequest(actor: "co", role: .complianceOfficer, action: .readProfile, purpose: .service, fields: ["email"])
        #expect(Self.policy.authorize(request).reasons.map(\.code) == [.reasonMissing])
        var withReason = request
        withReason.reason = "ticket 4711: customer asked for their address on file"
        #expect(Self.policy.authorize(withReason).isPermit)
    }

    @Test("withdrawal, restriction, objection, opt-out and GPC each deny with their own reason")
    func subjectRules() {
        let p = Self.policy
        #expect(p.admit(SubjectState(consents: [.emailMarketing: .withdrawn]), purpose: .emailMarketing) == .consentWithdrawn)
        #expect(p.admit(SubjectState(consents: [.emailMarketing: .granted]), purpose: .emailMarketing) == .consentUnconfirmed)
        #expect(p.admit(SubjectState(consents: [.emailMarketing: .pending]), purpose: .emailMarketing) == .consentUnconfirmed)
        #expect(p.admit(SubjectState(), purpose: .personalization) == .consentMissing)
        #expect(p.admit(SubjectState(consents: [.personalization: .granted]), purpose: .personalization) == nil)
        #expect(p.admit(SubjectState(consents: [.personalization: .granted], restricted: true), purpose: .personalization) == .restricted)
        #expect(p.admit(SubjectState(restricted: true), purpose: .service) == nil, "service is allowed when restricted")
        #expect(p.admit(SubjectState(restricted: true), purpose: .analytics) == .restricted)
        #expect(p.admit(SubjectState(objections: [.analytics]), purpose: .analytics) == .objection)
        #expect(p.admit(SubjectState(objections: [.service]), purpose: .service) == nil, "service is not objectable")
        #expect(p.admit(SubjectState(consents: [.saleShare: .granted], saleOptOut: true), purpose: .saleShare) == .optOut)
        #expect(p.admit(SubjectState(consents: [.saleShare: .granted], globalPrivacyControl: true), purpose: .saleShare) == .globalPrivacyControl)
        #expect(p.admit(SubjectState(globalPrivacyControl: true), purpose: .service) == nil)
    }

    @Test("analytics releases aggregates only")
    func aggregatesOnly() {
        let request = AccessRequest(actor: "a", role: .analyst, action: .segment, purpose: .analytics, fields: ["country"])
        #expect(Self.policy.authorize(request).isPermit)
        let read = AccessRequest(actor: "a", role: .complianceOfficer, action: .readProfile, purpose: .analytics, fields: ["country"], reason: "x")
        #expect(Self.policy.authorize(read).reasons.map(\.code).contains(.aggregatesOnly))
    }

    @Test("property: the decision function agrees with the reference model on random requests and subject states")
    func agreesWithReferenceModel() {
        let model = ReferenceModel(policy: Self.policy)
        var rng = SplitMix(seed: 0xC0FFEE)
        let fields = Self.policy.schema.fields.map(\.name) + (["religion", "shoe_size"] as [FieldName])
        let statuses = ConsentStatus.allCases
        var permits = 0
        for _ in 0..<20_000 {
            let action = Action.allCases[rng.below(Action.allCases.count)]
            let purpose: Purpose? = rng.below(10) == 0 ? nil : Purpose.allCases[rng.below(Purpose.allCases.count)]
            let requestFields = (0..<rng.below(4)).map { _ in fields[rng.below(fields.count)] }
            let reason: String? = [nil, "", "  ", "ticket 1"][rng.below(4)]
            let request = AccessRequest(
                actor: "p", role: Role.allCases[rng.below(Role.allCases.count)], action: action, purpose: purpose, fields: requestFields,
                reason: reason)
            var consents: [Purpose: ConsentStatus] = [:]
            for p in Purpose.allCases where rng.below(2) == 0 { consents[p] = statuses[rng.below(statuses.count)] }
            let subject = SubjectState(
                consents: consents, restricted: rng.below(8) == 0, objections: Set(Purpose.allCases.filter { _ in rng.below(6) == 0 }),
                saleOptOut: rng.below(5) == 0, globalPrivacyControl: rng.below(5) == 0, limitSensitive: rng.below(5) == 0)
            let real = Self.policy.decide(request, subject: subject)
            let expected = model.decide(request, subject)
            #expect(real.effect == expected.0, "\(request) \(subject)")
            if real.effect == .permit { permits += 1 }
            // On a request-level deny every failed check is reported; on a subject-level deny the first rule that applies.
            #expect(Set(real.reasons.map(\.code)).isSuperset(of: expected.1) || expected.0 == .permit, "\(request) \(subject): \(real.reasons)")
        }
        #expect(permits > 200, "the generator must reach permits too, or the property proves little")
    }
}

/// The property tests' generator.
typealias SplitMix = SplitMix64

@Suite("Policy validation")
struct PolicyValidationTests {
    /// Copies the shipped policy to a temporary directory, replacing `file` with `text`.
    func policyDirectory(replacing file: String, with text: String) throws -> URL {
        let directory = TestSupport.temporaryDirectory("policy")
        for name in ["fields.yaml", "purposes.yaml", "roles.yaml"] {
            try FileManager.default.copyItem(at: TestSupport.policies.appendingPathComponent(name), to: directory.appendingPathComponent(name))
        }
        try Data(text.utf8).write(to: directory.appendingPathComponent(file))
        return directory
    }

    func errors(_ file: String, _ text: String) throws -> [PolicyDiagnostic] {
        let directory = try policyDirectory(replacing: file, with: text)
        do {
            _ = try Policy.load(directory: directory)
            return []
        } catch { return error.diagnostics.filter { $0.severity == .error } }
    }

    @Test("purposes: missing legal basis, consent without rule, undeclared field, unknown purpose, bad retention")
    func purposeErrors() throws {
        let found = try errors(
            "purposes.yaml",
            """
            purposes:
              service:
                fields: [email]
                retention: 1y
              email_marketing:
                legal_basis: consent
                fields: [email, shoe_size]
                retention: forever
              newsletter:
                legal_basis: consent
            """)
        let messages = found.map(\.message)
        #expect(messages.contains("purpose `service` has no legal basis"))
        #expect(messages.contains("purpose `email_marketing` is based on consent but has no consent rule"))
        #expect(messages.contains("purpose `email_marketing` uses field `shoe_size`, which fields.yaml does not declare"))
        #expect(messages.contains("retention `forever` is not a duration"))
        #expect(messages.contains("unknown purpose `newsletter`"))
        #expect(found.allSatisfy { $0.file == "purposes.yaml" && $0.line > 0 && !$0.hint.isEmpty })
    }

    @Test("roles: unknown role and action, data actions without purpose, administrative actions per purpose")
    func roleErrors() throws {
        let found = try errors(
            "roles.yaml",
            """
            roles:
              intern:
                administrative: [import]
              marketer:
                administrative: [render, teleport]
                purposes:
                  email_marketing: [audit_read, segment]
                  newsletter: [segment]
            """)
        let messages = found.map(\.message)
        #expect(messages.contains("unknown role `intern`"))
        #expect(messages.contains("unknown action `teleport`"))
        #expect(messages.contains("`render` in role `marketer` is a data action and needs a purpose"))
        #expect(messages.contains("`audit_read` is administrative and is not granted per purpose"))
        #expect(messages.contains("unknown purpose `newsletter` in role `marketer`"))
    }

    @Test("a missing policy file is an error that names it")
    func missingFile() throws {
        let directory = try policyDirectory(replacing: "roles.yaml", with: "")
        try FileManager.default.removeItem(at: directory.appendingPathComponent("roles.yaml"))
        do {
            _ = try Policy.load(directory: directory)
            Issue.record("loaded without roles.yaml")
        } catch {
            #expect(error.diagnostics.contains { $0.file == "roles.yaml" && $0.message.hasPrefix("cannot read") })
        }
    }
}

@Suite("Decision corpus (library)")
struct DecisionCorpusTests {
    @Test("every case of Tests/Fixtures/decisions.json decides as expected", arguments: try! DecisionCase.corpus())
    func corpusCase(_ testCase: DecisionCase) throws {
        let request = AccessRequest(
            actor: "corpus", role: try #require(Role(rawValue: testCase.role)), action: try #require(Action(rawValue: testCase.action)),
            purpose: testCase.purpose.flatMap(Purpose.init(rawValue:)), fields: (testCase.fields ?? []).compactMap(FieldName.init),
            reason: testCase.reason)
        let subject = testCase.subject.map { s in
            SubjectState(
                consents: Dictionary(
                    uniqueKeysWithValues: s.consents.compactMap { key, value in
                        Purpose(rawValue: key).flatMap { p in ConsentStatus(rawValue: value).map { (p, $0) } }
                    }),
                restricted: s.restricted ?? false, objections: Set((s.objections ?? []).compactMap(Purpose.init(rawValue:))))
        }
        let decision = DecisionTests.policy.decide(request, subject: subject)
        #expect(decision.effect.rawValue == testCase.decision)
        #expect(decision.reasons.map(\.code.rawValue) == testCase.reasons)
    }
}
