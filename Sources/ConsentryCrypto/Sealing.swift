import CSodium
public import ConsentryCore

/// A supply of random 24-byte nonces drawn from the system's random source in blocks, so that sealing
/// many values does not cost one system call each. Not shared between threads: give each worker its own.
public final class NonceSource {
    private var buffer: [UInt8]
    private var offset: Int

    /// Creates a source that refills `blockNonces` nonces at a time.
    public init(blockNonces: Int = 256) {
        Sodium.ensureInitialized()
        buffer = [UInt8](repeating: 0, count: blockNonces * Sealing.nonceLength)
        offset = buffer.count
    }

    /// Writes the next nonce to `destination`, which must have room for ``Sealing/nonceLength`` bytes.
    func next(into destination: UnsafeMutableRawPointer) {
        if offset == buffer.count {
            buffer.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, $0.count) }
            offset = 0
        }
        buffer.withUnsafeBytes { source in
            destination.copyMemory(from: source.baseAddress! + offset, byteCount: Sealing.nonceLength)
            // Each nonce is used once: wipe it from the pool as it is handed out.
            sodium_memzero(UnsafeMutableRawPointer(mutating: source.baseAddress! + offset), Sealing.nonceLength)
        }
        offset += Sealing.nonceLength
    }
}

/// Authenticated encryption of field values and data keys with XChaCha20-Poly1305.
///
/// A sealed value is `version (1 byte) ‖ nonce (24) ‖ ciphertext ‖ tag (16)`. The associated data binds
/// the value to where it belongs (subject, field and key version for a field; subject and key-encryption
/// key version for a wrapped data key), so a ciphertext copied to another row or field fails to open.
public enum Sealing {
    /// The format version byte that starts every sealed value.
    public static let formatVersion: UInt8 = 1
    /// Nonce length of XChaCha20-Poly1305.
    public static let nonceLength = Int(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
    /// Authentication tag length.
    public static let tagLength = Int(crypto_aead_xchacha20poly1305_ietf_ABYTES)
    /// Bytes a sealed value adds to its plaintext.
    public static let overhead = 1 + nonceLength + tagLength
    /// Length of a data key or key-encryption key.
    public static let keyLength = Int(crypto_aead_xchacha20poly1305_ietf_KEYBYTES)

    /// Associated data for a profile field: binds subject, field name and data-key version.
    public static func fieldAssociatedData(subject: SubjectID, field: FieldName, keyVersion: UInt32) -> [UInt8] {
        var ad: [UInt8] = Array("cns-field-v1".utf8)
        ad += subject.bytes
        ad += withUnsafeBytes(of: keyVersion.bigEndian) { Array($0) }
        ad += Array(field.rawValue.utf8)
        return ad
    }

    /// Associated data for derived data: binds subject, kind and name, and data-key version.
    public static func derivedAssociatedData(subject: SubjectID, kind: String, name: String, keyVersion: UInt32) -> [UInt8] {
        var ad: [UInt8] = Array("cns-derived-v1".utf8)
        ad += subject.bytes
        ad += withUnsafeBytes(of: keyVersion.bigEndian) { Array($0) }
        ad += Array(kind.utf8) + [0] + Array(name.utf8)
        return ad
    }

    /// Associated data for a wrapped data key: binds subject and key-encryption-key version.
    public static func wrapAssociatedData(subject: SubjectID, kekVersion: UInt32) -> [UInt8] {
        Array("cns-wrap-v1".utf8) + subject.bytes + withUnsafeBytes(of: kekVersion.bigEndian) { Array($0) }
    }

    /// Associated data for a key-encryption key wrapped by the master-derived wrapping key.
    public static func kekAssociatedData(version: UInt32) -> [UInt8] {
        Array("cns-kek-v1".utf8) + withUnsafeBytes(of: version.bigEndian) { Array($0) }
    }

    /// Seals `plaintext` under `key` with a fresh random nonce from `nonces`.
    public static func seal(
        _ plaintext: UnsafeRawBufferPointer, key: borrowing SecretBytes, associatedData: [UInt8], nonces: NonceSource
    ) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: plaintext.count + overhead) { out, initialized in
            let base = UnsafeMutableRawPointer(out.baseAddress!)
            base.storeBytes(of: formatVersion, as: UInt8.self)
            nonces.next(into: base + 1)
            var written: UInt64 = 0
            key.withUnsafeBytes { keyBytes in
                associatedData.withUnsafeBufferPointer { ad in
                    _ = crypto_aead_xchacha20poly1305_ietf_encrypt(
                        out.baseAddress! + 1 + nonceLength, &written, plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self),
                        UInt64(plaintext.count), ad.baseAddress, UInt64(ad.count), nil, out.baseAddress! + 1,
                        keyBytes.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
            initialized = 1 + nonceLength + Int(written)
        }
    }

    /// Seals a UTF-8 string.
    public static func seal(_ text: String, key: borrowing SecretBytes, associatedData: [UInt8], nonces: NonceSource) -> [UInt8] {
        var text = text
        return text.withUTF8 { seal(UnsafeRawBufferPointer($0), key: key, associatedData: associatedData, nonces: nonces) }
    }

    /// Opens `sealed` into `output` (which must hold at least `sealed.count - overhead` bytes) and returns
    /// the plaintext length, or nil when authentication fails or the format is not recognized.
    public static func open(
        _ sealed: UnsafeRawBufferPointer, key: borrowing SecretBytes, associatedData: UnsafeRawBufferPointer, into output: UnsafeMutableRawPointer
    ) -> Int? {
        guard sealed.count >= overhead, sealed[0] == formatVersion else { return nil }
        var length: UInt64 = 0
        let status = key.withUnsafeBytes { keyBytes in
            crypto_aead_xchacha20poly1305_ietf_decrypt(
                output.assumingMemoryBound(to: UInt8.self), &length, nil,
                sealed.baseAddress!.assumingMemoryBound(to: UInt8.self) + 1 + nonceLength, UInt64(sealed.count - 1 - nonceLength),
                associatedData.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(associatedData.count),
                sealed.baseAddress!.assumingMemoryBound(to: UInt8.self) + 1, keyBytes.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return status == 0 ? Int(length) : nil
    }

    /// Opens a sealed UTF-8 string; nil when authentication fails.
    public static func openString(_ sealed: UnsafeRawBufferPointer, key: borrowing SecretBytes, associatedData: [UInt8]) -> String? {
        guard sealed.count >= overhead else { return nil }
        let length = sealed.count - overhead
        var failed = false
        let text = String(unsafeUninitializedCapacity: max(length, 1)) { buffer in
            let opened = associatedData.withUnsafeBytes { ad in
                open(sealed, key: key, associatedData: ad, into: UnsafeMutableRawPointer(buffer.baseAddress!))
            }
            guard let opened else {
                failed = true
                return 0
            }
            return opened
        }
        return failed ? nil : text
    }

    /// Wraps a data key under a key-encryption key.
    public static func wrap(_ dataKey: borrowing SecretBytes, kek: borrowing SecretBytes, associatedData: [UInt8], nonces: NonceSource) -> [UInt8] {
        dataKey.withUnsafeBytes { seal($0, key: kek, associatedData: associatedData, nonces: nonces) }
    }

    /// Unwraps a data key into `destination` (secure memory, reused between subjects by scans).
    /// - Returns: false when authentication fails (tampered, moved, or wrong key-encryption key).
    public static func unwrap(
        _ wrapped: UnsafeRawBufferPointer, kek: borrowing SecretBytes, associatedData: [UInt8], into destination: inout SecretBytes
    ) -> Bool {
        guard wrapped.count == keyLength + overhead else { return false }
        let opened = destination.withUnsafeMutableBytes { out in
            associatedData.withUnsafeBytes { ad in open(wrapped, key: kek, associatedData: ad, into: out.baseAddress!) }
        }
        if opened != keyLength {
            destination.zero()
            return false
        }
        return true
    }
}

/// Keyed BLAKE2b hashes of normalized identifiers, for look-up and deduplication without storing them in clear.
public struct BlindIndexer: Sendable {
    private let key: KeyBox
    /// Calls `body` with the key bytes.
    fileprivate func withKey<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R { key.key.withUnsafeBytes(body) }
    /// The length of an index value in bytes.
    public static let length = 32

    /// Creates an indexer keyed with the blind-index sub-key.
    public init(key: KeyBox) { self.key = key }

    /// The blind index of `normalized` (already normalized for its kind); the kind is part of the input,
    /// so an e-mail and a customer id with the same text index differently.
    public func index(_ kind: IdentityKind, _ normalized: String) -> [UInt8] {
        hash(tag: kind.tag, normalized)
    }

    /// A keyed hash of any text under a one-byte domain tag (0 and values above 3 are free for other uses).
    public func hash(tag: UInt8, _ text: String) -> [UInt8] {
        hash(tag: tag, bytes: Array(text.utf8))
    }

    /// A hasher that has absorbed the key once, for hashing many short inputs (every subject of a scan):
    /// each hash then costs one BLAKE2b compression instead of two. Not shared between threads.
    public func prefixedHasher(tag: UInt8) -> KeyedHasher { KeyedHasher(indexer: self, tag: tag) }

    /// A 32-byte key derived from this indexer's key under `tag` and `context`, written straight into locked memory.
    public func deriveKey(tag: UInt8, context: String) throws(CryptoError) -> SecretBytes {
        var out = try SecretBytes(count: Self.length)
        let input = [tag, 1] + Array(context.utf8)
        out.withUnsafeMutableBytes { o in
            key.key.withUnsafeBytes { k in
                _ = crypto_generichash(
                    o.baseAddress!.assumingMemoryBound(to: UInt8.self), o.count, input, UInt64(input.count),
                    k.baseAddress!.assumingMemoryBound(to: UInt8.self), k.count)
            }
        }
        return out
    }

    /// A keyed hash of raw bytes under a one-byte domain tag (audit pseudonyms, subject-set digests).
    public func hash(tag: UInt8, bytes: [UInt8]) -> [UInt8] {
        var input = [tag, 0] + bytes
        defer { sodium_memzero(&input, input.count) }
        return [UInt8](unsafeUninitializedCapacity: Self.length) { out, count in
            key.key.withUnsafeBytes { k in
                _ = crypto_generichash(
                    out.baseAddress!, Self.length, input, UInt64(input.count), k.baseAddress!.assumingMemoryBound(to: UInt8.self), k.count)
            }
            count = Self.length
        }
    }
}

/// Keyed BLAKE2b with the key (and a domain tag) absorbed once; see ``BlindIndexer/prefixedHasher(tag:)``.
public final class KeyedHasher {
    private let size = crypto_generichash_statebytes()
    private let keyed: UnsafeMutableRawPointer
    private let working: UnsafeMutableRawPointer

    fileprivate init(indexer: BlindIndexer, tag: UInt8) {
        keyed = .allocate(byteCount: size, alignment: 64)
        working = .allocate(byteCount: size, alignment: 64)
        indexer.withKey { key in
            _ = crypto_generichash_init(OpaquePointer(keyed), key.baseAddress!.assumingMemoryBound(to: UInt8.self), key.count, BlindIndexer.length)
        }
        var prefix: (UInt8, UInt8) = (tag, 0)
        withUnsafeBytes(of: &prefix) { _ = crypto_generichash_update(OpaquePointer(keyed), $0.baseAddress!.assumingMemoryBound(to: UInt8.self), 2) }
    }

    deinit {
        sodium_memzero(keyed, size)
        sodium_memzero(working, size)
        keyed.deallocate()
        working.deallocate()
    }

    /// Appends the first `length` bytes of the hash of `bytes` to `output`; equal to a prefix of
    /// ``BlindIndexer/hash(tag:bytes:)`` with the same key and tag.
    public func append(_ bytes: UnsafeRawBufferPointer, length: Int, to output: inout [UInt8]) {
        working.copyMemory(from: keyed, byteCount: size)
        if let base = bytes.baseAddress {
            _ = crypto_generichash_update(OpaquePointer(working), base.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: BlindIndexer.length) { digest in
            _ = crypto_generichash_final(OpaquePointer(working), digest.baseAddress!, BlindIndexer.length)
            output.append(contentsOf: digest.prefix(min(length, BlindIndexer.length)))
            sodium_memzero(digest.baseAddress!, digest.count)
        }
    }
}

/// Random values from the system's random source.
public enum SecureRandom {
    /// A new random subject id (63 bits, never zero).
    public static func subjectID() -> SubjectID {
        Sodium.ensureInitialized()
        var value: UInt64 = 0
        repeat {
            withUnsafeMutableBytes(of: &value) { randombytes_buf($0.baseAddress!, 8) }
            value &= UInt64(Int64.max)
        } while value == 0
        return SubjectID(rawValue: Int64(value))
    }

    /// `count` random bytes (not secret material: use ``SecretBytes/random(count:)`` for keys).
    public static func bytes(_ count: Int) -> [UInt8] {
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, $0.count) }
        return out
    }
}

/// Unkeyed BLAKE2b digests, for versions and checksums of non-secret data (policy files).
public enum Digest {
    /// The 32-byte BLAKE2b digest of `bytes`.
    public static func blake2b(_ bytes: [UInt8]) -> [UInt8] {
        Sodium.ensureInitialized()
        return [UInt8](unsafeUninitializedCapacity: 32) { out, count in
            _ = crypto_generichash(out.baseAddress!, 32, bytes, UInt64(bytes.count), nil, 0)
            count = 32
        }
    }

    /// Whether two byte strings are equal, in time that does not depend on where they differ.
    public static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        Sodium.ensureInitialized()
        return a.count == b.count && sodium_memcmp(a, b, a.count) == 0
    }

    /// Lower-case hex of `bytes`.
    public static func hex(_ bytes: some Collection<UInt8>) -> String {
        // One call through the generic collection, then a loop over plain memory: this runs for every audit entry's
        // hash and every subject pseudonym, and iterating an unspecialized collection showed in profiles.
        if let text = bytes.withContiguousStorageIfAvailable({ hex(UnsafeRawBufferPointer($0)) }) { return text }
        return Array(bytes).withUnsafeBytes { hex($0) }
    }

    /// Lower-case hex of the bytes in `buffer`.
    public static func hex(_ buffer: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: buffer.count * 2) { out in
            hexDigits.withUnsafeBufferPointer { digits in
                var i = 0
                for b in buffer {
                    out[i] = digits[Int(b >> 4)]
                    out[i + 1] = digits[Int(b & 0xF)]
                    i += 2
                }
                return i
            }
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
}

extension SecureRandom {
    /// Fills `buffer` (for example a ``SecretBytes`` scratch key) from the system's random source.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        Sodium.ensureInitialized()
        guard let base = buffer.baseAddress else { return }
        randombytes_buf(base, buffer.count)
    }
}
