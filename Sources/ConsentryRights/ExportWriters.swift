import ConsentryCore
import ConsentryGate
import Foundation

/// The formats an access or portability export is written in.
public enum ExportFormat: String, Sendable, CaseIterable, Codable {
    /// One JSON document (schema `consentry-export/1`, docs/rights.md): machine-readable, for portability.
    case json
    /// A folder of CSV tables, one per section, for people and spreadsheets.
    case csv
}

/// Appends bytes to a file through a small buffer, so an export of any size uses the same memory.
final class BufferedFile {
    private let handle: FileHandle
    private var buffer: [UInt8] = []

    /// Creates `url` with mode 0600 (refusing to follow or replace an existing file).
    init(creating url: URL) throws {
        let fd = open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw GateError(.storage, "could not create `\(url.lastPathComponent)` in exports/: \(String(cString: strerror(errno)))")
        }
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        buffer.reserveCapacity(1 << 16)
    }

    func write(_ text: String) throws {
        buffer.append(contentsOf: text.utf8)
        if buffer.count >= 1 << 16 { try flush() }
    }

    func flush() throws {
        guard !buffer.isEmpty else { return }
        try handle.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes and forces the bytes to disk.
    func close() throws {
        try flush()
        try handle.synchronize()
        try handle.close()
    }
}

/// An export sink that can also write the document for a request that matches no subject.
protocol ExportDocument: SubjectExportSink {
    /// Writes the complete document saying nothing is held.
    mutating func nothingHeld() throws
}

/// Writes the export as one JSON document, section by section.
struct JSONExportWriter: ExportDocument {
    let file: BufferedFile
    let header: [String: String]
    private var section: String?
    private var first = true
    private let encoder: JSONEncoder = .init()

    init(file: BufferedFile, header: [String: String]) {
        self.file = file
        self.header = header
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
    }

    static let sections = ["profile", "identities", "consents", "flags", "events", "derived", "processing"]

    private func json(_ value: some Encodable) throws -> String { String(decoding: try encoder.encode(value), as: UTF8.self) }

    private mutating func item(_ name: String, _ text: String) throws {
        if section != name {
            // Sections arrive in order; any the subject has nothing in are written empty.
            let from = section.flatMap { Self.sections.firstIndex(of: $0) }.map { $0 + 1 } ?? 0
            let to = Self.sections.firstIndex(of: name)!
            if section != nil { try file.write("\n  ],\n") }
            for skipped in Self.sections[from..<to] { try file.write("  \(try json(skipped)): [],\n") }
            try file.write("  \(try json(name)): [\n")
            section = name
            first = true
        }
        try file.write((first ? "    " : ",\n    ") + text)
        first = false
    }

    mutating func begin(subject pseudonym: String) throws {
        try file.write("{\n  \"format\": \"consentry-export/1\",\n  \"request\": \(try json(header)),\n  \"held\": true,\n")
        try file.write("  \"subject\": \(try json(pseudonym)),\n")
    }

    /// The document for a request whose identifiers match no subject: every section empty.
    mutating func nothingHeld() throws {
        try file.write("{\n  \"format\": \"consentry-export/1\",\n  \"request\": \(try json(header)),\n  \"held\": false,\n  \"subject\": null,\n")
        try finish()
    }

    mutating func profileField(_ name: String, value: String, source: String, observedAt: String) throws {
        try item("profile", try json(["field": name, "value": value, "source": source, "observed_at": observedAt]))
    }
    mutating func identity(kind: String, source: String) throws { try item("identities", try json(["kind": kind, "source": source])) }
    mutating func consent(_ record: ConsentRecordInfo) throws { try item("consents", try json(record)) }
    mutating func flag(_ name: String) throws { try item("flags", try json(name)) }
    mutating func event(_ event: SubjectExport.Event) throws { try item("events", try json(event)) }
    mutating func derived(kind: String, name: String, value: String) throws {
        try item("derived", try json(["kind": kind, "name": name, "value": value]))
    }
    mutating func processing(_ record: ProcessingRecord) throws { try item("processing", try json(record)) }

    mutating func finish() throws {
        let from = section.flatMap { Self.sections.firstIndex(of: $0) }.map { $0 + 1 } ?? 0
        if section != nil { try file.write("\n  ]" + (from < Self.sections.count ? "," : "") + "\n") }
        for (i, skipped) in Self.sections[from...].enumerated() {
            try file.write("  \(try json(skipped)): []" + (from + i < Self.sections.count - 1 ? "," : "") + "\n")
        }
        try file.write("}\n")
        try file.close()
    }
}

/// Writes the export as a folder of CSV tables (`profile.csv`, `events.csv`, …), each with a header row; a section
/// the subject has nothing in is a file with only its header. Values are quoted for spreadsheets.
struct CSVExportWriter: ExportDocument {
    let folder: URL
    let header: [String: String]
    private var files: [String: BufferedFile] = [:]

    static let columns: [(String, [String])] = [
        ("request", ["key", "value"]),
        ("profile", ["field", "value", "source", "observed_at"]),
        ("identities", ["kind", "source"]),
        ("consents", ["id", "purpose", "state", "time", "source", "notice_version", "evidence", "expires_at"]),
        ("flags", ["flag"]),
        ("events", ["type", "time", "item_id", "category", "amount", "currency", "campaign_id"]),
        ("derived", ["kind", "name", "value"]),
        ("processing", ["sequence", "time", "role", "action", "purpose", "fields", "decision", "reasons"]),
    ]

    init(folder: URL, header: [String: String]) throws {
        self.folder = folder
        self.header = header
        for (name, columns) in Self.columns {
            let file = try BufferedFile(creating: folder.appendingPathComponent(name + ".csv"))
            try file.write(columns.joined(separator: ",") + "\r\n")
            files[name] = file
        }
        for (key, value) in header.sorted(by: { $0.key < $1.key }) { try row("request", [key, value]) }
    }

    private func row(_ table: String, _ values: [String?]) throws {
        try files[table]!.write(values.map { CSVText.spreadsheetSafe($0 ?? "") }.joined(separator: ",") + "\r\n")
    }

    mutating func begin(subject pseudonym: String) throws {
        try row("request", ["held", "true"])
        try row("request", ["subject", pseudonym])
    }
    mutating func nothingHeld() throws {
        try row("request", ["held", "false"])
        try finish()
    }
    mutating func profileField(_ name: String, value: String, source: String, observedAt: String) throws {
        try row("profile", [name, value, source, observedAt])
    }
    mutating func identity(kind: String, source: String) throws { try row("identities", [kind, source]) }
    mutating func consent(_ r: ConsentRecordInfo) throws {
        try row("consents", [String(r.id), r.purpose, r.state, r.time, r.source, r.noticeVersion, r.evidence, r.expiresAt])
    }
    mutating func flag(_ name: String) throws { try row("flags", [name]) }
    mutating func event(_ e: SubjectExport.Event) throws {
        try row("events", [e.type, e.time, e.itemID, e.category, e.amount.map { String($0) }, e.currency, e.campaignID])
    }
    mutating func derived(kind: String, name: String, value: String) throws { try row("derived", [kind, name, value]) }
    mutating func processing(_ p: ProcessingRecord) throws {
        try row(
            "processing",
            [String(p.sequence), p.time, p.role, p.action, p.purpose, p.fields.joined(separator: " "), p.decision, p.reasons.joined(separator: "; ")])
    }
    mutating func finish() throws {
        for (_, file) in files.sorted(by: { $0.key < $1.key }) { try file.close() }
    }
}
