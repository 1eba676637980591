import Foundation
import PopTestSupport
import Testing
import ZooKeeperNIO
import ZooKeeperTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The machine agent end to end: the real `pop` binary, a real agent started with `pop start`, real processes, on the
/// embedded store and on a real ZooKeeper server.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct AgentEndToEndTests {
    enum Store: String, CaseIterable, CustomStringConvertible {
        case embedded, zooKeeper
        var description: String { rawValue }
    }

    @Test(arguments: Store.allCases)
    func deployBeforeStartThenKillNineRestartsWithANewPID(_ store: Store) async throws {
        try await withMachine(store) { pop in
            try await pop.ok("add", "sleeper", "--template", "command", "--command", "sleep 100000")
            try await pop.ok("deploy", "sleeper")
            #expect(try await pop.instance("sleeper")?.state == "unknown", "no agent yet: the machine is down")
            try await pop.ok("start")
            let first = try await pop.waitFor("sleeper") { $0.state == "running" && $0.pid != nil }
            let pid = try #require(first.pid)
            #expect(isAlive(pid), "the process the record names exists")

            kill(pid, SIGKILL)
            let second = try await pop.waitFor("sleeper") { $0.state == "running" && $0.pid != nil && $0.pid != pid }
            #expect(second.restarts == 1, "\(second)")
            #expect(isAlive(try #require(second.pid)))
        }
    }

    @Test(arguments: Store.allCases)
    func aCrashLoopBacksOffThenTurnsFatalUntilRestarted(_ store: Store) async throws {
        try await withMachine(store) { pop in
            try await pop.ok("start")
            try await pop.ok("add", "crasher", "--template", "command", "--command", "false")
            try await pop.ok("deploy", "crasher")
            let fatal = try await pop.waitFor("crasher", within: 30) { $0.state == "fatal" }
            #expect(fatal.lastError?.contains("status 1") == true, "\(fatal)")
            #expect((fatal.restarts ?? 0) >= 3, "\(fatal)")
            // `status --wait running` gives up at once on a fatal instance rather than waiting out its timeout.
            let started = ContinuousClock.now
            let wait = try await pop.run(["status", "crasher", "--wait", "running", "--timeout", "30"])
            #expect(wait.status == 1)
            #expect(wait.stderr.contains("fatal"))
            #expect(ContinuousClock.now - started < .seconds(10))

            try await pop.ok("restart", "crasher")
            _ = try await pop.waitFor("crasher") { $0.state == "backoff" || $0.state == "running" || ($0.state == "fatal" && ($0.restarts ?? 0) < (fatal.restarts ?? 0)) }
        }
    }

    @Test(arguments: Store.allCases)
    func aConfigChangeRestartsWithTheNewSignatureAndUndeployKillsTheWholeGroup(_ store: Store) async throws {
        try await withMachine(store) { pop in
            try await pop.ok("start")
            // A workload with a grandchild in the background, to check that stop reaches the whole group.
            try await pop.ok("add", "family", "--template", "command", "--command", "sh -c 'sleep 100000 & sleep 100001'")
            try await pop.ok("deploy", "family")
            let before = try await pop.waitFor("family") { $0.state == "running" && $0.pid != nil }
            let oldPID = try #require(before.pid)
            #expect(try await eventually { processGroupMembers(oldPID).count >= 2 }, "sh and its background sleep")

            try await pop.ok("config", "family", "--command", "sh -c 'sleep 100002 & sleep 100003'")
            let after = try await pop.waitFor("family") {
                $0.state == "running" && $0.pid != nil && $0.pid != oldPID && $0.signature != before.signature
            }
            #expect(try await eventually { processGroupMembers(oldPID).isEmpty }, "the old group is gone")
            let newPID = try #require(after.pid)
            let service = try await pop.statusJSON().services.first { $0.service == "family" }
            #expect(after.signature == service?.signature, "the instance runs the service's current signature")

            try await pop.ok("undeploy", "family")
            #expect(try await eventually { processGroupMembers(newPID).isEmpty }, "grandchildren included")
            #expect(try await eventually { try await pop.statusJSON().services.first?.instances.isEmpty == true })
        }
    }

    @Test(arguments: Store.allCases)
    func anAgentKilledWithSIGKILLIsReplacedAndAdoptsItsProcesses(_ store: Store) async throws {
        try await withMachine(store) { pop in
            try await pop.ok("start")
            try await pop.ok("add", "steady", "--template", "command", "--command", "sleep 100000")
            try await pop.ok("deploy", "steady")
            let before = try await pop.waitFor("steady") { $0.state == "running" && $0.pid != nil }
            let agent = try #require(pop.agentPID())
            kill(agent, SIGKILL)
            // Dead, or a zombie: in a test process that is a child subreaper, the orphaned agent is reparented to it.
            #expect(try await eventually { !isAlive(agent) })
            #expect(isAlive(try #require(before.pid)), "the instance outlives its agent")

            try await pop.ok("start")
            let after = try await pop.waitFor("steady") { $0.state == "running" && $0.pid != nil }
            #expect(after.pid == before.pid, "adopted, not restarted")
            #expect(after.restarts == 0)
        }
    }

    /// `{port}` in a command line given with `--command` is the service's port: `pop config --port` moves a program
    /// that takes its port as an argument.
    @Test func theCommandTemplatesPortReachesTheCommandLineAndConfigMovesIt() async throws {
        let first = try LoopbackHTTP.freePort()
        let second = try LoopbackHTTP.freePort(excluding: [first])
        try await withMachine(.embedded) { pop in
            try await pop.ok("start")
            let line = "python3 -m http.server {port} --bind 127.0.0.1"
            try await pop.ok("add", "web", "--template", "command", "--command", line, "--port", String(first))
            try await pop.ok("deploy", "web")
            // The template's TCP health check passes only once the program listens on the port.
            try await pop.ok("status", "web", "--wait", "running", "--timeout", "60")
            #expect(try LoopbackHTTP.get(port: first).status == 200)

            try await pop.ok("config", "web", "--port", String(second))
            try await pop.ok("status", "web", "--wait", "running", "--timeout", "60")
            #expect(try LoopbackHTTP.get(port: second).status == 200)
            #expect(!LoopbackHTTP.accepts(port: first), "the old instance still listens on \(first)")
            let shown = try await pop.ok("config", "web")
            #expect(shown.stdout.contains(line), "the stored command line is the one given:\n\(shown)")
        }
    }

    @Test func aCommandLineThatCannotBeExpandedIsRefusedBeforeAnythingIsWritten() async throws {
        try await withMachine(.embedded) { pop in
            try await pop.fails(2, ["add", "bad", "--template", "command", "--command", "awk {print}"], mentioning: ["{print}", "{{"])
            try await pop.fails(2, ["add", "bad", "--template", "command", "--command", "echo 'open"], mentioning: ["unterminated"])
            try await pop.ok("add", "good", "--template", "command", "--command", "sleep {port}", "--port", "100")
            try await pop.fails(2, ["config", "good", "--command", "sleep {nope}"], mentioning: ["{nope}"])
            let status = try await pop.ok("status")
            #expect(!status.stdout.contains("bad"))
        }
    }

    /// The manifest parser and the agent share one stop-signal type: a signal the parser accepts is one the agent sends.
    @Test func aTemplatesStopSignalIsTheOneTheInstanceReceives() async throws {
        let plugins = FileManager.default.temporaryDirectory.appendingPathComponent("pop-winch-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: plugins) }
        try FileManager.default.createDirectory(at: plugins.appendingPathComponent("winch"), withIntermediateDirectories: true)
        // Outside the instance folder, which undeploy removes.
        let marker = plugins.appendingPathComponent("stopped-by").path
        let manifest = #"""
            name: winch
            command: ["python3", "-c", "import signal, sys, time\ndef stop(*_):\n    open('\#(marker)', 'w').write('WINCH')\n    sys.exit(0)\nsignal.signal(signal.SIGWINCH, stop)\nopen('\#(marker)-ready', 'w').close()\nwhile True: time.sleep(1000)\n"]
            stop-signal: WINCH
            stop-timeout: 30s

            """#
        try manifest.write(to: plugins.appendingPathComponent("winch/winch.yaml"), atomically: true, encoding: .utf8)
        try await withMachine(.embedded, plugins: plugins.path) { pop in
            try await pop.ok("start")
            try await pop.ok("add", "winch", "--template", "winch")
            try await pop.ok("deploy", "winch")
            _ = try await pop.waitFor("winch") { $0.state == "running" && $0.pid != nil }
            // SIGWINCH is ignored by default: wait until the program handles it.
            #expect(try await eventually(20) { FileManager.default.fileExists(atPath: marker + "-ready") })
            try await pop.ok("undeploy", "winch")
            #expect(try await eventually(20) { FileManager.default.fileExists(atPath: marker) }, "no SIGWINCH arrived")
            #expect((try? String(contentsOfFile: marker, encoding: .utf8)) == "WINCH")
        }
    }

    @Test func servicesNeverInheritTheAgentsCredentials() async throws {
        try await withMachine(.embedded) { pop in
            let secret = "pw-" + UUID().uuidString
            try await pop.run(["start"], extraEnvironment: ["POP_AUTH": "ops:\(secret)"]).expectSuccess()
            try await pop.ok("add", "quiet", "--template", "command", "--command", "sleep 100000")
            try await pop.ok("deploy", "quiet")
            let instance = try await pop.waitFor("quiet") { $0.state == "running" && $0.pid != nil }
            let agent = try #require(pop.agentPID())
            let agentEnvironment = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(agent)/environ"))
            #expect(String(decoding: agentEnvironment, as: UTF8.self).contains(secret), "the agent itself has it")
            let environment = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(try #require(instance.pid))/environ"))
            let text = String(decoding: environment, as: UTF8.self)
            #expect(!text.contains(secret))
            #expect(!text.contains("POP_AUTH"))
            #expect(text.contains("POP_SERVICE=quiet"))
        }
    }

    @Test func instancesOutliveAZooKeeperOutageAndTheAgentReconverges() async throws {
        let server = try await ZooKeeperServer.start()
        defer { Task { await server.stop() } }
        try await withMachine(.zooKeeper, server: server) { pop in
            try await pop.ok("start")
            try await pop.ok("add", "durable", "--template", "command", "--command", "sleep 100000")
            try await pop.ok("deploy", "durable")
            let before = try await pop.waitFor("durable") { $0.state == "running" && $0.pid != nil }
            let pid = try #require(before.pid)

            // Longer than the session timeout: the session expires while ZooKeeper is away.
            await server.halt()
            try await Task.sleep(for: .seconds(12))
            #expect(isAlive(pid), "the workload is untouched while the store is unreachable")
            let unreachable = try await pop.run(["status"])
            #expect(unreachable.status == 5, "\(unreachable)")

            try await server.restart()
            let after = try await pop.waitFor("durable", within: 60) { $0.state == "running" && $0.pid != nil }
            #expect(after.pid == pid, "no needless restart after the outage")
            #expect(try await pop.statusJSON().services.first?.instances.count == 1, "no duplicate")
        }
    }
}

// MARK: - Support

/// One machine: a private POP_HOME and machine id, on one store; its agent and instances are stopped afterwards.
private func withMachine(
    _ store: AgentEndToEndTests.Store, server: ZooKeeperServer? = nil, plugins: String? = nil,
    _ body: (PopRunner) async throws -> Void
) async throws {
    var environment = ["POP_MACHINE_ID": "e2e-" + UUID().uuidString.prefix(8).lowercased()]
    if let plugins { environment["POP_PLUGIN_PATH"] = plugins }
    if store == .zooKeeper {
        let zooKeeper: ZooKeeperServer
        if let server { zooKeeper = server } else { zooKeeper = try await ZooKeeperServer.shared() }
        let chroot = "/pop-e2e-" + UUID().uuidString
        let client = try await ZooKeeperClient.connect(ZooKeeperConfiguration(connectString: zooKeeper.connectString))
        _ = try await client.create(chroot, data: [])
        await client.close()
        environment["POP_HOST"] = zooKeeper.connectString + chroot
    }
    let pop = try PopRunner(environment: environment)
    try await pop.ok("init")
    do {
        try await body(pop)
    } catch {
        await pop.tearDown()
        throw error
    }
    await pop.tearDown()
}

extension PopRunner {
    /// Stops the agent and kills every instance's process group that is left.
    func tearDown() async {
        _ = try? await run(["stop"])
        if let agent = agentPID() { kill(agent, SIGKILL) }
        for pid in instancePIDs() { kill(-pid, SIGKILL) }
        try? FileManager.default.removeItem(at: home.deletingLastPathComponent())
    }

    /// The pid in this machine's agent pid file, if an agent is running.
    func agentPID() -> Int32? {
        guard let machine = environment["POP_MACHINE_ID"],
            let text = try? String(contentsOfFile: home.path + "/machines/\(machine)/agent.pid", encoding: .utf8),
            let pid = Int32(text.split(separator: "\n").first.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? "")
        else { return nil }
        return isAlive(pid) ? pid : nil
    }

    /// Every pid named by a local instance record on this machine.
    func instancePIDs() -> [Int32] {
        guard let machine = environment["POP_MACHINE_ID"] else { return [] }
        let folder = home.path + "/machines/\(machine)/instances"
        let services = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return services.compactMap { service in
            let stateFolder = folder + "/\(service)/.pop"
            for file in (try? FileManager.default.contentsOfDirectory(atPath: stateFolder)) ?? [] {
                guard let data = FileManager.default.contents(atPath: stateFolder + "/" + file),
                    let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                    let pid = object["pid"] as? Int
                else { continue }
                return Int32(pid)
            }
            return nil
        }
    }

    /// `pop status --json`, decoded.
    func statusJSON() async throws -> StatusJSON {
        let result = try await run(["status", "--json"])
        guard result.status == 0 else { throw PopFailure(result: result) }
        return try JSONDecoder().decode(StatusJSON.self, from: Data(result.stdout.utf8))
    }

    /// The instance of `service` on this machine, as `pop status --json` shows it.
    func instance(_ service: String) async throws -> StatusJSON.Instance? {
        try await statusJSON().services.first { $0.service == service }?.instances.first
    }

    /// Waits (bounded; the agent has no "tell me when" for tests) until the instance satisfies `condition`.
    func waitFor(
        _ service: String, within seconds: Double = 20, _ condition: (StatusJSON.Instance) -> Bool
    ) async throws -> StatusJSON.Instance {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var last: StatusJSON.Instance?
        while ContinuousClock.now < deadline {
            if let instance = try? await self.instance(service) {
                last = instance
                if condition(instance) { return instance }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw PopFailure(message: "\(service) did not reach the expected state within \(seconds) s; last seen: \(String(describing: last))")
    }
}

/// The parts of `pop status --json` these tests read.
struct StatusJSON: Decodable {
    struct Instance: Decodable, CustomStringConvertible {
        var machine: String
        var machineUp: Bool
        var state: String
        var pid: Int32?
        var signature: String?
        var restarts: Int?
        var lastError: String?

        var description: String { "\(state) pid \(pid.map(String.init) ?? "-") restarts \(restarts ?? 0) error \(lastError ?? "-")" }
    }

    struct Service: Decodable {
        var service: String
        var signature: String
        var instances: [Instance]
    }

    var services: [Service]
}

extension PopResult {
    /// Throws unless the command exited 0.
    func expectSuccess() throws {
        guard status == 0 else { throw PopFailure(result: self) }
    }
}

struct PopFailure: Error, CustomStringConvertible {
    var message: String
    init(message: String) { self.message = message }
    init(result: PopResult) { self.message = "pop failed: \(result)" }
    var description: String { message }
}

/// Whether `pid` names a live process (not a zombie).
func isAlive(_ pid: Int32) -> Bool {
    guard kill(pid, 0) == 0 else { return false }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return false }
    return stat[stat.index(after: close)...].split(separator: " ").first != "Z"
}

/// The pids whose process group is `group` (from /proc).
func processGroupMembers(_ group: Int32) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { pid in
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state, ppid, pgrp. A zombie is already dead.
        return fields.count > 2 && fields[0] != "Z" && Int32(fields[2]) == group
    }
}

/// Checks `condition` until it holds, for at most `seconds`.
func eventually(_ seconds: Double = 10, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}
