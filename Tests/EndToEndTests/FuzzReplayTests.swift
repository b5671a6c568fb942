import ConsentryTesting
import Foundation
import Testing

/// The fuzz corpus and every input a fuzzer or a hostile test found (`Tests/Fuzz/regressions`) replayed through the
/// same entry point the fuzzer drives: none may crash or hang. `make fuzz` runs the fuzzer itself.
@Suite("fuzz corpus replay")
struct FuzzReplayTests {
    static let targets = ["csv", "jsonl", "body", "yaml", "rule", "template"]

    @Test("every corpus and regression input runs through its parser without a crash", arguments: targets)
    func replay(_ target: String) throws {
        let fuzz = TestSupport.repositoryRoot.appendingPathComponent("Tests/Fuzz")
        let files = ["corpus", "regressions"].flatMap { TestSupport.files(under: fuzz.appendingPathComponent("\($0)/\(target)")) }.map(\.path).sorted()
        try #require(files.count >= 2, "the corpus of `\(target)` is missing from Tests/Fuzz")
        let binary = CLI.binary.deletingLastPathComponent().appendingPathComponent("consentry-fuzz")
        let process = Process()
        process.executableURL = binary
        process.arguments = [target] + files
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 0, "\(target): \(errors.prefix(500))")
        #expect(output == "\(target): \(files.count) inputs ran\n", "every file ran: \(output)")
    }
}
