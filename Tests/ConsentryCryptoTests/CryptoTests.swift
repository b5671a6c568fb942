import CSodium
import ConsentryCore
import ConsentryCrypto
import Foundation
import Testing

@Suite("Sealing")
struct SealingTests {
    let subject = SubjectID(rawValue: 0x0102_0304_0506_0708)
    let field: FieldName = "email"

    func sealSample(_ key: borrowing SecretBytes, nonces: NonceSource = NonceSource()) -> [UInt8] {
        Sealing.seal(
            "canary-7f3a@example.test", key: key, associatedData: Sealing.fieldAssociatedData(subject: subject, field: field, keyVersion: 1),
            nonces: nonces)
    }

    func open(_ sealed: [UInt8], _ key: borrowing SecretBytes, subject: SubjectID? = nil, field: FieldName? = nil, version: UInt32 = 1) -> String? {
        sealed.withUnsafeBytes {
            Sealing.openString(
                $0, key: key,
                associatedData: Sealing.fieldAssociatedData(subject: subject ?? self.subject, field: field ?? self.field, keyVersion: version))
        }
    }

    @Test("a sealed value opens with its key and associated data")
    func roundTrip() throws {
        let key = try SecretBytes.random(count: 32)
        let sealed = sealSample(key)
        #expect(sealed.count == "canary-7f3a@example.test".utf8.count + Sealing.overhead)
        #expect(open(sealed, key) == "canary-7f3a@example.test")
        #expect(!Data(sealed).contains(Data("canary".utf8)))
    }

    @Test("flipping any byte of a sealed value makes it fail to open")
    func tamperAnyByte() throws {
        let key = try SecretBytes.random(count: 32)
        let sealed = sealSample(key)
        for index in sealed.indices {
            for bit in [0x01, 0x80] as [UInt8] {
                var copy = sealed
                copy[index] ^= bit
                #expect(open(copy, key) == nil, "byte \(index) bit \(bit)")
            }
        }
        #expect(open(Array(sealed.dropLast()), key) == nil)
        #expect(open(Array(sealed.prefix(10)), key) == nil)
    }

    @Test("a ciphertext moved to another subject, field or key version fails to open")
    func movedCiphertext() throws {
        let key = try SecretBytes.random(count: 32)
        let sealed = sealSample(key)
        #expect(open(sealed, key, subject: SubjectID(rawValue: 0x0102_0304_0506_0709)) == nil)
        #expect(open(sealed, key, field: "phone") == nil)
        #expect(open(sealed, key, version: 2) == nil)
    }

    @Test("a wrong key fails to open")
    func wrongKey() throws {
        let key = try SecretBytes.random(count: 32)
        let other = try SecretBytes.random(count: 32)
        #expect(open(sealSample(key), other) == nil)
    }

    @Test("100,000 seals use 100,000 distinct nonces")
    func noRepeatedNonce() throws {
        let key = try SecretBytes.random(count: 32)
        let nonces = NonceSource()
        var seen = Set<Data>()
        seen.reserveCapacity(100_000)
        for _ in 0..<100_000 {
            let sealed = Sealing.seal(UnsafeRawBufferPointer(start: nil, count: 0), key: key, associatedData: [], nonces: nonces)
            seen.insert(Data(sealed[1..<(1 + Sealing.nonceLength)]))
        }
        #expect(seen.count == 100_000)
    }

    @Test("wrapped data keys bind subject and key-encryption-key version")
    func wrapping() throws {
        let kek = try SecretBytes.random(count: 32)
        let dataKey = try SecretBytes.random(count: 32)
        let wrapped = Sealing.wrap(
            dataKey, kek: kek, associatedData: Sealing.wrapAssociatedData(subject: subject, kekVersion: 1), nonces: NonceSource())
        var out = try SecretBytes(count: 32)
        #expect(
            wrapped.withUnsafeBytes {
                Sealing.unwrap($0, kek: kek, associatedData: Sealing.wrapAssociatedData(subject: subject, kekVersion: 1), into: &out)
            })
        let same = out.constantTimeEquals(dataKey)
        #expect(same)
        #expect(
            !wrapped.withUnsafeBytes {
                Sealing.unwrap($0, kek: kek, associatedData: Sealing.wrapAssociatedData(subject: subject, kekVersion: 2), into: &out)
            })
        #expect(
            !wrapped.withUnsafeBytes {
                Sealing.unwrap($0, kek: kek, associatedData: Sealing.wrapAssociatedData(subject: SubjectID(rawValue: 9), kekVersion: 1), into: &out)
            })
    }
}

