import Foundation
import PopTestExpectations
import PopTestSupport
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The agent killed with SIGKILL at every step of starting, restarting and stopping instances (the real `pop` binary,
/// the embedded store, services listening on their ports): the next agent adopts or stops every process the dead one
/// started, so each service ends with exactly one process, the supervised one, and no port is held by an orphan.
///
/// The agent is made to die at a step by the test hook `POP_TEST_CRASH_POINT=STEP:N` (docs/agent.md, Faults).
@Suite(.serialized, .timeLimit(.minutes(10)))
struct CrashPointTests {
    /// What the agent is doing when it dies.
    enum Scenario: String, Sendable {
        /// Starting services deployed before it ran.
        case start
        /// Restarting running services after `pop config SERVICE --port NEW`.
        case restart
        /// Stopping running services after `pop undeploy`.
        case stop
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var scenario: Scenario
        /// `STEP:N`: the N-th time the step is reached.
        var point: String
        var testDescription: String { "\(scenario.rawValue) at \(point)" }
    }

    static let cases: [Case] =
        ["spawn.cloned:3", "spawn.recorded:3", "spawn.released:3"].map { Case(scenario: .start, point: $0) }
        + ["stop.signalled:2", "exit.seen:2", "exit.reaped:2", "spawn.cloned:2", "spawn.recorded:2", "spawn.released:2"]
        .map { Case(scenario: .restart, point: $0) }
        + ["stop.signalled:2", "exit.seen:2", "exit.reaped:2", "record.removed:2"].map { Case(scenario: .stop, point: $0) }

    @Test(arguments: cases)
    func anAgentKilledAtAnyStepLeavesNothingUntracked(_ crash: Case) async throws {
        try await withListeners(count: 5) { pop, services in
            try await drive(pop, services, crash)
        }
    }

    /// The fault as it was found: 20 services listening on their ports, `pop config sN --port NEW` for all of them at
    /// once, and the agent killed while it restarts them; then `pop start`.
    @Test(arguments: ["spawn.cloned:10", "spawn.recorded:10", "exit.reaped:10", "stop.signalled:10"])
    func twentyServicesReconfiguredAtOnceSurviveAKilledAgent(_ point: String) async throws {
        try await withListeners(count: 20) { pop, services in
            try await drive(pop, services, Case(scenario: .restart, point: point), concurrently: true)
        }
    }

    // MARK: The scenario

    func drive(_ pop: PopRunner, _ services: [Listener], _ crash: Case, concurrently: Bool = false) async throws {
        let hook = ["POP_TEST_CRASH_POINT": crash.point]
        let agent: Int32
        switch crash.scenario {
        case .start:
            for service in services { try await pop.ok("deploy", service.name) }
            agent = try await startAgent(pop, environment: hook)
        case .restart, .stop:
            for service in services { try await pop.ok("deploy", service.name) }
            _ = try await startAgent(pop)
            try await pop.waitUntilRunning()
            try await pop.ok("stop")
            // A hooked agent adopts them all, then dies while restarting or stopping them.
            agent = try await startAgent(pop, environment: hook)
            try await pop.waitUntilRunning()
            try await forEach(services, concurrently: concurrently) { service in
                if crash.scenario == .restart {
                    try await pop.ok("config", service.name, "--port", String(service.newPort))
                } else {
                    try await pop.ok("undeploy", service.name)
                }
            }
        }
        let died = await Processes.waitForExit([agent], timeout: .seconds(60))
        let log = (try? String(contentsOfFile: pop.home.path + "/machines/\((pop.machine ?? ""))/agent.log", encoding: .utf8)) ?? ""
        try #require(died, "the agent did not reach \(crash.point):\n\(log.suffix(3000))")
        #expect(log.contains("test crash point \(crash.point.split(separator: ":")[0]) reached"), "\(log.suffix(2000))")

        _ = try await startAgent(pop)
        if crash.scenario == .stop {
            for service in services {
                for pid in ProcessScan.processes(withEnvironment: "POP_INSTANCE_DIR", pop.instanceFolder(service.name)) {
                    #expect(await Processes.waitForExit([pid], timeout: .seconds(30)), "\(service.name): process \(pid) was not stopped")
                }
                #expect(ProcessScan.listeners(onPort: service.port).isEmpty, "\(service.name): its port is still held")
                let writers = ProcessScan.logWriters(of: pop.instanceFolder(service.name) + "/logs")
                #expect(await Processes.waitForExit(writers, timeout: .seconds(10)), "\(service.name): its log writers \(writers) live on")
            }
            let status = try await pop.statusReport()
            #expect(status.services.allSatisfy { $0.instances.isEmpty }, "\(status.services.map { ($0.service, $0.instances) })")
            return
        }
        let status = try await pop.waitUntilRunning(within: 90)
        for service in services {
            let instance = try #require(status.services.first { $0.service == service.name }?.instances.first)
            let pid = try #require(instance.pid, "\(service.name): \(instance)")
            let processes = ProcessScan.processes(withEnvironment: "POP_INSTANCE_DIR", pop.instanceFolder(service.name))
            #expect(processes == [pid], "\(service.name): processes \(processes), supervised \(pid)")
            let port = crash.scenario == .restart ? service.newPort : service.port
            let holders = ProcessScan.listeners(onPort: port)
            #expect(
                holders == [pid],
                "\(service.name): port \(port) held by \(holders.map(ProcessScan.describe)), supervised \(ProcessScan.describe(pid)) \(instance); its log: \(String(decoding: FileManager.default.contents(atPath: pop.instanceFolder(service.name) + "/logs/stderr.log") ?? Data(), as: UTF8.self).suffix(300)); the agent's log: \(agentLog(pop).suffix(4000))")
            if crash.scenario == .restart {
                #expect(ProcessScan.listeners(onPort: service.port).isEmpty, "\(service.name): the old port is still held")
            }
            #expect(instance.state == "running" && instance.machineUp, "\(service.name): \(instance)")
            // One log writer reads the running process's output; those of the processes before it have ended.
            let output = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/1")
            let writers = ProcessScan.logWriters(of: pop.instanceFolder(service.name) + "/logs")
            let current = writers.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\($0)/fd/0")) == output }
            #expect(current.count == 1, "\(service.name): \(current.count) log writers read its output")
            let stale = writers.filter { !current.contains($0) }
            #expect(await Processes.waitForExit(stale, timeout: .seconds(10)), "\(service.name): log writers \(stale) outlive their processes")
        }
    }

    /// The agent's log on this machine.
    func agentLog(_ pop: PopRunner) -> String {
        (try? String(contentsOfFile: pop.home.path + "/machines/\(pop.machine ?? "")/agent.log", encoding: .utf8)) ?? ""
    }

    /// `pop start --json` with `environment`; returns the agent's pid.
    func startAgent(_ pop: PopRunner, environment: [String: String] = [:]) async throws -> Int32 {
        let result = try await pop.run(["start", "--json"], extraEnvironment: environment)
        try result.check()
        guard let line = result.stdout.split(separator: "\n").first(where: { $0.hasPrefix("{") }),
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
            let pid = object["pid"] as? Int
        else { throw TestFailure("\(result)") }
        return Int32(pid)
    }

    func forEach(_ services: [Listener], concurrently: Bool, _ body: @escaping @Sendable (Listener) async throws -> Void) async throws {
        guard concurrently else {
            for service in services { try await body(service) }
            return
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for service in services { group.addTask { try await body(service) } }
            try await group.waitForAll()
        }
    }
}

