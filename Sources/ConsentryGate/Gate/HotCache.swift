import Foundation
import Synchronization

/// Short-lived in-memory copies of small, hot rows (API tokens, templates), so that the HTTP API's per-request
/// path does not read the database before the gate does.
///
/// An entry lives `ttl` seconds. This process's own changes drop the entry at once; changes made by another
/// process (a `consentry token revoke` while the server runs) are seen within `ttl`. Only rows that exist
/// are kept, so a flood of unknown keys cannot grow the cache, and it never holds more than `capacity` entries.
final class HotCache<Value: Sendable>: Sendable {
    private let entries = Mutex<[String: (value: Value, at: UInt64)]>([:])
    private let ttl: UInt64
    private let capacity: Int

    init(ttl seconds: Double, capacity: Int = 1_024) {
        ttl = UInt64(seconds * 1e9)
        self.capacity = capacity
    }

    /// The cached value for `key` when fresh; otherwise `load()`'s, kept when not nil.
    func value<E: Error>(_ key: String, load: () throws(E) -> Value?) throws(E) -> Value? {
        if let hit = fresh(key) { return hit }
        guard let value = try load() else {
            remove(key)
            return nil
        }
        keep(key, value)
        return value
    }

    /// The cached value for `key` when it is fresh, or nil.
    func fresh(_ key: String) -> Value? {
        let now = DispatchTime.now().uptimeNanoseconds
        if let hit = entries.withLock({ $0[key] }), now &- hit.at < ttl { return hit.value }
        return nil
    }

    /// Keeps `value` for `key` from now.
    func keep(_ key: String, _ value: Value) {
        let now = DispatchTime.now().uptimeNanoseconds
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = (value, now)
        }
    }

    /// Drops `key` (after this process changed its row).
    func remove(_ key: String) { _ = entries.withLock { $0.removeValue(forKey: key) } }
}
