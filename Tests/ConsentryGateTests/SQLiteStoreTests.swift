import ConsentryAudit
import ConsentryCore
import ConsentryTesting
import Foundation
import GRDB
import Synchronization
import Testing

@testable import ConsentryGate

/// A new, empty SQLite store in a temporary directory.
func freshSQLiteStore(_ label: String = "store") throws -> SQLiteStore {
    let directory = TestSupport.temporaryDirectory(label)
    try SQLiteStore.createFile(in: directory)
    return try SQLiteStore.open(in: directory, busyTimeout: 5)
}

/// The SQLite store's asynchronous write transactions: the body's steps run on the writer connection inside one
/// transaction that commits when the body returns and rolls back when it throws, exclusive of every other write.
@Suite struct SQLiteStoreTests {
    private func makeStore() throws -> SQLiteStore { try freshSQLiteStore() }

    private func value(_ store: SQLiteStore, _ key: String) throws -> String? {
        try store.pool.read { try String.fetchOne($0, sql: "SELECT value FROM vault_meta WHERE key = ?", arguments: [key]) }
    }

    private struct Planned: Error {}

    private final class Flag: Sendable {
        let value = Mutex(false)
    }

    @Test func aBodyThatReturnsCommitsAndOneThatThrowsRollsBack() async throws {
        let store = try makeStore()
        try await store.write { tx in
            try tx.run { try $0.execute(sql: "INSERT INTO vault_meta (key, value) VALUES ('kept', 'yes')") }
            // A step sees the steps before it in the same transaction.
            let seen = try tx.run { try String.fetchOne($0, sql: "SELECT value FROM vault_meta WHERE key = 'kept'") }
            #expect(seen == "yes")
        }
        #expect(try value(store, "kept") == "yes")
        await #expect(throws: Planned.self) {
            try await store.write { tx in
                try tx.run { try $0.execute(sql: "INSERT INTO vault_meta (key, value) VALUES ('dropped', 'yes')") }
                throw Planned()
            }
        }
        #expect(try value(store, "dropped") == nil)
        // The writer is free again after either ending.
        try await store.write { tx in try tx.run { try $0.execute(sql: "INSERT INTO vault_meta (key, value) VALUES ('after', 'yes')") } }
        #expect(try value(store, "after") == "yes")
    }

    @Test func aFailingStepFailsTheBodyAndLeavesNothing() async throws {
        let store = try makeStore()
        let error = await #expect(throws: DatabaseError.self) {
            try await store.write { tx in
                try tx.run { try $0.execute(sql: "INSERT INTO vault_meta (key, value) VALUES ('twice', '1')") }
                try tx.run { try $0.execute(sql: "INSERT INTO vault_meta (key, value) VALUES ('twice', '2')") }
            }
        }
        #expect(error?.resultCode == .SQLITE_CONSTRAINT)
        #expect(try value(store, "twice") == nil)
    }

    /// Concurrent read-modify-write bodies that suspend between their steps lose no update: the reference model is a
    /// counter incremented once per body.
    @Test func concurrentBodiesAreExclusive() async throws {
        let store = try makeStore()
        var (generator, _) = TestSupport.propertyGenerator("concurrentBodiesAreExclusive")
        let bodies = Int.random(in: 20...60, using: &generator)
        try await store.write { tx in try tx.run { try $0.execute(sql: "INSERT INTO vault_meta (key, value) VALUES ('n', '0')") } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<bodies {
                group.addTask {
                    try await store.write { tx in
                        let current = try tx.run { try String.fetchOne($0, sql: "SELECT value FROM vault_meta WHERE key = 'n'") }
                        await Task.yield()
                        try tx.run {
                            try $0.execute(sql: "UPDATE vault_meta SET value = ? WHERE key = 'n'", arguments: [String(Int(current!)! + 1)])
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try value(store, "n") == String(bodies))
    }

    /// A body that suspends while it holds the writer finishes even when every cooperative thread is blocked in a
    /// synchronous write waiting for that writer: the body runs on the writer's own thread, not on a cooperative one.
    @Test(.timeLimit(.minutes(1))) func aSuspendedBodyIsNotStalledBySynchronousWriters() async throws {
        let store = try makeStore()
        try await store.write { tx in try tx.run { try $0.execute(sql: "INSERT INTO vault_meta (key, value) VALUES ('n', '0')") } }
        let holding = Flag()
        // More synchronous writers than cores, each blocking the cooperative thread it runs on.
        let writers = ProcessInfo.processInfo.activeProcessorCount + 2
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await store.write { tx in
                    holding.value.withLock { $0 = true }
                    // Suspend repeatedly while the synchronous writers pile up behind the writer.
                    for _ in 0..<50 {
                        await Task.yield()
                        try await Task.sleep(for: .milliseconds(2))
                    }
                    try tx.run { try $0.execute(sql: "UPDATE vault_meta SET value = 'body' WHERE key = 'n'") }
                }
            }
            while !holding.value.withLock({ $0 }) { await Task.yield() }
            for index in 0..<writers {
                group.addTask {
                    try store.pool.write { try $0.execute(sql: "INSERT INTO vault_meta (key, value) VALUES (?, 'sync')", arguments: ["w\(index)"]) }
                }
            }
            try await group.waitForAll()
        }
        #expect(try value(store, "n") == "body")
        let synchronous = try await store.pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM vault_meta WHERE value = 'sync'") }
        #expect(synchronous == writers)
    }

    /// A statement handed to a transaction from outside its body is refused, not run off the writer's thread.
    @Test func aStepOutsideTheBodyIsRefused() async throws {
        let store = try makeStore()
        let escaped = try await store.write { tx in tx }
        let error = #expect(throws: GateError.self) { try escaped.run { try $0.execute(sql: "DELETE FROM vault_meta") } }
        #expect(error?.message.contains("outside its write transaction") == true)
    }

    /// Entries appended through the transaction's audit steps chain onto each other and verify.
    @Test func auditStepsChain() async throws {
        let store = try makeStore()
        for index in 0..<3 {
            try await store.write { tx in
                let head = try await tx.auditHead()
                #expect(head.sequence == Int64(index))
                let draft = AuditDraft(actor: "test", role: nil, action: .vaultCreated, decision: .permit, policyVersion: "v")
                try await tx.insertAudit(DatabaseAuditSink.chain(draft, onto: head, time: 1_000 + Int64(index)))
            }
        }
        let entries = try await store.pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM audit_entry ORDER BY sequence").map(SQLiteAuditRows.entry) }
        #expect(entries.map(\.sequence) == [1, 2, 3])
        #expect(entries[0].previousHash == AuditEntry.genesisHash)
        for (previous, next) in zip(entries, entries.dropFirst()) { #expect(next.previousHash == previous.hash) }
        for entry in entries { #expect(entry.hash == entry.computedHash()) }
    }

    @Test func theStoreNamesItselfAndItsErasureGuarantee() throws {
        let store = try makeStore()
        #expect(store.description == "SQLite file \(store.path)")
        #expect(store.erasureGuarantee == .sqlite)
        #expect(store.erasureGuarantee.rawFilesScannable)
    }
}
