import ConsentryAudit
public import ConsentryCore
import ConsentryCrypto
import ConsentryPolicy
import Foundation
import GRDB

/// An experiment definition.
public struct ExperimentDefinition: Sendable, Codable, Equatable {
    /// One arm.
    public struct Arm: Sendable, Codable, Equatable {
        /// Its name.
        public var name: String
        /// Its share of the non-holdout subjects (weights are normalized).
        public var weight: Double

        /// Creates an arm.
        public init(name: String, weight: Double) {
            self.name = name
            self.weight = weight
        }
    }

    /// The experiment's name.
    public var name: String
    /// The purpose its messages serve.
    public var purpose: Purpose
    /// The arms.
    public var arms: [Arm]
    /// The share of subjects held out (sent nothing), 0 ≤ holdout < 1.
    public var holdout: Double
    /// The role that created it.
    public var role: Role

    /// Creates a definition.
    public init(name: String, purpose: Purpose, arms: [Arm], holdout: Double, role: Role) {
        self.name = name
        self.purpose = purpose
        self.arms = arms
        self.holdout = holdout
        self.role = role
    }
}

/// One outcome to record: what happened to a subject in an experiment.
public struct ExperimentOutcome: Sendable {
    /// The source's id of the outcome (idempotency).
    public var id: String
    /// The subject.
    public var subject: SubjectReference
    /// `send`, `open`, `click`, `conversion` or `revenue`.
    public var kind: String
    /// 1 for counts; the amount for revenue.
    public var value: Double
    /// When (ms).
    public var time: Int64

    /// Creates an outcome.
    public init(id: String, subject: SubjectReference, kind: String, value: Double, time: Int64) {
        self.id = id
        self.subject = subject
        self.kind = kind
        self.value = value
        self.time = time
    }
}

/// Aggregated counts of one arm (no subject-level data).
public struct ArmCounts: Sendable, Codable, Equatable {
    /// Subjects assigned.
    public var assigned: Int
    /// Subjects with at least one outcome of each kind (`send`, `open`, `click`, `conversion`).
    public var reached: [String: Int]
    /// Sum of revenue.
    public var revenue: Double
    /// Sum of squared per-subject revenue (for the variance of revenue per recipient).
    public var revenueSquares: Double
}

extension Vault {
    /// Creates an experiment for `purpose`; the role needs `segment` for it. Audited.
    public func createExperiment(_ definition: ExperimentDefinition, actor: String) async throws(GateError) {
        guard FieldName.isValid(definition.name) else { throw GateError(.invalidInput, "experiment names are lower-case identifiers") }
        guard definition.arms.count >= 2, definition.arms.allSatisfy({ $0.weight > 0 && FieldName.isValid($0.name) && $0.name != "holdout" }),
            Set(definition.arms.map(\.name)).count == definition.arms.count
        else {
            throw GateError(.invalidInput, "an experiment has at least two arms with distinct lower-case names (not `holdout`) and positive weights")
        }
        guard (0..<1).contains(definition.holdout) else { throw GateError(.invalidInput, "the holdout share is at least 0 and below 1") }
        let request = AccessRequest(actor: actor, role: definition.role, action: .segment, purpose: definition.purpose)
        try await perform(request, requestID: nil, failure: "create the experiment (nothing was stored)") { scope in
            guard try await scope.tx.catalogEntry(.experiment, named: definition.name) == nil else {
                throw GateError(
                    .alreadyExists, "experiment `\(definition.name)` exists; experiments are not redefined (assignments depend on them)")
            }
            try await scope.tx.insertCatalogEntry(
                try CatalogEntry(
                    kind: .experiment, name: definition.name, version: 1, purpose: definition.purpose, role: definition.role,
                    body: ExperimentBody(arms: definition.arms, holdout: definition.holdout), definedBy: actor, definedAt: nowMillis))
            scope.entry.reasons.append("experiment `\(definition.name)` created")
        }
    }

