import ConsentryCrypto
import GRDB
import GRDBSQLite

/// A cached statement stepped with SQLite's own calls, for the few statements every gated read runs on the shared
/// writer and the profile import runs per record. There GRDB's rows (every column copied into a boxed value) and
/// argument boxing cost more than the look-ups themselves; profiles of the API's renders showed it.
///
/// The statement comes from GRDB's cache of the connection, is reset when the query is made and again when it
/// ends, so GRDB finds it as it left it. Values read from a row are valid until the next `step()`.
struct RawQuery: ~Copyable {
    private let handle: OpaquePointer
    private let db: Database

    /// Prepares (or takes from the connection's cache) `sql`, with no bindings.
    init(_ db: Database, _ sql: String) throws {
        handle = try db.cachedStatement(sql: sql).sqliteStatement
        self.db = db
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    deinit {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    /// Makes the statement ready to run again (its bindings are kept until bound anew).
    func reset() { sqlite3_reset(handle) }

    /// Binds parameter `index` (1-based).
    func bind(_ index: Int32, _ value: Int64) { sqlite3_bind_int64(handle, index, value) }

    /// Binds parameter `index` to a blob (copied by SQLite at once).
    func bind(_ index: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { _ = sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count), Self.transient) }
    }

    /// Binds parameter `index` to a real number, or NULL.
    func bind(_ index: Int32, _ value: Double?) {
        if let value { sqlite3_bind_double(handle, index, value) } else { sqlite3_bind_null(handle, index) }
    }

    /// Binds parameter `index` to text, or NULL.
    func bind(_ index: Int32, _ text: String?) {
        if let text { sqlite3_bind_text(handle, index, text, -1, Self.transient) } else { sqlite3_bind_null(handle, index) }
    }

    /// Advances to the next row: true when one is ready, false when there are no more.
    func step() throws -> Bool {
        let code = sqlite3_step(handle)
        switch code {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            // The extended code (SQLITE_CONSTRAINT_PRIMARYKEY, say), as GRDB reports it.
            let extended = sqlite3_extended_errcode(db.sqliteConnection)
            throw DatabaseError(resultCode: ResultCode(rawValue: extended), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
        }
    }

    /// Runs a statement that returns no rows.
    func execute() throws {
        guard try !step() else { throw DatabaseError(resultCode: .SQLITE_MISUSE, message: "a statement run for its effect returned a row") }
    }

    /// Column `index` of the current row as an integer (0 for NULL).
    func int64(_ index: Int32) -> Int64 { sqlite3_column_int64(handle, index) }

    /// Whether column `index` of the current row is NULL.
    func isNull(_ index: Int32) -> Bool { sqlite3_column_type(handle, index) == SQLITE_NULL }

    /// Column `index` of the current row as bytes (empty for NULL).
    func bytes(_ index: Int32) -> [UInt8] {
        withBytes(index) { Array($0) }
    }

    /// Calls `body` with column `index`'s bytes, valid only during the call.
    func withBytes<R>(_ index: Int32, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        // The pointer first, then the length, as SQLite's documentation asks.
        let base = sqlite3_column_blob(handle, index)
        let count = Int(sqlite3_column_bytes(handle, index))
        guard count > 0, let base else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// Whether column `index` of the current row holds exactly `expected` (compared in constant time; false for NULL).
    func blobEquals(_ index: Int32, _ expected: [UInt8]) -> Bool {
        withBytes(index) { stored in stored.count == expected.count && Digest.equal(Array(stored), expected) }
    }

    /// Calls `body` with the UTF-8 bytes of text column `index`, valid only during the call (empty for NULL).
    func withText<R>(_ index: Int32, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        guard let base = sqlite3_column_text(handle, index) else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return try body(UnsafeRawBufferPointer(start: base, count: Int(sqlite3_column_bytes(handle, index))))
    }

    /// Calls `body` with the UTF-8 bytes of text column `index`, or with nil for NULL; valid only during the call.
    func withOptionalText<R>(_ index: Int32, _ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        guard !isNull(index) else { return try body(nil) }
        return try withText(index) { try body($0) }
    }

    /// Column `index` of the current row as text, or nil for NULL.
    func text(_ index: Int32) -> String? {
        guard let base = sqlite3_column_text(handle, index) else { return nil }
        return String(decoding: UnsafeBufferPointer(start: base, count: Int(sqlite3_column_bytes(handle, index))), as: UTF8.self)
    }

    /// SQLite copies bound values at once (`SQLITE_TRANSIENT`), so the Swift values need not outlive the call.
    static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
}
