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

    func run() async throws {
        var options = ZooKeeperServer.Options()
        options.optimizeForThroughput = true
        options.tickTime = 2000
        print("starting a ZooKeeper server…")
        let results = try await withZooKeeperServer(options) { server in
            print("server \(server.connectString); \(self.operations) operations, \(self.concurrency) in flight, \(self.samples) latency samples, \(self.payloadSize)-byte payload")
            let swift = try await self.measureSwift(server)
            let kazoo = self.kazoo ? try await self.measureKazoo(server) : nil
            return (swift, kazoo)
        }
        self.report(swift: results.0, kazoo: results.1)
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

    func measureSwift(_ server: ZooKeeperServer) async throws -> Figures {
        var configuration = try ZooKeeperConfiguration(connectString: server.connectString)
        var logger = Logger(label: "pop-bench")
        logger.logLevel = .warning
        configuration.logger = logger
        let client = try await ZooKeeperClient.connect(configuration)
        let path = "/bench-swift"
        let payload = [UInt8](repeating: 0x61, count: self.payloadSize)
        if try await client.exists(path) == nil { _ = try await client.create(path, data: payload) }

        // Warm up the JIT on both sides.
        _ = try await self.pipelined(client, count: min(20_000, self.operations)) { _ = try await $0.getData(path) }
        let get = try await self.pipelined(client, count: self.operations) { _ = try await $0.getData(path) }
        let set = try await self.pipelined(client, count: self.operations) { _ = try await $0.setData(path, data: payload) }

        var latencies: [Double] = []
        latencies.reserveCapacity(self.samples)
        let clock = ContinuousClock()
        for _ in 0..<self.samples {
            let start = clock.now
            _ = try await client.getData(path)
            latencies.append(Self.microseconds(clock.now - start))
        }
        await client.close()
        latencies.sort()
        return Figures(
            getThroughput: Double(self.operations) / get.seconds, setThroughput: Double(self.operations) / set.seconds,
            getCPU: get.cpuSeconds * 1e6 / Double(self.operations), setCPU: set.cpuSeconds * 1e6 / Double(self.operations),
            p50: latencies[latencies.count / 2], p99: latencies[min(latencies.count - 1, latencies.count * 99 / 100)]
        )
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

    func measureKazoo(_ server: ZooKeeperServer) async throws -> Figures {
        // The python3 on PATH, the one kazoo is installed for.
        let result = try await CommandRunner.run(
            [
                "python3", self.kazooScript, "--hosts", server.connectString, "--operations", "\(self.operations)",
                "--concurrency", "\(self.concurrency)", "--samples", "\(self.samples)", "--payload-size", "\(self.payloadSize)",
            ], environment: ProcessInfo.processInfo.environment, scratch: FileManager.default.temporaryDirectory,
            timeout: .seconds(3600))
        guard result.status == 0,
            let figures = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Double],
            let get = figures["get_throughput"], let set = figures["set_throughput"], let p50 = figures["p50_us"], let p99 = figures["p99_us"],
            let getCPU = figures["get_cpu_us_per_op"], let setCPU = figures["set_cpu_us_per_op"]
        else {
            throw ValidationError("the kazoo benchmark failed (exit \(result.status)); is kazoo installed (`pip install kazoo`)?")
        }
        return Figures(getThroughput: get, setThroughput: set, getCPU: getCPU, setCPU: setCPU, p50: p50, p99: p99)
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
