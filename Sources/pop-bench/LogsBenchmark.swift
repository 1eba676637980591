import ArgumentParser
import Foundation
import PopFleetClient
import PopState
import PopTestSupport
import TestProcesses

#if canImport(Glibc)
import Glibc
#endif
#if canImport(CPopAgentLinux)
import CPopAgentLinux
#endif

/// `pop-bench logs`: the fleet's logs and metrics, with the release `pop` on a cluster of machines in network
/// namespaces (docs/benchmarks.md, Logs).
struct LogsBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Merged logs of several machines: throughput beside cat, follow latency, and a scrape of 1,000 instances.",
        subcommands: [LogsThroughputBenchmark.self, LogsLatencyBenchmark.self, LogsScrapeBenchmark.self],
        defaultSubcommand: LogsThroughputBenchmark.self)
}

/// Options every logs benchmark takes.
struct LogsBenchmarkOptions: ParsableArguments {
    @Option(help: "The pop binary (default: `pop` beside this program; build it with `scripts/build-release.sh`).")
    var pop: String?

    func popPath() throws -> String {
        if let pop { return pop }
        let folder = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        return folder.appendingPathComponent("pop").path
    }
}

/// `pop-bench logs throughput`: `pop logs` of a service on 3 machines with a million lines each, from the root
/// namespace through the agents' endpoints, beside `cat` of the same files.
struct LogsThroughputBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "throughput", abstract: "pop logs -n N of 3 machines × N lines, beside cat of the same files.")

    @OptionGroup var options: LogsBenchmarkOptions

    @Option(help: "Lines per machine.")
    var lines = 1_000_000

    @Option(help: "Measured runs of each (the best is kept, after one unmeasured run).")
    var runs = 3

    func run() async throws {
        var clusterOptions = Cluster.Options()
        clusterOptions.popBinary = try options.popPath()
        try await withCluster(clusterOptions) { cluster in
            try await cluster.startAgents()
            try await cluster.popOK(["add", "bench", "--template", "command", "--command", "sleep 100000"])
            try await cluster.popOK(["deploy", "bench"] + cluster.machines.map(\.id))
            try await cluster.popOK(["status", "bench", "--wait", "running", "--timeout", "120"], timeout: .seconds(180))
            // Each machine's log gets its lines through a log writer of the benchmark's own (the instance's writer
            // shares the files; `sleep` writes nothing), rotated as pop rotates: 10 MiB files, 5 kept.
            var files: [String] = []
            for machine in cluster.machines {
                let folder = machine.home.appendingPathComponent("machines/\(machine.id)/instances/bench/logs").path
                try LogFeeder.write(lines: lines, prefix: "\(machine.id) line", into: folder)
                let names = try FileManager.default.contentsOfDirectory(atPath: folder)
                files += names.filter { $0.hasPrefix("stdout.log") }.sorted().reversed().map { folder + "/" + $0 }
            }
            let bytes = files.reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: $1)[.size] as? Int) ?? 0) }
            let total = lines * cluster.machines.count
            print("pop logs: \(cluster.machines.count) machines × \(lines) lines (\(bytes / 1_000_000) MB in \(files.count) files), from the root namespace")
            let output = cluster.folder.appendingPathComponent("logs-output").path
            var popBest = Double.infinity
            var catBest = Double.infinity
            var printed = 0
            for run in 0...runs {
                let popTime = try await Self.time(
                    cluster.operatorMachine.argv([cluster.popBinary, "logs", "bench", "-n", String(lines)]), output: output)
                printed = try Self.countLines(output)
                let catTime = try await Self.time(["cat"] + files, output: output)
                if run > 0 {
                    popBest = min(popBest, popTime)
                    catBest = min(catBest, catTime)
                }
            }
            guard printed == total else { throw BenchError("pop logs printed \(printed) lines, not \(total)") }
            print(String(format: "  pop logs -n %d: %.2f s = %.0f lines/s (%d lines printed, each prefixed with machine and stream)", lines, popBest, Double(total) / popBest, printed))
            print(String(format: "  cat of the same %d files: %.2f s = %.0f lines/s, %.0f MB/s", files.count, catBest, Double(total) / catBest, Double(bytes) / catBest / 1e6))
            print(String(format: "  pop logs / cat: %.1f× the time", popBest / catBest))
        }
    }

    /// Runs `argv` with standard output to `output` and returns its wall time in seconds.
    static func time(_ argv: [String], output: String) async throws -> Double {
        let start = ContinuousClock.now
        let child = try ChildProcess(
            argv, environment: CommandRunner.baseEnvironment(), stdout: .file(URL(fileURLWithPath: output), truncate: true),
            stderr: .discard)
        let status = await child.waitForExit()
        guard status == 0 else { throw BenchError("\(argv.joined(separator: " ")) exited with \(status)") }
        return (ContinuousClock.now - start).seconds
    }

    static func countLines(_ path: String) throws -> Int {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BenchError("cannot open \(path)") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var count = 0
        while true {
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if got <= 0 { return count }
            count += buffer[..<got].reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
        }
    }
}

