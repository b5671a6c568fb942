import CSodium

/// Ed25519 signatures for audit checkpoints and receipts. The key pair is derived from a seed (the
/// signing sub-key), so it is never stored apart from the master key.
public final class Signer: Sendable {
    private let secretKey: KeyBox
    /// The public key (32 bytes), safe to publish so that others can verify checkpoints.
    public let publicKey: [UInt8]

    /// Derives the key pair from a 32-byte seed.
    public init(seed: borrowing SecretBytes) throws(CryptoError) {
        Sodium.ensureInitialized()
        var secret = try SecretBytes(count: Int(crypto_sign_SECRETKEYBYTES))
        var pk = [UInt8](repeating: 0, count: Int(crypto_sign_PUBLICKEYBYTES))
        let status = secret.withUnsafeMutableBytes { sk in
            seed.withUnsafeBytes { s in
                crypto_sign_seed_keypair(&pk, sk.baseAddress!.assumingMemoryBound(to: UInt8.self), s.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        guard status == 0 else { throw CryptoError(.system, "could not derive the signing key") }
        secretKey = KeyBox(secret)
        publicKey = pk
    }

    /// Signs `message` and returns the 64-byte detached signature.
    public func sign(_ message: [UInt8]) -> [UInt8] {
        var signature = [UInt8](repeating: 0, count: Int(crypto_sign_BYTES))
        secretKey.key.withUnsafeBytes { sk in
            _ = crypto_sign_detached(&signature, nil, message, UInt64(message.count), sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return signature
    }

    /// Whether `signature` is a valid signature of `message` under `publicKey`.
    public static func verify(_ signature: [UInt8], of message: [UInt8], publicKey: [UInt8]) -> Bool {
        Sodium.ensureInitialized()
        guard signature.count == Int(crypto_sign_BYTES), publicKey.count == Int(crypto_sign_PUBLICKEYBYTES) else { return false }
        return crypto_sign_verify_detached(signature, message, UInt64(message.count), publicKey) == 0
    }
}
