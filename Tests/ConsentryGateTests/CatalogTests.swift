import ConsentryCore
import ConsentryTesting
import Foundation
import GRDB
import Testing

@testable import ConsentryGate

/// The catalog: one versioned store of the features' non-personal definitions.
@Suite struct CatalogTests {
    /// A vault from before the catalog keeps every definition: the migration moves templates, segments, models,
    /// triggers and experiments into the catalog with their versions, purposes, roles and times, and experiment
    /// assignments keep naming their experiment.
    @Test func theMigrationMovesEveryDefinitionIntoTheCatalog() async throws {
        let directory = TestSupport.temporaryDirectory("catalog-migration")
        try SQLiteStore.createFile(in: directory)
        let path = directory.appendingPathComponent(SQLiteStore.fileName).path
        let old = try DatabasePool(path: path)
        try Schema.migrator.migrate(old, upTo: "v14-ledger-heads")
        try await old.write { db in
            try db.execute(
                sql: """
                    INSERT INTO template VALUES ('welcome', 'service', 'text', 'Hi {{ profile.first_name }}', '["first_name"]', 3, 'ann', 1000);
                    INSERT INTO segment VALUES ('fans', 'email_marketing', 'country = "DE"', '["country"]', 1, 'marketer', 2, 'bob', 2000);
                    INSERT INTO model VALUES ('propensity', 1, 'profiling', '{"auc":0.7}', '{"w":[1]}', 'cy', 3000);
                    INSERT INTO model VALUES ('propensity', 2, 'profiling', '{"auc":0.8}', '{"w":[2]}', 'cy', 4000);
                    INSERT INTO trigger_def VALUES ('cart', 'cart_abandoned', 'email_marketing', 300000, 'marketer', 'dee', 5000);
                    INSERT INTO experiment VALUES ('subject_line', 'email_marketing', '[{"name":"a","weight":1},{"name":"b","weight":2}]', 0.1,
                        'marketer', 'eve', 6000);
                    """)
        }
        try old.close()
        let store = try SQLiteStore.open(in: directory, busyTimeout: 5)

        let templates = try await store.catalog(.template, allVersions: false)
        #expect(templates.count == 1)
        let template = try StoredTemplate(templates[0])
        #expect(
            template
                == StoredTemplate(
                    name: "welcome", purpose: .service, format: "text", source: "Hi {{ profile.first_name }}", fields: ["first_name"],
                    version: 3, registeredAt: 1000))
        #expect(templates[0].definedBy == "ann")

        let segment = try #require(try await store.catalogEntry(.segment, named: "fans"))
        #expect((segment.version, segment.purpose, segment.role) == (2, .emailMarketing, .marketer))
        let segmentBody = try segment.decodeBody(SegmentBody.self)
        #expect((segmentBody.rule, segmentBody.fields, segmentBody.readsEvents) == ("country = \"DE\"", ["country"], true))

        let models = try await store.catalog(.model, allVersions: true)
        #expect(models.map(\.version) == [2, 1])
        #expect(try models.map { try $0.decodeBody(ModelBody.self).metrics } == ["{\"auc\":0.8}", "{\"auc\":0.7}"])
        #expect(try await store.catalog(.model, allVersions: false).map(\.version) == [2])

        let trigger = try #require(try await store.catalogEntry(.trigger, named: "cart"))
        let triggerBody = try trigger.decodeBody(TriggerBody.self)
        #expect((triggerBody.kind, triggerBody.delayMillis, triggerBody.firesSince) == ("cart_abandoned", 300_000, 5000))
        #expect(trigger.role == .marketer)

        let experiment = try #require(try await store.catalogEntry(.experiment, named: "subject_line"))
        let experimentBody = try experiment.decodeBody(ExperimentBody.self)
        #expect(experimentBody.arms == [.init(name: "a", weight: 1), .init(name: "b", weight: 2)])
        #expect(experimentBody.holdout == 0.1)

        // The old tables are gone, and nothing else is left behind.
        let tables = try await store.pool.read { try String.fetchAll($0, sql: "SELECT name FROM sqlite_master WHERE type = 'table'") }
        for gone in ["template", "segment", "model", "trigger_def", "experiment"] { #expect(!tables.contains(gone)) }
        #expect(!tables.contains { $0.hasSuffix("_v15") })
        let problems = try await store.pool.read { try Row.fetchAll($0, sql: "PRAGMA foreign_key_check").count }
        #expect(problems == 0)
    }

