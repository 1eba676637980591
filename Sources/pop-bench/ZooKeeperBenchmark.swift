import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import TestProcesses
import ZooKeeperNIO
import ZooKeeperTestSupport

/// `pop-bench zookeeper`: pipelined throughput, the client's own CPU time per pipelined operation, and sequential
/// latency of ZooKeeperNIO, and of kazoo doing the same work against the same server in the same run.
struct ZooKeeperBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zookeeper",
        abstract: "Measure ZooKeeperNIO's getData/setData throughput and latency against a local server, compared with kazoo."
    )

    @Option(help: "Operations per throughput run.")
    var operations = 100_000

    @Option(help: "Requests in flight during throughput runs.")
    var concurrency = 256

    @Option(help: "Sequential getData calls timed for the latency run.")
    var samples = 10_000

    @Option(help: "Bytes of data in the benchmark node.")
    var payloadSize = 100

    @Flag(inversion: .prefixedNo, help: "Also run the same work through kazoo (python3 with kazoo installed).")
    var kazoo = true

    @Option(help: "The kazoo benchmark script.")
    var kazooScript = "Benchmarks/zookeeper-kazoo.py"

    func validate() throws {
        guard self.operations > 0, self.concurrency > 0, self.samples > 0 else {
            throw ValidationError("--operations, --concurrency and --samples must be positive")
        }
        if self.kazoo, !FileManager.default.fileExists(atPath: self.kazooScript) {
            throw ValidationError("the kazoo script \(self.kazooScript) does not exist; run from the package root or pass --kazoo-script (or --no-kazoo)")
        }
    }

    /// Latency rounds when both clients are measured: they alternate, so both see the same load on the machine.
    static let latencyRounds = 10
    /// Unmeasured calls at the start of each latency round, on either side.
    static let latencyWarmUp = 200

    func run() async throws {
        var options = ZooKeeperServer.Options()
        options.optimizeForThroughput = true
        options.tickTime = 2000
        print("starting a ZooKeeper server…")
        let results = try await withZooKeeperServer(options) { server in
            print("server \(server.connectString); \(self.operations) operations, \(self.concurrency) in flight, \(self.samples) latency samples, \(self.payloadSize)-byte payload")
            let client = try await self.connect(server)
            var swift = try await self.measureSwift(client)
            var kazoo = self.kazoo ? try await self.measureKazoo(server, operations: self.operations, samples: 0).figures : nil
            // Sequential latency: rounds that alternate between the clients, each after a short warm-up.
            let rounds = self.kazoo ? min(Self.latencyRounds, self.samples) : 1
            var ours: [Double] = []
            var theirs: [Double] = []
            for round in 0..<rounds {
                let count = self.samples / rounds + (round < self.samples % rounds ? 1 : 0)
                ours += try await self.swiftLatencies(client, count: count)
                if self.kazoo { theirs += try await self.measureKazoo(server, operations: 0, samples: count).latencies }
            }
            await client.close()
            (swift.p50, swift.p99) = Self.percentiles(ours)
            if !theirs.isEmpty, var figures = kazoo {
                (figures.p50, figures.p99) = Self.percentiles(theirs)
                kazoo = figures
            }
            return (swift, kazoo)
        }
        self.report(swift: results.0, kazoo: results.1)
    }

    static func percentiles(_ samples: [Double]) -> (p50: Double, p99: Double) {
        let sorted = samples.sorted()
        return (sorted[sorted.count / 2], sorted[min(sorted.count - 1, sorted.count * 99 / 100)])
    }

    struct Figures {
        var getThroughput: Double
        var setThroughput: Double
        /// The client process's own CPU time (user + system) per operation of the pipelined runs, in µs.
        var getCPU: Double
        var setCPU: Double
        var p50: Double
        var p99: Double
    }

    /// What one pipelined run took: wall-clock seconds and the CPU seconds this process used meanwhile.
    struct Run {
        var seconds: Double
        var cpuSeconds: Double
    }

    /// User + system CPU seconds used so far by this process (all its threads; not the server, a child).
    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    func connect(_ server: ZooKeeperServer) async throws -> ZooKeeperClient {
        var configuration = try ZooKeeperConfiguration(connectString: server.connectString)
        var logger = Logger(label: "pop-bench")
        logger.logLevel = .warning
        configuration.logger = logger
        let client = try await ZooKeeperClient.connect(configuration)
        let payload = [UInt8](repeating: 0x61, count: self.payloadSize)
        if try await client.exists(Self.swiftPath) == nil { _ = try await client.create(Self.swiftPath, data: payload) }
        return client
    }

    static let swiftPath = "/bench-swift"

    /// The pipelined runs; the latency figures are filled in later.
    func measureSwift(_ client: ZooKeeperClient) async throws -> Figures {
        let path = Self.swiftPath
        let payload = [UInt8](repeating: 0x61, count: self.payloadSize)
        // Warm up the JIT on both sides.
        _ = try await self.pipelined(client, count: min(20_000, self.operations)) { _ = try await $0.getData(path) }
        let get = try await self.pipelined(client, count: self.operations) { _ = try await $0.getData(path) }
        let set = try await self.pipelined(client, count: self.operations) { _ = try await $0.setData(path, data: payload) }
        return Figures(
            getThroughput: Double(self.operations) / get.seconds, setThroughput: Double(self.operations) / set.seconds,
            getCPU: get.cpuSeconds * 1e6 / Double(self.operations), setCPU: set.cpuSeconds * 1e6 / Double(self.operations),
            p50: 0, p99: 0
        )
    }

    /// `count` sequential getData calls, each timed in µs, after `latencyWarmUp` untimed ones.
    func swiftLatencies(_ client: ZooKeeperClient, count: Int) async throws -> [Double] {
        for _ in 0..<Self.latencyWarmUp { _ = try await client.getData(Self.swiftPath) }
        var latencies: [Double] = []
        latencies.reserveCapacity(count)
        let clock = ContinuousClock()
        for _ in 0..<count {
            let start = clock.now
            _ = try await client.getData(Self.swiftPath)
            latencies.append(Self.microseconds(clock.now - start))
        }
        return latencies
    }

    /// Runs `count` calls of `operation` with `concurrency` of them in flight; returns the seconds and CPU seconds taken.
    func pipelined(_ client: ZooKeeperClient, count: Int, _ operation: @escaping @Sendable (ZooKeeperClient) async throws -> Void) async throws -> Run {
        let start = ContinuousClock.now
        let startCPU = Self.processCPUSeconds()
        let workers = min(self.concurrency, count)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<workers {
                let share = count / workers + (worker < count % workers ? 1 : 0)
                group.addTask {
                    for _ in 0..<share { try await operation(client) }
                }
            }
            try await group.waitForAll()
        }
        return Run(seconds: Self.seconds(ContinuousClock.now - start), cpuSeconds: Self.processCPUSeconds() - startCPU)
    }

    /// Runs the kazoo script: `operations` for its pipelined runs (0: none), then `samples` sequential calls after
    /// `latencyWarmUp` untimed ones (0: none).
    func measureKazoo(_ server: ZooKeeperServer, operations: Int, samples: Int) async throws -> (figures: Figures, latencies: [Double]) {
        // The python3 on PATH, the one kazoo is installed for.
        let result = try await CommandRunner.run(
            [
                "python3", self.kazooScript, "--hosts", server.connectString, "--operations", "\(operations)",
                "--concurrency", "\(self.concurrency)", "--samples", "\(samples)", "--warm-up-samples", "\(Self.latencyWarmUp)",
                "--payload-size", "\(self.payloadSize)",
            ], environment: ProcessInfo.processInfo.environment, scratch: FileManager.default.temporaryDirectory,
            timeout: .seconds(3600))
        guard result.status == 0, let output = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
            throw ValidationError("the kazoo benchmark failed (exit \(result.status)); is kazoo installed (`pip install kazoo`)?")
        }
        func number(_ key: String) -> Double { (output[key] as? NSNumber)?.doubleValue ?? 0 }
        let figures = Figures(
            getThroughput: number("get_throughput"), setThroughput: number("set_throughput"), getCPU: number("get_cpu_us_per_op"),
            setCPU: number("set_cpu_us_per_op"), p50: 0, p99: 0
        )
        let latencies = (output["latencies_us"] as? [NSNumber])?.map(\.doubleValue) ?? []
        guard latencies.count == samples else { throw ValidationError("the kazoo benchmark returned \(latencies.count) latencies, not \(samples)") }
        return (figures, latencies)
    }

    func report(swift: Figures, kazoo: Figures?) {
        func row(_ name: String, _ ours: Double, _ theirs: Double?, unit: String, higherIsBetter: Bool, decimals: Int = 0) -> String {
            let ratio = theirs.map { higherIsBetter ? ours / $0 : $0 / ours }
            let format = "%14.\(decimals)f"
            return name.padding(toLength: 26, withPad: " ", startingAt: 0)
                + String(format: format, ours) + (theirs.map { String(format: format, $0) } ?? "             -")
                + (ratio.map { String(format: "%9.1fx", $0) } ?? "          ")
                + "  " + unit
        }
        print("")
        print("                            ZooKeeperNIO         kazoo     ratio")
        print(row("pipelined getData", swift.getThroughput, kazoo?.getThroughput, unit: "ops/s", higherIsBetter: true))
        print(row("pipelined setData", swift.setThroughput, kazoo?.setThroughput, unit: "ops/s", higherIsBetter: true))
        print(row("CPU per getData", swift.getCPU, kazoo?.getCPU, unit: "µs/op", higherIsBetter: false, decimals: 1))
        print(row("CPU per setData", swift.setCPU, kazoo?.setCPU, unit: "µs/op", higherIsBetter: false, decimals: 1))
        print(row("sequential getData p50", swift.p50, kazoo?.p50, unit: "µs", higherIsBetter: false))
        print(row("sequential getData p99", swift.p99, kazoo?.p99, unit: "µs", higherIsBetter: false))
        print("")
        print("ratio: how many times better ZooKeeperNIO is (throughput: ours/kazoo; CPU and latency: kazoo/ours)")
        print("CPU: the client process's own user + system time during the pipelined run, divided by its operations")
        func goal(_ met: (Figures) -> Bool) -> String { kazoo.map { met($0) ? "met" : "NOT met" } ?? "not measured" }
        print("goals: pipelined getData >= 5x kazoo: \(goal { swift.getThroughput / $0.getThroughput >= 5 }); p50 getData < 200 µs: \(swift.p50 < 200 ? "met" : "NOT met")")
        print("       CPU per op <= kazoo's / 10: getData \(goal { $0.getCPU / swift.getCPU >= 10 }), setData \(goal { $0.setCPU / swift.setCPU >= 10 }); p99 getData <= kazoo's: \(goal { swift.p99 <= $0.p99 })")
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func microseconds(_ duration: Duration) -> Double { Self.seconds(duration) * 1e6 }
}
