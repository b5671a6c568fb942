import ArgumentParser
import Foundation

/// The `consentry` command-line tool.
@main
struct Consentry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consentry",
        abstract: "A consent-centric customer-data vault for e-mail personalization.",
        discussion: """
            Exit codes: 0 success; 1 error (nothing was changed by the failing step); 2 denied by the policy \
            gate (audited); 3 some input records were rejected (the others were committed); 64 usage error.
            Environment: CONSENTRY_VAULT (default vault directory), CONSENTRY_MASTER_KEY (base64 master key; \
            overrides <vault>/keys/master.key), USER (the actor recorded in the audit log unless --actor is given).
            """,
        version: "0.1.0",
        subcommands: [
            Init.self, Status.self, Import.self, Demo.self, Check.self, Keys.self, PolicyCommand.self, ConsentCommand.self, ProfileCommand.self,
            ScanCommand.self, AuditCommand.self,
        ]
    )
}
