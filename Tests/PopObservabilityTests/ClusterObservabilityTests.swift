import Foundation
import PopState
import PopTestSupport
import TestProcesses
import Testing

/// The fleet watched from the root namespace of a netns cluster: the real `pop` binary, agents in their own namespaces,
/// a ZooKeeper ensemble, a real Prometheus server.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct ClusterObservabilityTests {
    /// A counter printed every 10 ms: `N` on each line.
    static let counter = "python3 -u -c \"import time\ni = 0\nwhile True:\n    i += 1\n    print(i, flush=True)\n    time.sleep(0.01)\n\""

    /// What `pop logs -f --json` printed so far, read as it comes.
    final class Transcript: @unchecked Sendable {
        private let lock = NSLock()
        private var outputs: [JournalOutput] = []
        private var waiters: [Int: (condition: @Sendable ([JournalOutput]) -> Bool, continuation: CheckedContinuation<Bool, Never>)] = [:]
        private var nextWaiter = 0
        private var ended = false

        var all: [JournalOutput] { lock.withLock { outputs } }

        func add(_ output: JournalOutput) {
            let ready = lock.withLock { () -> [CheckedContinuation<Bool, Never>] in
                outputs.append(output)
                let ready = waiters.filter { $0.value.condition(outputs) }
                for key in ready.keys { waiters[key] = nil }
                return ready.values.map(\.continuation)
            }
            for continuation in ready { continuation.resume(returning: true) }
        }

        func finish() {
            let waiting = lock.withLock { () -> [CheckedContinuation<Bool, Never>] in
                ended = true
                defer { waiters = [:] }
                return waiters.values.map(\.continuation)
            }
            for continuation in waiting { continuation.resume(returning: false) }
        }

        /// Waits until what was printed satisfies `condition`; false when the output ended or `limit` passed first.
        func wait(within limit: Duration = .seconds(60), _ condition: @escaping @Sendable ([JournalOutput]) -> Bool) async -> Bool {
            await withTaskGroup(of: Bool.self) { group in
                group.addTask { await self.waitForever(condition) }
                group.addTask {
                    try? await Task.sleep(for: limit)
                    return false
                }
                let result = await group.next() ?? false
                group.cancelAll()
                return result
            }
        }

        private func waitForever(_ condition: @escaping @Sendable ([JournalOutput]) -> Bool) async -> Bool {
            let id = lock.withLock { () -> Int in
                nextWaiter += 1
                return nextWaiter
            }
            return await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let done: Bool? = lock.withLock {
                        if condition(outputs) { return true }
                        if ended || Task.isCancelled { return false }
                        waiters[id] = (condition, continuation)
                        return nil
                    }
                    if let done { continuation.resume(returning: done) }
                }
            } onCancel: {
                let waiter = lock.withLock { waiters.removeValue(forKey: id) }
                waiter?.continuation.resume(returning: false)
            }
        }
    }

    /// The counter values printed for `machine`, in order.
    static func counters(_ outputs: [JournalOutput], _ machine: String) -> [Int] {
        outputs.filter { $0.machine == machine && $0.line != nil }.compactMap { Int($0.line!) }
    }

    static func markers(_ outputs: [JournalOutput], _ machine: String) -> [String] {
        outputs.filter { $0.machine == machine }.compactMap(\.marker)
    }

    @Test("pop logs -f from the root namespace: 3 machines in time order, an agent killed for 5 s resumes with no gap and no duplicate, a 4th machine joins")
    func followTheFleet() async throws {
        var options = Cluster.Options()
        options.machines = 4
        try await withCluster(options) { cluster in
            let first = Array(cluster.machines.prefix(3))
            for machine in first { try await machine.startAgent() }
            try await cluster.popOK(["add", "counter", "--template", "command", "--command", Self.counter])
            try await cluster.popOK(["deploy", "counter"] + first.map(\.id))
            try await cluster.popOK(["status", "counter", "--wait", "running", "--timeout", "120"], timeout: .seconds(180))

            let transcript = Transcript()
            let follower = try ChildProcess(
                cluster.operatorMachine.argv([cluster.popBinary, "logs", "counter", "-f", "-n", "5", "--json"]),
                environment: CommandRunner.baseEnvironment(), stdout: .lines,
                stderr: .file(cluster.folder.appendingPathComponent("follower.err")))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await line in follower.lines! {
                        if let output = try? JournalOutput.decode(line) { transcript.add(output) }
                    }
                    transcript.finish()
                }
                defer { follower.signalGroup(SIGKILL) }

                // All three machines, merged in time order.
                #expect(await transcript.wait { outputs in first.allSatisfy { Self.counters(outputs, $0.id).count >= 100 } })
                let merged = transcript.all.filter { $0.line != nil }
                let times = merged.compactMap(\.nanoseconds)
                #expect(times == times.sorted(), "lines in time order")

                // m2's agent is killed; its instance keeps writing. A marker, then (after 5 s) it is back.
                let m2 = cluster.machines[1]
                let before = Self.counters(transcript.all, "m2").last ?? 0
                await m2.agent?.crash()
                #expect(await transcript.wait { Self.markers($0, "m2").contains("unreachable") }, "a marker when m2 is unreachable")
                try await Task.sleep(for: .seconds(5))
                try await m2.startAgent()
                #expect(await transcript.wait { Self.markers($0, "m2").contains("back") }, "a marker when m2 is back")
                // Its lines resume: past what it wrote while its agent was away.
                #expect(await transcript.wait { (Self.counters($0, "m2").last ?? 0) > before + 700 })

                // A 4th machine joins while following.
                let m4 = cluster.machines[3]
                try await m4.startAgent()
                try await cluster.popOK(["deploy", "counter", "m4"])
                #expect(await transcript.wait { Self.counters($0, "m4").count >= 50 }, "m4's lines join the stream")
                #expect(Self.markers(transcript.all, "m4").contains("joined"))

                follower.signal(SIGINT)
                _ = await follower.waitForExit(timeout: .seconds(10))
                group.cancelAll()
            }

            let outputs = transcript.all
            for machine in ["m1", "m2", "m3", "m4"] {
                let values = Self.counters(outputs, machine)
                #expect(!values.isEmpty, "\(machine) printed lines")
                // No gap and no duplicate: each counter value exactly once, in order, from the first one printed.
                #expect(values == Array((values.first ?? 0)..<((values.first ?? 0) + values.count)), "\(machine): \(Self.gaps(values))")
                let seqs = outputs.filter { $0.machine == machine && $0.stream == "stdout" }.compactMap(\.seq)
                #expect(seqs == Array((seqs.first ?? 0)..<((seqs.first ?? 0) + UInt64(seqs.count))), "\(machine)'s line numbers")
            }
            // The markers came in order: unreachable, then back.
            #expect(Self.markers(outputs, "m2").filter { $0 != "gap" } == ["unreachable", "back"], "\(Self.markers(outputs, "m2"))")
        }
    }

    /// Follows the counter's logs until every machine of `cluster` printed a line; false when the command ended first
    /// (the suite's time limit ends a follow that never sees them).
    static func followUntilEveryMachineWrote(_ cluster: Cluster, environment: [(String, String)]) async throws -> Bool {
        let follower = try ChildProcess(
            cluster.operatorMachine.argv([cluster.popBinary, "logs", "counter", "-f", "-n", "1"], environment: environment),
            environment: CommandRunner.baseEnvironment(), stdout: .lines, stderr: .discard)
        defer { follower.signalGroup(SIGKILL) }
        var waiting = Set(cluster.machines.map(\.id))
        for await line in follower.lines! {
            waiting = waiting.filter { !line.hasPrefix("\($0) out| ") }
            if waiting.isEmpty { return true }
        }
        return false
    }

    /// Where `values` skips or repeats, for a failure message.
    static func gaps(_ values: [Int]) -> String {
        zip(values, values.dropFirst()).filter { $1 != $0 + 1 }.prefix(10).map { "\($0)→\($1)" }.joined(separator: ", ")
    }

    @Test("a protected namespace: wrong credentials get 401 from every agent and the command line exits 7; Prometheus scrapes every machine with basic_auth")
    func protectedNamespaceAndPrometheus() async throws {
        var options = Cluster.Options()
        options.initialize = false
        try await withCluster(options) { cluster in
            let credentials = [("POP_AUTH", "ops:correct-horse-battery")]
            try await cluster.machines[0].popOK(["init", "--auth", "ops"], environment: credentials)
            for machine in cluster.machines { try await machine.startAgent(environment: credentials) }
            try await cluster.popOK(["add", "counter", "--template", "command", "--command", Self.counter], environment: credentials)
            try await cluster.popOK(["deploy", "counter"] + cluster.machines.map(\.id), environment: credentials)
            try await cluster.popOK(["status", "counter", "--wait", "running", "--timeout", "120"], environment: credentials, timeout: .seconds(180))

            // With the namespace's credentials: lines of all three machines (once each has written some).
            #expect(
                try await Self.followUntilEveryMachineWrote(cluster, environment: credentials),
                "pop logs -f showed a line of every machine")
            let logs = try await cluster.popOK(["logs", "counter", "-n", "3"], environment: credentials)
            for machine in cluster.machines { #expect(logs.stdout.contains("\(machine.id) out| "), "\(logs)") }
            // With wrong ones: refused, exit 7, and no secret in what it printed.
            let wrong = try await cluster.pop(["logs", "counter"], environment: [("POP_AUTH", "ops:wrong-password")])
            #expect(wrong.status == PopExitCode.permissionDenied.rawValue, "\(wrong)")
            #expect(!wrong.stdout.contains("correct-horse") && !wrong.stderr.contains("correct-horse"))

            // Each agent's endpoint: strangers get 401 with nothing to learn; the password opens /metrics, which
            // promtool accepts.
            let records = try StatusReport.decode(try await cluster.popOK(["status", "--json"], environment: credentials).stdout)
            #expect(records.machinesUp == ["m1", "m2", "m3"])
            let password = "Basic " + Data("ops:correct-horse-battery".utf8).base64EncodedString()
            for machine in cluster.machines {
                for headers in [[:], ["Authorization": "Basic " + Data("ops:wrong".utf8).base64EncodedString()], ["Authorization": password]] {
                    let response = try await RawHTTP.get(host: machine.address, port: 7676, target: "/logs?service=counter&streams=stdout", headers: headers)
                    #expect(response.status == 401 && response.body == "unauthorized\n", "\(machine.id) \(headers): \(response)")
                }
                let metrics = try await RawHTTP.get(host: machine.address, port: 7676, target: "/metrics", headers: ["Authorization": password])
                #expect(metrics.status == 200, "\(machine.id): \(metrics)")
                let check = try await runProgram(["promtool", "check", "metrics"], input: metrics.body)
                #expect(check.status == 0, "\(machine.id): \(check.output)")
            }

            // CPU and memory of every instance, from every agent.
            let status = try StatusReport.decode(try await cluster.popOK(["status", "counter", "--json"], environment: credentials).stdout)
            for row in status.service("counter")?.instances ?? [] {
                #expect((row.memoryBytes ?? 0) > 1_000_000 && row.cpuPercent != nil, "\(row)")
            }
            // The whole namespace's status asks every agent while it reads the services: the same rows, with figures.
            let whole = try StatusReport.decode(try await cluster.popOK(["status", "--json"], environment: credentials).stdout)
            let rows = whole.service("counter")?.instances ?? []
            #expect(!rows.isEmpty && rows.count == status.service("counter")?.instances.count)
            for row in rows {
                #expect((row.memoryBytes ?? 0) > 1_000_000 && row.cpuPercent != nil, "\(row)")
            }

            // Prometheus with its standard basic_auth, on the targets pop writes.
            let targets = cluster.folder.appendingPathComponent("targets.json").path
            let written = try await cluster.popOK(["machines", "--prometheus", targets], environment: credentials)
            #expect(written.stdout.contains("basic_auth") && !written.stdout.contains("correct-horse"), "\(written)")
            let passwordFile = cluster.folder.appendingPathComponent("password").path
            try "correct-horse-battery".write(toFile: passwordFile, atomically: true, encoding: .utf8)
            let scrape = """
                  - job_name: pop
                    file_sd_configs:
                      - files: [\(targets)]
                    basic_auth:
                      username: ops
                      password_file: \(passwordFile)
                """
            try await PrometheusServer.with(scrapeConfigs: scrape) { prometheus in
                let series = try await prometheus.query("pop_instance_up", timeout: .seconds(60)) { series in
                    Set(series.compactMap { $0.labels["machine"] }) == ["m1", "m2", "m3"] && series.allSatisfy { $0.value == 1 }
                }
                #expect(series.allSatisfy { $0.labels["service"] == "counter" && $0.labels["job"] == "pop" })
                let memory = try await prometheus.query("pop_instance_memory_rss_bytes", timeout: .seconds(30)) { $0.count == 3 }
                #expect(memory.allSatisfy { $0.value > 1_000_000 })
                let running = try await prometheus.query("pop_instance_state{state=\"running\"}", timeout: .seconds(30)) { $0.count == 3 }
                #expect(running.allSatisfy { $0.value == 1 })
            }
        }
    }

    @Test("an open namespace: Prometheus scrapes every machine with the bearer token pop machines --prometheus writes")
    func openNamespaceScrapeToken() async throws {
        try await withCluster { cluster in
            try await cluster.startAgents()
            try await cluster.popOK(["add", "sleeper", "--template", "command", "--command", "sleep 100000"])
            try await cluster.popOK(["deploy", "sleeper"] + cluster.machines.map(\.id))
            try await cluster.popOK(["status", "sleeper", "--wait", "running", "--timeout", "120"], timeout: .seconds(180))
            let targets = cluster.folder.appendingPathComponent("targets.json").path
            let written = try await cluster.popOK(["machines", "--prometheus", targets])
            #expect(written.stdout.contains("credentials_file: \(targets).token"), "\(written)")
            let token = try String(contentsOfFile: targets + ".token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            let mode = try FileManager.default.attributesOfItem(atPath: targets + ".token")[.posixPermissions] as? Int
            #expect(mode == 0o600)
            // The token opens /metrics only.
            let machine = cluster.machines[0]
            #expect(try await RawHTTP.get(host: machine.address, port: 7676, target: "/metrics", headers: ["Authorization": "Bearer " + token]).status == 200)
            #expect(try await RawHTTP.get(host: machine.address, port: 7676, target: "/events", headers: ["Authorization": "Bearer " + token]).status == 401)
            let scrape = """
                  - job_name: pop
                    file_sd_configs:
                      - files: [\(targets)]
                    authorization:
                      type: Bearer
                      credentials_file: \(targets).token
                """
            try await PrometheusServer.with(scrapeConfigs: scrape) { prometheus in
                let series = try await prometheus.query("pop_instance_state{state=\"running\"}", timeout: .seconds(60)) { series in
                    Set(series.compactMap { $0.labels["machine"] }) == ["m1", "m2", "m3"] && series.allSatisfy { $0.value == 1 }
                }
                #expect(series.allSatisfy { $0.labels["service"] == "sleeper" })
                let connected = try await prometheus.query("pop_agent_store_connected", timeout: .seconds(30)) { $0.count == 3 }
                #expect(connected.allSatisfy { $0.value == 1 })
            }
        }
    }
}