    /// An experiment, or nil.
    public func experiment(_ name: String) async throws(GateError) -> ExperimentDefinition? {
        let entry: CatalogEntry?
        do { entry = try await store.catalogEntry(.experiment, named: name) } catch { throw Self.storageError(error, "read the experiment") }
        guard let entry else { return nil }
        let body = try entry.decodeBody(ExperimentBody.self)
        return ExperimentDefinition(name: name, purpose: entry.purpose, arms: body.arms, holdout: body.holdout, role: try entry.actingRole())
    }

    /// Stores assignments (subject → arm) of an experiment as sealed derived data of the experiment's purpose; subjects
    /// already assigned keep their arm, and a subject the purpose no longer admits is not assigned (and loses its arm).
    public func storeAssignments(_ experiment: ExperimentDefinition, _ arms: [SubjectID: String], as principal: Principal) async throws(GateError) -> Int {
        let (actor, role) = (principal.actor, principal.role)
        let request = AccessRequest(actor: actor, role: role, action: .segment, purpose: experiment.purpose)
        return try await perform(request, requestID: principal.requestID, failure: "store the assignments") { scope -> Int in
            guard let policy = loadedPolicy else { throw Refusal(request: request, decision: decide(request)) }
            let stored = try storeDerived(
                scope.db, kind: DerivedKind.experimentArm.name, name: experiment.name, purpose: experiment.purpose, values: arms, policy: policy,
                keepExisting: true)
            scope.entry.subjectSet = stored.pseudonyms
            scope.entry.counts = ["assigned": stored.written, "considered": arms.count]
            scope.entry.reasons.append("experiment `\(experiment.name)` assignments")
            return stored.written
        }
    }

    /// Records outcomes (idempotent by id); an outcome of a subject not assigned to the experiment is rejected.
    /// - Returns: (recorded, duplicates, rejected with reasons by line index).
    public func recordOutcomes(_ experiment: ExperimentDefinition, _ outcomes: [ExperimentOutcome], as principal: Principal) async throws(GateError) -> (
        recorded: Int, duplicates: Int, rejected: [(Int, String)]
    ) {
        let (actor, role) = (principal.actor, principal.role)
        let request = AccessRequest(actor: actor, role: role, action: .import)
        return try await perform(request, requestID: principal.requestID, failure: "record the outcomes (nothing was recorded)") { scope in
            let db = scope.db
            var recorded = 0, duplicates = 0
            var rejected: [(Int, String)] = []
            for (index, outcome) in outcomes.enumerated() {
                guard ["send", "open", "click", "conversion", "revenue"].contains(outcome.kind) else {
                    rejected.append((index, "`kind` must be send, open, click, conversion or revenue"))
                    continue
                }
                guard let subject = try resolve(outcome.subject, db: db) else {
                    rejected.append((index, "matches no subject; check the e-mail address or customer id"))
                    continue
                }
                guard try await scope.tx.derivedExists(subject: subject.rawValue, kind: DerivedKind.experimentArm.name, name: experiment.name)
                else {
                    rejected.append((index, "the subject is not assigned to `\(experiment.name)`; run `experiment assign` first"))
                    continue
                }
                let key = Data(keys.eventIDs.hash(tag: 0x50, "\(experiment.name)|\(outcome.id)"))
                let new = try await scope.tx.recordOutcome(
                    OutcomeRow(
                        key: key, experiment: experiment.name, subjectID: subject.rawValue, kind: outcome.kind, value: outcome.value,
                        time: outcome.time))
                if new { recorded += 1 } else { duplicates += 1 }
            }
            scope.entry.counts = ["recorded": recorded, "duplicates": duplicates, "rejected": rejected.count]
            scope.entry.reasons.append("experiment `\(experiment.name)` outcomes")
            return (recorded, duplicates, rejected)
        }
    }

