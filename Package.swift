// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "vipfarm",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "lbnode", targets: ["lbnode"]),
        .executable(name: "lbbench", targets: ["lbbench"]),
        .library(name: "Hashing", targets: ["Hashing"]),
        .library(name: "TapEngine", targets: ["TapEngine"]),
        .library(name: "RouteSetup", targets: ["RouteSetup"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/ordo-one/malloc-interposer", from: "1.6.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // C libraries, found by pkg-config; each is a module map plus a shim header.
        .systemLibrary(
            name: "CPcap",
            path: "Sources/CPcap",
            pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"])]
        ),
        // liburing behind plain C functions (see Sources/CURing/include/CURing.h for why it is not a module map).
        .target(name: "CURing", path: "Sources/CURing", linkerSettings: [.linkedLibrary("uring")]),
        // The bpf() system call for the bucket prefilter (see Sources/CBPF/include/CBPF.h for why it is a C target).
        .target(name: "CBPF", path: "Sources/CBPF"),
        // Kernel interfaces Swift cannot call (ring structures, TUN/TAP, ethtool and namespace calls): a shim header.
        .systemLibrary(name: "CKernel", path: "Sources/CKernel"),
        .systemLibrary(
            name: "CNetlink",
            path: "Sources/CNetlink",
            pkgConfig: "libnl-route-3.0",
            providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]
        ),

        // Pure Swift: flow keys, hashing, bucket tables, flow table. No C, no syscalls.
        // Optimized in debug builds too: the table builder is pure arithmetic that tests run over hundreds of views,
        // and the debug lbnodes of the end-to-end farms rebuild tables on their heartbeat loop.
        .target(name: "Hashing", swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        // The fast path and every packet syscall.
        .target(name: "TapEngine", dependencies: ["Hashing", "CPcap", "CKernel", "CURing", "CBPF"]),
        // Netlink through libnl-route-3.
        .target(name: "RouteSetup", dependencies: ["CNetlink", "CKernel"]),

        .executableTarget(
            name: "lbnode",
            dependencies: [
                "Hashing", "TapEngine", "RouteSetup",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Virtual networks in namespaces for tests, benchmarks and the demo: testbed, farm, applications, probes.
        .target(name: "Testbed", dependencies: ["Hashing", "TapEngine", "RouteSetup"]),

        .executableTarget(
            name: "lbbench",
            dependencies: [
                "Hashing", "TapEngine", "RouteSetup", "Testbed",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                // Counts mallocs for `lbbench frames` (loaded with LD_PRELOAD, which lbbench arranges itself).
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ]
        ),

        .testTarget(name: "HashingTests", dependencies: ["Hashing"]),
        .testTarget(name: "TapEngineTests", dependencies: ["TapEngine", "Hashing", "RouteSetup", "Testbed"]),
        .testTarget(name: "RouteSetupTests", dependencies: ["RouteSetup"]),
        .testTarget(
            name: "lbnodeTests",
            dependencies: [
                "lbnode", "Testbed", "RouteSetup", "Hashing", "TapEngine",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            // The fuzz corpus's seeds, read from the source tree by the fuzz tests and `make fuzz`.
            exclude: ["FuzzInputs"]
        ),
        .testTarget(name: "lbbenchTests", dependencies: ["lbbench", "Testbed", "Hashing", "TapEngine", "RouteSetup"]),
    ]
)
