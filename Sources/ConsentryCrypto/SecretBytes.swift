import CSodium

/// Key material in memory that is locked against swapping, guarded against overruns, and zeroed when freed.
///
/// The bytes live in `sodium_malloc`'d memory; the value is non-copyable so that exactly one owner frees
/// it, deterministically, when it goes out of scope.
///
/// ```swift
/// let key = try SecretBytes.random(count: 32)
/// key.withUnsafeBytes { bytes in /* use bytes, never copy them into an ordinary array */ }
/// ```
public struct SecretBytes: ~Copyable, @unchecked Sendable {
    // @unchecked: the pointer is owned exclusively by this value and only read after initialization,
    // except through `withUnsafeMutableBytes`, which requires exclusive (`mutating`) access.
    let pointer: UnsafeMutableRawPointer
    /// The number of bytes.
    public let count: Int

    /// Allocates `count` zeroed bytes of secure memory.
    /// - Throws: ``CryptoError`` with code `system` when secure memory cannot be allocated (for example
    ///   when the locked-memory limit is reached).
    public init(count: Int) throws(CryptoError) {
        Sodium.ensureInitialized()
        guard count > 0, let pointer = sodium_malloc(count) else {
            throw CryptoError(.system, "could not allocate locked memory for key material; raise the locked-memory limit (ulimit -l)")
        }
        sodium_memzero(pointer, count)
        self.pointer = pointer
        self.count = count
    }

    /// Allocates `count` bytes of secure memory filled from the system's random source.
    public static func random(count: Int) throws(CryptoError) -> SecretBytes {
        var bytes = try SecretBytes(count: count)
        bytes.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, $0.count) }
        return bytes
    }

    deinit {
        // sodium_free zeroes the memory before releasing it.
        sodium_free(pointer)
    }

    /// Calls `body` with read access to the bytes. Do not let the buffer escape.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// Calls `body` with write access to the bytes. Do not let the buffer escape.
    public mutating func withUnsafeMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeMutableRawBufferPointer(start: pointer, count: count))
    }

    /// Overwrites the bytes with zeros, for scratch keys that are reused.
    public mutating func zero() { sodium_memzero(pointer, count) }

    /// Compares with `other` in constant time.
    public func constantTimeEquals(_ other: borrowing SecretBytes) -> Bool {
        count == other.count && sodium_memcmp(pointer, other.pointer, count) == 0
    }
}

/// A shareable holder of one secret key, for places that need several keys at once (a dictionary of
/// key versions): the key itself stays non-copyable inside.
public final class KeyBox: Sendable {
    /// The key.
    public let key: SecretBytes

    /// Takes ownership of `key`.
    public init(_ key: consuming SecretBytes) { self.key = key }
}
