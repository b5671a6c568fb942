import CSodium

/// Makes sure libsodium is initialized before its first use; every entry point of this module calls it.
enum Sodium {
    /// `sodium_init` result: 0 when it initialized now, 1 when it was already initialized, -1 on failure.
    private static let status: Int32 = sodium_init()

    /// Initializes libsodium once; traps only if the library cannot initialize at all (no random source),
    /// in which case no key could ever be used safely.
    static func ensureInitialized() {
        precondition(status >= 0, "libsodium failed to initialize")
    }
}
