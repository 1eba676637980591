// swift-tools-version: 6.1
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    // A concrete generic type such as `[Int32: Usage]` is reached through its metadata accessor with the conformances
    // it needs, rather than through its mangled name, which the runtime resolves on first use with a scan of every
    // conformance record in the program (docs/benchmarks.md, pop status).
    .unsafeFlags(["-Xfrontend", "-disable-concrete-type-metadata-mangled-name-accessors"], .when(configuration: .release)),
    // Each function in a section of its own, so that the release link of `pop` can lay out the functions that run
    // together (Linker/pop.order).
    .unsafeFlags(["-Xfrontend", "-function-sections"], .when(configuration: .release)),
]

let package = Package(
    // Linux only for now (README.md): the agent and the embedded store use pidfd, inotify, /proc and prctl.
    name: "pop",
    products: [
        .library(name: "ZooKeeperNIO", targets: ["ZooKeeperNIO"]),
        .library(name: "ZooKeeperTestSupport", targets: ["ZooKeeperTestSupport"]),
        .library(name: "PopState", targets: ["PopState"]),
        .library(name: "PopTemplates", targets: ["PopTemplates"]),
        .library(name: "PopAgent", targets: ["PopAgent"]),
        .library(name: "PopFleetClient", targets: ["PopFleetClient"]),
        .library(name: "PopUI", targets: ["PopUI"]),
        .library(name: "PopTestSupport", targets: ["PopTestSupport"]),
        .library(name: "TestProcesses", targets: ["TestProcesses"]),
        .executable(name: "pop", targets: ["pop"]),
        .executable(name: "pop-bench", targets: ["pop-bench"]),
        .executable(name: "pop-log", targets: ["pop-log"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.1.4"),
    ],
    targets: [
        // A native ZooKeeper client on SwiftNIO.
        .target(
            name: "ZooKeeperNIO",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strictSettings
        ),
        // Starts programs for tests and benchmarks: argv only, output in files, no inherited descriptor, exits seen at once.
        .target(
            name: "TestProcesses",
            dependencies: [.target(name: "CPopAgentLinux", condition: .when(platforms: [.linux]))],
            swiftSettings: strictSettings
        ),
        // Starts real ZooKeeper servers (standalone or an ensemble) for tests and benchmarks.
        .target(
            name: "ZooKeeperTestSupport",
            dependencies: [
                "TestProcesses",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // A pop cluster on one host for tests and benchmarks: a ZooKeeper ensemble and machines in network namespaces.
        .target(
            name: "PopTestSupport",
            dependencies: [
                "ZooKeeperTestSupport", "TestProcesses", "PopState",
                .product(name: "Logging", package: "swift-log"),
                .target(name: "CPopAgentLinux", condition: .when(platforms: [.linux])),
            ],
            swiftSettings: strictSettings
        ),
        // The expectations tests put on pop's commands (`ok`, `fails`), built on PopTestSupport's runner.
        .target(
            name: "PopTestExpectations",
            dependencies: ["PopTestSupport", "TestProcesses"],
            swiftSettings: strictSettings
        ),
        // pop's domain model, the CoordinationStore protocol, and its ZooKeeper and embedded implementations.
        .target(
            name: "PopState",
            dependencies: [
                "ZooKeeperNIO",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // Template manifests, plugin discovery, the built-in templates.
        .target(
            name: "PopTemplates",
            dependencies: [
                "PopState",
                .product(name: "Yams", package: "Yams"),
            ],
            resources: [.copy("BuiltinPlugins")],
            swiftSettings: strictSettings
        ),
        // Linux system calls the process supervisor needs that Glibc does not export (epoll, inotify, pidfd, prctl).
        .target(name: "CPopAgentLinux"),
        // The machine agent: reconciler, process supervisor, task runner, health checks, the journal of each
        // instance and the endpoint serving this machine's logs, events and metrics.
        .target(
            name: "PopAgent",
            dependencies: [
                "PopState",
                .target(name: "CPopAgentLinux", condition: .when(platforms: [.linux])),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
            ],
            swiftSettings: strictSettings
        ),
        // The command line's side of the agents' endpoints: signed requests, logs and events of every machine merged
        // in time order, followed across machines joining, leaving and coming back; resources for `pop status`.
        .target(
            name: "PopFleetClient",
            dependencies: [
                "PopState", "PopAgent",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The web dashboard `pop ui` serves: the fleet live from store watches, actions behind the namespace's
        // credentials; its page is plain HTML, CSS and JavaScript shipped as resources.
        .target(
            name: "PopUI",
            dependencies: [
                "PopState", "PopTemplates", "PopAgent", "PopFleetClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Page")],
            swiftSettings: strictSettings
        ),
        // Drives a headless Chromium through the DevTools protocol, for the dashboard's tests and benchmark.
        .target(
            name: "BrowserTestSupport",
            dependencies: [
                "TestProcesses",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // The command line.
        .executableTarget(
            name: "pop",
            dependencies: [
                "PopState", "PopTemplates", "PopAgent", "PopFleetClient", "PopUI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings,
            // The shipped program exports none of its symbols: nothing links against it, and every process would
            // otherwise load a dynamic symbol table of every Swift symbol in it (docs/benchmarks.md, pop status).
            linkerSettings: [
                .unsafeFlags(["-Xlinker", "--no-export-dynamic"], .when(configuration: .release)),
                // lld packs the relative relocations (3 MB that every process kept mapped otherwise) and places the
                // functions pop runs first, in the order scripts/text-order.sh found them, so that a process maps few
                // pages of the program's code (docs/benchmarks.md, "The functions that run, laid out together").
                // libstdc++ is linked from its static archive (Linker/static-libstdc++): its shared library kept
                // 1.4 MB mapped in every process.
                .unsafeFlags(
                    ["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                     "-Xlinker", "--symbol-ordering-file=" + Context.packageDirectory + "/Linker/pop.order",
                     "-Xlinker", "--no-warn-symbol-ordering",
                     "-L", Context.packageDirectory + "/Linker/static-libstdc++"],
                    .when(platforms: [.linux], configuration: .release)),
            ]
        ),
        // An instance's log writer as a small program of its own, used when it lies beside pop (docs/agent.md, Logs).
        .executableTarget(
            name: "pop-log",
            dependencies: [.target(name: "CPopAgentLinux", condition: .when(platforms: [.linux]))],
            // Linked with no shared library at all: the Swift runtime that every executable gets would otherwise bring
            // libstdc++ and the dynamic loader's relocations to each of the agent's instances (1.0 ms of CPU per start
            // against 0.4 ms; docs/benchmarks.md). It starts at its own entry point, without libc's start-up code
            // (Sources/pop-log/main.c): 0.09 ms.
            linkerSettings: [
                .unsafeFlags(["-static-executable"], .when(platforms: [.linux], configuration: .release)),
                .unsafeFlags(["-Xlinker", "-e", "-Xlinker", "pop_log_entry"], .when(platforms: [.linux])),
            ]
        ),
        // Benchmarks that print the figures recorded in docs/benchmarks.md.
        .executableTarget(
            name: "pop-bench",
            dependencies: [
                "ZooKeeperNIO", "ZooKeeperTestSupport", "PopState", "PopTestSupport", "TestProcesses",
                "PopFleetClient", "BrowserTestSupport",
                .target(name: "CPopAgentLinux", condition: .when(platforms: [.linux])),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        // Fuzzes ZooKeeperNIO's frame and record decoders with libFuzzer (scripts/fuzz.sh); a normal build replays inputs.
        .executableTarget(
            name: "ZooKeeperFuzz",
            dependencies: ["ZooKeeperNIO"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "ZooKeeperNIOTests",
            dependencies: [
                "ZooKeeperNIO", "ZooKeeperTestSupport", "TestProcesses",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "PopStateTests",
            dependencies: [
                "PopState", "ZooKeeperTestSupport", "PopStateProbe", "TestProcesses",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // A small program the state tests run as a separate process against a shared embedded store.
        .executableTarget(
            name: "PopStateProbe",
            dependencies: ["PopState"],
            path: "Tests/PopStateProbe",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "PopTemplatesTests",
            dependencies: ["PopTemplates", "TestProcesses"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "PopAgentTests",
            dependencies: ["PopAgent", "PopTemplates", "ZooKeeperTestSupport", "PopTestSupport", "TestProcesses"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "PopCLITests",
            dependencies: [
                "PopState", "PopAgent", "ZooKeeperNIO", "ZooKeeperTestSupport", "PopTestSupport", "PopTestExpectations",
                "TestProcesses",
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Security/acl_probe.py"],
            swiftSettings: strictSettings
        ),
        // Many machines: the real pop binary on a ZooKeeper ensemble with agents in network namespaces (needs root).
        .testTarget(
            name: "PopClusterTests",
            dependencies: ["PopTestSupport", "PopState", "ZooKeeperTestSupport", "TestProcesses"],
            swiftSettings: strictSettings
        ),
        // The seed's tutorial with the real binary on both stores: Plone from PyPI, `pop run`, `pop config --port`.
        .testTarget(
            name: "PopTutorialTests",
            dependencies: [
                "ZooKeeperTestSupport", "PopTestSupport", "PopTestExpectations", "PopState", "TestProcesses",
                .target(name: "CPopAgentLinux", condition: .when(platforms: [.linux])),
            ],
            swiftSettings: strictSettings
        ),
        // Logs, events, resources and metrics across machines: the journal's format, the endpoint's authentication,
        // the merged follow, a real Prometheus server and promtool against agents.
        .testTarget(
            name: "PopObservabilityTests",
            dependencies: [
                "PopState", "PopAgent", "PopFleetClient", "PopTestSupport", "PopTestExpectations", "TestProcesses",
                "ZooKeeperTestSupport",
                .target(name: "CPopAgentLinux", condition: .when(platforms: [.linux])),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The dashboard in a real browser: headless Chromium against a netns cluster, and its security checks.
        .testTarget(
            name: "PopUITests",
            dependencies: [
                "PopUI", "PopState", "PopTestSupport", "BrowserTestSupport", "TestProcesses", "ZooKeeperTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
