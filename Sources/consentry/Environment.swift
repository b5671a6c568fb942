import ConsentryCrypto
import ConsentryGate
import Foundation
import Synchronization

/// Every environment variable the tool reads, in one place.
enum Environment {
    /// The default vault directory when `--vault` is not given.
    static let vaultVariable = "CONSENTRY_VAULT"
    /// The base64 master key; when set it is used instead of `<vault>/keys/master.key`.
    static let masterKeyVariable = "CONSENTRY_MASTER_KEY"

    /// Witness files for audit checkpoints, separated by `:` (beside any `--witness`).
    static let witnessVariable = "CONSENTRY_AUDIT_WITNESS"

    static var witnessFiles: [String] {
        (ProcessInfo.processInfo.environment[witnessVariable] ?? "").split(separator: ":").map(String.init).filter { !$0.isEmpty }
    }

    /// The login name, recorded as the actor of CLI operations unless `--actor` is given.
    static let userVariable = "USER"

    /// The login name, or `cli` when it is unset or not printable (it is recorded in the audit log).
    static var user: String {
        ProcessInfo.processInfo.environment[userVariable].flatMap { GlobalOptions.isPrintableActor($0) ? $0 : nil } ?? "cli"
    }

    static var defaultVault: String {
        ProcessInfo.processInfo.environment[vaultVariable].flatMap { $0.isEmpty ? nil : $0 } ?? "./vault"
    }

    /// Set once the master key was taken from the environment (which no longer holds it then).
    private static let keyTakenFromEnvironment = Atomic<Bool>(false)

    /// Whether the master key comes from the environment rather than the vault's key file.
    static var masterKeyIsSet: Bool {
        keyTakenFromEnvironment.load(ordering: .relaxed) || (getenv(masterKeyVariable).map { $0.pointee != 0 } ?? false)
    }

    /// Decodes `CONSENTRY_MASTER_KEY` straight from the C environment into locked memory, or nil when unset; then wipes
    /// the value where the process's environment holds it and removes the variable, so that the key is no longer
    /// readable in `/proc/<pid>/environ` for the process's life nor inherited by any child process. A process reads the
    /// key once.
    static func masterKey() throws(CryptoError) -> SecretBytes? {
        guard let raw = getenv(masterKeyVariable), raw.pointee != 0 else { return nil }
        keyTakenFromEnvironment.store(true, ordering: .relaxed)
        defer {
            // The string lives in the environment block the kernel shows as /proc/<pid>/environ: overwrite it in place
            // (unsetenv alone only drops the pointer), then drop the variable.
            memset(UnsafeMutableRawPointer(mutating: raw), 0, strlen(raw))
            unsetenv(masterKeyVariable)
        }
        return try MasterKey.decode(base64: raw)
    }
}
