import ArgumentParser
import ConsentryCore
import ConsentryGate
import ConsentryServer
import Foundation

/// `consentry serve`: the HTTP API.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve the gated HTTP API (docs/api.md) until SIGINT or SIGTERM; a final audit checkpoint is written.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "The address to listen on (default 127.0.0.1).") var host = "127.0.0.1"
    @Option(name: .long, help: "The port (default 8080; 0 picks a free one, printed when ready).") var port = 8080
    @Option(name: .customLong("rate-limit"), help: "Requests per second per token, bursts of twice that (default 100; 0: no limit).")
    var rateLimit = 100.0
    @Option(name: .customLong("min-free-mib"), help: "Free space the vault's disk needs for /readyz to answer ready, in MiB (default 64).")
    var minimumFreeMiB: Int64 = 64

    func run() async throws {
        guard (0...65535).contains(port) else { throw ValidationError("`--port` must be between 0 and 65535") }
        guard (0...(1 << 40)).contains(minimumFreeMiB) else { throw ValidationError("`--min-free-mib` must be between 0 and 1099511627776") }
        let vault = try global.openVault(configuration: VaultConfiguration(minimumFreeBytes: minimumFreeMiB << 20))
        let host = self.host
        guard rateLimit >= 0 else { throw ValidationError("`--rate-limit` must be 0 or more") }
        try await Server.run(vault: vault, configuration: ServerConfiguration(host: host, port: port, rateLimit: rateLimit)) { actual in
            // Straight to the file descriptor: a process reading the port from a pipe must not wait for a buffer to fill.
            FileHandle.standardOutput.write(Data("consentry: serving \(vault.directory.path) on http://\(host):\(actual)\n".utf8))
        }
    }
}

/// `consentry token …`: API tokens.
struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "API tokens: each carries one role; only a keyed hash is stored.",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a token for a role and print it once.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var admin: AdminRoleOption
        @Option(name: .customLong("role"), help: "The role the token's requests act in.") var tokenRole: String
        @Option(name: .long, help: "A name for the integration (recorded as the actor of its requests).") var name: String
        @Option(name: .long, help: "Lifetime such as 30d or 12h (default: no expiry).") var expires: String?

        func run() async throws {
            let tokenRole: Role = try Parse.choice(tokenRole, "role")
            var expiresAt: Int64?
            if let expires {
                guard let unit = ["h": Int64(3_600_000), "d": 86_400_000][String(expires.suffix(1))], let count = Int64(expires.dropLast()), count > 0
                else {
                    throw ValidationError("`--expires` takes a number and a unit: 12h or 30d")
                }
                expiresAt = Int64(Date().timeIntervalSince1970 * 1000) + count * unit
            }
            let role = try admin.parsedRole
            let created = try await global.withVault { vault in
                try await vault.createToken(name: name, role: tokenRole, expiresAt: expiresAt, as: Principal(actor: global.actorName, role: role))
            }
            if global.json {
                Output.printJSON(["token": created.token, "id": created.info.id, "role": tokenRole.rawValue])
            } else {
                print(created.token)
                Output.note("token \(created.info.id) for role \(tokenRole.rawValue): shown once; store it in the caller's secret store")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens (never their secrets).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var admin: AdminRoleOption

        func run() async throws {
            let role = try admin.parsedRole
            let tokens = try await global.withVault { try await $0.tokens(as: Principal(actor: global.actorName, role: role)) }
            if global.json {
                Output.printJSON(tokens)
                return
            }
            if tokens.isEmpty { print("no tokens") }
            for t in tokens {
                let state = t.revokedAt != nil ? "revoked" : t.expiresAt.map { "expires \($0)" } ?? "active"
                print("\(t.id)  \(t.name)  \(t.role.rawValue)  \(state)  " + (t.lastUsedAt.map { "last used \($0)" } ?? "never used"))
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token at once.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var admin: AdminRoleOption
        @Argument(help: "The token id (tok_…).") var id: String

        func run() async throws {
            let role = try admin.parsedRole
            try await global.withVault { try await $0.revokeToken(id, as: Principal(actor: global.actorName, role: role)) }
            if !global.json { print("revoked \(id)") }
        }
    }
}
