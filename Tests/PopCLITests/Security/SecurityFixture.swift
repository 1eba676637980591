import Foundation
import PopTestSupport
import PopState
import TestProcesses
import Testing
import ZooKeeperTestSupport

/// A fresh chroot on the shared ZooKeeper server plus a `pop` runner pointed at it, for the security tests.
struct SecurityFixture {
    /// The connect string with the chroot, as POP_HOST.
    let host: String
    /// The runner, with POP_HOST set and no credentials file in reach (XDG_CONFIG_HOME is an empty folder).
    var pop: PopRunner
    /// An empty folder for credentials files and the like.
    let scratch: URL

    /// Runs `body` with an open chroot (as an operator would) and a runner using it; whatever the runner started is
    /// stopped, and the folders removed, before this returns.
    static func with<T>(_ body: (SecurityFixture) async throws -> T) async throws -> T {
        let fixture = try await make()
        defer { try? FileManager.default.removeItem(at: fixture.scratch) }
        return try await fixture.pop.withAgentStoppedAfterwards { try await body(fixture) }
    }

    /// Creates an open chroot (as an operator would) and a runner using it.
    private static func make() async throws -> SecurityFixture {
        let host = try await CLIFixture.chroot("pop-cli-security")
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("pop-security-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let pop = try PopRunner(environment: [
            "POP_HOST": host, "XDG_CONFIG_HOME": scratch.path, "POP_AUTH_FILE": "", "POP_MACHINE_ID": "m1",
        ])
        return SecurityFixture(host: host, pop: pop, scratch: scratch)
    }

    /// Runs `pop` with `POP_AUTH` set to `auth` (none when nil).
    func run(_ arguments: [String], auth: String?) async throws -> CommandResult {
        try await pop.run(arguments, extraEnvironment: ["POP_AUTH": auth ?? ""])
    }
}

/// Runs kazoo (python3) scripts with an argv array, never through a shell.
enum Kazoo {
    /// The folder holding the scripts next to this file.
    static let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent()

    /// Runs `python3 SCRIPT ARGS` (python3 from PATH, where kazoo is installed) and returns its standard output,
    /// recording an issue when it fails.
    static func run(_ script: String, _ arguments: [String]) async throws -> Data {
        let result = try await CommandRunner.run(
            ["python3", scripts.appendingPathComponent(script).path] + arguments,
            environment: CommandRunner.baseEnvironment(), scratch: FileManager.default.temporaryDirectory,
            timeout: .seconds(120))
        #expect(result.status == 0, "\(script) failed: \(result)")
        return Data(result.stdout.utf8)
    }
}
