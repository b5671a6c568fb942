/// An RFC 4180 CSV reader over bytes: comma-separated, `"` quoting with `""` escapes, quoted values may
/// span lines, records end with LF or CRLF. Each record carries the line it started on.
struct CSVReader: Sequence, IteratorProtocol {
    enum Record {
        case values(line: Int, [String])
        case malformed(line: Int, reason: String)
    }

    private let bytes: [UInt8]
    private var position = 0
    private var line = 1

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func next() -> Record? {
        // Skip blank lines between records.
        while position < bytes.count, bytes[position] == UInt8(ascii: "\n") || bytes[position] == UInt8(ascii: "\r") {
            if bytes[position] == UInt8(ascii: "\n") { line += 1 }
            position += 1
        }
        guard position < bytes.count else { return nil }
        let startLine = line
        var values: [String] = []
        var field: [UInt8] = []
        var malformed: String?
        while true {
            guard position < bytes.count else {
                values.append(String(decoding: field, as: UTF8.self))
                break
            }
            let b = bytes[position]
            if b == UInt8(ascii: "\"") && field.isEmpty {
                // Quoted value: runs to the next lone quote.
                position += 1
                var closed = false
                while position < bytes.count {
                    let c = bytes[position]
                    position += 1
                    if c == UInt8(ascii: "\"") {
                        if position < bytes.count, bytes[position] == UInt8(ascii: "\"") {
                            field.append(c)
                            position += 1
                        } else {
                            closed = true
                            break
                        }
                    } else {
                        if c == UInt8(ascii: "\n") { line += 1 }
                        field.append(c)
                    }
                }
                if !closed {
                    return .malformed(line: startLine, reason: "a quoted value is never closed; check for a missing `\"`")
                }
                if position < bytes.count, ![UInt8(ascii: ","), UInt8(ascii: "\n"), UInt8(ascii: "\r")].contains(bytes[position]) {
                    malformed = malformed ?? "text follows a closing quote; quote the whole value and double any `\"` inside it"
                }
                continue
            }
            position += 1
            switch b {
            case UInt8(ascii: ","):
                values.append(String(decoding: field, as: UTF8.self))
                field.removeAll(keepingCapacity: true)
            case UInt8(ascii: "\n"):
                values.append(String(decoding: field, as: UTF8.self))
                line += 1
                if let malformed { return .malformed(line: startLine, reason: malformed) }
                return .values(line: startLine, values)
            case UInt8(ascii: "\r"):
                if position < bytes.count, bytes[position] == UInt8(ascii: "\n") { continue }
                malformed = malformed ?? "a carriage return inside an unquoted value; quote the value or remove it"
            case UInt8(ascii: "\""):
                malformed = malformed ?? "a `\"` inside an unquoted value; quote the whole value and double the `\"`"
            default:
                field.append(b)
            }
        }
        if let malformed { return .malformed(line: startLine, reason: malformed) }
        return .values(line: startLine, values)
    }
}