/// `pop-bench logs latency`: from a line written on a machine to the line printed by `pop logs -f` in the root
/// namespace, following 3 machines.
struct LogsLatencyBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "latency", abstract: "From a line written on one machine to the line printed by pop logs -f (3 machines followed).")

    @OptionGroup var options: LogsBenchmarkOptions

    @Option(help: "Samples (lines) per case.")
    var samples = 1000

    @Option(help: "Milliseconds between two lines of each writing machine.")
    var interval = 10

    func run() async throws {
        var clusterOptions = Cluster.Options()
        clusterOptions.popBinary = try options.popPath()
        try await withCluster(clusterOptions) { cluster in
            try await cluster.startAgents()
            // Each line holds the time it was written (CLOCK_REALTIME, which every namespace of the host shares). The
            // service runs on all 3 machines, so all 3 are merged; only the first `writers` print (the others stay
            // quiet, and their heartbeats say how far they are complete).
            for (label, writers) in [("1 of 3 machines writing", 1), ("3 machines writing", 3)] {
                let service = "ticker-\(writers)"
                let names = cluster.machines.prefix(writers).map { "'\($0.id)'" }.joined(separator: ",")
                let program = "import os, time\nwriting = os.environ.get('POP_MACHINE') in [\(names)]\nwhile True:\n    if writing: print(time.time_ns(), flush=True)\n    time.sleep(\(Double(interval) / 1000))\n"
                try await cluster.popOK(["add", service, "--template", "command", "--command", "python3 -u -c \"\(program)\""])
                try await cluster.popOK(["deploy", service] + cluster.machines.map(\.id))
                try await cluster.popOK(["status", service, "--wait", "running", "--timeout", "120"], timeout: .seconds(180))
                let latencies = try await Self.follow(cluster, service: service, samples: samples)
                print(String(format: "pop logs -f of 3 machines, %@ a line every %d ms: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms (%d lines)", label, interval, Self.percentile(latencies, 0.5), Self.percentile(latencies, 0.9), Self.percentile(latencies, 0.99), latencies.max() ?? 0, latencies.count))
                try await cluster.popOK(["undeploy", service] + cluster.machines.map(\.id))
            }
        }
    }

    /// Follows `service` from the root namespace and returns the latency of `samples` lines in milliseconds.
    static func follow(_ cluster: Cluster, service: String, samples: Int) async throws -> [Double] {
        let child = try ChildProcess(
            cluster.operatorMachine.argv([cluster.popBinary, "logs", service, "-f", "-n", "0"]),
            environment: CommandRunner.baseEnvironment(), stdout: .lines, stderr: .discard)
        defer { child.signalGroup(SIGKILL) }
        var latencies: [Double] = []
        var skipped = 0
        for await line in child.lines! {
            let now = Double(Date().timeIntervalSince1970 * 1e9)
            guard let written = line.split(separator: " ").last.flatMap({ Double($0) }) else { continue }
            // The first lines are the warm-up (connections being made).
            if skipped < 50 {
                skipped += 1
                continue
            }
            latencies.append((now - written) / 1e6)
            if latencies.count >= samples { break }
        }
        return latencies
    }

    static func percentile(_ values: [Double], _ fraction: Double) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * fraction))]
    }
}

