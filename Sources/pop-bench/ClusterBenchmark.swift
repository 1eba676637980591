import ArgumentParser
import Foundation
import PopState
import PopTestSupport
import Synchronization
import ZooKeeperTestSupport

/// `pop-bench cluster`: many agents on a 3-member ZooKeeper ensemble converging thousands of instances, and
/// `pop-bench cluster up`, which holds a cluster for `scripts/cluster.sh`.
struct ClusterBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Many machines: agents on a 3-member ZooKeeper ensemble, or a cluster held for scripts/cluster.sh.",
        subcommands: [ClusterScaleBenchmark.self, ClusterRolloutBenchmark.self, ClusterHold.self],
        defaultSubcommand: ClusterScaleBenchmark.self)
}

/// `pop-bench cluster [scale]`: the time from the deploy commands to every instance running, with ZooKeeper's request
/// count and the agents' memory.
struct ClusterScaleBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Start N agents (separate `pop fg` processes) and deploy S services of `sleep` to all of them.")

    @Option(help: "Agents: separate `pop fg` processes, each with its own machine id and pop home.")
    var agents = 100

    @Option(help: "Services, each deployed to every agent's machine (instances = agents × services).")
    var services = 20

    @Option(help: "Seconds to wait for every instance to run.")
    var timeout = 600.0

    @Option(
        help: "Where the machines' pop homes go (a folder on the file system to measure, such as a tmpfs); the temporary folder by default.")
    var homes: String?

    @Option(
        help: "Before measuring, deploy this many services to every machine and wait until they run; they stay deployed (warms ZooKeeper's JIT and the agents). 0 measures a cold cluster.")
    var warmupServices = 5

    @Option(
        help: "Before measuring, add this many more services, each placed on one machine (in turn) and waited for until it runs: the namespace's size for the server's watch count (`wchs`), which is printed after the run.")
    var namespaceServices = 0

    @Option(
        help: "Services deployed by count (`--count AGENTS`, so one instance on every machine), measured beside the pinned ones in the same run; as many as --services by default. 0 skips them (an agent without the scheduler).")
    var countedServices: Int?

    @Flag(help: "Measure the services deployed by count before the pinned ones.")
    var countedFirst = false

    @Option(
        help: "Then deploy this many services by count (`--count 1`) onto one machine, kill that machine's agent, and time their rescheduling once --reschedule-after has passed. 0 skips it.")
    var rescheduleInstances = 0

    @Option(help: "The --reschedule-after of the rescheduled services, in seconds.")
    var rescheduleAfter = 2

    @Option(
        help: "Finally, seconds with nothing to do over which the ZooKeeper members' and the agents' CPU is measured. 0 skips it.")
    var idleSeconds = 10

    @Option(help: "The agents' `--session-timeout`, in seconds: their sessions' heartbeats come three times per timeout.")
    var sessionTimeout = 10

    func run() async throws {
        var options = Cluster.Options()
        options.machines = agents
        // The agents share one network namespace: they need distinct machine ids and homes, not distinct ports.
        options.machinesPerHost = agents
        options.zooKeeper.optimizeForThroughput = true
        options.zooKeeper.jvmArguments = ["-Xmx512m"]
        options.scratchParent = homes
        let total = agents * services
        print("cluster: \(agents) agents, \(services) services × \(agents) machines = \(total) instances of `sleep 100000`")
        print("host: \(ProcessInfo.processInfo.activeProcessorCount) cores; machine homes in \(homes ?? NSTemporaryDirectory())")
        try await withCluster(options) { cluster in
            print("ensemble: \(cluster.host); the agents' session timeout \(sessionTimeout) s")
            let agentsStart = ContinuousClock.now
            // At most 8 agents start at a time: hundreds starting at once on two cores leave some without CPU for
            // longer than their first connection to the ensemble may take, and such an agent exits.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, machine) in cluster.machines.enumerated() {
                    if index >= 8 { try await group.next() }
                    group.addTask { [sessionTimeout] in
                        try await machine.startAgent(
                            arguments: ["--session-timeout", String(sessionTimeout)], readyTimeout: .seconds(300))
                    }
                }
                try await group.waitForAll()
            }
            print("agents registered: \(agents) in \(Self.seconds(ContinuousClock.now - agentsStart)) (8 starting at a time)")
            for index in 1...services {
                try await cluster.popOK(["add", "s\(index)", "--template", "command", "--command", "sleep 100000"])
            }
            if warmupServices > 0 {
                // The warm-up services stay deployed, so nothing is deleted just before the measured run.
                let warmupStart = ContinuousClock.now
                for index in 1...warmupServices {
                    try await cluster.popOK(["add", "warmup\(index)", "--template", "command", "--command", "sleep 100000"])
                }
                let watcher = try await InstanceWatcher.open(host: cluster.host, expected: agents * warmupServices) {
                    $0.hasPrefix("/pop/services/warmup")
                }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for index in 1...warmupServices {
                        group.addTask { try await cluster.popOK(["deploy", "warmup\(index)"] + cluster.machines.map(\.id)) }
                    }
                    try await group.waitForAll()
                }
                try await watcher.waitUntilAllRunning(timeout: .seconds(timeout))
                await watcher.close()
                print(
                    "warm-up: \(warmupServices) services × \(agents) machines running in \(Self.seconds(ContinuousClock.now - warmupStart)); they stay deployed (not measured)")
            }

            if namespaceServices > 0 {
                let namespaceStart = ContinuousClock.now
                let names = (1...namespaceServices).map { "n\($0)" }
                let watcher = try await InstanceWatcher.open(host: cluster.host, expected: namespaceServices) {
                    $0.hasPrefix("/pop/services/n")
                }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (index, name) in names.enumerated() {
                        if index >= 8 { try await group.next() }
                        let machine = cluster.machines[index % cluster.machines.count].id
                        group.addTask {
                            try await cluster.popOK(["add", name, "--template", "command", "--command", "sleep 100000"])
                            try await cluster.popOK(["deploy", name, machine])
                        }
                    }
                    try await group.waitForAll()
                }
                try await watcher.waitUntilAllRunning(timeout: .seconds(timeout))
                await watcher.close()
                print(
                    "namespace: \(namespaceServices) more services, one machine each, running in \(Self.seconds(ContinuousClock.now - namespaceStart)) (not measured)")
            }
            // The same number of instances deployed by count (`--count AGENTS`, one on every machine), measured in the
            // same run; `--counted-first` swaps the order, to tell the method from the namespace's growth.
            let counted = countedServices ?? services
            for index in stride(from: 1, through: counted, by: 1) {
                try await cluster.popOK(["add", "c\(index)", "--template", "command", "--command", "sleep 100000"])
            }
            var runs: [(String, String, [[String]])] = [
                ("pinned", "/pop/services/s", (1...services).map { ["deploy", "s\($0)"] + cluster.machines.map(\.id) })
            ]
            if counted > 0 {
                let byCount = ("by count", "/pop/services/c", (1...counted).map { ["deploy", "c\($0)", "--count", String(agents)] })
                if countedFirst { runs.insert(byCount, at: 0) } else { runs.append(byCount) }
            }
            var rates: [String: Double] = [:]
            for (label, prefix, commands) in runs {
                rates[label] = try await Self.measure(
                    label, cluster: cluster, commands: commands, expected: commands.count * agents, agents: agents,
                    timeout: timeout, sessionTimeout: sessionTimeout
                ) { $0.hasPrefix(prefix) }
            }
            if let pinned = rates["pinned"], let byCount = rates["by count"] {
                print(String(format: "by count / pinned: %.2f (instances per second, same run)", byCount / pinned))
            }
            if rescheduleInstances > 0 {
                try await Self.measureRescheduling(
                    cluster: cluster, instances: rescheduleInstances, after: rescheduleAfter, timeout: timeout)
            }
            let serviceCount = services + counted + warmupServices + namespaceServices + rescheduleInstances
            let instances = total + agents * (counted + warmupServices) + namespaceServices + rescheduleInstances
            let watches = await Self.serverWatches(cluster.ensemble)
            print(
                "server watches (`zk_watch_count` of `mntr`, summed over members) with \(serviceCount) services and \(instances) instances: \(watches) (\(String(format: "%.1f", Double(watches) / Double(max(agents, 1)))) per agent; \(String(format: "%.2f", Double(watches) / Double(max(instances, 1)))) per instance)")
            let listed = try await cluster.popOK(["machines", "--json"]).stdout
            let machines = (try? JSONSerialization.jsonObject(with: Data(listed.utf8))) as? [[String: Any]] ?? []
            let registered = machines.filter { $0["registered"] as? Bool == true }.count
            print("machines registered at the end: \(registered) of \(agents)")
            Self.printMemory(cluster)
            if idleSeconds > 0 { try await Self.measureIdle(cluster, seconds: idleSeconds) }
        }
    }

    /// Runs the deploy commands (all at once) and prints the time until `expected` instance records whose path
    /// `counts` accepts run, with ZooKeeper's requests, transactions and packets, and the agents' and members' CPU.
    /// Returns the rate in instances per second.
    static func measure(
        _ label: String, cluster: Cluster, commands: [[String]], expected total: Int, agents: Int, timeout: Double,
        sessionTimeout: Int, counts: @escaping @Sendable (String) -> Bool
    ) async throws -> Double {
        print("-- \(label): \(commands.count) deploy commands, \(total) instances")
        // The requests the sessions make with nothing to do (pings), to tell them from those the deployment causes:
        // once no transaction has been committed for a second (what came before has settled; at most 30 s), over
        // one ping period (a third of the session timeout, at least 3 s), so that each idle session pings once.
        var zxid = await Self.lastZxid(cluster.ensemble)
        for _ in 0..<30 {
            try await Task.sleep(for: .seconds(1))
            let next = await Self.lastZxid(cluster.ensemble)
            if next == zxid { break }
            zxid = next
        }
        let idleStart = ContinuousClock.now
        let idleBefore = await Self.zooKeeperPackets(cluster.ensemble)
        try await Task.sleep(for: .milliseconds(max(3000, sessionTimeout * 1000 / 3 + 100)))
        let idleRate = Double(await Self.zooKeeperPackets(cluster.ensemble).received - idleBefore.received)
            / Self.secondsValue(ContinuousClock.now - idleStart)
        let watcher = try await InstanceWatcher.open(host: cluster.host, expected: total, counts: counts)
        let before = await Self.zooKeeperPackets(cluster.ensemble)
        let zxidBefore = await Self.lastZxid(cluster.ensemble)
        let agentPIDs = cluster.machines.compactMap { $0.agent?.pid }
        let serverPIDs = cluster.ensemble.members.compactMap(\.pid)
        let cpuBefore = Self.cpuTicks(agents: agentPIDs, servers: serverPIDs)
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for command in commands {
                group.addTask { try await cluster.popOK(command) }
            }
            try await group.waitForAll()
        }
        let deployed = ContinuousClock.now - start
        try await watcher.waitUntilAllRunning(timeout: .seconds(timeout))
        let converged = ContinuousClock.now - start
        let cpuAfter = Self.cpuTicks(agents: agentPIDs, servers: serverPIDs)
        let after = await Self.zooKeeperPackets(cluster.ensemble)
        let zxidAfter = await Self.lastZxid(cluster.ensemble)
        let watcherRequests = watcher.requests
        await watcher.close()

        let memory = cluster.machines.compactMap { $0.agent.flatMap { Self.residentKilobytes($0.pid) } }.reduce(0, +)
        let requests = after.received - before.received - watcherRequests
        let rate = Double(total) / Self.secondsValue(converged)
        print("deploy commands: \(commands.count) in \(Self.seconds(deployed)) (concurrently)")
        print("all \(total) instances running: \(Self.seconds(converged)) after the first deploy command")
        print(String(format: "converged: %.0f instances/s", rate))
        print(
            "ZooKeeper requests from clients during the run: \(requests) (\(String(format: "%.2f", Double(requests) / Double(total))) per instance; the benchmark's own \(watcherRequests) reads excluded)"
        )
        let caused = Double(requests) - idleRate * Self.secondsValue(converged)
        print(
            String(
                format: "the same without the sessions' idle requests (%.0f/s, measured over a ping period before the run): %.0f (%.2f per instance)",
                idleRate, caused, caused / Double(total)))
        let transactions = zxidAfter - zxidBefore
        print(
            "ZooKeeper transactions (writes, incl. sessions of the pop commands) during the run: \(transactions) (\(String(format: "%.2f", Double(transactions) / Double(total))) per instance)"
        )
        print("ZooKeeper packets sent to clients (watch notifications and replies): \(after.sent - before.sent) (\(String(format: "%.1f", Double(after.sent - before.sent) / Double(total))) per instance)")
        print("agents' memory: \(memory / 1024) MiB resident in total (\(memory / max(agents, 1)) KiB per agent)")
        let tick = Double(sysconf(Int32(_SC_CLK_TCK)))
        let host = Double(cpuAfter.host - cpuBefore.host) / tick
        let agentCPU = Double(cpuAfter.agents - cpuBefore.agents) / tick
        let serverCPU = Double(cpuAfter.servers - cpuBefore.servers) / tick
        print(
            String(
                format: "CPU from the first deploy command to all running: host %.2f s of %.2f s × %d cores; agents %.2f s (%.2f ms per instance), ZooKeeper members %.2f s, the rest (pop commands, the benchmark, instances starting, kernel) %.2f s",
                host, Self.secondsValue(converged), ProcessInfo.processInfo.activeProcessorCount, agentCPU,
                agentCPU * 1000 / Double(total), serverCPU, host - agentCPU - serverCPU))
        return rate
    }

    /// Deploys `instances` services by count (`--count 1`) onto one machine (the only one with the label
    /// `bench-lost=yes` at first), waits until they run, gives the label to every other machine, then SIGKILLs that
    /// machine's agent (not the scheduler's). Prints the time from the moment its registration is gone plus
    /// reschedule-after (when the scheduler may move them) until every instance runs on another machine.
    static func measureRescheduling(cluster: Cluster, instances: Int, after: Int, timeout: Double) async throws {
        let configuration = try StoreConfiguration(kind: StoreConfiguration.parseHosts(cluster.host), prefix: "/pop")
        let store = try await openStore(configuration, sessionTimeout: .seconds(30))
        // The leader is the candidate with the lowest sequence number (`candidate-%010d`, so the lowest name); its data
        // is its machine id.
        let leaderName = try await store.children("/pop/election").min()
        var leader: String?
        if let leaderName { leader = String(decoding: try await store.get("/pop/election/\(leaderName)").data, as: UTF8.self) }
        guard let victim = cluster.machines.last(where: { $0.id != leader }), let agent = victim.agent else {
            throw ValidationError("no machine other than the scheduler's to lose")
        }
        print("-- rescheduling: \(instances) services by count (--count 1) on \(victim.id); the scheduler runs on \(leader ?? "?")")
        try await cluster.popOK(["machines", "label", victim.id, "bench-lost=yes"])
        let names = (1...instances).map { "r\($0)" }
        let placed = try await InstanceWatcher.open(host: cluster.host, expected: instances) { $0.hasPrefix("/pop/services/r") }
        try await Self.eightAtATime(names) { name in
            try await cluster.popOK(["add", name, "--template", "command", "--command", "sleep 100000"])
            try await cluster.popOK([
                "deploy", name, "--count", "1", "--label", "bench-lost=yes", "--reschedule-after", String(after),
            ])
        }
        try await placed.waitUntilAllRunning(timeout: .seconds(timeout))
        await placed.close()
        try await Self.eightAtATime(cluster.machines.filter { $0.id != victim.id }) { machine in
            try await cluster.popOK(["machines", "label", machine.id, "bench-lost=yes"])
        }
        let suffix = "/machines/\(victim.id)/instance"
        let moved = try await InstanceWatcher.open(host: cluster.host, expected: instances) {
            $0.hasPrefix("/pop/services/r") && !$0.hasSuffix(suffix)
        }
        let (stat, registration) = try await store.existsAndWatch("/pop/machines/\(victim.id)")
        await agent.crash()
        if stat != nil { _ = try await registration.event() } else { registration.cancel() }
        let gone = ContinuousClock.now
        try await moved.waitUntilAllRunning(timeout: .seconds(timeout))
        let running = ContinuousClock.now - gone
        await moved.close()
        await store.close()
        print("registration of \(victim.id) gone after its agent was killed (session expiry)")
        print(
            "all \(instances) instances running elsewhere: \(Self.seconds(running - Duration.seconds(after))) after reschedule-after (\(after) s) passed; \(Self.seconds(running)) after the registration went")
    }

    /// Runs `body` for each item, eight at a time.
    static func eightAtATime<Item: Sendable>(_ items: [Item], _ body: @escaping @Sendable (Item) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, item) in items.enumerated() {
                if index >= 8 { try await group.next() }
                group.addTask { try await body(item) }
            }
            try await group.waitForAll()
        }
    }

    /// The server watches of every member (`zk_watch_count` in `mntr`, the total `wchs` prints), summed.
    static func serverWatches(_ ensemble: ZooKeeperEnsemble) async -> Int {
        var total = 0
        for member in ensemble.members {
            guard let answer = try? await member.fourLetterWord("mntr") else { continue }
            for line in answer.split(separator: "\n") {
                let fields = line.split(separator: "\t")
                if fields.count == 2, fields[0] == "zk_watch_count", let value = Int(fields[1]) { total += value }
            }
        }
        return total
    }

    /// The sum over members of `zk_packets_received` and `zk_packets_sent` (client packets) from `mntr`.
    static func zooKeeperPackets(_ ensemble: ZooKeeperEnsemble) async -> (received: Int, sent: Int) {
        var received = 0
        var sent = 0
        for member in ensemble.members {
            guard let answer = try? await member.fourLetterWord("mntr") else { continue }
            for line in answer.split(separator: "\n") {
                let fields = line.split(separator: "\t")
                guard fields.count == 2, let value = Int(fields[1]) else { continue }
                if fields[0] == "zk_packets_received" { received += value }
                if fields[0] == "zk_packets_sent" { sent += value }
            }
        }
        return (received, sent)
    }

    /// The highest transaction id any member has seen (`Zxid` in `srvr`): within one leader's epoch, the difference of
    /// two readings is the number of transactions committed in between.
    static func lastZxid(_ ensemble: ZooKeeperEnsemble) async -> Int {
        var highest = 0
        for member in ensemble.members {
            guard let answer = try? await member.fourLetterWord("srvr") else { continue }
            for line in answer.split(separator: "\n") where line.hasPrefix("Zxid: 0x") {
                highest = max(highest, Int(line.dropFirst("Zxid: 0x".count), radix: 16) ?? 0)
            }
        }
        return highest
    }

    /// CPU ticks used so far by the agents, by the ZooKeeper members, and by the whole host.
    static func cpuTicks(agents: [Int32], servers: [Int32]) -> (agents: Int, servers: Int, host: Int) {
        let sum = { (pids: [Int32]) in pids.reduce(0) { $0 + ((try? ProcFile.cpuTicks(pid: $1)) ?? 0) } }
        return (sum(agents), sum(servers), ProcFile.hostBusyTicks())
    }

    /// The agents' memory (VmRSS, its anonymous part, and PSS, which shares each page among the processes mapping
    /// it), and each ZooKeeper member's resident memory and Java heap in use.
    static func printMemory(_ cluster: Cluster) {
        let agents = cluster.machines.compactMap { $0.agent?.pid }
        var rss = 0, anonymous = 0, proportional = 0
        for pid in agents {
            let status = (try? ProcFile.status(pid: pid)) ?? [:]
            rss += Self.kilobytes(status["VmRSS"])
            anonymous += Self.kilobytes(status["RssAnon"])
            proportional += Self.proportionalKilobytes(pid)
        }
        let count = max(agents.count, 1)
        print(
            "agents' memory, \(agents.count) agents: VmRSS \(rss / count) KiB each (\(rss / 1024) MiB in all, pages shared by all counted in each); anonymous \(anonymous / count) KiB each; PSS \(proportional / count) KiB each, \(proportional / 1024) MiB in all")
        for member in cluster.ensemble.members {
            guard let pid = member.pid else { continue }
            let status = (try? ProcFile.status(pid: pid)) ?? [:]
            print("ZooKeeper member (pid \(pid)): VmRSS \(Self.kilobytes(status["VmRSS"]) / 1024) MiB; \(Self.javaHeap(pid))")
        }
    }

    /// The CPU the members, the agents and the whole host use over `seconds` with nothing to do.
    static func measureIdle(_ cluster: Cluster, seconds: Int) async throws {
        let agentPIDs = cluster.machines.compactMap { $0.agent?.pid }
        let serverPIDs = cluster.ensemble.members.compactMap(\.pid)
        let before = Self.cpuTicks(agents: agentPIDs, servers: serverPIDs)
        let start = ContinuousClock.now
        try await Task.sleep(for: .seconds(seconds))
        let after = Self.cpuTicks(agents: agentPIDs, servers: serverPIDs)
        let elapsed = Self.secondsValue(ContinuousClock.now - start)
        let tick = Double(sysconf(Int32(_SC_CLK_TCK)))
        let percent = { (ticks: Int) in Double(ticks) / tick / elapsed * 100 }
        print(
            String(
                format: "idle for %.1f s: ZooKeeper members %.2f%% of one core (all %d together), agents %.2f%% (all %d together), host %.2f%% of %d cores",
                elapsed, percent(after.servers - before.servers), serverPIDs.count, percent(after.agents - before.agents),
                agentPIDs.count, percent(after.host - before.host) / Double(ProcessInfo.processInfo.activeProcessorCount),
                ProcessInfo.processInfo.activeProcessorCount))
    }

    /// The heap a JVM uses and has committed, from `jcmd PID GC.heap_info` (the generations' or regions' `used`).
    static func javaHeap(_ pid: Int32) -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let folders = ["/usr/lib/jvm/default-java/bin"] + path.split(separator: ":").map(String.init)
        guard let jcmd = folders.map({ $0 + "/jcmd" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) })
        else { return "heap: jcmd not found" }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: jcmd)
        process.arguments = [String(pid), "GC.heap_info"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return "heap: jcmd did not start" }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        var used = 0, total = 0
        for line in output.split(separator: "\n") where line.contains("generation") || line.contains("heap ") {
            let words = line.replacingOccurrences(of: ",", with: " ").split(separator: " ")
            for (index, word) in words.enumerated().dropLast() {
                if word == "used" { used += Self.kilobytes(String(words[index + 1])) }
                if word == "total" { total += Self.kilobytes(String(words[index + 1])) }
            }
        }
        return used > 0 ? "Java heap \(used / 1024) MiB used of \(total / 1024) MiB committed" : "heap: not reported by jcmd"
    }

    /// `123 kB` or `123K` as a number of KiB (0 when absent).
    static func kilobytes(_ text: String?) -> Int {
        Int((text ?? "").prefix { $0.isNumber }) ?? 0
    }

    /// The `Pss:` of /proc/PID/smaps_rollup, in KiB.
    static func proportionalKilobytes(_ pid: Int32) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("Pss:") {
            return Self.kilobytes(line.dropFirst("Pss:".count).trimmingCharacters(in: .whitespaces))
        }
        return 0
    }

    /// VmRSS of a process, in KiB.
    static func residentKilobytes(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "")
        }
        return nil
    }

    static func secondsValue(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func seconds(_ duration: Duration) -> String { String(format: "%.2f s", secondsValue(duration)) }
}