    /// Definitions made through the gate against a reference model: each name's newest version is in force and counts
    /// its definitions, and model versions are all kept, newest first.
    @Test func definingAgainAddsAVersionAndTheNewestIsInForce() async throws {
        let vault = try await gateVault()
        var (generator, _) = TestSupport.propertyGenerator("definingAgainAddsAVersionAndTheNewestIsInForce")
        var templates: [String: (count: Int, source: String)] = [:]
        var segments: [String: (count: Int, rule: String)] = [:]
        var models: [String: Int] = [:]
        let admin = Principal(actor: "t", role: .admin), marketer = Principal(actor: "m", role: .marketer)
        let analyst = Principal(actor: "a", role: .analyst)
        for step in 0..<Int.random(in: 20...40, using: &generator) {
            let name = ["a", "b", "c"].randomElement(using: &generator)!
            switch Int.random(in: 0..<3, using: &generator) {
            case 0:
                let source = "v\(step)"
                let stored = try await vault.registerTemplate(name: name, purpose: .service, format: "text", source: source, fields: [], as: admin)
                templates[name] = ((templates[name]?.count ?? 0) + 1, source)
                #expect(stored.version == templates[name]!.count)
            case 1:
                let rule = "country = \"D\(step)\""
                let stored = try await vault.defineSegment(
                    name: name, purpose: .emailMarketing, rule: rule, fields: ["country"], readsEvents: false, as: marketer)
                segments[name] = ((segments[name]?.count ?? 0) + 1, rule)
                #expect(stored.version == segments[name]!.count)
            default:
                let stored = try await vault.storeModel(name: name, purpose: .profiling, metrics: "{}", parameters: "{\"s\":\(step)}", as: analyst)
                models[name, default: 0] += 1
                #expect(stored.version == models[name])
            }
        }
        let storedTemplates = try await vault.templates()
        #expect(storedTemplates.map(\.name) == templates.keys.sorted())
        for template in storedTemplates {
            #expect(template.version == templates[template.name]?.count)
            #expect(template.source == templates[template.name]?.source)
        }
        let storedSegments = try await vault.segments()
        #expect(storedSegments.map(\.name) == segments.keys.sorted())
        for segment in storedSegments {
            #expect(segment.version == segments[segment.name]?.count)
            #expect(segment.rule == segments[segment.name]?.rule)
            #expect(segment.role == .marketer)
        }
        let storedModels = try await vault.models()
        let expected = models.keys.sorted().flatMap { name in (1...models[name]!).reversed().map { (name, $0) } }
        #expect(storedModels.map(\.name) == expected.map(\.0))
        #expect(storedModels.map(\.version) == expected.map(\.1))
    }

    /// A version already stored is refused, so a definition is never silently replaced.
    @Test func aStoredVersionIsNeverReplaced() async throws {
        let store = try freshSQLiteStore("catalog")
        let entry = try CatalogEntry(
            kind: .segment, name: "s", version: 1, purpose: .analytics, role: .analyst, body: ["rule": "x"], definedBy: "t", definedAt: 1)
        try await store.write { tx in try await tx.insertCatalogEntry(entry) }
        let error = await #expect(throws: DatabaseError.self) { try await store.write { tx in try await tx.insertCatalogEntry(entry) } }
        #expect(error?.resultCode == .SQLITE_CONSTRAINT)
        #expect(try await store.catalog(.segment, allVersions: true) == [entry])
    }

    /// A redefined trigger keeps the time it fires from: a redefinition does not make earlier events ineligible.
    @Test func aRedefinedTriggerKeepsTheTimeItFiresFrom() async throws {
        let clock = FixedClock(TestSupport.fixedNow)
        let vault = try await gateVault(configuration: VaultConfiguration(clock: clock))
        let marketer = Principal(actor: "m", role: .marketer)
        let first = try await vault.defineTrigger(name: "cart", kind: "cart_abandoned", purpose: .emailMarketing, delay: 60_000, as: marketer)
        clock.advance(by: 3_600)
        let second = try await vault.defineTrigger(name: "cart", kind: "cart_abandoned", purpose: .emailMarketing, delay: 120_000, as: marketer)
        #expect(second.definedAt == first.definedAt)
        #expect(second.delay == 120_000)
        #expect(try await vault.triggerDefinitions() == [second])
    }
}
