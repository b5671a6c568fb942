/// Splits a byte buffer into lines (LF or CRLF), numbering them from 1 and skipping blank lines.
struct LineSplitter: Sequence, IteratorProtocol {
    private let bytes: [UInt8]
    private var position = 0
    private var line = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func next() -> (line: Int, text: ArraySlice<UInt8>)? {
        while position < bytes.count {
            line += 1
            let start = position
            var end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
            position = end + 1
            if end > start, bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
            let text = bytes[start..<end]
            if text.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { continue }
            return (line, text)
        }
        return nil
    }
}