/// Counts instance records that are `running`, following the services subtree with one watch and reading the records
/// that changed in batches.
final class InstanceWatcher: Sendable {
    private let store: any CoordinationStore
    private let servicesPath: String
    private let expected: Int
    private let events: NodeEvents
    private let counts: @Sendable (String) -> Bool
    private let counters = Mutex<Int>(0)
    private let changed = Mutex<Set<String>>([])

    /// The read requests this watcher sent (so they can be told apart from the agents').
    var requests: Int { self.counters.withLock { $0 } }

    private init(
        store: any CoordinationStore, servicesPath: String, expected: Int, events: NodeEvents,
        counts: @escaping @Sendable (String) -> Bool
    ) {
        self.store = store
        self.servicesPath = servicesPath
        self.expected = expected
        self.events = events
        self.counts = counts
    }

    /// A watcher of the instance records whose path `counts` accepts.
    static func open(
        host: String, expected: Int, counts: @escaping @Sendable (String) -> Bool
    ) async throws -> InstanceWatcher {
        let configuration = try StoreConfiguration(kind: StoreConfiguration.parseHosts(host), prefix: "/pop")
        let store = try await openStore(configuration, sessionTimeout: .seconds(30))
        let services = "/pop/services"
        let events = try await store.watchSubtree(services)
        return InstanceWatcher(store: store, servicesPath: services, expected: expected, events: events, counts: counts)
    }

