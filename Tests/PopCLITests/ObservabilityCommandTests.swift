import Foundation
import PopState
import PopTestExpectations
import PopTestSupport
import TestProcesses
import Testing
import ZooKeeperTestSupport

/// `pop logs`, `pop events`, and the resource columns of `pop status`, through the real binary on each store.
@Suite(.timeLimit(.minutes(5)))
struct ObservabilityCommandTests {
    /// A counter printed every 10 ms, one line in ten also on standard error.
    static let counter = "python3 -u -c \"import sys, time\ni = 0\nwhile True:\n    i += 1\n    print('count', i, flush=True)\n    if i % 10 == 0: print('tenth', i, file=sys.stderr, flush=True)\n    time.sleep(0.01)\n\""

    @Test(arguments: StoreKind.allCases)
    func badInputIsRefusedWithItsExitCode(_ kind: StoreKind) async throws {
        try await CLIFixture.with(kind) { fixture in
            let pop = fixture.pop
            try await pop.ok("add", "web", "--template", "command", "--command", "sleep 1000")
            try await pop.ok("deploy", "web")
            try await pop.fails(3, ["logs", "nosuch"], mentioning: ["no service named 'nosuch'"])
            try await pop.fails(3, ["logs", "web", "--machine", "elsewhere"], mentioning: ["not deployed on machine elsewhere"])
            try await pop.fails(2, ["logs", "web", "--since", "yesterday"], mentioning: ["--since", "duration"])
            try await pop.fails(2, ["logs", "web", "--grep", "(unclosed"], mentioning: ["regular expression"])
            try await pop.fails(2, ["logs", "web", "-n", "-3"])
            try await pop.fails(3, ["events", "nosuch"], mentioning: ["no service named 'nosuch'"])
            try await pop.fails(2, ["events", "--since", "10 parsecs"], mentioning: ["--since"])
            try await pop.fails(3, ["events", "--machine", "elsewhere"], mentioning: ["elsewhere"])
            // The agent's endpoint: an address that is not one, TLS half given, and on the embedded store a
            // non-loopback address; no agent starts.
            try await pop.fails(2, ["fg", "--listen", "nowhere:port"], mentioning: ["--listen", "HOST:PORT"])
            try await pop.fails(2, ["fg", "--tls-cert", "/nonexistent.pem"], mentioning: ["--tls-key"])
            // A session timeout outside what pop accepts; no agent starts.
            try await pop.fails(2, ["fg", "--session-timeout", "2"], mentioning: ["--session-timeout", "4...120"])
            try await pop.fails(2, ["start", "--session-timeout", "600"], mentioning: ["--session-timeout", "4...120"])
            if kind == .embedded {
                try await pop.fails(2, ["fg", "--listen", "0.0.0.0:7999"], mentioning: ["loopback"])
            }
            // Nothing was written by the refused commands.
            let status = try await pop.statusReport()
            #expect(status.services.map(\.service) == ["web"])
        }
    }

    @Test func logsEventsAndResourcesOnTheEmbeddedStore() async throws {
        try await CLIFixture.with(.embedded) { fixture in
            let pop = fixture.pop
            let machine = fixture.localMachine
            try await pop.ok("add", "counter", "--template", "command", "--command", Self.counter)
            try await pop.ok("start")
            try await pop.ok("deploy", "counter")
            try await pop.ok("status", "counter", "--wait", "running", "--timeout", "60")
            let logsFolder = pop.home.path + "/machines/\(machine)/instances/counter/logs"
            #expect(await Waiting.file(logsFolder + "/stderr.log", contains: "tenth 20", within: .seconds(30)))

            // The last lines of the instance, both streams merged, each with its machine and stream.
            let tail = try await pop.ok("logs", "counter", "-n", "4")
            let lines = tail.stdout.split(separator: "\n")
            #expect(lines.count == 4, "\(tail)")
            #expect(lines.allSatisfy { $0.hasPrefix("\(machine) out| count ") || $0.hasPrefix("\(machine) err| tenth ") }, "\(tail)")
            let json = try await pop.ok("logs", "counter", "-n", "30", "--json")
            let objects = try json.stdout.split(separator: "\n").map { try JournalOutput.decode(String($0)) }
            #expect(objects.count == 30 && objects.allSatisfy { $0.machine == machine && $0.service == "counter" })
            #expect(objects.contains { $0.stream == "stderr" } && objects.contains { $0.stream == "stdout" })
            let times = objects.compactMap(\.nanoseconds)
            #expect(times.count == 30 && times == times.sorted(), "in time order")
            let stdout = objects.filter { $0.stream == "stdout" }
            #expect(zip(stdout, stdout.dropFirst()).allSatisfy { $1.seq == $0.seq! + 1 }, "consecutive numbers")
            let grep = try await pop.ok("logs", "counter", "--grep", "^tenth [0-9]*0$", "-n", "1000")
            #expect(grep.stdout.split(separator: "\n").allSatisfy { $0.hasPrefix("\(machine) err| tenth ") }, "\(grep)")

            // A deliberate restart, as the events and the status tell it.
            try await pop.ok("restart", "counter")
            let restarted = try await pop.run(["status", "counter", "--json", "--wait", "running", "--timeout", "60"])
            #expect(restarted.status == 0, "\(restarted)")
            let events = try await pop.ok("events", "counter", "--json")
            let kinds = try events.stdout.split(separator: "\n").map { try JournalOutput.decode(String($0)) }
            #expect(kinds.contains { $0.kind == "started" }, "\(events)")
            #expect(kinds.contains { $0.kind == "restarted" && $0.reason == "manual" }, "\(events)")
            let agentEvents = try await pop.ok("events", "--json")
            #expect(agentEvents.stdout.contains("\"agent-started\""), "\(agentEvents)")
            let report = try await pop.statusReport(["counter"])
            let row = try #require(report.service("counter")?.instances.first)
            #expect(row.lastRestart == "manual", "\(row)")
            #expect((row.memoryBytes ?? 0) > 1_000_000, "\(row)")
            #expect(row.cpuPercent != nil, "\(row)")
            let table = try await pop.ok("status", "counter")
            #expect(table.stdout.contains("CPU") && table.stdout.contains("MEM") && table.stdout.contains("(manual)"), "\(table)")

            // Following: new lines arrive, and the command ends when interrupted.
            let follower = try ChildProcess(
                [try PopRunner.binary(), "logs", "counter", "-f", "-n", "0"], environment: pop.processEnvironment(),
                stdout: .lines, stderr: .discard)
            var seen = 0
            for await line in follower.lines! where line.contains(" out| count ") {
                seen += 1
                if seen == 20 { break }
            }
            follower.signal(SIGINT)
            #expect(await follower.waitForExit(timeout: .seconds(10)) != nil, "pop logs -f ends on SIGINT")
            #expect(seen == 20)
        }
    }