@Suite("Keys")
struct KeyTests {
    /// Key files go under one directory per test process, removed when it exits.
    static let keysRoot: URL = {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("consentry-keys-tests-\(getpid())")
        try? FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        atexit {
            try? FileManager.default.removeItem(at: FileManager.default.temporaryDirectory.appendingPathComponent("consentry-keys-tests-\(getpid())"))
        }
        return root
    }()

    func temporaryKeyURL() -> URL {
        Self.keysRoot.appendingPathComponent("keys-\(UUID().uuidString)").appendingPathComponent("master.key")
    }

    @Test("a created master key file has mode 0600 and loads back")
    func createAndLoad() throws {
        let url = temporaryKeyURL()
        let created = try MasterKey.create(at: url)
        let attributes = try FileManager.default.attributesOfItem(atPath: url.path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let loaded = try MasterKey.load(from: url)
        let same = loaded.constantTimeEquals(created)
        #expect(same)
        #expect(throws: CryptoError.self) { _ = try MasterKey.create(at: url) }
    }

    @Test("a master key readable by group or others is refused")
    func refusesOpenPermissions() throws {
        let url = temporaryKeyURL()
        _ = try MasterKey.create(at: url)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: url.path)
        do {
            _ = try MasterKey.load(from: url)
            Issue.record("a 0644 key file was accepted")
        } catch {
            #expect(error.code == .keyPermissions)
            #expect(error.message.contains("chmod 600"))
        }
    }

    @Test("a key file of the wrong size is refused")
    func refusesWrongSize() throws {
        let url = temporaryKeyURL()
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: url.path, contents: Data(repeating: 7, count: 16), attributes: [.posixPermissions: 0o600])
        #expect(throws: CryptoError.self) { _ = try MasterKey.load(from: url) }
    }

    @Test("a base64 master key from the environment decodes; a malformed one is refused without echoing it")
    func base64Key() throws {
        let good = Data(repeating: 0xAB, count: 32).base64EncodedString()
        let goodC = strdup(good)!
        defer { free(goodC) }
        let key = try MasterKey.decode(base64: goodC)
        let bytes = key.withUnsafeBytes { Array($0) }
        #expect(bytes == [UInt8](repeating: 0xAB, count: 32))
        for bad in ["not base64!", Data(repeating: 1, count: 31).base64EncodedString(), ""] {
            let badC = strdup(bad)!
            defer { free(badC) }
            do {
                _ = try MasterKey.decode(base64: badC)
                Issue.record("accepted a malformed key")
            } catch {
                #expect(error.code == .keyFormat)
                #expect(bad.isEmpty || !error.message.contains(bad))
            }
        }
    }

    @Test("sub-keys for different purposes differ, and are stable for one master key")
    func subKeys() throws {
        let master = try SecretBytes.random(count: 32)
        var seen = Set<[UInt8]>()
        for purpose in SubKeyPurpose.allCases {
            #expect(purpose.rawValue.utf8.count == 8)
            let a = try purpose.derive(from: master).withUnsafeBytes { Array($0) }
            let b = try purpose.derive(from: master).withUnsafeBytes { Array($0) }
            #expect(a == b)
            seen.insert(a)
        }
        #expect(seen.count == SubKeyPurpose.allCases.count)
    }

    @Test("blind indexes are deterministic, keyed, and separate identity kinds")
    func blindIndexes() throws {
        let indexer = BlindIndexer(key: KeyBox(try SecretBytes.random(count: 32)))
        let other = BlindIndexer(key: KeyBox(try SecretBytes.random(count: 32)))
        #expect(indexer.index(.email, "a@example.test") == indexer.index(.email, "a@example.test"))
        #expect(indexer.index(.email, "a@example.test") != indexer.index(.customerID, "a@example.test"))
        #expect(indexer.index(.email, "a@example.test") != other.index(.email, "a@example.test"))
        #expect(indexer.index(.email, "a@example.test").count == 32)
    }

    @Test("secret memory is zeroed on request")
    func zeroing() throws {
        var key = try SecretBytes.random(count: 32)
        key.zero()
        #expect(key.withUnsafeBytes { $0.allSatisfy { $0 == 0 } })
    }
}