    func close() async { await self.store.close() }

    /// Returns once `expected` instance records say `running`.
    ///
    /// Event paths are gathered while a batched read is under way, so a burst of changes costs one read per 500.
    func waitUntilAllRunning(timeout: Duration) async throws {
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                for try await event in self.events where event.path.hasSuffix("/instance") && self.counts(event.path) {
                    self.changed.withLock { _ = $0.insert(event.path) }
                    wake.yield()
                }
                return false
            }
            group.addTask {
                var running: Set<String> = []
                for await _ in wakeups {
                    let paths = self.changed.withLock { paths in
                        defer { paths = [] }
                        return paths.sorted()
                    }
                    for chunk in stride(from: 0, to: paths.count, by: 500).map({ paths[$0..<min($0 + 500, paths.count)] }) {
                        self.counters.withLock { $0 += 1 }
                        let results = try await self.store.read(chunk.map { .get($0) })
                        for (path, result) in zip(chunk, results) {
                            guard let node = try result.nodeIfExists(),
                                let record = try? PopJSON.decoder().decode(InstanceRecord.self, from: Data(node.data))
                            else { continue }
                            if record.state == .running { running.insert(path) } else { running.remove(path) }
                        }
                    }
                    if running.count >= self.expected { return true }
                }
                return false
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return false
            }
            let done = try await group.next() ?? false
            group.cancelAll()
            wake.finish()
            guard done else { throw ValidationError("not every instance was running within \(timeout)") }
        }
    }
}

