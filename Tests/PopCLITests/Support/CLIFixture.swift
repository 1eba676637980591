import Foundation
import PopTestExpectations
import PopTestSupport
import Logging
import Synchronization
import PopState
import TestProcesses
import Testing
import ZooKeeperTestSupport

/// The stores the command-line tests run against.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case embedded
    case zooKeeper

    var testDescription: String { rawValue }

    /// How the store names itself in pop's "store:" lines.
    var label: String { self == .embedded ? "embedded store" : "ZooKeeper" }
}

/// The fixtures a test that starts no agent makes one after another (as many worlds as it needs); their folders are
/// removed once the test is done, whether it passed or threw.
final class CLIFixtures: Sendable {
    private let made = Mutex<[CLIFixture]>([])

    /// Runs `body` with a maker of fixtures, then removes the folder of every fixture it made.
    static func with<T>(_ body: (CLIFixtures) async throws -> T) async throws -> T {
        let fixtures = CLIFixtures()
        defer {
            for fixture in fixtures.made.withLock({ $0 }) { fixture.pop.removeFolder() }
        }
        return try await body(fixtures)
    }

    /// A fresh world (``CLIFixture/make(_:initialized:)``), removed with the others.
    func make(_ kind: StoreKind, initialized: Bool = true) async throws -> CLIFixture {
        let fixture = try await CLIFixture.make(kind, initialized: false)
        made.withLock { $0.append(fixture) }
        if initialized { try await fixture.pop.ok("init") }
        return fixture
    }
}

/// One private pop world for a test: its own POP_HOME, machine id and plugin path, and for ZooKeeper its own chroot
/// on the server every test shares.
struct CLIFixture: Sendable {
    let kind: StoreKind
    let pop: PopRunner
    /// The machine `pop deploy` picks by default (POP_MACHINE_ID).
    let localMachine: String

    /// Runs `body` in a fresh world (`initialized` runs `pop init` in it first); any agent or instance it started is
    /// stopped, and its folder removed, before this returns.
    static func with<T>(
        _ kind: StoreKind, initialized: Bool = true, _ body: (CLIFixture) async throws -> T
    ) async throws -> T {
        let fixture = try await make(kind, initialized: initialized)
        return try await fixture.pop.withAgentStoppedAfterwards { try await body(fixture) }
    }

    /// A fresh world; `initialized` runs `pop init` in it first. Prefer ``with(_:initialized:_:)``, which cleans up.
    static func make(_ kind: StoreKind, initialized: Bool = true) async throws -> CLIFixture {
        let localMachine = "local-" + UUID().uuidString.prefix(8).lowercased()
        var environment = ["POP_MACHINE_ID": localMachine, "POP_PLUGIN_PATH": try TestPlugin.folder.path]
        if kind == .zooKeeper {
            environment["POP_HOST"] = try await Self.chroot("cli")
        }
        let fixture = CLIFixture(kind: kind, pop: try PopRunner(environment: environment), localMachine: localMachine)
        if initialized {
            try await fixture.pop.ok("init")
        }
        return fixture
    }

    /// A new, empty chroot on `server` (the shared test server by default), as the hosts to give pop:
    /// `127.0.0.1:PORT/LABEL-UUID`.
    static func chroot(_ label: String, on server: ZooKeeperServer? = nil) async throws -> String {
        let server = if let server { server } else { try await ZooKeeperServer.shared() }
        let chroot = "/\(label)-" + UUID().uuidString.lowercased()
        let setup = try await ZooKeeperStore.open(
            servers: [.init(host: server.host, port: server.clientPort)], chroot: nil, logger: quietLogger)
        do {
            _ = try await setup.create(chroot, data: [], mode: .persistent)
        } catch {
            await setup.close()
            throw error
        }
        await setup.close()
        return server.connectString + chroot
    }

    /// Opens a store handle of our own on the same store, as an agent or a damaged store would write to it.
    func openStore() async throws -> any CoordinationStore {
        try await pop.openStore()
    }

    /// Runs `body` with a store handle and a namespace on it, closing the handle afterwards.
    func withNamespace<T: Sendable>(_ body: (PopNamespace) async throws -> T) async throws -> T {
        try await pop.withNamespace(body)
    }

    /// Everything in the store, as `pop dump /` prints it (exit status included, for a store pop cannot read).
    func dump() async throws -> String {
        let result = try await pop("dump", "/")
        return "exit \(result.status)\n" + result.stdout
    }

    /// Runs a command that must be refused: it exits with `status`, its standard error mentions each of `words`,
    /// and the store is exactly as it was before (compared with `pop dump`).
    @discardableResult
    func refuses(
        _ status: Int32, _ arguments: [String], mentioning words: [String] = [],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> CommandResult {
        let before = try await dump()
        let result = try await pop.fails(status, arguments, mentioning: words, sourceLocation: sourceLocation)
        let after = try await dump()
        #expect(before == after, "the store changed:\n\(result)\n--- before\n\(before)--- after\n\(after)",
            sourceLocation: sourceLocation)
        #expect(!result.stderr.contains("Fatal error"), "pop crashed:\n\(result)", sourceLocation: sourceLocation)
        return result
    }

    /// Registers a machine as its agent would (an ephemeral node, alive while `store` is open).
    static func register(_ machine: String, hostname: String = "host-a", in namespace: PopNamespace) async throws {
        try await namespace.registerMachine(
            MachineRecord(
                id: try MachineID(machine), hostname: hostname, addresses: ["10.0.0.7"], agentVersion: "0.1.0",
                started: Date(timeIntervalSinceNow: -125), agentPID: 4242))
    }
}

let quietLogger: Logger = {
    var logger = Logger(label: "pop.cli.test")
    logger.logLevel = .critical
    return logger
}()

/// A plugin only the tests use: a template with every option type and a task, written once per test process.
enum TestPlugin {
    static let manifest = """
        name: kit
        description: A template with one option of every type, for the command-line tests.
        options:
          port:
            type: port
            default: 8000
            help: the TCP port
          workers:
            type: int
            default: 2
            minimum: 1
            maximum: 16
            help: worker processes
          mode:
            type: enum
            choices: [fast, safe]
            default: fast
            help: how to run
          debug:
            type: bool
            default: no
            help: verbose logs
          token:
            type: string
            default: ""
            secret: true
            help: a secret
        command: ["/bin/sleep", "1000"]
        tasks:
          echo:
            description: print the arguments
            command: ["/bin/echo", "{args}"]

        """

    /// Manifests that must be reported, not used: a shell string as command, a misspelt field, broken YAML.
    static let brokenManifests = [
        ("broken.yaml", "name: broken\ncommand: \"touch \(BadInput.marker); sleep 1\"\n"),
        ("typo.yaml", "name: typo\ncomand: [\"/bin/sleep\", \"1\"]\n"),
        ("garbage.yaml", "name: [unclosed\n  - : :\n"),
    ]

    static var folder: URL {
        get throws { try created.get() }
    }

    private static let created: Result<URL, any Error> = Result(catching: {
        let parent = FileManager.default.temporaryDirectory.appendingPathComponent("pop-cli-plugin-\(UUID().uuidString)")
        let folder = ProcessFolders.removedAtExit(parent).appendingPathComponent("kit")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try manifest.write(to: folder.appendingPathComponent("kit.yaml"), atomically: true, encoding: .utf8)
        for (file, text) in brokenManifests {
            try text.write(to: folder.appendingPathComponent(file), atomically: true, encoding: .utf8)
        }
        return folder
    })
}
