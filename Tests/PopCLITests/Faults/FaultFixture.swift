import Foundation
import Testing
import ZooKeeperNIO
import ZooKeeperTestSupport

#if canImport(Glibc)
import Glibc
#endif
#if canImport(CPopAgentLinux)
import CPopAgentLinux
#endif

/// One machine for a fault-injection test: a private POP_HOME and machine id, on the embedded store unless a
/// ZooKeeper connect string is given. Its agent and every instance are killed afterwards, and the teardown is awaited.
func withFaultMachine(
    zooKeeper connectString: String? = nil, environment extra: [String: String] = [:],
    _ body: (PopRunner) async throws -> Void
) async throws {
    var environment = ["POP_MACHINE_ID": "fault-" + UUID().uuidString.prefix(8).lowercased()]
    if let connectString {
        let chroot = "/pop-fault-" + UUID().uuidString
        let client = try await ZooKeeperClient.connect(ZooKeeperConfiguration(connectString: connectString))
        _ = try await client.create(chroot, data: [])
        await client.close()
        environment["POP_HOST"] = connectString + chroot
    }
    for (key, value) in extra { environment[key] = value }
    let pop = try PopRunner(environment: environment)
    do {
        try await pop.ok("init")
        try await body(pop)
    } catch {
        await pop.killEverything()
        throw error
    }
    await pop.killEverything()
}

/// A ``CLIFixture`` whose agent and instances are killed afterwards, the teardown awaited.
func withCLIFixture(_ kind: StoreKind, _ body: (CLIFixture) async throws -> Void) async throws {
    let fixture = try await CLIFixture.make(kind)
    do {
        try await body(fixture)
    } catch {
        await fixture.pop.killEverything()
        throw error
    }
    await fixture.pop.killEverything()
}

extension PopRunner {
    /// The machine id this runner's agent uses.
    var machineID: String { environment["POP_MACHINE_ID"] ?? "" }

    /// This machine's instance folder for `service`.
    func instanceFolder(_ service: String) -> String {
        home.path + "/machines/\(machineID)/instances/\(service)"
    }

    /// Kills the agent and every process that runs in one of this machine's instance folders (whatever a record
    /// says or does not say), waits until they are gone, and removes the home unless `keepHome`.
    func killEverything(keepHome: Bool = false) async {
        var pids: [Int32] = []
        if let agent = agentPID() {
            kill(agent, SIGKILL)
            pids.append(agent)
        }
        for pid in instancePIDs() { kill(-pid, SIGKILL) }
        for pid in ProcessScan.processes(inFolderUnder: home.path + "/machines/") {
            kill(pid, SIGKILL)
            pids.append(pid)
        }
        for pid in pids { _ = await ProcessScan.waitForExit(pid, within: .seconds(10)) }
        if !keepHome { try? FileManager.default.removeItem(at: home.deletingLastPathComponent()) }
    }

    /// Waits (on the store's watches, in `pop status --wait`) until every instance shown runs its service's current
    /// signature, then returns the status.
    @discardableResult
    func waitUntilRunning(_ services: [String] = [], within seconds: Int = 60, sourceLocation: SourceLocation = #_sourceLocation) async throws -> StatusJSON {
        let result = try await run(["status"] + services + ["--wait", "running", "--timeout", String(seconds)])
        #expect(result.status == 0, "not running within \(seconds) s:\n\(result)", sourceLocation: sourceLocation)
        return try await statusJSON()
    }
}

/// Reads of /proc that the fault tests check the machine with, independent of what pop says.
enum ProcessScan {
    /// Every live process whose working folder is `folder` or below it.
    static func processes(inFolderUnder folder: String) -> [Int32] {
        allPIDs().filter { pid in
            guard ProcessScan.isAlive(pid),
                let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd")
            else { return false }
            return cwd == folder || cwd.hasPrefix(folder.hasSuffix("/") ? folder : folder + "/")
        }
    }

    /// Every live process whose environment has `NAME=VALUE`.
    static func processes(withEnvironment name: String, _ value: String) -> [Int32] {
        let wanted = Array("\(name)=\(value)".utf8)
        return allPIDs().filter { pid in
            guard ProcessScan.isAlive(pid),
                let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ")
            else { return false }
            return data.split(separator: 0).contains { Array($0) == wanted }
        }
    }

