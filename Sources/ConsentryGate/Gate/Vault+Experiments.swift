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

    /// Stores assignments (subject → arm) of an experiment; subjects already assigned keep their arm.
    public func storeAssignments(_ experiment: ExperimentDefinition, _ arms: [SubjectID: String], as principal: Principal) async throws(GateError) -> Int {
        let (actor, role) = (principal.actor, principal.role)
        let request = AccessRequest(actor: actor, role: role, action: .segment, purpose: experiment.purpose)
        return try await perform(request, requestID: principal.requestID, failure: "store the assignments") { scope -> Int in
            let db = scope.db
            let insert = try db.cachedStatement(
                sql: "INSERT OR IGNORE INTO experiment_assignment (experiment, subject_id, arm, assigned_at) VALUES (?, ?, ?, ?)")
            var added = 0
            let now = nowMillis
            for (subject, arm) in arms {
                try insert.execute(arguments: [experiment.name, subject.rawValue, arm, now])
                added += db.changesCount
            }
            scope.entry.counts = ["assigned": added, "considered": arms.count]
            scope.entry.reasons.append("experiment `\(experiment.name)` assignments")
            return added
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
                guard
                    try Int.fetchOne(
                        db, sql: "SELECT count(*) FROM experiment_assignment WHERE experiment = ? AND subject_id = ?",
                        arguments: [experiment.name, subject.rawValue]) == 1
                else {
                    rejected.append((index, "the subject is not assigned to `\(experiment.name)`; run `experiment assign` first"))
                    continue
                }
                let key = Data(keys.eventIDs.hash(tag: 0x50, "\(experiment.name)|\(outcome.id)"))
                try db.execute(
                    sql: "INSERT OR IGNORE INTO experiment_outcome (key, experiment, subject_id, kind, value, time) VALUES (?, ?, ?, ?, ?, ?)",
                    arguments: [key, experiment.name, subject.rawValue, outcome.kind, outcome.value, outcome.time])
                if db.changesCount == 1 { recorded += 1 } else { duplicates += 1 }
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
            let db = scope.db
            var result: [String: ArmCounts] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT arm, count(*) FROM experiment_assignment WHERE experiment = ? GROUP BY arm", arguments: [experiment.name])
            {
                result[row[0]] = ArmCounts(assigned: row[1], reached: [:], revenue: 0, revenueSquares: 0)
            }
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT a.arm, o.kind, count(DISTINCT o.subject_id) FROM experiment_outcome o
                    JOIN experiment_assignment a ON a.experiment = o.experiment AND a.subject_id = o.subject_id
                    WHERE o.experiment = ? AND o.kind <> 'revenue' GROUP BY a.arm, o.kind
                    """, arguments: [experiment.name])
            {
                result[row[0], default: ArmCounts(assigned: 0, reached: [:], revenue: 0, revenueSquares: 0)].reached[row[1]] = row[2]
            }
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT a.arm, sum(t.total), sum(t.total * t.total) FROM (
                        SELECT subject_id, sum(value) AS total FROM experiment_outcome WHERE experiment = ? AND kind = 'revenue' GROUP BY subject_id
                    ) t JOIN experiment_assignment a ON a.experiment = ? AND a.subject_id = t.subject_id GROUP BY a.arm
                    """, arguments: [experiment.name, experiment.name])
            {
                result[row[0]]?.revenue = row[1] ?? 0
                result[row[0]]?.revenueSquares = row[2] ?? 0
            }
            scope.entry.counts = ["arms": result.count]
            scope.entry.reasons.append("experiment `\(experiment.name)` report (aggregates only)")
            return result
        }
    }
}

/// An experiment's fields in the catalog, beside its name, purpose and role.
struct ExperimentBody: Codable {
    var arms: [ExperimentDefinition.Arm]
    var holdout: Double
}
