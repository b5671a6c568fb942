import ConsentryCore
import ConsentryCrypto
import Foundation

/// The keys an open vault works with: sub-keys derived from the master key, and the unwrapped
/// key-encryption keys (KEKs) by version. The master key itself is dropped once the sub-keys exist.
final class VaultKeys: @unchecked Sendable {
    // @unchecked: `keks` and `activeVersion` change only under `lock`; the other members are immutable.
    let kekWrapping: KeyBox
    let blindIndex: BlindIndexer
    let eventIDs: BlindIndexer
    let auditPseudonyms: BlindIndexer
    let signer: Signer
    let suppression: BlindIndexer
    /// Seals request identifiers and details.
    let requestSealing: KeyBox
    /// Keys verification-code hashes (a different sub-key use than sealing, so derived from it under a tag).
    let requestCodes: BlindIndexer
    /// Keys the hashes of API token secrets.
    let tokenHashes: BlindIndexer
    /// Keys the record bindings (``RecordBinding``).
    let recordBinding: BlindIndexer
    private let lock = NSLock()
    private var keks: [UInt32: KeyBox] = [:]
    private var active: UInt32 = 0

    init(master: borrowing SecretBytes) throws(CryptoError) {
        kekWrapping = KeyBox(try SubKeyPurpose.kekWrapping.derive(from: master))
        blindIndex = BlindIndexer(key: KeyBox(try SubKeyPurpose.blindIndex.derive(from: master)))
        eventIDs = BlindIndexer(key: KeyBox(try SubKeyPurpose.eventID.derive(from: master)))
        auditPseudonyms = BlindIndexer(key: KeyBox(try SubKeyPurpose.auditPseudonym.derive(from: master)))
        signer = try Signer(seed: try SubKeyPurpose.signing.derive(from: master))
        suppression = BlindIndexer(key: KeyBox(try SubKeyPurpose.suppression.derive(from: master)))
        let requests = KeyBox(try SubKeyPurpose.requests.derive(from: master))
        // One context, two keys: the code key is a keyed hash of the sealing key under its own tag.
        requestCodes = BlindIndexer(key: KeyBox(try BlindIndexer(key: requests).deriveKey(tag: 0x30, context: "verification codes")))
        tokenHashes = BlindIndexer(key: KeyBox(try BlindIndexer(key: requests).deriveKey(tag: 0x32, context: "api tokens")))
        requestSealing = requests
        recordBinding = BlindIndexer(key: KeyBox(try SubKeyPurpose.recordBinding.derive(from: master)))
    }

    /// The version new data keys are wrapped with.
    var activeVersion: UInt32 { lock.withLock { active } }

    func kek(_ version: UInt32) -> KeyBox? { lock.withLock { keks[version] } }

    /// Installs the unwrapped KEKs, replacing any held before.
    func install(_ unwrapped: [UInt32: KeyBox], active: UInt32) {
        lock.withLock {
            keks = unwrapped
            self.active = active
        }
    }

    /// Wraps a new KEK for storage.
    func wrapKEK(_ kek: borrowing SecretBytes, version: UInt32, nonces: NonceSource) -> [UInt8] {
        Sealing.wrap(kek, kek: kekWrapping.key, associatedData: Sealing.kekAssociatedData(version: version), nonces: nonces)
    }

    /// Unwraps a stored KEK; nil when it does not open (wrong master key or tampering).
    func unwrapKEK(_ wrapped: [UInt8], version: UInt32) throws(CryptoError) -> KeyBox? {
        var kek = try SecretBytes(count: Sealing.keyLength)
        let ok = wrapped.withUnsafeBytes {
            Sealing.unwrap($0, kek: kekWrapping.key, associatedData: Sealing.kekAssociatedData(version: version), into: &kek)
        }
        return ok ? KeyBox(kek) : nil
    }
}
