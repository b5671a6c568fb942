import ConsentryAudit
import ConsentryCore
import ConsentryCrypto
import ConsentryTesting
import Foundation
import Testing

@testable import ConsentryGate

/// What every store must do with the records the gate hands it: keep each field as given, and read back what a
/// transaction wrote. Written against ``VaultStore`` and ``StoreTransaction`` only, so that each store runs the same.
@Suite struct StoreContractTests {
    private func sqlite() throws -> SQLiteStore { try freshSQLiteStore("contract") }

    private func request(_ id: String, seed: Int64) -> RequestRow {
        RequestRow(
            id: id, type: "erasure", regime: "gdpr", status: "verifying", subjectID: nil, identifiers: Data([1, 2, UInt8(seed & 0xff)]),
            receivedAt: seed, confirmDueAt: seed + 1, dueAt: seed + 2, extendedDueAt: seed + 3, extensionReason: "complex \(seed)",
            rejectionReason: "no \(seed)", codeHash: Data(repeating: 7, count: 32), codeExpiresAt: seed + 4, codeAttempts: Int(seed % 5),
            verifiedAt: seed + 5, completedAt: seed + 6, outcome: "{\"n\":\(seed)}", receipt: "{\"r\":\(seed)}", exportFile: "exports/\(id)",
            idempotencyKey: "key-\(seed)", updatedAt: seed + 7)
    }

    @Test func aRequestKeepsEveryFieldThroughInsertAndUpdate() async throws {
        let store = try sqlite()
        let first = request("dsr_00000000000000a1", seed: 1_000)
        try await store.write { tx in try await tx.insertRequest(first) }
        #expect(try await store.request(first.id) == first)
        var changed = first
        changed.status = "completed"
        changed.identifiers = nil
        changed.codeHash = nil
        changed.extendedDueAt = nil
        changed.codeAttempts = 4
        changed.outcome = "{\"deleted\":{}}"
        changed.updatedAt = 9_999
        try await store.write { tx in
            #expect(try await tx.requestID(idempotencyKey: "key-1000") == first.id)
            try await tx.updateRequest(changed)
            #expect(try await tx.request(first.id) == changed, "a transaction reads its own write")
        }
        #expect(try await store.request(first.id) == changed)
        let second = request("dsr_00000000000000b2", seed: 2_000)
        try await store.write { tx in try await tx.insertRequest(second) }
        #expect(try await store.requests(status: nil).map(\.id) == [first.id, second.id], "oldest first")
        #expect(try await store.requests(status: "verifying") == [second])
    }

    @Test func requestRetentionShredsThenDeletesClosedRequests() async throws {
        let store = try sqlite()
        var old = request("dsr_00000000000000c3", seed: 10)
        old.status = "completed"
        var recent = request("dsr_00000000000000d4", seed: 500)
        recent.status = "rejected"
        let open = request("dsr_00000000000000e5", seed: 20)
        try await store.write { tx in
            for row in [old, recent, open] { try await tx.insertRequest(row) }
        }
        // `old` closed at 16, `recent` at 506; the open one is never touched.
        let result = try await store.write { tx in
            try await tx.expireRequests(identifiersClosedBefore: 1_000, recordsClosedBefore: 100, now: 2_000)
        }
        #expect(result.deleted == [old.id])
        #expect(result.shredded == 2)
        #expect(try await store.request(old.id) == nil)
        let shredded = try #require(try await store.request(recent.id))
        #expect(shredded.identifiers == nil && shredded.updatedAt == 2_000)
        #expect(try await store.request(open.id) == open)
    }

    @Test func aTokenKeepsEveryFieldAndItsRevocation() async throws {
        let store = try sqlite()
        let token = TokenRecord(
            id: "tok_0123456789ab", name: "esp", role: "campaign_service", secretHash: Array(repeating: 3, count: 32), createdAt: 5,
            expiresAt: 50, revokedAt: nil, lastUsedAt: nil, binding: Array(repeating: 9, count: 32))
        try await store.write { tx in try await tx.insertToken(token) }
        #expect(try await store.token(token.id) == token)
        #expect(try await store.tokens() == [token])
        try await store.recordTokenUse(token.id, at: 7)
        try await store.write { tx in
            #expect(try await tx.activeToken(token.id)?.lastUsedAt == 7)
            try await tx.revokeToken(token.id, at: 8, binding: Array(repeating: 4, count: 32))
            #expect(try await tx.activeToken(token.id) == nil, "a revoked token is not active")
        }
        let revoked = try #require(try await store.token(token.id))
        #expect(revoked.revokedAt == 8 && revoked.binding == Array(repeating: 4, count: 32) && revoked.expiresAt == 50)
    }

