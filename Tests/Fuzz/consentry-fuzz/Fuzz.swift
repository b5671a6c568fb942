// Fuzz targets for every parser that reads untrusted text: CSV and JSON Lines records, JSON request bodies, policy
// YAML, segment rules and Liquid templates. Built two ways:
// - `make fuzz` builds it with `-sanitize=fuzzer -DFUZZING`: `main` hands over to libFuzzer's driver, which calls
//   `LLVMFuzzerTestOneInput` with mutated inputs; `CONSENTRY_FUZZ_TARGET` names the parser.
// - a plain build gives a replay tool: `consentry-fuzz TARGET FILE…` runs each file through the same entry point,
//   which is how the corpus and every crash found become regression tests in `make test`.
import ConsentryCore
import ConsentryPersonalization
import ConsentryPolicy
import Foundation

@testable import ConsentryGate

/// The parsers, by name.
enum FuzzTarget: String, CaseIterable {
    case csv, jsonl, body, yaml, rule, template

    /// Runs `bytes` through the parser. Any error is an expected answer; only a crash, a hang or a sanitizer report is a
    /// finding.
    func run(_ bytes: [UInt8]) {
        switch self {
        case .csv:
            var reader = CSVReader(bytes)
            var records = 0
            while reader.next() != nil, records < 100_000 { records += 1 }
        case .jsonl:
            for (line, text) in LineSplitter(bytes) { _ = Vault.profileRecord(line: line, text: text) }
        case .body:
            _ = try? StrictJSON.parse(bytes[...], maximumDepth: 16)
        case .yaml:
            _ = try? FieldSchema.parse(Data(bytes))
        case .rule:
            let text = String(decoding: bytes, as: UTF8.self)
            if let rule = try? SegmentRule(text: text) { _ = try? SegmentRule(text: rule.text) }
            if let json = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) { _ = try? SegmentRule(json: json) }
        case .template:
            let text = String(decoding: bytes, as: UTF8.self)
            for format in [LiquidTemplate.Format.html, .text] {
                if let template = try? LiquidTemplate(source: text, format: format, profileFields: ["first_name", "email", "city"]) {
                    _ = template.render(["first_name": .string("<b>Ann</b>"), "city": .string("Oslo")], now: Date(timeIntervalSince1970: 0))
                }
            }
        }
    }
}

/// The target named by `CONSENTRY_FUZZ_TARGET`, read once.
let selectedTarget: FuzzTarget = {
    guard let name = ProcessInfo.processInfo.environment["CONSENTRY_FUZZ_TARGET"], let target = FuzzTarget(rawValue: name) else {
        FileHandle.standardError.write(
            Data("error: set CONSENTRY_FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
        exit(64)
    }
    return target
}()

/// libFuzzer's entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    selectedTarget.run(bytes)
    return 0
}

#if FUZZING
    /// libFuzzer's driver (from the fuzzer runtime that `-sanitize=fuzzer` links).
    @_silgen_name("LLVMFuzzerRunDriver")
    func runFuzzerDriver(
        _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    /// Hands the process to libFuzzer (SwiftPM names an executable's entry point itself, so libFuzzer's own `main`
    /// cannot be the one used).
    @main
    struct FuzzMain {
        static func main() {
            _ = selectedTarget
            var argc = CommandLine.argc
            var argv = CommandLine.unsafeArgv
            exit(runFuzzerDriver(&argc, &argv, fuzzOne))
        }
    }
#else
    /// Replays files through a target: `consentry-fuzz TARGET FILE…`. Prints how many inputs ran.
    @main
    struct Replay {
        static func main() {
            let arguments = CommandLine.arguments.dropFirst()
            guard let name = arguments.first, let target = FuzzTarget(rawValue: name), arguments.count > 1 else {
                FileHandle.standardError.write(
                    Data("usage: consentry-fuzz \(FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")) FILE…\n".utf8))
                exit(64)
            }
            var count = 0
            for path in arguments.dropFirst() {
                guard let data = FileManager.default.contents(atPath: path) else {
                    FileHandle.standardError.write(Data("error: cannot read `\(path)`\n".utf8))
                    exit(1)
                }
                target.run([UInt8](data))
                count += 1
            }
            print("\(name): \(count) inputs ran")
        }
    }
#endif
