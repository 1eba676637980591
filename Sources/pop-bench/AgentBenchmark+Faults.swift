import Foundation
import PopState
import PopTestSupport
import TestProcesses

#if canImport(Glibc)
import Glibc
#endif

/// The agent under faults, beside supervisord in the same run: a crash storm (every instance crashing at once until
/// FATAL), and a log flood (one instance writing hundreds of megabytes as fast as it can).
extension AgentBenchmark {
    /// What one crash storm cost.
    struct StormFigures {
        /// Starts of a program after the storm began (each one an exit handled and a restart).
        var starts: Int
        /// The supervisor's own CPU (user + system) over the storm, in seconds.
        var supervisorSeconds: Double
        /// The CPU of the processes it reaped meanwhile (the crashing programs, and pop's log writers), in seconds.
        var childrenSeconds: Double
        var wall: Duration

        var perStart: Double { supervisorSeconds / Double(max(starts, 1)) }
        var childrenPerStart: Double { childrenSeconds / Double(max(starts, 1)) }

        func line(_ label: String) -> String {
            String(
                format: "  %@: %d starts in %.2f s; own CPU %.3f s = %.3f ms per start; reaped children %.3f ms per start",
                label, starts, wall.seconds, supervisorSeconds, perStart * 1000, childrenPerStart * 1000)
        }
    }

    /// What one log flood cost.
    struct FloodFigures {
        var megabytes: Int
        var supervisorSeconds: Double
        /// pop's log writer; nil for supervisord (which writes the files itself) or a pop without log writers.
        var writerSeconds: Double?
        var peak: FolderSizeSampler.Peak
        var wall: Duration

        func line(_ label: String) -> String {
            let per100 = 100 / Double(megabytes)
            var text = String(
                format: "  %@: %d MB in %.2f s; supervisor CPU %.3f s (%.3f s per 100 MB)", label, megabytes, wall.seconds,
                supervisorSeconds, supervisorSeconds * per100)
            if let writerSeconds {
                text += String(format: "; log writer CPU %.3f s (%.3f s per 100 MB)", writerSeconds, writerSeconds * per100)
            }
            text += String(
                format: "; peak: largest file %.1f MiB, all stdout files %.1f MiB (%d samples)",
                Double(peak.largestFile) / 1_048_576, Double(peak.total) / 1_048_576, peak.samples)
            return text
        }
    }

    // MARK: Crash storm

    /// The crashing program: it sleeps (with this run's unique argument) until the file `go` exists, after which it
    /// exits with status 1 as soon as it starts.
    static func stormCommand(go: String, sleep: String) -> String {
        "sh -c 'test -e \(go) && exit 1; exec sleep \(sleep)'"
    }

    /// `instances` services running the storm program on one agent; then `go` is created and every process killed
    /// at once, so each is restarted into a crash loop until FATAL. Measured from the kill until every record is fatal.
    func measureStorm(_ environment: BenchEnvironment, sleep: String) async throws -> StormFigures {
        let go = environment.home + "/go"
        let first = try ServiceName("storm-0000")
        try await environment.pop([
            "add", first.rawValue, "--template", "command", "--command", Self.stormCommand(go: go, sleep: sleep),
        ])
        return try await environment.withNamespace { namespace in
            let names = try await Self.addCopies(of: first, count: storm, prefix: "storm", in: namespace)
            let agent = try await environment.startAgent()
            let events = EventQueue(try await namespace.store.watchSubtree(namespace.paths.services))
            for name in names { _ = try await namespace.deploy(name, machines: [environment.machine]) }
            let running = try await Self.waitForRecords(namespace, names, environment.machine, events: events) {
                $0.state == .running && $0.pid != nil
            }
            let log = environment.home + "/machines/\(environment.machine)/agent.log"
            let offset = Self.fileSize(log)
            _ = FileManager.default.createFile(atPath: go, contents: nil)
            let profiler = try stormProfile.map {
                try ChildProcess(
                    ["perf", "record", "-q", "-g", "--no-inherit", "-F", "10000", "-p", String(agent), "-o", $0],
                    environment: ProcessInfo.processInfo.environment)
            }
            let before = try ProcFile.cpu(pid: agent)
            let start = ContinuousClock.now
            for record in running.values { kill(record.pid!, SIGKILL) }
            _ = try await Self.waitForRecords(namespace, names, environment.machine, events: events) { $0.state == .fatal }
            let wall = ContinuousClock.now - start
            let after = try ProcFile.cpu(pid: agent)
            if let profiler {
                kill(profiler.pid, SIGINT)
                await profiler.waitForExit()
            }
            let starts = Self.count("state=starting", in: log, from: offset)
            return StormFigures(
                starts: starts, supervisorSeconds: after.own - before.own, childrenSeconds: after.children - before.children,
                wall: wall)
        }
    }