    @Test func anIdempotentResponseIsReplayedWithinItsWindowAndForgottenAfter() async throws {
        let store = try sqlite()
        let first = IdempotencyRecord(
            keyHash: Data(repeating: 1, count: 32), requestHash: Data(repeating: 2, count: 32), status: 201, response: Data("{}".utf8), createdAt: 100)
        try await store.storeIdempotencyRecord(first, forgettingBefore: 0)
        #expect(try await store.idempotencyRecord(first.keyHash, newerThan: 99) == first)
        #expect(try await store.idempotencyRecord(first.keyHash, newerThan: 100) == nil, "outside the window")
        let later = IdempotencyRecord(
            keyHash: Data(repeating: 5, count: 32), requestHash: Data(repeating: 6, count: 32), status: 200, response: Data("[]".utf8), createdAt: 300)
        try await store.storeIdempotencyRecord(later, forgettingBefore: 200)
        #expect(try await store.idempotencyRecord(first.keyHash, newerThan: 0) == nil, "forgotten when a later one is stored")
        #expect(try await store.idempotencyRecord(later.keyHash, newerThan: 0) == later)
    }

    @Test func keyEncryptionKeysRotateAndRetire() async throws {
        let store = try sqlite()
        let first = KEKRecord(version: 1, wrapped: Data(repeating: 1, count: 72), active: true, createdAt: 10)
        let second = KEKRecord(version: 2, wrapped: Data(repeating: 2, count: 72), active: true, createdAt: 20)
        try await store.write { tx in try await tx.insertKEK(first) }
        try await store.write { tx in
            try await tx.rotateKEK(to: second)
            let keks = try await tx.keks()
            #expect(keks.map(\.version) == [1, 2] && keks.map(\.active) == [false, true], "one active, the old one retiring")
        }
        try await store.write { tx in try await tx.deleteRetiringKEKs() }
        #expect(try await store.write { tx in try await tx.keks() } == [second])
    }

    /// Audit queries match on the entry's own columns, and a pseudonym matches a subject set only at a 16-byte boundary.
    @Test func auditQueriesMatchColumnsAndSubjectSetsOnTheirBoundaries() async throws {
        let store = try sqlite()
        let alice = [UInt8](repeating: 0xA1, count: 16), bob = [UInt8](repeating: 0xB2, count: 16)
        // A set whose bytes hold Alice's pseudonym only across the boundary between two other pseudonyms.
        let straddling = [UInt8](repeating: 0x00, count: 8) + alice + [UInt8](repeating: 0x00, count: 8)
        let drafts: [(AuditDraft, [UInt8])] = [
            (AuditDraft(actor: "mia", role: .marketer, action: .segment, decision: .permit, policyVersion: "v"), bob + alice),
            (AuditDraft(actor: "mia", role: .marketer, action: .segment, decision: .permit, policyVersion: "v"), straddling),
            (AuditDraft(actor: "co", role: .complianceOfficer, action: .readProfile, decision: .deny, policyVersion: "v"), []),
        ]
        for (index, (draft, set)) in drafts.enumerated() {
            var draft = draft
            draft.subjectSet = set
            try await store.write { tx in
                try await tx.insertAudit(DatabaseAuditSink.chain(draft, onto: try await tx.auditHead(), time: 1_000 + Int64(index)))
            }
        }
        func sequences(_ query: AuditQuery) async throws -> [Int64] {
            try await store.read { db in
                var found: [Int64] = []
                try SQLiteAuditRows.forEach(query, db) { found.append($0.sequence) }
                return found
            }
        }
        #expect(try await sequences(AuditQuery(pseudonym: (Digest.hex(alice), alice))) == [1])
        #expect(try await sequences(AuditQuery(actor: "mia")) == [1, 2])
        #expect(try await sequences(AuditQuery(decision: "deny")) == [3])
        #expect(try await sequences(AuditQuery(since: 1_001, until: 1_002)) == [2])
        #expect(try await sequences(AuditQuery(limit: 2)) == [2, 3], "the newest entries, in sequence order")
    }

    @Test func theCensusCountsWithoutReadingPersonalData() async throws {
        let store = try sqlite()
        let census = try await store.census()
        #expect(census.subjects == 0 && census.events == 0 && census.keks == 0)
        #expect(census.schemaVersion == "v16-derived-purposes")
    }
}
