// swift-tools-version:6.2
import PackageDescription

// One set of settings for every target: explicit existentials, imports that must be visible where used,
// and internal imports unless a module's types appear in the public API.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "consentry",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "consentry", targets: ["consentry"]),
        .library(name: "ConsentryGate", targets: ["ConsentryGate"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .target(name: "ConsentryCore", swiftSettings: swiftSettings),
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        // Process-level helpers that must be C: reading files in a forked child, so that no descriptor of the vault's
        // database files is ever opened and closed in a process that holds SQLite's locks on them (scan.c), and
        // reporting a fatal signal as one error line instead of a stack trace (signals.c).
        .target(name: "CConsentrySystem"),
        .target(name: "ConsentryCrypto", dependencies: ["ConsentryCore", "CSodium"], swiftSettings: swiftSettings),
        .target(
            name: "ConsentryPolicy",
            dependencies: ["ConsentryCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        .target(name: "ConsentryAudit", dependencies: ["ConsentryCore", "ConsentryCrypto"], swiftSettings: swiftSettings),
        .target(
            name: "ConsentryGate",
            dependencies: [
                "ConsentryCore", "ConsentryCrypto", "ConsentryPolicy", "ConsentryAudit", "CConsentrySystem",
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(name: "ConsentryRights", dependencies: ["ConsentryCore", "ConsentryGate"], swiftSettings: swiftSettings),
        // The gate's request and decision types live in ConsentryPolicy; personalization uses them, never the store.
        .target(
            name: "ConsentryPersonalization", dependencies: ["ConsentryCore", "ConsentryPolicy", "ConsentryGate"], swiftSettings: swiftSettings),
        .target(
            name: "ConsentryServer",
            dependencies: [
                "ConsentryCore", "ConsentryPolicy", "ConsentryAudit", "ConsentryGate", "ConsentryRights", "ConsentryPersonalization",
                .product(name: "Hummingbird", package: "hummingbird"), .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"), .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ],
            resources: [.copy("openapi.yaml")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "consentry",
            dependencies: [
                "CConsentrySystem", "ConsentryCore", "ConsentryCrypto", "ConsentryPolicy", "ConsentryAudit", "ConsentryGate", "ConsentryRights",
                "ConsentryPersonalization", "ConsentryServer", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "consentry-bench",
            dependencies: ["ConsentryCore", "ConsentryPolicy", "ConsentryGate", "ConsentryRights", "ConsentryPersonalization"],
            path: "Benchmarks/Sources/consentry-bench",
            swiftSettings: swiftSettings
        ),
        // Fuzz targets (Tests/Fuzz): a replay tool in ordinary builds, a libFuzzer binary with `make fuzz`.
        .executableTarget(
            name: "consentry-fuzz",
            dependencies: ["ConsentryCore", "ConsentryPolicy", "ConsentryGate", "ConsentryPersonalization"],
            path: "Tests/Fuzz/consentry-fuzz",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ConsentryTesting",
            dependencies: ["ConsentryCore", "ConsentryCrypto", "ConsentryPolicy", "ConsentryGate"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "ConsentryCoreTests", dependencies: ["ConsentryCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "ConsentryCryptoTests",
            dependencies: ["ConsentryCrypto", "ConsentryCore", "CSodium"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConsentryPolicyTests",
            dependencies: ["ConsentryPolicy", "ConsentryCore", "ConsentryTesting"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConsentryAuditTests",
            dependencies: ["ConsentryAudit", "ConsentryCore", "ConsentryCrypto"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConsentryGateTests",
            dependencies: [
                "ConsentryGate", "ConsentryAudit", "ConsentryCore", "ConsentryCrypto", "ConsentryPolicy", "ConsentryTesting",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConsentryRightsTests",
            dependencies: [
                "ConsentryRights", "ConsentryGate", "ConsentryCore", "ConsentryPolicy", "ConsentryAudit", "ConsentryTesting",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConsentryPersonalizationTests",
            dependencies: ["ConsentryPersonalization", "ConsentryGate", "ConsentryCore", "ConsentryPolicy", "ConsentryAudit", "ConsentryTesting"],
            swiftSettings: swiftSettings
        ),
        // The HTTP API in-process (HummingbirdTesting), without a port or the binary.
        .testTarget(
            name: "ConsentryServerTests",
            dependencies: [
                "ConsentryServer", "ConsentryGate", "ConsentryCore", "ConsentryPersonalization", "ConsentryTesting",
                .product(name: "Hummingbird", package: "hummingbird"), .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"), .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["ConsentryTesting", "ConsentryCore", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