    /// Aggregated counts per arm for a report. The role needs `segment` for the experiment's purpose; only counts leave.
    public func experimentCounts(_ experiment: ExperimentDefinition, as principal: Principal) async throws(GateError) -> [String: ArmCounts] {
        let (actor, role) = (principal.actor, principal.role)
        let request = AccessRequest(actor: actor, role: role, action: .segment, purpose: experiment.purpose)
        return try await perform(request, requestID: principal.requestID, failure: "read the experiment's counts") { scope in
            // The arms are sealed: each is opened with its subject's key here, and only the counts leave.
            let arms = try await openArms(of: experiment, scope.tx, db: scope.db)
            var result: [String: ArmCounts] = [:]
            for arm in arms.values { result[arm, default: ArmCounts(assigned: 0, reached: [:], revenue: 0, revenueSquares: 0)].assigned += 1 }
            var reached: [String: [String: Set<Int64>]] = [:]
            var revenue: [Int64: Double] = [:]
            for outcome in try await scope.tx.outcomes(ofExperiment: experiment.name) {
                guard let arm = arms[outcome.subjectID] else { continue }
                if outcome.kind == "revenue" {
                    revenue[outcome.subjectID, default: 0] += outcome.value
                } else {
                    reached[arm, default: [:]][outcome.kind, default: []].insert(outcome.subjectID)
                }
            }
            for (arm, kinds) in reached { result[arm]?.reached = kinds.mapValues(\.count) }
            for (subject, total) in revenue {
                result[arms[subject]!]?.revenue += total
                result[arms[subject]!]?.revenueSquares += total * total
            }
            scope.entry.counts = ["arms": result.count]
            scope.entry.reasons.append("experiment `\(experiment.name)` report (aggregates only)")
            return result
        }
    }

    /// Every assigned subject's arm of `experiment`, opened with the subject's data key.
    private func openArms(of experiment: ExperimentDefinition, _ tx: SQLiteTransaction, db: Database) async throws -> [Int64: String] {
        try refreshKEKs(db)
        var scratch = try SecretBytes(count: Sealing.keyLength)
        defer { scratch.zero() }
        var arms: [Int64: String] = [:]
        let kind = DerivedKind.experimentArm.name
        for value in try await tx.derivedValues(kind: kind, name: experiment.name) {
            let subject = SubjectID(rawValue: value.subjectID)
            try unwrapDataKey(of: subject, kekVersion: value.keys.kekVersion, wrapped: value.keys.wrappedKey, into: &scratch)
            let ad = Sealing.derivedAssociatedData(subject: subject, kind: kind, name: experiment.name, keyVersion: value.keys.keyVersion)
            guard let arm = value.sealed.withUnsafeBytes({ Sealing.openString($0, key: scratch, associatedData: ad) }) else {
                throw GateError(.integrity, "the experiment arm of \(subjectLabel(subject, db)) failed its integrity check")
            }
            scratch.zero()
            arms[value.subjectID] = arm
        }
        return arms
    }

    /// Seals the experiment arms of a vault from before schema v16, once: the first open after the upgrade moves each
    /// row of `experiment_assignment` (arms in clear) into sealed derived data of the experiment's purpose and drops the
    /// table, in one transaction, so that no arm stays in clear.
    func sealExperimentArms() throws(GateError) {
        do {
            guard try db.read({ try SQLiteMaintenanceRows.hasClearArms($0) }) else { return }
            try db.write { db in
                try refreshKEKs(db)
                var scratch = try SecretBytes(count: Sealing.keyLength)
                defer { scratch.zero() }
                let nonces = NonceSource()
                let kind = DerivedKind.experimentArm.name
                for arm in try SQLiteMaintenanceRows.clearArms(db) {
                    let subject = SubjectID(rawValue: arm.subjectID)
                    try unwrapDataKey(of: subject, kekVersion: arm.keys.kekVersion, wrapped: arm.keys.wrappedKey, into: &scratch)
                    let sealed = Sealing.seal(
                        arm.arm, key: scratch,
                        associatedData: Sealing.derivedAssociatedData(subject: subject, kind: kind, name: arm.experiment, keyVersion: arm.keys.keyVersion),
                        nonces: nonces)
                    scratch.zero()
                    try SQLiteMaintenanceRows.storeSealedArm(arm, kind: kind, sealed: sealed, db)
                }
                try SQLiteMaintenanceRows.dropClearArms(db)
            }
        } catch {
            throw Self.storageError(error, "seal the experiment arms stored in clear before schema v16")
        }
    }
}

/// An experiment's fields in the catalog, beside its name, purpose and role.
struct ExperimentBody: Codable {
    var arms: [ExperimentDefinition.Arm]
    var holdout: Double
}
