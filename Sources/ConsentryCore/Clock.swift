public import Foundation

/// The source of "now" for everything that stamps or compares times, so that tests can fix it.
public protocol WallClock: Sendable {
    /// The current time.
    func now() -> Date
}

/// The system's real-time clock.
public struct SystemClock: WallClock {
    /// Creates the system clock.
    public init() {}
    /// The current time from the operating system.
    public func now() -> Date { Date() }
}

/// A clock that always returns the same time (or the time it was last set to); for tests and deterministic demos.
public final class FixedClock: WallClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date

    /// Creates a clock stopped at `date`.
    public init(_ date: Date) { current = date }

    /// The time the clock is set to.
    public func now() -> Date { lock.withLock { current } }

    /// Moves the clock forward by `seconds`.
    public func advance(by seconds: TimeInterval) { lock.withLock { current += seconds } }
}