    /// supervisord with `instances` processes of the same program (numprocs), autorestart=unexpected, startsecs=1,
    /// startretries=4; killed at once after `go` exists; measured until its log says each one gave up (FATAL).
    func measureSupervisorStorm(sleep: String, sweep: ProcessSweep) async throws -> StormFigures {
        let goFolder = NSTemporaryDirectory() + "pop-bench-storm-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: goFolder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: goFolder) }
        let go = goFolder + "/go"
        let count = storm
        let supervisor = try await SupervisorBench.start { _ in
            """
            [program:storm]
            command=\(Self.stormCommand(go: go, sleep: sleep))
            numprocs=\(count)
            process_name=%(program_name)s_%(process_num)04d
            autostart=true
            autorestart=unexpected
            startsecs=1
            startretries=4
            stopasgroup=true
            killasgroup=true
            stdout_logfile=NONE
            stderr_logfile=NONE
            """
        }
        do {
            let log = supervisor.folder + "/supervisord.log"
            // Setup: every process running for a second (RUNNING), as its log says.
            guard await Waiting.file(log, within: .seconds(120), { $0.components(separatedBy: "entered RUNNING state").count - 1 >= count })
            else { throw BenchError("supervisord did not report \(count) RUNNING processes") }
            let pids = try await supervisor.control(["pid", "all"]).split(whereSeparator: \.isNewline).compactMap { Int32($0) }
            guard pids.count == count else { throw BenchError("supervisorctl pid all gave \(pids.count) pids") }
            let offset = Self.fileSize(log)
            _ = FileManager.default.createFile(atPath: go, contents: nil)
            let before = try ProcFile.cpu(pid: supervisor.daemon.pid)
            let start = ContinuousClock.now
            for pid in pids { kill(pid, SIGKILL) }
            guard
                await Waiting.file(log, within: .seconds(300), {
                    String(decoding: Array($0.utf8.dropFirst(offset)), as: UTF8.self)
                        .components(separatedBy: "entered FATAL state").count - 1 >= count
                })
            else { throw BenchError("supervisord did not give up on every process") }
            let wall = ContinuousClock.now - start
            let after = try ProcFile.cpu(pid: supervisor.daemon.pid)
            let starts = Self.count("spawned: 'storm_", in: log, from: offset)
            await supervisor.tearDown(sweep: sweep)
            return StormFigures(
                starts: starts, supervisorSeconds: after.own - before.own, childrenSeconds: after.children - before.children,
                wall: wall)
        } catch {
            await supervisor.tearDown(sweep: sweep)
            throw error
        }
    }

    // MARK: Log flood

    /// The flooding program: `megabytes` MB of zeros in 256 KiB writes, then a last line, then it sleeps.
    static func floodCommand(megabytes: Int, sleep: String) -> String {
        "sh -c 'dd if=/dev/zero bs=256K count=\(megabytes * 4) status=none; echo flood-end; exec sleep \(sleep)'"
    }

    /// One service flooding its stdout: the agent's and its log writer's CPU, and the log folder's peak size, sampled
    /// at every change of the folder.
    func measureFlood(_ environment: BenchEnvironment, sleep: String) async throws -> FloodFigures {
        try await environment.pop([
            "add", "flood", "--template", "command", "--command", Self.floodCommand(megabytes: logMegabytes, sleep: sleep),
        ])
        let agent = try await environment.startAgent()
        let logs = environment.home + "/machines/\(environment.machine)/instances/flood/logs"
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        let sampler = try FolderSizeSampler(folder: logs, prefix: "stdout.log")
        let before = try ProcFile.cpu(pid: agent)
        let start = ContinuousClock.now
        try await environment.pop(["deploy", "flood"])
        // The last line ends stdout.log, or (a pop that rotated by copying and truncating) the copy of it.
        let done = await Waiting.file(logs + "/stdout.log", within: .seconds(600)) { text in
            text.hasSuffix("flood-end\n") || Self.tail(of: logs + "/stdout.log.1").hasSuffix("flood-end\n")
        }
        let wall = ContinuousClock.now - start
        let peak = sampler.stop()
        guard done else { throw BenchError("the flood's last line did not reach stdout.log") }
        let after = try ProcFile.cpu(pid: agent)
        let writer = ProcessScan.logWriters(of: logs).first
        let writerSeconds = try writer.map { try ProcFile.cpu(pid: $0).own }
        return FloodFigures(
            megabytes: logMegabytes, supervisorSeconds: after.own - before.own, writerSeconds: writerSeconds, peak: peak,
            wall: wall)
    }

