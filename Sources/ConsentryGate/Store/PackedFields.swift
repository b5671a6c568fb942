import ConsentryCore

/// The packed form of a subject's profile: each field sealed on its own, with its provenance in clear.
///
/// Layout: `01` (format) ‖ `u16` count ‖ entries, each `u8` name length ‖ name ‖ `u8` source ‖
/// `i64` observed-at (ms) ‖ `u32` sealed length ‖ sealed value. Names, sources and times are kept in
/// clear so that merges can decide which value wins without decrypting anything; values are not.
struct PackedFields {
    struct Entry {
        var name: String
        var source: DataSource
        var observedAt: Int64
        var sealed: [UInt8]
    }

    var entries: [Entry]

    init(entries: [Entry] = []) { self.entries = entries }

    /// Frozen one-byte codes of sources inside the packed form.
    static func code(of source: DataSource) -> UInt8 {
        switch source {
        case .crm: 1
        case .web: 2
        case .pos: 3
        case .api: 4
        case .demo: 5
        case .rectification: 6
        }
    }

    static func source(code: UInt8) -> DataSource? {
        switch code {
        case 1: .crm
        case 2: .web
        case 3: .pos
        case 4: .api
        case 5: .demo
        case 6: .rectification
        default: nil
        }
    }

    func encoded() -> [UInt8] {
        var out: [UInt8] = [1]
        out.reserveCapacity(3 + entries.reduce(0) { $0 + 18 + $1.name.utf8.count + $1.sealed.count })
        appendBigEndian(UInt16(entries.count), to: &out)
        for entry in entries {
            out.append(UInt8(entry.name.utf8.count))
            out += entry.name.utf8
            out.append(Self.code(of: entry.source))
            appendBigEndian(UInt64(bitPattern: entry.observedAt), to: &out)
            appendBigEndian(UInt32(entry.sealed.count), to: &out)
            out += entry.sealed
        }
        return out
    }

    /// Decodes a packed profile; nil when the bytes are not a well-formed packed profile.
    static func decode(_ bytes: UnsafeRawBufferPointer) -> PackedFields? {
        var result = PackedFields()
        let ok = visit(bytes) { name, source, observedAt, sealed in
            result.entries.append(Entry(name: String(decoding: name, as: UTF8.self), source: source, observedAt: observedAt, sealed: Array(sealed)))
            return true
        }
        return ok ? result : nil
    }

    /// Walks the entries without copying, calling `body` with each name, source, time and sealed value;
    /// `body` returns false to stop. Returns false when the bytes are malformed.
    @inline(__always)
    static func visit(
        _ bytes: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer, DataSource, Int64, UnsafeRawBufferPointer) -> Bool
    ) -> Bool {
        guard bytes.count >= 3, bytes[0] == 1 else { return false }
        let count = Int(bytes[1]) << 8 | Int(bytes[2])
        var offset = 3
        for _ in 0..<count {
            guard offset < bytes.count else { return false }
            let nameLength = Int(bytes[offset])
            offset += 1
            guard offset + nameLength + 13 <= bytes.count else { return false }
            let name = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + nameLength])
            offset += nameLength
            guard let source = source(code: bytes[offset]) else { return false }
            offset += 1
            let observedAt = Int64(bitPattern: readBigEndian(bytes, offset, 8))
            offset += 8
            let sealedLength = Int(readBigEndian(bytes, offset, 4))
            offset += 4
            guard offset + sealedLength <= bytes.count else { return false }
            let sealed = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + sealedLength])
            offset += sealedLength
            if !body(name, source, observedAt, sealed) { return true }
        }
        return offset == bytes.count
    }

    private func appendBigEndian<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { out += $0 }
    }

    @inline(__always)
    private static func readBigEndian(_ bytes: UnsafeRawBufferPointer, _ offset: Int, _ width: Int) -> UInt64 {
        var value: UInt64 = 0
        for i in 0..<width { value = value << 8 | UInt64(bytes[offset + i]) }
        return value
    }
}
