import ArgumentParser
import Foundation
import PopState
import TestProcesses
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `pop-bench store`: the embedded store's write-to-watcher latency (watcher in another process), sustained
/// small writes per second, idle watcher CPU, and `pop status` time with 100 services.
struct StoreBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Measure the embedded store: watch latency across processes, writes per second, status time.")

    @Option(help: "The store folder (default: a new temporary folder, removed afterwards).")
    var folder: String?

    @Option(help: "Latency samples: writes each followed by the watcher process's notification.")
    var samples = 1000

    @Option(help: "Writes for each throughput run.")
    var writes = 5000

    @Option(help: .hidden)
    var role: String?

    mutating func run() async throws {
        if role == "watcher" {
            guard let folder else { throw ValidationError("--role watcher needs --folder") }
            try await Self.watch(folder: folder)
            return
        }
        let temporary = folder == nil
        let folder = folder ?? NSTemporaryDirectory() + "pop-bench-store-" + UUID().uuidString
        defer { if temporary { try? FileManager.default.removeItem(atPath: folder) } }

        let store = try await EmbeddedStore.open(folder: folder, options: .init())
        print("store: \(store.description)")
        print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores")

        try await measureLatency(store: store, folder: folder)
        try await measureThroughput(store: store)
        try await measureStatus(store: store)
        await store.close()
    }

    // MARK: Latency

    /// Sets a node, then waits for the watcher process to print when its subtree watch saw the change; the two
    /// timestamps come from CLOCK_MONOTONIC, which every process on the machine shares.
    func measureLatency(store: EmbeddedStore, folder: String) async throws {
        _ = try await store.create("/latency", data: [], mode: .persistent)
        _ = try await store.create("/latency/key", data: [], mode: .persistent)
        let watcher = try WatcherProcess(folder: folder)
        var lines = watcher.lines.makeAsyncIterator()
        guard await lines.next() == "ready" else { throw ValidationError("the watcher process did not start") }

        var latencies: [Int64] = []
        latencies.reserveCapacity(samples)
        for index in 0..<samples {
            let sent = Self.monotonicNanoseconds()
            _ = try await store.set("/latency/key", data: Array("sample \(index)".utf8), version: nil)
            guard let line = await lines.next(), let received = Int64(line) else {
                throw ValidationError("the watcher process stopped early")
            }
            latencies.append(received - sent)
        }
        latencies.sort()
        func percentile(_ p: Double) -> String {
            let value = latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]
            return String(format: "%.2f ms", Double(value) / 1_000_000)
        }
        print("write-to-notified latency, watcher in another process (\(samples) samples):")
        print("  p50 \(percentile(0.50))  p90 \(percentile(0.90))  p99 \(percentile(0.99))  max \(percentile(1.0))")

        // An idle watcher (its subtree watch open, no writes) should only wake for its heartbeats.
        let before = try watcher.cpuTicks()
        try await Task.sleep(for: .seconds(5))
        let used = try watcher.cpuTicks() - before
        let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        print(String(format: "idle watcher CPU over 5 s: %.0f ms", Double(used) / ticksPerSecond * 1000))
        await watcher.terminate()
    }

    /// The watcher role: follows /latency and prints the monotonic time of each event.
    static func watch(folder: String) async throws {
        let store = try await EmbeddedStore.open(folder: folder, options: .init())
        let events = try await store.watchSubtree("/latency")
        emit("ready")
        for try await _ in events {
            emit(String(monotonicNanoseconds()))
        }
    }

    // MARK: Throughput

    func measureThroughput(store: EmbeddedStore) async throws {
        _ = try await store.create("/throughput", data: [], mode: .persistent)
        let nodes = 100
        for index in 0..<nodes {
            _ = try await store.create("/throughput/n\(index)", data: [], mode: .persistent)
        }
        let payload = Array(repeating: UInt8(ascii: "x"), count: 100)
        for concurrency in [1, 4] {
            let start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<concurrency {
                    group.addTask {
                        for index in stride(from: worker, to: writes, by: concurrency) {
                            _ = try await store.set("/throughput/n\(index % nodes)", data: payload, version: nil)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let seconds = Self.seconds(ContinuousClock.now - start)
            print(
                String(
                    format: "sustained 100-byte sets, %d writer task(s): %.0f writes/s (%d writes in %.2f s)",
                    concurrency, Double(writes) / seconds, writes, seconds))
        }
    }

    // MARK: Status

    func measureStatus(store: EmbeddedStore) async throws {
        let namespace = try PopNamespace(store: store, prefix: "/bench-pop")
        try await namespace.initialize(force: true)
        let machine = try MachineID("bench-machine")
        try await namespace.registerMachine(
            MachineRecord(id: machine, hostname: "bench", addresses: [], agentVersion: "bench", started: Date(), agentPID: getpid()))
        for index in 0..<100 {
            let spec = ServiceSpec(
                name: try ServiceName("service-\(index)"),
                template: ResolvedTemplate(name: "web", command: ["serve", "{port}"]), options: ["port": .int(9000 + index)])
            try await namespace.addService(spec)
            try await namespace.deploy(spec.name, machines: [machine])
            try await namespace.publishInstance(
                InstanceRecord(machine: machine, pid: Int32(index), signature: spec.signature, state: .running, since: Date()),
                service: spec.name)
        }
        var timings: [Double] = []
        for _ in 0..<50 {
            let start = ContinuousClock.now
            _ = try await namespace.status()
            timings.append(Self.seconds(ContinuousClock.now - start) * 1000)
        }
        timings.sort()
        print(
            String(
                format: "status() with 100 services, 100 placements, 100 instances: p50 %.2f ms, max %.2f ms (50 runs)",
                timings[timings.count / 2], timings.last!))
    }

    // MARK: Helpers

    static func monotonicNanoseconds() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }

    /// Writes a line to stdout at once (stdout is a pipe, so `print` would buffer it).
    static func emit(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// This benchmark run again as `pop-bench store --role watcher`, printing one line per notification.
final class WatcherProcess: Sendable {
    let process: ChildProcess
    let lines: AsyncStream<String>

    init(folder: String) throws {
        process = try ChildProcess(
            ["/proc/self/exe", "store", "--role", "watcher", "--folder", folder],
            environment: ProcessInfo.processInfo.environment, stdout: .lines)
        lines = process.lines!
    }

    /// User plus system CPU time of the process, in clock ticks, from /proc/<pid>/stat.
    func cpuTicks() throws -> Int {
        try ProcFile.cpuTicks(pid: process.pid)
    }

    func terminate() async {
        await process.stop()
    }
}