    /// The same program under supervisord, logging to a file with stdout_logfile_maxbytes=10MB and 5 backups (pop's
    /// defaults).
    func measureSupervisorFlood(sleep: String, sweep: ProcessSweep) async throws -> FloodFigures {
        let logs = NSTemporaryDirectory() + "pop-bench-flood-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: logs) }
        let megabytes = logMegabytes
        let supervisor = try await SupervisorBench.start { _ in
            """
            [program:flood]
            command=\(Self.floodCommand(megabytes: megabytes, sleep: sleep))
            autostart=false
            autorestart=false
            startsecs=0
            stopasgroup=true
            killasgroup=true
            stdout_logfile=\(logs)/stdout.log
            stdout_logfile_maxbytes=10MB
            stdout_logfile_backups=5
            """
        }
        do {
            let sampler = try FolderSizeSampler(folder: logs, prefix: "stdout.log")
            let before = try ProcFile.cpu(pid: supervisor.daemon.pid)
            let start = ContinuousClock.now
            try await supervisor.control(["start", "flood"])
            let done = await Waiting.file(logs + "/stdout.log", within: .seconds(600)) { $0.hasSuffix("flood-end\n") }
            let wall = ContinuousClock.now - start
            let peak = sampler.stop()
            guard done else { throw BenchError("the flood's last line did not reach supervisord's log") }
            let after = try ProcFile.cpu(pid: supervisor.daemon.pid)
            await supervisor.tearDown(sweep: sweep)
            return FloodFigures(
                megabytes: megabytes, supervisorSeconds: after.own - before.own, writerSeconds: nil, peak: peak, wall: wall)
        } catch {
            await supervisor.tearDown(sweep: sweep)
            throw error
        }
    }

    // MARK: Support

    /// Reads the instance records of `names` on `machine`, and each again when the watch reports a change of it,
    /// until each satisfies `condition`; returns them (at most 300 s).
    static func waitForRecords(
        _ namespace: PopNamespace, _ names: [ServiceName], _ machine: MachineID, events: EventQueue,
        _ condition: @escaping @Sendable (InstanceRecord) -> Bool
    ) async throws -> [ServiceName: InstanceRecord] {
        try await withDeadline(.seconds(300)) {
            let byPath = Dictionary(uniqueKeysWithValues: names.map { (namespace.paths.instance($0, machine), $0) })
            var pending = Set(names)
            var done: [ServiceName: InstanceRecord] = [:]
            func check(_ batch: [ServiceName]) async throws {
                let results = try await namespace.store.read(batch.map { .get(namespace.paths.instance($0, machine)) })
                for (name, result) in zip(batch, results) {
                    guard let node = try result.nodeIfExists() else { continue }
                    let record = try PopJSON.decoder().decode(InstanceRecord.self, from: Data(node.data))
                    if condition(record) {
                        pending.remove(name)
                        done[name] = record
                    }
                }
            }
            try await check(Array(pending))
            while !pending.isEmpty {
                guard let event = try await events.next() else { throw BenchError("the store's watch ended") }
                guard event.kind != .deleted, let name = byPath[event.path], pending.contains(name) else { continue }
                try await check([name])
            }
            return done
        }
    }

    /// The last bytes of the file at `path`.
    static func tail(of path: String) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        try? handle.seek(toOffset: size > 64 ? size - 64 : 0)
        return String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
    }

    static func fileSize(_ path: String) -> Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : 0
    }

    /// How many times `needle` occurs in the file at `path` after byte `offset`.
    static func count(_ needle: String, in path: String, from offset: Int) -> Int {
        guard let data = FileManager.default.contents(atPath: path), data.count > offset else { return 0 }
        return String(decoding: data.dropFirst(offset), as: UTF8.self).components(separatedBy: needle).count - 1
    }
}

extension ProcFile {
    /// The CPU time of `pid` (all its threads) and of the children it has reaped, in seconds.
    static func cpu(pid: Int32) throws -> (own: Double, children: Double) {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
        let tick = Double(sysconf(Int32(_SC_CLK_TCK)))
        let own = Double((Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)) / tick
        let children = Double((Int(fields[13]) ?? 0) + (Int(fields[14]) ?? 0)) / tick
        return (own, children)
    }
}