/// A service of the `listener` test template: it listens on `port`, and on `newPort` after the reconfiguration.
struct Listener: Sendable {
    var name: String
    var port: Int
    var newPort: Int
}

/// Runs `body` with a machine whose plugin path has the `listener` template and `count` services made from it.
func withListeners(count: Int, _ body: (PopRunner, [Listener]) async throws -> Void) async throws {
    try await withFaultMachine(environment: ["POP_PLUGIN_PATH": try ListenerPlugin.folder.path]) { pop in
        // Below the ephemeral range (32768 and up), so that no client connection on this busy machine takes one.
        var ports = Set<Int>()
        while ports.count < count * 2 {
            let port = Int.random(in: 20_000..<32_000)
            if ListenerPlugin.isFree(port) { ports.insert(port) }
        }
        let sorted = Array(ports)
        let services = (0..<count).map { Listener(name: "s\($0)", port: sorted[$0 * 2], newPort: sorted[$0 * 2 + 1]) }
        for service in services {
            try await pop.ok("add", service.name, "--template", "listener", "--port", String(service.port))
        }
        try await body(pop, services)
    }
}

/// A plugin with one template that listens on its port (and fails if it cannot), accepting and closing each
/// connection, with a TCP health check.
enum ListenerPlugin {
    static let script = """
        import socket, sys, time
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", int(sys.argv[1])))
        server.listen(16)
        # Each health probe connects and hangs up; accepting takes it off the queue. A listener that never accepted
        # filled its backlog after 17 probes, failed every probe after that, and was restarted as unhealthy once
        # the grace period ran out, half a minute after it started.
        while True:
            connection, _ = server.accept()
            connection.close()
        """

    static var manifest: String {
        """
        name: listener
        description: Listens on a TCP port, for the fault tests.
        options:
          port:
            type: port
            default: 9000
            help: the TCP port
        command: ["python3", "-c", \(jsonString(script)), "{port}"]
        health:
          tcp: "{port}"
          interval: 500ms
          timeout: 1
          grace-period: 20s
        stop-timeout: 5s

        """
    }

    /// Whether nothing is bound to 127.0.0.1:`port` right now.
    static func isFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    static func jsonString(_ text: String) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: [text]), as: UTF8.self).dropFirst().dropLast().description
    }

    static var folder: URL {
        get throws { try created.get() }
    }

    private static let created: Result<URL, any Error> = Result(catching: {
        let parent = FileManager.default.temporaryDirectory.appendingPathComponent("pop-fault-plugin-\(UUID().uuidString)")
        let folder = ProcessFolders.removedAtExit(parent).appendingPathComponent("listener")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try manifest.write(to: folder.appendingPathComponent("listener.yaml"), atomically: true, encoding: .utf8)
        return folder.deletingLastPathComponent()
    })
}
