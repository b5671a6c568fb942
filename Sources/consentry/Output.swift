import ArgumentParser
import ConsentryCore
import ConsentryCrypto
import ConsentryGate
import Foundation

/// Options every command shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "The vault directory (default: $CONSENTRY_VAULT or ./vault).")
    var vault: String?

    @Flag(name: .long, help: "Print machine-readable JSON instead of text.")
    var json = false

    @Option(name: .long, help: "Who is acting, as recorded in the audit log (default: $USER).")
    var actor: String?

    @Option(
        name: .long,
        help: "A witness file every audit checkpoint is also written to and `audit verify` checks (repeatable; also $CONSENTRY_AUDIT_WITNESS, paths separated by `:`). Put it on another volume or host.")
    var witness: [String] = []

    /// The witness files from `--witness` and the environment.
    var witnessURLs: [URL] { (witness + Environment.witnessFiles).map { URL(fileURLWithPath: $0) } }

    var vaultURL: URL { URL(fileURLWithPath: vault ?? Environment.defaultVault) }

    /// The actor recorded in the audit log.
    var actorName: String { actor ?? Environment.user }

    /// Whether `name` may be recorded as an actor: 1 to 128 characters, none of them a control or formatting character
    /// (which would reach the audit log and every terminal that prints it raw).
    static func isPrintableActor(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 128
            && name.unicodeScalars.allSatisfy { ![.control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .unassigned].contains($0.properties.generalCategory) }
    }

    func validate() throws {
        if let actor, !Self.isPrintableActor(actor) {
            throw ValidationError("`--actor` is 1 to 128 printable characters, without control or formatting characters such as CR, LF or bidi controls")
        }
    }

    /// Opens the vault, with the master key from the environment when it is set.
    func openVault(configuration: VaultConfiguration = VaultConfiguration()) throws -> Vault {
        var configuration = configuration
        configuration.witnessFiles += witnessURLs
        return try Output.guarding {
            let key = try Environment.masterKey()
            return try Vault.open(at: vaultURL, masterKey: key, configuration: configuration)
        }
    }

    /// Opens the vault, runs `body`, and writes a final signed audit checkpoint (as a server does at shutdown).
    func withVault<T>(configuration: VaultConfiguration = VaultConfiguration(), _ body: (Vault) async throws -> T) async throws -> T {
        let vault = try openVault(configuration: configuration)
        defer { try? vault.checkpointIfDue(force: true) }
        return try await Output.guarding { try await body(vault) }
    }
}

/// The role an administrative command acts in.
struct AdminRoleOption: ParsableArguments {
    @Option(name: .customLong("as"), help: "The role to act in (checked against the policy and audited).")
    var role: String = "admin"

    func validate() throws { _ = try parsedRole }

    var parsedRole: Role {
        get throws {
            guard let role = Role(rawValue: role) else { throw ValidationError("unknown role `\(role)`; use one of \(Role.choiceList)") }
            return role
        }
    }
}

/// The transaction size of imports.
struct BatchOptions: ParsableArguments {
    @Option(
        name: .long, help: "Records per transaction (1-100000). Smaller batches hold the write lock for less time; a crash loses at most one batch.")
    var batchSize = 10_000

    func validate() throws {
        guard (1...100_000).contains(batchSize) else { throw ValidationError("`--batch-size` must be between 1 and 100000") }
    }

    var configuration: VaultConfiguration { VaultConfiguration(importBatchSize: batchSize) }
}

/// Printing results and errors. Errors go to standard error as one `error:` line each; values are never printed.
enum Output {
    static func printJSON(_ value: some Encodable) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        guard let data = try? encoder.encode(value) else { return }
        print(String(decoding: data, as: UTF8.self))
    }

    /// Counts of subjects the gate excluded, largest first: "1,239 consent_missing, 492 consent_unconfirmed" or "none".
    static func exclusions(_ counts: [String: Int]) -> String {
        counts.isEmpty
            ? "none" : counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { "\($0.value.formatted()) \($0.key)" }.joined(separator: ", ")
    }

    static func error(_ message: String) {
        FileHandle.standardError.write(Data(("error: " + message + "\n").utf8))
    }

    static func note(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    /// Runs `body`, turning a vault or key error into its message on standard error and exit code 1.
    static func guarding<T: ~Copyable>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as GateError {
            Self.error(error.message)
            throw ExitCode(error.code == .denied ? 2 : 1)
        } catch let error as CryptoError {
            Self.error(error.message)
            throw ExitCode(1)
        }
    }

    /// ``guarding(_:)`` for an asynchronous body.
    static func guarding<T: ~Copyable>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch let error as GateError {
            Self.error(error.message)
            throw ExitCode(error.code == .denied ? 2 : 1)
        } catch let error as CryptoError {
            Self.error(error.message)
            throw ExitCode(1)
        }
    }
}
