import Foundation
import Glibc
import Logging
import PopState
import PopTestSupport
import TestProcesses
import Testing

@testable import PopAgent

/// A temporary folder with helpers to configure instances and run a supervisor in it.
struct SupervisorFixture: Sendable {
    let root: String

    private init() throws {
        let template = FileManager.default.temporaryDirectory.appendingPathComponent("pop-supervisor-XXXXXX").path
        var bytes = Array(template.utf8CString)
        guard let created = mkdtemp(&bytes) else { throw SupervisorError.system("create a temporary folder") }
        root = String(cString: created)
    }

    /// Runs `body` with a fresh folder, and removes the folder once `body`, and every supervisor it ran, has ended.
    static func with(_ body: (SupervisorFixture) async throws -> Void) async throws {
        let fixture = try SupervisorFixture()
        do {
            try await body(fixture)
        } catch {
            try? FileManager.default.removeItem(atPath: fixture.root)
            throw error
        }
        try? FileManager.default.removeItem(atPath: fixture.root)
    }

    func folder(_ name: String) -> String { "\(root)/\(name)" }

    func configuration(
        _ name: String, _ command: [String], setup: [SetupStep] = [], stopSignal: StopSignal = .term,
        stopTimeoutMilliseconds: Int = 5000, health: HealthProbe? = nil,
        restartPolicy: RestartPolicy = RestartPolicy(initialBackoffMilliseconds: 20, maximumQuickFailures: 3),
        logRotation: LogRotation = LogRotation(), signature: String = "1111"
    ) throws -> InstanceConfiguration {
        InstanceConfiguration(
            name: try ServiceName(name), signature: ConfigSignature(hex: signature), command: command,
            environment: ["PATH": "/usr/local/bin:/usr/bin:/bin", "POP_TEST": "yes"],
            workingDirectory: folder("\(name)/work"), logDirectory: folder("\(name)/logs"),
            stateDirectory: folder("\(name)/state"), setup: setup, stopSignal: stopSignal,
            stopTimeoutMilliseconds: stopTimeoutMilliseconds, health: health, restartPolicy: restartPolicy,
            logRotation: logRotation)
    }

    /// Runs `body` with a running supervisor; stops every instance afterwards unless `leaveRunning`, and returns
    /// once the supervisor's `run()` has ended.
    func withSupervisor(
        leaveRunning: Bool = false, _ body: @Sendable (Supervisor) async throws -> Void
    ) async throws {
        var logger = Logger(label: "pop.supervisor.test")
        logger.logLevel = .warning
        let supervisor = try Supervisor(logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await supervisor.run() }
            do {
                try await body(supervisor)
            } catch {
                await supervisor.stopAll()
                throw error
            }
            if !leaveRunning { await supervisor.stopAll() }
            group.cancelAll()
            try await group.waitForAll()
        }
    }
}

/// Waits on the supervisor's events until the instance's status satisfies `condition`, and returns that status; at
/// the time limit (whether or not any event came) it records an issue and returns the last status.
@discardableResult
func waitFor(
    _ supervisor: Supervisor, _ name: String, within timeout: Duration = .seconds(20),
    sourceLocation: SourceLocation = #_sourceLocation, _ condition: @escaping @Sendable (InstanceStatus) -> Bool
) async throws -> InstanceStatus? {
    let service = try ServiceName(name)
    // Subscribe first, then look: a change in between is in the stream.
    let events = supervisor.events()
    if let status = supervisor.status(of: service), condition(status) { return status }
    let found = await first(within: timeout) {
        for await event in events {
            if case .changed(let status) = event, status.name == service, condition(status) { return status }
        }
        return nil
    }
    let status = found ?? supervisor.status(of: service)
    #expect(
        found != nil, "instance \(name) did not reach the expected status within \(timeout); last: \(String(describing: status))",
        sourceLocation: sourceLocation)
    return status
}

/// The result of `body`, or `nil` when `limit` passes first (then `body` is cancelled).
func first<T: Sendable>(within limit: Duration, _ body: @escaping @Sendable () async -> T?) async -> T? {
    await withTaskGroup(of: T?.self) { group in
        group.addTask { await body() }
        group.addTask {
            try? await Task.sleep(for: limit)
            return nil
        }
        let result = await group.next() ?? nil
        group.cancelAll()
        return result
    }
}

/// Every process whose process group is `group`, zombies included, read from /proc.
func processes(inGroup group: Int32) -> [Int32] {
    ProcessTable.processes(inGroup: group)
}

/// Waits (on pidfds) until every process of `group` has exited; returns whether they did within `limit`.
func groupEnds(_ group: Int32, within limit: Duration = .seconds(10)) async -> Bool {
    await Processes.waitForExit(processes(inGroup: group), timeout: limit)
        && processes(inGroup: group).allSatisfy { ProcessTable.stat($0)?.hasExited ?? true }
}

/// Waits until the child reaper has swept after now: a sentinel child in a session of its own exits, and its
/// SIGCHLD makes the reaper sweep, reaping the sentinel and every zombie that was there before. Returns whether the
/// sentinel was reaped within `limit`.
func sweepAfterNow(within limit: Duration = .seconds(10)) async -> Bool {
    let deadline = ContinuousClock.now + limit
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    posix_spawnattr_setflags(&attributes, 0x80)  // POSIX_SPAWN_SETSID: the reaper takes only other sessions' zombies
    let argv: [UnsafeMutablePointer<CChar>?] = [strdup("true"), nil]
    defer { free(argv[0]) }
    var sentinel: pid_t = 0
    var seen = ChildReaper.sweepsDone
    guard posix_spawnp(&sentinel, "true", nil, &attributes, argv, environ) == 0 else { return false }
    while ProcessTable.stat(sentinel) != nil {
        let remaining = deadline - ContinuousClock.now
        guard remaining > .zero else { return false }
        let after = seen
        _ = await first(within: remaining) { await ChildReaper.sweep(after: after) }
        seen = ChildReaper.sweepsDone
    }
    return true
}

/// Whether the log file at `path` contains `text` within `limit` (woken by inotify).
func log(_ path: String, contains text: String, within limit: Duration = .seconds(10)) async -> Bool {
    await Waiting.file(path, contains: text, within: limit)
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
func freePort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return UInt16(bigEndian: address.sin_port)
}

func fileText(_ path: String) -> String {
    (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
}
