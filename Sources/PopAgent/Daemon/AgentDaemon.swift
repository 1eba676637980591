#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PopState

/// What `pop start` and `pop stop` need: start an agent in the background and wait until it is ready, and stop the
/// agent of this machine.
public enum AgentDaemon {
    /// The descriptor number the readiness pipe gets in a started agent (`pop fg --ready-fd 3`).
    public static let readyDescriptor: Int32 = 3

    /// How a background start ended.
    public enum StartOutcome: Hashable, Sendable {
        /// The agent registered its machine and runs with this pid.
        case ready(pid: Int32)
        /// An agent for this machine already runs with this pid.
        case alreadyRunning(pid: Int32)
    }

    /// How a stop ended.
    public enum StopOutcome: Hashable, Sendable {
        /// The agent with this pid exited.
        case stopped(pid: Int32)
        /// No agent for this machine was running.
        case notRunning
    }

    /// Starts `executable` with `arguments` plus `--ready-fd 3` in a new session, detached from the terminal, with
    /// stdin from /dev/null and stdout and stderr appended to `logFile`, then waits until it says it is ready.
    ///
    /// - Parameters:
    ///   - executable: The absolute path of the program (usually pop itself).
    ///   - arguments: Its arguments after argv[0], such as `["fg"]` and global options.
    ///   - environment: Its complete environment.
    ///   - pidFile: The machine's pid file, checked first so a second agent is refused before it is spawned.
    ///   - logFile: Where the agent's output goes (its folder is created private if missing), such as
    ///     ``agentLogFile(home:machine:)``.
    ///   - timeout: How long to wait for readiness.
    /// - Throws: ``PopError`` with the agent's own error message when it could not start (store unreachable,
    ///   namespace missing, ...), or `.system` when it did not become ready in time.
    public static func start(
        executable: String, arguments: [String], environment: [String: String], pidFile: String, logFile: String,
        timeout: Duration = .seconds(30)
    ) throws(PopError) -> StartOutcome {
        if let pid = try AgentPidFile.runningAgent(path: pidFile) {
            return .alreadyRunning(pid: pid)
        }
        if let slash = logFile.lastIndex(of: "/"), slash != logFile.startIndex {
            try PrivateFiles.ensureFolder(String(logFile[..<slash]))
        }
        let pid: pid_t
        let readEnd: Int32
        (pid, readEnd) = try spawnDetached(
            executable: executable, arguments: arguments + ["--ready-fd", String(readyDescriptor)],
            environment: environment, logFile: logFile)
        defer { close(readEnd) }
        let reply = readReply(readEnd, timeout: timeout)
        switch reply {
        case .ready(let readyPID):
            return .ready(pid: readyPID ?? pid)
        case .failed(let message):
            reap(pid)
            throw PopError(
                .system, message.isEmpty ? "The agent could not start." : message,
                hint: "The agent's log is \(logFile).")
        case .closed:
            reap(pid)
            let tail = logTail(logFile)
            throw PopError(
                .system, "The agent exited before it was ready." + (tail.isEmpty ? "" : " Its last output:\n" + tail),
                hint: "The agent's log is \(logFile).")
        case .timedOut:
            throw PopError(
                .system, "The agent (pid \(pid)) did not report ready within \(timeout).",
                hint: "It may still be connecting to the store; see its log \(logFile), or stop it with `pop stop`.")
        }
    }

    /// Stops the agent holding `pidFile`: SIGTERM, then waits (on a pidfd, without polling) for it to exit.
    ///
    /// Its instances keep running (unless the agent was started to stop them on exit), and the next agent adopts
    /// them. Throws ``PopError`` `.system` when it is still running after `timeout`.
    public static func stop(pidFile: String, timeout: Duration = .seconds(30)) throws(PopError) -> StopOutcome {
        guard let pid = try AgentPidFile.runningAgent(path: pidFile) else { return .notRunning }
        let exited = try ProcessExit.signalAndWait(pid: pid, signal: SIGTERM, timeout: timeout)
        guard exited else {
            throw PopError(
                .system, "The agent (pid \(pid)) did not exit within \(timeout) of SIGTERM.",
                hint: "It may be stopping instances; wait, or end it with `kill -9 \(pid)` (its instances keep running).")
        }
        return .stopped(pid: pid)
    }

