import Foundation
import PopState
import PopTestExpectations
import PopTestSupport
import Testing
import ZooKeeperNIO
import ZooKeeperTestSupport

#if canImport(Glibc)
import Glibc
import TestProcesses
#endif

/// The machine agent end to end: the real `pop` binary, a real agent started with `pop start`, real processes, on the
/// embedded store and on a real ZooKeeper server.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct AgentEndToEndTests {
    enum Store: String, CaseIterable, CustomStringConvertible {
        case embedded, zooKeeper
        var description: String { rawValue }
    }

    @Test(arguments: Store.allCases)
    func deployBeforeStartThenKillNineRestartsWithANewPID(_ store: Store) async throws {
        try await withMachine(store) { machine in
            let pop = machine.pop
            try await pop.ok("add", "sleeper", "--template", "command", "--command", "sleep 100000")
            try await pop.ok("deploy", "sleeper")
            #expect(try await machine.instance("sleeper")?.state == "unknown", "no agent yet: the machine is down")
            try await pop.ok("start")
            let first = try await machine.waitFor("sleeper") { $0.state == "running" && $0.pid != nil }
            let pid = try #require(first.pid)
            #expect(Processes.isAlive(pid), "the process the record names exists")

            kill(pid, SIGKILL)
            let second = try await machine.waitFor("sleeper") { $0.state == "running" && $0.pid != nil && $0.pid != pid }
            #expect(second.restarts == 1, "\(second)")
            #expect(Processes.isAlive(try #require(second.pid)))
        }
    }

    @Test(arguments: Store.allCases)
    func aCrashLoopBacksOffThenTurnsFatalUntilRestarted(_ store: Store) async throws {
        try await withMachine(store) { machine in
            let pop = machine.pop
            try await pop.ok("start")
            try await pop.ok("add", "crasher", "--template", "command", "--command", "false")
            try await pop.ok("deploy", "crasher")
            let fatal = try await machine.waitFor("crasher", within: 30) { $0.state == "fatal" }
            #expect(fatal.lastError?.contains("status 1") == true, "\(fatal)")
            #expect((fatal.restarts ?? 0) >= 3, "\(fatal)")
            // `status --wait running` gives up at once on a fatal instance rather than waiting out its timeout.
            let wait = try await pop.run(["status", "crasher", "--wait", "running", "--timeout", "60"])
            #expect(wait.status == 1)
            #expect(wait.stderr.contains("fatal"))
            #expect(wait.elapsed < .seconds(30), "it waited out its timeout: \(wait)")

            try await pop.ok("restart", "crasher")
            // The instance starts afresh: a state other than fatal, or (its crash loop having run its course between
            // two reads on a loaded machine) fatal again since a later moment.
            let fatalSince = try #require(fatal.since)
            _ = try await machine.waitFor("crasher") { $0.state != "fatal" || ($0.since.map { $0 > fatalSince } ?? false) }
        }
    }

    @Test(arguments: Store.allCases)
    func aConfigChangeRestartsWithTheNewSignatureAndUndeployKillsTheWholeGroup(_ store: Store) async throws {
        try await withMachine(store) { machine in
            let pop = machine.pop
            try await pop.ok("start")
            // A workload with a grandchild in the background, to check that stop reaches the whole group. It touches a
            // marker once the background child is forked, so the test knows the whole group exists.
            let started = { (n: Int) in pop.scratch.appendingPathComponent("family-\(n)").path }
            try await pop.ok(
                "add", "family", "--template", "command", "--command", "sh -c 'sleep 100000 & touch \(started(1)); sleep 100001'")
            try await pop.ok("deploy", "family")
            let before = try await machine.waitFor("family") { $0.state == "running" && $0.pid != nil }
            let oldPID = try #require(before.pid)
            #expect(await FileArrival.wait(for: started(1), timeout: .seconds(30)))
            let oldGroup = Processes.groupMembers(oldPID)
            #expect(oldGroup.count >= 2, "sh and its background sleep: \(oldGroup)")

            try await pop.ok("config", "family", "--command", "sh -c 'sleep 100002 & touch \(started(2)); sleep 100003'")
            let after = try await machine.waitFor("family") {
                $0.state == "running" && $0.pid != nil && $0.pid != oldPID && $0.signature != before.signature
            }
            #expect(await Processes.waitForExit(oldGroup, timeout: .seconds(30)), "the old group is gone")
            let newPID = try #require(after.pid)
            let service = try await pop.statusReport().service("family")
            #expect(after.signature == service?.signature, "the instance runs the service's current signature")
            #expect(await FileArrival.wait(for: started(2), timeout: .seconds(30)))
            let newGroup = Processes.groupMembers(newPID)
            #expect(newGroup.count >= 2, "\(newGroup)")

            try await pop.ok("undeploy", "family")
            #expect(await Processes.waitForExit(newGroup, timeout: .seconds(30)), "grandchildren included")
            #expect(try await pop.statusReport().service("family")?.instances.isEmpty == true)
        }
    }

    @Test(arguments: Store.allCases)
    func anAgentKilledWithSIGKILLIsReplacedAndAdoptsItsProcesses(_ store: Store) async throws {
        try await withMachine(store) { machine in
            let pop = machine.pop
            try await pop.ok("start")
            try await pop.ok("add", "steady", "--template", "command", "--command", "sleep 100000")
            try await pop.ok("deploy", "steady")
            let before = try await machine.waitFor("steady") { $0.state == "running" && $0.pid != nil }
            let agent = try #require(pop.agentPID())
            kill(agent, SIGKILL)
            // Dead, or a zombie: in a test process that is a child subreaper, the orphaned agent is reparented to it.
            #expect(await Processes.waitForExit([agent], timeout: .seconds(30)))
            #expect(Processes.isAlive(try #require(before.pid)), "the instance outlives its agent")

            try await pop.ok("start")
            let after = try await machine.waitFor("steady") { $0.state == "running" && $0.pid != nil }
            #expect(after.pid == before.pid, "adopted, not restarted")
            #expect(after.restarts == 0)
        }
    }

    /// `{port}` in a command line given with `--command` is the service's port: `pop config --port` moves a program
    /// that takes its port as an argument.
    @Test func theCommandTemplatesPortReachesTheCommandLineAndConfigMovesIt() async throws {
        let first = try LoopbackHTTP.freePort()
        let second = try LoopbackHTTP.freePort(excluding: [first])
        try await withMachine(.embedded) { machine in
            let pop = machine.pop
            try await pop.ok("start")
            let line = "python3 -m http.server {port} --bind 127.0.0.1"
            try await pop.ok("add", "web", "--template", "command", "--command", line, "--port", String(first))
            try await pop.ok("deploy", "web")
            // The template's TCP health check passes only once the program listens on the port.
            try await pop.ok("status", "web", "--wait", "running", "--timeout", "60")
            #expect(try await LoopbackHTTP.get(port: first).status == 200)

            try await pop.ok("config", "web", "--port", String(second))
            try await pop.ok("status", "web", "--wait", "running", "--timeout", "60")
            #expect(try await LoopbackHTTP.get(port: second).status == 200)
            #expect(!LoopbackHTTP.accepts(port: first), "the old instance still listens on \(first)")
            let shown = try await pop.ok("config", "web")
            #expect(shown.stdout.contains(line), "the stored command line is the one given:\n\(shown)")
        }
    }

    @Test func aCommandLineThatCannotBeExpandedIsRefusedBeforeAnythingIsWritten() async throws {
        try await withMachine(.embedded) { machine in
            let pop = machine.pop
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
        try await withMachine(.embedded, plugins: plugins.path) { machine in
            let pop = machine.pop
            try await pop.ok("start")
            try await pop.ok("add", "winch", "--template", "winch")
            try await pop.ok("deploy", "winch")
            _ = try await machine.waitFor("winch") { $0.state == "running" && $0.pid != nil }
            // SIGWINCH is ignored by default: wait until the program handles it.
            #expect(await FileArrival.wait(for: marker + "-ready", timeout: .seconds(30)))
            try await pop.ok("undeploy", "winch")
            #expect(await FileArrival.wait(for: marker, timeout: .seconds(30)), "no SIGWINCH arrived")
            #expect((try? String(contentsOfFile: marker, encoding: .utf8)) == "WINCH")
        }
    }

    @Test func servicesNeverInheritTheAgentsCredentials() async throws {
        try await withMachine(.embedded) { machine in
            let pop = machine.pop
            let secret = "pw-" + UUID().uuidString
            try await pop.run(["start"], extraEnvironment: ["POP_AUTH": "ops:\(secret)"]).check()
            try await pop.ok("add", "quiet", "--template", "command", "--command", "sleep 100000")
            try await pop.ok("deploy", "quiet")
            let instance = try await machine.waitFor("quiet") { $0.state == "running" && $0.pid != nil }
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
        try await withServer { server in try await withMachine(.zooKeeper, server: server) { machine in
            let pop = machine.pop
            try await pop.ok("start")
            try await pop.ok("add", "durable", "--template", "command", "--command", "sleep 100000")
            try await pop.ok("deploy", "durable")
            let before = try await machine.waitFor("durable") { $0.state == "running" && $0.pid != nil }
            let pid = try #require(before.pid)

            // Longer than the session timeout: the session expires while ZooKeeper is away.
            await server.halt()
            try await Task.sleep(for: .seconds(12))
            #expect(Processes.isAlive(pid), "the workload is untouched while the store is unreachable")
            let unreachable = try await pop.run(["status"])
            #expect(unreachable.status == 5, "\(unreachable)")

            try await server.restart()
            let after = try await machine.waitFor("durable", within: 60) { $0.state == "running" && $0.pid != nil }
            #expect(after.pid == pid, "no needless restart after the outage")
            #expect(try await pop.statusReport().services.first?.instances.count == 1, "no duplicate")
        } }
    }
}

// MARK: - Watches

extension AgentEndToEndTests {
    /// An agent's watches on the ZooKeeper server grow with what is placed on its machine, not with the namespace:
    /// services placed on other machines add none, and one more service placed here adds two (its spec, and this
    /// machine's placement with its instance record). The agent's session also holds its scheduler's watches; this
    /// one agent is the elected scheduler, whose watches (the `facts` subtree, the `services` and `machines` nodes,
    /// and each service's `scheduling` node: docs/agent.md, The scheduler) are set as it reads, so they are only
    /// checked to be no others.
    @Test func anAgentsServerWatchesGrowOnlyWithItsOwnServices() async throws {
        try await withServer { server in try await withMachine(.zooKeeper, server: server) { machine in
            let pop = machine.pop
            let id = try #require(pop.machine)
            let host = try #require(pop.environment["POP_HOST"])
            let chroot = String(host[try #require(host.firstIndex(of: "/"))...])
            try await pop.ok("start")
            for name in ["s0", "s1"] {
                try await pop.ok("add", name, "--template", "command", "--command", "sleep 100000")
            }
            try await pop.ok("deploy", "s0")
            _ = try await machine.waitFor("s0") { $0.state == "running" && $0.pid != nil }
            @Sendable func leader(_ services: [String]) -> Set<String> {
                Set(["/pop/facts", "/pop/services", "/pop/machines"] + services.map { "/pop/services/\($0)/scheduling" })
            }
            @Sendable func isLeaders(_ path: String) -> Bool {
                path == "/pop/facts" || path == "/pop/services" || path.hasSuffix("/scheduling")
            }
            let first = try await agentWatches(server, chroot: chroot, machine: id)
            let own: Set<String> = [
                "/pop/assignments/\(id)", "/pop/machines", "/pop/machines/\(id)", "/pop/services/s0",
                "/pop/services/s0/machines/\(id)",
            ]
            #expect(first.filter { !isLeaders($0) } == own)
            #expect(first.isSubset(of: own.union(leader(["s0", "s1"]))), "\(first.subtracting(own))")

            // Thirty services placed on other machines, then one more here, whose instance running is the sentinel:
            // the agent has seen every change before it.
            for index in 1...30 {
                try await pop.ok("add", "e\(index)", "--template", "command", "--command", "sleep 100000")
                try await pop.ok("deploy", "e\(index)", "elsewhere-\(index % 3)")
            }
            try await pop.ok("deploy", "s1")
            _ = try await machine.waitFor("s1") { $0.state == "running" && $0.pid != nil }
            let second = try await agentWatches(server, chroot: chroot, machine: id)
            let ownNow = own.union(["/pop/services/s1", "/pop/services/s1/machines/\(id)"])
            #expect(second.filter { !isLeaders($0) } == ownNow)
            #expect(
                second.isSubset(of: ownNow.union(leader(["s0", "s1"] + (1...30).map { "e\($0)" }))),
                "\(second.subtracting(ownNow))")
        } }
    }

    /// The paths the server watches for the session that watches this machine's registration (the agent's), with
    /// the chroot taken off.
    func agentWatches(_ server: ZooKeeperServer, chroot: String, machine: String) async throws -> Set<String> {
        let sessions = try await zooKeeperWatches(host: server.host, port: server.clientPort).mapValues { paths in
            Set(paths.filter { $0.hasPrefix(chroot + "/") }.map { String($0.dropFirst(chroot.count)) })
        }
        let agents = sessions.values.filter { $0.contains("/pop/machines/\(machine)") }
        try #require(agents.count == 1, "one session watches the machine's registration: \(sessions)")
        return agents[0]
    }
}

// MARK: - Support

/// One machine: a private POP_HOME and machine id on one store.
struct AgentMachine {
    let pop: PopRunner

    /// Waits on watches of a store session of the test's own until the instance of `service` satisfies `condition`.
    func waitFor(
        _ service: String, within seconds: Double = 30, _ condition: @escaping @Sendable (StatusReport.Instance) -> Bool
    ) async throws -> StatusReport.Instance {
        try await pop.withNamespace { try await $0.waitFor(service, within: seconds, condition) }
    }

    /// The instance of `service` on this machine, as `pop status --json` shows it.
    func instance(_ service: String) async throws -> StatusReport.Instance? {
        try await pop.statusReport().service(service)?.instances.first
    }
}

/// Runs `body` on one machine; its agent and instances are stopped, and its sessions closed, before this returns.
private func withMachine(
    _ store: AgentEndToEndTests.Store, server: ZooKeeperServer? = nil, plugins: String? = nil,
    _ body: (AgentMachine) async throws -> Void
) async throws {
    var environment = ["POP_MACHINE_ID": "e2e-" + UUID().uuidString.prefix(8).lowercased()]
    if let plugins { environment["POP_PLUGIN_PATH"] = plugins }
    if store == .zooKeeper {
        environment["POP_HOST"] = try await CLIFixture.chroot("pop-e2e", on: server)
    }
    let pop = try PopRunner(label: "e2e", environment: environment)
    try await pop.withAgentStoppedAfterwards {
        try await pop.ok("init")
        try await body(AgentMachine(pop: pop))
    }
}

/// Runs `body` with a ZooKeeper server of its own, stopped before this returns.
private func withServer(_ body: (ZooKeeperServer) async throws -> Void) async throws {
    let server = try await ZooKeeperServer.start()
    do {
        try await body(server)
    } catch {
        await server.stop()
        throw error
    }
    await server.stop()
}
