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

/// The canonical text against a reference written straight from `audit/FORMAT.md`, over random entries: the
/// writer renders bytes for speed, and a hash over different bytes would break every log already written.
@Suite("Canonical text (property)")
struct CanonicalTextPropertyTests {
    static let alphabet: [Character] = [
        "a", "Z", "0", " ", "-", "\"", "\\", "/", "\n", "\r", "\t", "\u{0}", "\u{1f}", "\u{7f}", "é", "€", "😀", "\u{FFFF}",
    ]

    func text(_ random: inout SplitMix64) -> String {
        String((0..<Int.random(in: 0...12, using: &random)).map { _ in Self.alphabet.randomElement(using: &random)! })
    }

    /// The reference: JSON strings per FORMAT.md, built by the simplest code that can be read against the text.
    func quoted(_ value: String) -> String {
        var out = "\""
        for unit in value.utf16 {
            switch unit {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x20..<0x7F: out += String(UnicodeScalar(UInt8(unit)))
            default: out += "\\u" + String(repeating: "0", count: 4 - String(unit, radix: 16).count) + String(unit, radix: 16)
            }
        }
        return out + "\""
    }

    func reference(_ e: AuditEntry) -> String {
        func optional(_ value: String?) -> String { value.map(quoted) ?? "null" }
        let members = [
            "\"sequence\":\(e.sequence)", "\"time\":\(e.time)", "\"actor\":" + quoted(e.actor), "\"role\":" + optional(e.role),
            "\"action\":" + quoted(e.action), "\"purpose\":" + optional(e.purpose), "\"subject\":" + optional(e.subject),
            "\"subject_count\":\(e.subjectCount)", "\"subject_set_digest\":" + optional(e.subjectSetDigest),
            "\"fields\":[" + e.fields.map(quoted).joined(separator: ",") + "]",
            "\"counts\":{" + e.counts.keys.sorted().map { quoted($0) + ":\(e.counts[$0]!)" }.joined(separator: ",") + "}",
            "\"decision\":" + quoted(e.decision), "\"reasons\":[" + e.reasons.map(quoted).joined(separator: ",") + "]",
            "\"policy_version\":" + quoted(e.policyVersion),
            "\"consent_record_ids\":[" + e.consentRecordIDs.map(String.init).joined(separator: ",") + "]",
            "\"request_id\":" + optional(e.requestID),
        ]
        return "{" + members.joined(separator: ",") + "}"
    }

    @Test("2,000 random entries: canonical text, hash and list columns match the reference")
    func matchesReference() {
        // A fixed seed, so a failure can be replayed.
        var random = SplitMix64(seed: 20_261_123)
        for _ in 0..<2_000 {
            func maybe(_ value: String) -> String? { Bool.random(using: &random) ? value : nil }
            let draft = AuditDraft(
                actor: text(&random), role: Role.allCases.randomElement(using: &random), action: AuditAction.allCases.randomElement(using: &random)!,
                purpose: Bool.random(using: &random) ? Purpose.allCases.randomElement(using: &random) : nil, subject: maybe(text(&random)),
                fields: (0..<Int.random(in: 0...3, using: &random)).map { _ in text(&random) },
                counts: Dictionary((0..<Int.random(in: 0...3, using: &random)).map { _ in (text(&random), Int.random(in: -5...99, using: &random)) })
                {
                    a, _ in a
                }, decision: Bool.random(using: &random) ? .permit : .deny,
                reasons: (0..<Int.random(in: 0...3, using: &random)).map { _ in text(&random) },
                policyVersion: text(&random),
                consentRecordIDs: (0..<Int.random(in: 0...2, using: &random)).map { _ in Int64.random(in: 1...9_999, using: &random) },
                requestID: maybe(text(&random)))
            let previous = Digest.hex((0..<32).map { _ in UInt8.random(in: 0...255, using: &random) })
            let (entry, columns) = AuditEntry.chained(
                draft, sequence: Int64.random(in: 1...1_000_000, using: &random), time: Int64.random(in: 0...Int64(1) << 42, using: &random),
                previousHash: previous, subjectSetDigest: maybe(previous))
            let expected = reference(entry)
            #expect(entry.canonicalText == expected)
            #expect(entry.hash == Digest.hex(Digest.blake2b(Array((previous + "\n" + expected).utf8))))
            #expect(entry.computedHash() == entry.hash)
            #expect(columns.fields == "[" + entry.fields.map(quoted).joined(separator: ",") + "]")
            #expect(columns.reasons == "[" + entry.reasons.map(quoted).joined(separator: ",") + "]")
            #expect(!entry.canonicalText.utf8.contains { $0 >= 0x80 || $0 < 0x20 })
        }
    }
}
