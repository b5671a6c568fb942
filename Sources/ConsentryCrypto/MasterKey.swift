import CSodium
public import Foundation

/// The vault's root secret and the sub-keys derived from it.
///
/// The master key is 32 random bytes, kept in `<vault>/keys/master.key` (mode 0600) or supplied base64-encoded
/// in `CONSENTRY_MASTER_KEY`. It is never accepted on the command line and never logged. Everything else
/// is derived from it with `crypto_kdf_derive_from_key`, one context per use, so that no sub-key reveals
/// another.
public enum MasterKey {
    /// The length of a master key in bytes.
    public static let length = 32

    /// Creates a new random master key and writes it to `url` with mode 0600, failing if the file exists.
    /// The containing directory is created with mode 0700.
    public static func create(at url: URL) throws(CryptoError) -> SecretBytes {
        let key = try SecretBytes.random(count: length)
        let directory = url.deletingLastPathComponent().path
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw CryptoError(.keyUnavailable, "could not create the key directory `\(directory)`: \(String(cString: strerror(errno)))")
        }
        let fd = open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw CryptoError(
                .keyUnavailable, "could not create `\(url.path)`: \(String(cString: strerror(errno))); a vault's key is never overwritten")
        }
        defer { close(fd) }
        let written = key.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == length, fsync(fd) == 0 else {
            unlink(url.path)
            throw CryptoError(.keyUnavailable, "could not write `\(url.path)`: \(String(cString: strerror(errno)))")
        }
        return key
    }

    /// Reads the master key from `url`, refusing a file that group or others can read or write.
    public static func load(from url: URL) throws(CryptoError) -> SecretBytes {
        let fd = open(url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw CryptoError(
                .keyUnavailable,
                "cannot read the master key `\(url.path)`: \(String(cString: strerror(errno))); run `consentry init` or set CONSENTRY_MASTER_KEY")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw CryptoError(.keyUnavailable, "cannot inspect the master key `\(url.path)`") }
        guard info.st_mode & 0o077 == 0 else {
            throw CryptoError(.keyPermissions, "the master key `\(url.path)` is readable or writable by group or others; run `chmod 600` on it")
        }
        guard info.st_size == length else {
            throw CryptoError(.keyFormat, "the master key `\(url.path)` must hold exactly \(length) bytes; it holds \(info.st_size)")
        }
        var key = try SecretBytes(count: length)
        let readCount = key.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard readCount == length else { throw CryptoError(.keyUnavailable, "could not read all of the master key `\(url.path)`") }
        return key
    }

    /// Decodes a base64 master key (from `CONSENTRY_MASTER_KEY`) straight into secure memory.
    /// - Parameter base64: a NUL-terminated C string, as returned by `getenv`, so that no Swift copy exists.
    public static func decode(base64: UnsafePointer<CChar>) throws(CryptoError) -> SecretBytes {
        Sodium.ensureInitialized()
        var key = try SecretBytes(count: length)
        var decoded = 0
        let textLength = strlen(base64)
        let status = key.withUnsafeMutableBytes { buffer in
            sodium_base642bin(
                buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), buffer.count, base64, textLength, " \n\r\t", &decoded, nil,
                sodium_base64_VARIANT_ORIGINAL)
        }
        guard status == 0, decoded == length else {
            throw CryptoError(.keyFormat, "CONSENTRY_MASTER_KEY must be the standard base64 encoding of exactly \(length) bytes")
        }
        return key
    }
}

/// The purposes a sub-key is derived for; each has its own eight-byte `crypto_kdf` context.
public enum SubKeyPurpose: String, Sendable, CaseIterable {
    /// Wraps the key-encryption keys stored in the vault.
    case kekWrapping = "cnsKWRAP"
    /// Keys the blind indexes of e-mail, phone and customer id.
    case blindIndex = "cnsBLIND"
    /// Keys the hashes of event ids used for idempotency.
    case eventID = "cnsEVTID"
    /// Keys the audit log's subject pseudonyms.
    case auditPseudonym = "cnsAUDIT"
    /// Seeds the Ed25519 key that signs audit checkpoints and receipts.
    case signing = "cnsSIGN_"
    /// Keys the suppression list of erased identities (kept separate from the blind index).
    case suppression = "cnsSUPPR"
    /// Seals the identifiers and details of data-subject requests and keys the hashes of their verification codes.
    case requests = "cnsDSRQ_"
    /// Keys the bindings that tie each identity-index row and each consent and flag record to its subject and content,
    /// so that a row moved to another subject or edited in the file is detected.
    case recordBinding = "cnsBIND_"

    /// Derives this purpose's 32-byte sub-key from `master`.
    public func derive(from master: borrowing SecretBytes) throws(CryptoError) -> SecretBytes {
        precondition(master.count == crypto_kdf_KEYBYTES)
        var subKey = try SecretBytes(count: 32)
        let context = Array(rawValue.utf8).map { CChar(bitPattern: $0) }
        let status = subKey.withUnsafeMutableBytes { out in
            master.withUnsafeBytes { masterBytes in
                crypto_kdf_derive_from_key(
                    out.baseAddress!.assumingMemoryBound(to: UInt8.self), out.count, 1, context,
                    masterBytes.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        guard status == 0 else { throw CryptoError(.system, "key derivation failed") }
        return subKey
    }
}
