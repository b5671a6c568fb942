import ConsentryTesting
import Foundation
import Testing

@Suite("consentry binary")
struct CLIBasicsTests {
    @Test("`consentry --help` lists the commands and exit codes")
    func help() throws {
        let result = try CLI.run(["--help"])
        #expect(result.status == 0)
        for command in ["init", "status", "import", "demo", "check", "keys"] { #expect(result.stdout.contains(command)) }
        #expect(result.stdout.contains("Exit codes"))
    }
}
