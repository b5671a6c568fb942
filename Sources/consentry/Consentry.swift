import ArgumentParser
import CConsentrySystem
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The `consentry` command-line tool.
@main
struct Consentry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consentry",
        abstract: "A consent-centric customer-data vault for e-mail personalization.",
        discussion: """
            Exit codes: 0 success; 1 error (nothing was changed by the failing step); 2 denied by the policy \
            gate (audited); 3 some input records were rejected (the others were committed); 64 usage error; 70 an \
            internal fault stopped the process (its open transaction was not committed).
            Environment: CONSENTRY_VAULT (default vault directory), CONSENTRY_MASTER_KEY (base64 master key; \
            overrides <vault>/keys/master.key; wiped from the process once read), CONSENTRY_AUDIT_WITNESS (witness files \
            for audit checkpoints, separated by `:`), USER (the actor recorded in the audit log unless --actor is given).
            """,
        version: "0.2.0",
        subcommands: [
            Init.self, Status.self, Import.self, Demo.self, Check.self, Keys.self, PolicyCommand.self, ConsentCommand.self, ProfileCommand.self,
            ScanCommand.self, AuditCommand.self, DSRCommand.self, TemplateCommand.self, RenderCommand.self, SegmentCommand.self, ScoreCommand.self,
            RecommendCommand.self, ModelCommand.self, TriggerCommand.self, SendTimeCommand.self, ExperimentCommand.self, ServeCommand.self,
            TokenCommand.self,
        ]
    )

    /// Hardens the process before any key is loaded, then runs the command.
    static func main() async {
        ProcessHardening.apply()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

enum ProcessHardening {
    /// No core files (they could hold values being processed; key memory is also excluded from dumps by
    /// libsodium), and files this process creates are private (0600 and 0700).
    static func apply() {
        #if canImport(Glibc)
            var noCore = rlimit(rlim_cur: 0, rlim_max: 0)
            _ = setrlimit(Int32(RLIMIT_CORE.rawValue), &noCore)
        #endif
        umask(0o077)
        // A fault is reported as one line and exit code 70, never as a stack trace or a bare signal status. The
        // message is copied once and kept for the process's life: the signal handler writes it as it is.
        let message = strdup(
            "error: consentry stopped on an internal fault; the step it was running was not committed. Check the vault with `consentry check` and report the command you ran\n"
        )
        if let message { consentry_install_fatal_signal_report(message, 70) }
    }
}