    /// A follow needs its store session. Once that session has ended for good (here it expires while ZooKeeper
    /// cannot be reached), `pop logs -f` exits 5 and says so, instead of following nothing forever. The agent reaches
    /// ZooKeeper directly; the follower through a proxy that stops forwarding.
    @Test func aFollowEndsWithExit5WhenItsZooKeeperSessionExpires() async throws {
        let server = try await ZooKeeperServer.shared()
        let proxy = try await ZooKeeperTestProxy.start(forwardingTo: server.host, port: server.clientPort)
        let direct = try await CLIFixture.chroot("follow-expiry")
        let chroot = String(direct[try #require(direct.firstIndex(of: "/"))...])
        let pop = try PopRunner(environment: ["POP_MACHINE_ID": "m1", "POP_HOST": direct])
        let stderr = pop.home.appendingPathComponent("follower.stderr")
        do {
            try await pop.withAgentStoppedAfterwards {
                try await pop.ok("init")
                try await pop.ok("start")
                try await pop.ok("add", "counter", "--template", "command", "--command", Self.counter)
                try await pop.ok("deploy", "counter")
                let follower = try ChildProcess(
                    [try PopRunner.binary(), "logs", "counter", "-f", "-n", "0"],
                    environment: pop.processEnvironment(["POP_HOST": proxy.connectString + chroot]),
                    stdout: .lines, stderr: .file(stderr, truncate: true))
                // Following: lines arrive through the agent's endpoint.
                var seen = 0
                for await line in follower.lines! where line.contains(" out| count ") {
                    seen += 1
                    if seen == 3 { break }
                }
                #expect(seen == 3)
                // A witness session through the same proxy, with pop's session timeout and touched after the
                // follower's last request: once the server has expired it (its ephemeral node is deleted), it has
                // expired the follower's too. Then ZooKeeper is reachable again, and tells the follower.
                let witness = try await ZooKeeperStore.open(
                    servers: [.init(host: "127.0.0.1", port: proxy.port)], chroot: chroot, logger: quietLogger)
                let observer = try await ZooKeeperStore.open(
                    servers: [.init(host: server.host, port: server.clientPort)], chroot: chroot, logger: quietLogger)
                _ = try await witness.create("/witness", data: [], mode: .ephemeral)
                let (stat, gone) = try await observer.existsAndWatch("/witness")
                #expect(stat != nil)
                _ = try await witness.exists("/witness")
                proxy.setMode(.blackhole)
                #expect(try await gone.event().kind == .deleted)
                proxy.setMode(.forwarding)
                await observer.close()
                await witness.close()
                let status = await follower.waitForExit(timeout: .seconds(60))
                let message = (try? String(contentsOf: stderr, encoding: .utf8)) ?? ""
                if status == nil { await follower.stop() }
                #expect(status == 5, "exit \(String(describing: status)): \(message)")
                #expect(message.contains("session") && (message.contains("expired") || message.contains("ended")), "\(message)")
                #expect(!message.contains("Fatal error"), "\(message)")
            }
        } catch {
            await proxy.stop()
            throw error
        }
        await proxy.stop()
        pop.removeFolder()
    }
}
