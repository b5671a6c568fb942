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

/// A small, fast, seedable generator (SplitMix64): repeatable streams for synthetic data, model splits and property
/// tests. Not for secrets (SecureRandom is).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The state; the stream is fully determined by its starting value.
    public var state: UInt64

    /// Starts a stream at `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform value in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
    /// A value in 0..<n.
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    /// One of `items`.
    public mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
    /// True with probability `p`.
    public mutating func chance(_ p: Double) -> Bool { unit() < p }
}