/// `pop-bench logs scrape`: one agent with 1,000 instances, `/metrics` asked again and again.
struct LogsScrapeBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scrape", abstract: "GET /metrics of an agent running 1,000 instances: the time of each scrape.")

    @OptionGroup var options: LogsBenchmarkOptions

    @Option(help: "Instances on the agent.")
    var instances = 1000

    @Option(help: "Scrapes measured.")
    var scrapes = 50

    func run() async throws {
        var clusterOptions = Cluster.Options()
        clusterOptions.popBinary = try options.popPath()
        clusterOptions.machines = 1
        try await withCluster(clusterOptions) { cluster in
            let machine = cluster.machines[0]
            try await machine.startAgent()
            let configuration = try StoreConfiguration(kind: StoreConfiguration.parseHosts(cluster.host), prefix: "/pop")
            let namespace = try await openNamespace(configuration)
            do {
                try await measure(cluster, machine: machine, namespace: namespace)
                await namespace.store.close()
            } catch {
                await namespace.store.close()
                throw error
            }
        }
    }

    func measure(_ cluster: Cluster, machine: ClusterMachine, namespace: PopNamespace) async throws {
        try await cluster.popOK(["add", "s0000", "--template", "command", "--command", "sleep 100000"])
        let first = try await namespace.service(try ServiceName("s0000"))
        var names = [first.spec.name]
        for index in 1..<instances {
            var spec = first.spec
            spec.name = try ServiceName(String(format: "s%04d", index))
            try await namespace.addService(spec)
            names.append(spec.name)
        }
        for name in names { _ = try await namespace.deploy(name, machines: [try MachineID(machine.id)]) }
        let key = try await namespace.endpointKey()
        guard let record = try await namespace.machines().first, let text = record.endpoint, let address = EndpointAddress(text),
            case .tcp(let host, let port) = address.location
        else { throw BenchError("the agent publishes no TCP endpoint") }
        // Until the agent's own metrics say every instance runs, read again at each change in the store (its records).
        let running = try await namespace.read(
            {
                let response = try await LoopbackHTTPRequest.get(host: host, port: port, path: "/metrics", bearer: key.scrapeToken)
                return response.body.split(separator: "\n").filter {
                    $0.hasPrefix("pop_instance_state{") && $0.contains("state=\"running\"")
                        && $0.split(separator: " ").last.flatMap { Double($0) } == 1
                }.count
            }, until: { $0 == instances }, wokenByChangesUnder: namespace.prefix, deadline: .now + .seconds(600))
        guard running == instances else { throw BenchError("not every instance was running within 600 s") }
        print("GET /metrics of one agent with \(instances) instances (\(host):\(port)), \(scrapes) scrapes:")
        var times: [Double] = []
        var size = 0
        var series = 0
        for index in 0...scrapes {
            let start = ContinuousClock.now
            let response = try await LoopbackHTTPRequest.get(host: host, port: port, path: "/metrics", bearer: key.scrapeToken)
            let elapsed = (ContinuousClock.now - start).seconds * 1000
            guard response.status == 200 else { throw BenchError("/metrics answered \(response.status)") }
            if index > 0 { times.append(elapsed) }
            size = response.body.utf8.count
            series = response.body.split(separator: "\n").filter { !$0.hasPrefix("#") }.count
        }
        print(String(format: "  %d series, %d KB; p50 %.1f ms, p90 %.1f ms, max %.1f ms", series, size / 1000, LogsLatencyBenchmark.percentile(times, 0.5), LogsLatencyBenchmark.percentile(times, 0.9), times.max() ?? 0))
    }
}

/// Writes lines into an instance's log folder through the real log writer (`pop-log`, beside `pop`).
enum LogFeeder {
    static func write(lines: Int, prefix: String, into folder: String) throws {
        #if canImport(CPopAgentLinux)
        let executable = (try PopBinary.locate() as NSString).deletingLastPathComponent + "/pop-log"
        var ends: [Int32] = [-1, -1]
        guard cpop_pipe_cloexec(&ends) == 0 else { throw BenchError("pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, ends[0], 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        cpop_spawn_add_closefrom(&actions, 3)
        let arguments = [
            String(cString: cpop_log_writer_name()), String(cString: cpop_log_writer_marker()), folder, String(10 << 20), "5",
            "0=stdout.log",
        ]
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var environment: [UnsafeMutablePointer<CChar>?] = [nil]
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, nil, argv, &environment)
        close(ends[0])
        guard result == 0 else { throw BenchError("cannot start \(executable)") }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 16)
        for index in 1...lines {
            buffer += Array("\(prefix) \(String(format: "%07d", index)) abcdefghijklmnop\n".utf8)
            if buffer.count >= 60_000 || index == lines {
                var offset = 0
                while offset < buffer.count {
                    let written = buffer.withUnsafeBytes { Glibc.write(ends[1], $0.baseAddress! + offset, $0.count - offset) }
                    if written < 0 && errno == EINTR { continue }
                    guard written > 0 else { throw BenchError("writing to the log writer failed") }
                    offset += written
                }
                buffer.removeAll(keepingCapacity: true)
            }
        }
        close(ends[1])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        #endif
    }
}

/// A GET with a bearer token to any IPv4 address, for the scrape benchmark.
enum LoopbackHTTPRequest {
    struct Response {
        var status: Int
        var body: String
    }

    static func get(host: String, port: Int, path: String, bearer: String) async throws -> Response {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { try blockingGet(host: host, port: port, path: path, bearer: bearer) })
            }
        }
    }

    private static func blockingGet(host: String, port: Int, path: String, bearer: String) throws -> Response {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw BenchError("connect to \(host):\(port) failed") }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nAuthorization: Bearer \(bearer)\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            received += buffer[..<count]
        }
        let text = String(decoding: received, as: UTF8.self)
        let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
        let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        return Response(status: status, body: body)
    }
}
