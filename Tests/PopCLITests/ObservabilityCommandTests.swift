import Foundation
import PopState
import PopTestExpectations
import PopTestSupport
import TestProcesses
import Testing

/// `pop logs`, `pop events`, and the resource columns of `pop status`, through the real binary on each store.
@Suite(.timeLimit(.minutes(3)))
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
}
