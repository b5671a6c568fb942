import ConsentryAudit
import ConsentryCore
import ConsentryCrypto
import Foundation
import Testing

@Suite("Audit chain")
struct AuditChainTests {
    let signer: Signer

    init() throws {
        signer = try Signer(seed: try SecretBytes.random(count: 32))
    }

    func log(_ count: Int) throws -> [AuditEntry] {
        var sink = InMemoryAuditSink()
        for i in 0..<count {
            _ = try sink.append(
                AuditDraft(
                    actor: "actor-\(i % 3)", role: .marketer, action: .segment, purpose: .emailMarketing,
                    subjectSet: [UInt8](repeating: UInt8(i), count: 32),
                    fields: ["email"], counts: ["permitted": 2, "excluded.consent_missing": i], decision: .permit, reasons: ["granted"],
                    policyVersion: "v1"), time: 1_000 + Int64(i))
        }
        return sink.entries
    }

    func checkpoints(_ entries: [AuditEntry], at sequences: [Int64]) -> (checkpoints: [(line: Int, checkpoint: Checkpoint)], problems: [String]) {
        var result = [(1, Checkpoint(sequence: 0, hash: AuditEntry.genesisHash, time: 0, signer: signer))]
        for (i, sequence) in sequences.enumerated() {
            result.append((i + 2, Checkpoint(sequence: sequence, hash: entries[Int(sequence) - 1].hash, time: 5, signer: signer)))
        }
        return (result, [])
    }

    func verify(_ entries: [AuditEntry], _ cps: (checkpoints: [(line: Int, checkpoint: Checkpoint)], problems: [String])?) -> AuditVerification {
        AuditVerifier.verify(entries: entries, checkpoints: cps, publicKey: signer.publicKey)
    }

    @Test("an intact log with checkpoints verifies")
    func intact() throws {
        let entries = try log(10)
        let report = verify(entries, checkpoints(entries, at: [5, 10]))
        #expect(report.passed, "\(report.problems)")
        #expect(report.entriesChecked == 10 && report.lastCheckpoint == 10 && report.uncheckpointedEntries == 0)
        #expect(entries[1].previousHash == entries[0].hash)
        #expect(entries[0].subjectCount == 2 && entries[0].subjectSetDigest != nil)
    }

    @Test("an edited entry is named")
    func edited() throws {
        var entries = try log(10)
        entries[3].actor = "someone-else"
        let report = verify(entries, checkpoints(entries, at: [10]))
        #expect(report.firstBadSequence == 4)
        #expect(report.problems.first == "entry 4 does not match its hash (edited)")
    }

    @Test("an edited entry whose hash was recomputed still breaks the link")
    func editedAndRehashed() throws {
        var entries = try log(10)
        entries[3].counts["permitted"] = 0
        entries[3].hash = entries[3].computedHash()
        let report = verify(entries, checkpoints(entries, at: []))
        #expect(report.firstBadSequence == 5)
    }

    @Test("a deleted entry is named")
    func deleted() throws {
        var entries = try log(10)
        entries.remove(at: 6)
        let report = verify(entries, checkpoints(entries, at: []))
        #expect(report.firstBadSequence == 7)
        #expect(report.problems.first == "entries 7…7 are missing (deleted)")
    }

    @Test("reordered entries are detected")
    func reordered() throws {
        var entries = try log(10)
        entries.swapAt(2, 3)
        #expect(verify(entries, checkpoints(entries, at: [])).firstBadSequence == 3)
    }

    @Test("an entry inserted out of band is detected")
    func inserted() throws {
        var entries = try log(10)
        var forged = AuditEntry.chain(
            AuditDraft(actor: "x", role: .admin, action: .readProfile, decision: .permit, policyVersion: "v1"), sequence: 6, time: 9,
            previousHash: entries[4].hash, subjectSetDigest: nil)
        forged.hash = forged.computedHash()
        entries.insert(forged, at: 5)
        for i in 6..<entries.count { entries[i].sequence += 1 }
        #expect(!verify(entries, checkpoints(entries, at: [])).passed)
    }

    @Test("a truncated tail, or a database restored from an older copy, is detected through the checkpoints")
    func truncated() throws {
        let entries = try log(10)
        let cps = checkpoints(entries, at: [5, 10])
        let report = verify(Array(entries.prefix(7)), cps)
        #expect(report.firstBadSequence == 8)
        #expect(report.problems.first?.contains("truncated or the database restored from an older copy") == true)
    }

    @Test("an edited or removed checkpoint file is detected")
    func checkpointTampering() throws {
        let entries = try log(10)
        var cps = checkpoints(entries, at: [10])
        cps.checkpoints[1].checkpoint.sequence = 9
        #expect(verify(entries, cps).problems.contains("checkpoint file line 2 has an invalid signature (edited)"))
        #expect(verify(entries, nil).problems.first?.contains("checkpoint file is missing") == true)
        #expect(verify(entries, ([], ["checkpoint file line 3 is malformed (edited?)"])).passed == false)
    }

    @Test("checkpoint lines round-trip and reject malformed text")
    func checkpointLines() throws {
        let checkpoint = Checkpoint(sequence: 42, hash: String(repeating: "ab", count: 32), time: 7, signer: signer)
        #expect(Checkpoint(line: checkpoint.line) == checkpoint)
        #expect(Checkpoint(line: "v1 42 zz 7 AAAA") == nil)
        #expect(Checkpoint(line: checkpoint.line)?.isValid(publicKey: signer.publicKey) == true)
    }

    @Test("the canonical text is stable, escapes control characters and covers every field")
    func canonical() throws {
        var entry = try log(1)[0]
        entry.actor = "line\nbreak \u{1}é"
        #expect(entry.canonicalText.contains(#""actor":"line\nbreak \u0001\u00e9""#))
        #expect(!entry.canonicalText.contains("\n"))
        #expect(entry.exportLine.hasSuffix(",\"hash\":\"\(entry.hash)\"}"))
    }
}

@Suite("Checkpoint file")
struct CheckpointFileTests {
    @Test("the newest checkpoint is found from the end of a long file")
    func newestFromTail() throws {
        let signer = try Signer(seed: try SecretBytes.random(count: 32))
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cp-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        let file = CheckpointFile(url: url)
        #expect(file.newest() == nil)
        for sequence in 0..<500 {
            try file.append(Checkpoint(sequence: Int64(sequence), hash: String(repeating: "a", count: 64), time: Int64(sequence), signer: signer))
        }
        #expect(file.newest()?.sequence == 499)
        #expect(file.read()?.checkpoints.count == 500)
    }
}