    /// Whether `pid` names a process that has not exited (a zombie has).
    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let state = stat[stat.index(after: close)...].split(separator: " ").first
        return state != "Z" && state != "X"
    }

    /// Whether `pid` is a zombie: exited, not reaped.
    static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return stat[stat.index(after: close)...].split(separator: " ").first == "Z"
    }

    /// The pids of the processes listening on TCP `port` (IPv4 or IPv6), from /proc/net and /proc/PID/fd.
    static func listeners(onPort port: Int) -> [Int32] {
        var inodes = Set<String>()
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let text = (try? String(contentsOfFile: table, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                guard fields.count > 9, fields[3] == "0A",
                    let colon = fields[1].lastIndex(of: ":"),
                    Int(fields[1][fields[1].index(after: colon)...], radix: 16) == port
                else { continue }
                inodes.insert(String(fields[9]))
            }
        }
        guard !inodes.isEmpty else { return [] }
        return allPIDs().filter { pid in
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
            return fds.contains { fd in
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"),
                    target.hasPrefix("socket:[")
                else { return false }
                return inodes.contains(String(target.dropFirst("socket:[".count).dropLast()))
            }
        }
    }

    static func allPIDs() -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }
    }

    /// Waits until the file at `path` contains `text`, woken by inotify; returns whether it did within `limit`.
    static func waitForFile(_ path: String, containing text: String, within limit: Duration) async -> Bool {
        let deadline = ContinuousClock.now + limit
        let folder = (path as NSString).deletingLastPathComponent
        let watcher = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard watcher >= 0 else { return false }
        defer { close(watcher) }
        while true {
            // Watch the folder (it may not exist yet), then look, then wait for the next change.
            _ = inotify_add_watch(watcher, folder, UInt32(IN_MODIFY | IN_CREATE | IN_MOVED_TO))
            if (try? String(contentsOfFile: path, encoding: .utf8))?.contains(text) == true { return true }
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { return false }
            // Until the folder exists there is nothing to watch: wait for its parent instead.
            if access(folder, F_OK) != 0 {
                _ = inotify_add_watch(watcher, (folder as NSString).deletingLastPathComponent, UInt32(IN_CREATE))
            }
            _ = await Poller.readable(watcher, within: min(remaining, .seconds(1)))
            var buffer = [UInt8](repeating: 0, count: 4096)
            while read(watcher, &buffer, buffer.count) > 0 {}
        }
    }

    /// Waits (in poll on a pidfd, not in a loop of sleeps) until `pid` has exited; returns whether it did in time.
    static func waitForExit(_ pid: Int32, within limit: Duration) async -> Bool {
        let handle = cpop_pidfd_open(pid)
        guard handle >= 0 else { return true }
        defer { close(handle) }
        return await Poller.readable(handle, within: limit)
    }
}

/// Waits for a descriptor on a thread of its own, so no test task blocks.
enum Poller {
    /// Whether `descriptor` became readable within `limit`.
    static func readable(_ descriptor: Int32, within limit: Duration) async -> Bool {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                let deadline = ContinuousClock.now + limit
                while true {
                    let remaining = deadline - ContinuousClock.now
                    guard remaining > .zero else { return continuation.resume(returning: false) }
                    var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                    let ready = poll(&entry, 1, Int32(clamping: remaining.components.seconds * 1000 + 1))
                    if ready < 0, errno == EINTR { continue }
                    return continuation.resume(returning: ready > 0)
                }
            }
            thread.stackSize = 64 * 1024
            thread.start()
        }
    }

    /// One line read from `descriptor` within `limit`, without its newline.
    static func line(from descriptor: Int32, within limit: Duration) async -> String? {
        let deadline = ContinuousClock.now + limit
        var bytes: [UInt8] = []
        while !bytes.contains(UInt8(ascii: "\n")) {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero, await readable(descriptor, within: remaining) else { return nil }
            var chunk = [UInt8](repeating: 0, count: 512)
            let count = read(descriptor, &chunk, chunk.count)
            guard count > 0 else { return nil }
            bytes += chunk[..<count]
        }
        return String(decoding: bytes.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
    }
}

/// A python process that makes itself the reaper of its orphaned descendants and never reaps them, as PID 1 does in a
/// container without an init. It runs one `pop` command and prints its exit status, then waits to be killed.
struct NonReapingParent: Sendable {
    let pid: Int32
    let output: Int32

    static let script = """
        import ctypes, subprocess, sys, time
        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        result = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        print(result.returncode, flush=True)
        time.sleep(3600)
        """

    /// Starts it running `pop ARGS` with the runner's environment.
    static func start(_ pop: PopRunner, _ arguments: [String]) throws -> NonReapingParent {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw POSIXError(.EMFILE) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, ends[1], 1)
        cpop_spawn_add_closefrom(&actions, 3)
        let argv = (["python3", "-c", script, PopRunner.binary.path] + arguments).map { strdup($0) } + [nil]
        let envp = pop.processEnvironment().map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let status = posix_spawnp(&pid, "python3", &actions, nil, argv, envp)
        close(ends[1])
        guard status == 0 else {
            close(ends[0])
            throw POSIXError(POSIXErrorCode(rawValue: status) ?? .EINVAL)
        }
        return NonReapingParent(pid: pid, output: ends[0])
    }

    /// The exit status of the command it ran, once it has finished.
    func commandStatus(within limit: Duration = .seconds(60)) async -> Int32? {
        await Poller.line(from: output, within: limit).flatMap { Int32($0) }
    }

    /// Kills it and reaps it; its unreaped orphans go to the next reaper up.
    func stop() {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        close(output)
    }
}
