import Foundation
import Glibc
import Logging
import PopState
import Testing

@testable import PopAgent

/// A temporary folder with helpers to configure instances and run a supervisor in it.
struct SupervisorFixture: Sendable {
    let root: String

    init() throws {
        let template = FileManager.default.temporaryDirectory.appendingPathComponent("pop-supervisor-XXXXXX").path
        var bytes = Array(template.utf8CString)
        guard let created = mkdtemp(&bytes) else { throw SupervisorError.system("create a temporary folder") }
        root = String(cString: created)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: root)
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

    /// Runs `body` with a running supervisor; stops every instance afterwards unless `leaveRunning`.
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

/// Waits until `condition` holds, checking every few milliseconds; returns whether it held in time.
func eventually(
    within timeout: Duration = .seconds(5), _ condition: @Sendable () -> Bool
) async -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return condition()
}

/// Waits for the instance to satisfy `condition`, returning its status then (or the last one seen).
@discardableResult
func waitFor(
    _ supervisor: Supervisor, _ name: String, within timeout: Duration = .seconds(20),
    _ condition: (InstanceStatus) -> Bool
) async throws -> InstanceStatus? {
    let service = try ServiceName(name)
    let deadline = ContinuousClock.now.advanced(by: timeout)
    var status = supervisor.status(of: service)
    while !(status.map(condition) ?? false) && ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(5))
        status = supervisor.status(of: service)
    }
    #expect(status.map(condition) ?? false, "instance \(name) did not reach the expected status; last: \(String(describing: status))")
    return status
}

/// Every process whose process group is `group`, zombies included, read from /proc.
func processes(inGroup group: Int32) -> [Int32] {
    ProcessTable.processes(inGroup: group)
}

/// Zombie children of this process.
func zombieChildren() -> [Int32] {
    ProcessTable.children().filter { ProcessTable.stat($0)?.isZombie == true }
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
