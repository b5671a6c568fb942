import ConsentryCore
import Foundation

/// A whole input file checked for the problems that make it unusable as a whole: unreadable, empty,
/// not UTF-8, or binary. Such a file gets one clear error and changes nothing.
struct InputFile {
    let path: String
    let bytes: [UInt8]

    /// The largest input file accepted, so that an accidental multi-gigabyte file fails fast.
    static let maximumSize = 4 << 30

    init(url: URL) throws(GateError) {
        path = url.path
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw GateError(.invalidInput, "cannot read `\(url.path)`: the file does not exist or is not readable")
        }
        guard data.count <= Self.maximumSize else {
            throw GateError(.invalidInput, "`\(url.path)` is larger than 4 GiB; split it into smaller files")
        }
        var bytes = [UInt8](data)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        guard bytes.contains(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\t") })
        else {
            throw GateError(.invalidInput, "`\(url.path)` is empty; nothing was imported")
        }
        if let line = Self.firstNULLine(bytes) {
            throw GateError(.invalidInput, "`\(url.path)` line \(line) contains a NUL byte; this looks like a binary file, not text")
        }
        if let line = Self.firstInvalidUTF8Line(bytes) {
            throw GateError(.invalidInput, "`\(url.path)` line \(line) is not valid UTF-8; re-export the file as UTF-8 (nothing was imported)")
        }
        self.bytes = bytes
    }

    private static func firstNULLine(_ bytes: [UInt8]) -> Int? {
        guard let index = bytes.firstIndex(of: 0) else { return nil }
        return lineNumber(of: index, in: bytes)
    }

    static func lineNumber(of index: Int, in bytes: [UInt8]) -> Int {
        var line = 1
        for i in 0..<index where bytes[i] == UInt8(ascii: "\n") { line += 1 }
        return line
    }

    /// The line of the first byte sequence that is not well-formed UTF-8 (overlongs and surrogates included), or nil.
    private static func firstInvalidUTF8Line(_ bytes: [UInt8]) -> Int? {
        var i = 0
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            if b < 0x80 { i += 1; continue }
            var need = 0
            var lower: UInt8 = 0x80, upper: UInt8 = 0xBF
            switch b {
            case 0xC2...0xDF: need = 1
            case 0xE0: need = 2; lower = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: need = 2
            case 0xED: need = 2; upper = 0x9F
            case 0xF0: need = 3; lower = 0x90
            case 0xF1...0xF3: need = 3
            case 0xF4: need = 3; upper = 0x8F
            default: return lineNumber(of: i, in: bytes)
            }
            guard i + need < n else { return lineNumber(of: i, in: bytes) }
            for k in 1...need {
                let c = bytes[i + k]
                let lo: UInt8 = k == 1 ? lower : 0x80, hi: UInt8 = k == 1 ? upper : 0xBF
                if c < lo || c > hi { return lineNumber(of: i, in: bytes) }
            }
            i += need + 1
        }
        return nil
    }
}

/// A problem with one input value, carried up to the row's rejection.
struct FieldProblem: Error {
    let field: String?
    let reason: String

    /// How a key from the input is named in a rejection: as itself when it is a field name, else not at all,
    /// since a key that is not a name may be data (an e-mail address used as a key).
    static func name(ofKey key: String) -> String { FieldName.isValid(key) ? key : "(invalid name)" }
}
