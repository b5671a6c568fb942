import ConsentryCrypto
import ConsentryVault
import Foundation

/// Every environment variable the tool reads, in one place.
enum Environment {
    /// The default vault directory when `--vault` is not given.
    static let vaultVariable = "CONSENTRY_VAULT"
    /// The base64 master key; when set it is used instead of `<vault>/keys/master.key`.
    static let masterKeyVariable = "CONSENTRY_MASTER_KEY"

    /// The login name, recorded as the actor of CLI operations unless `--actor` is given.
    static let userVariable = "USER"

    static var user: String {
        ProcessInfo.processInfo.environment[userVariable].flatMap { $0.isEmpty ? nil : $0 } ?? "cli"
    }

    static var defaultVault: String {
        ProcessInfo.processInfo.environment[vaultVariable].flatMap { $0.isEmpty ? nil : $0 } ?? "./vault"
    }

    /// Whether the master key comes from the environment rather than the vault's key file.
    static var masterKeyIsSet: Bool { getenv(masterKeyVariable).map { $0.pointee != 0 } ?? false }

    /// Decodes `CONSENTRY_MASTER_KEY` straight from the C environment into locked memory, or nil when unset.
    static func masterKey() throws(CryptoError) -> SecretBytes? {
        guard let raw = getenv(masterKeyVariable), raw.pointee != 0 else { return nil }
        return try MasterKey.decode(base64: raw)
    }
}