    /// The conventional log file of a background agent: `machines/<id>/agent.log` under pop's home.
    public static func agentLogFile(home: PopHome, machine: MachineID) -> String {
        home.machineFolder(machine) + "/agent.log"
    }

    // MARK: Spawning

    private static func spawnDetached(
        executable: String, arguments: [String], environment: [String: String], logFile: String
    ) throws(PopError) -> (pid_t, Int32) {
        var pipeEnds: [Int32] = [-1, -1]
        guard pipe(&pipeEnds) == 0 else {
            throw AgentPidFile.systemError("create the readiness pipe", errno: errno)
        }
        for end in pipeEnds { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        let log = open(logFile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard log >= 0 else {
            let code = errno
            close(pipeEnds[0])
            close(pipeEnds[1])
            throw AgentPidFile.systemError("open the agent's log file \(logFile)", errno: code)
        }
        defer {
            close(log)
            close(pipeEnds[1])
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, log, 1)
        posix_spawn_file_actions_adddup2(&actions, log, 2)
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], readyDescriptor)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) | ProcessExit.spawnNewSessionFlag)

        let argv = [executable] + arguments
        let envp = environment.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let status = withCStrings(argv) { cArgv in
            withCStrings(envp) { cEnvp in
                posix_spawn(&pid, executable, &actions, &attributes, cArgv, cEnvp)
            }
        }
        guard status == 0 else {
            close(pipeEnds[0])
            throw PopError(
                .system, "Could not start the agent \(executable): \(String(cString: strerror(status))).")
        }
        return (pid, pipeEnds[0])
    }

    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for pointer in pointers { free(pointer) } }
        return pointers.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
    }

    // MARK: Readiness

    private enum Reply {
        case ready(Int32?)
        case failed(String)
        case closed
        case timedOut
    }

    private static func readReply(_ fd: Int32, timeout: Duration) -> Reply {
        let deadline = ContinuousClock.now + timeout
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero { return .timedOut }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, remaining.pollMilliseconds)
            if ready < 0 {
                if errno == EINTR { continue }
                return .closed
            }
            if ready == 0 { return .timedOut }
            let count = read(fd, &buffer, buffer.count)
            if count < 0 {
                if errno == EINTR { continue }
                return .closed
            }
            if count == 0 { break }
            received.append(contentsOf: buffer[..<count])
            if received.starts(with: Array("ready".utf8)), received.contains(UInt8(ascii: "\n")) { break }
        }
        let text = String(decoding: received, as: UTF8.self)
        if text.hasPrefix("ready") {
            let pid = text.dropFirst("ready".count).split(separator: "\n").first.flatMap { Int32($0.filter { $0.isNumber }) }
            return .ready(pid)
        }
        if text.hasPrefix("error ") {
            var message = String(text.dropFirst("error ".count))
            while message.hasSuffix("\n") { message.removeLast() }
            return .failed(message)
        }
        return .closed
    }

    private static func reap(_ pid: pid_t) {
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
    }

    private static func logTail(_ path: String, bytes: Int = 2048) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        let size = lseek(fd, 0, SEEK_END)
        guard size > 0 else { return "" }
        let start = max(0, Int(size) - bytes)
        var buffer = [UInt8](repeating: 0, count: Int(size) - start)
        let count = pread(fd, &buffer, buffer.count, off_t(start))
        guard count > 0 else { return "" }
        return String(decoding: buffer[..<count], as: UTF8.self).trimmingTrailingNewlines()
    }
}

extension Duration {
    /// The duration as a `poll(2)` timeout, rounded up to whole milliseconds.
    var pollMilliseconds: Int32 {
        Int32(clamping: components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 + 1)
    }
}

extension String {
    fileprivate func trimmingTrailingNewlines() -> String {
        var text = self
        while text.hasSuffix("\n") { text.removeLast() }
        return text
    }
}