/// `pop-bench cluster up`: starts a cluster and holds it until SIGTERM or SIGINT, describing it in a state file that
/// `scripts/cluster.sh` reads.
struct ClusterHold: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Start a cluster (ensemble, namespaces, machines) and keep it until SIGTERM or SIGINT.")

    @Option(help: "Machines, each in its own network namespace.")
    var machines = 3

    @Option(help: "The file describing the running cluster (shell variable assignments).")
    var state: String

    @Flag(help: "Start every machine's agent (pop fg) too.")
    var agents = false

    func run() async throws {
        var options = Cluster.Options()
        options.machines = machines
        let cluster = try await Cluster.start(options)
        do {
            if agents { try await cluster.startAgents() }
            var lines = [
                "POP_CLUSTER_NAME=\(cluster.network.name)", "POP_CLUSTER_PID=\(getpid())", "POP_HOST=\(cluster.host)",
                "POP_BINARY=\(cluster.popBinary)", "POP_CLUSTER_FOLDER=\(cluster.folder.path)",
                "POP_CLUSTER_MACHINES=\"\(cluster.machines.map(\.id).joined(separator: " "))\"",
            ]
            for machine in cluster.machines {
                lines.append("POP_MACHINE_\(machine.id)=\"\(machine.namespace ?? "") \(machine.address) \(machine.home.path)\"")
            }
            let text = lines.joined(separator: "\n") + "\n"
            try text.write(toFile: state + ".new", atomically: false, encoding: .utf8)
            rename(state + ".new", state)
            print(text, terminator: "")
            let signals = AsyncStream<Int32> { continuation in
                nonisolated(unsafe) let sources = [SIGTERM, SIGINT].map { signal in
                    Foundation.signal(signal, SIG_IGN)
                    let source = DispatchSource.makeSignalSource(signal: signal)
                    source.setEventHandler { continuation.yield(signal) }
                    source.resume()
                    return source
                }
                continuation.onTermination = { _ in for source in sources { source.cancel() } }
            }
            for await signal in signals {
                print("signal \(signal): tearing the cluster down")
                break
            }
        } catch {
            await cluster.stop()
            unlink(state)
            throw error
        }
        await cluster.stop()
        unlink(state)
    }
}
