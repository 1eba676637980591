import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif
#if canImport(CPopAgentLinux)
import CPopAgentLinux
#endif

/// A program a test or a benchmark started: the one way they all start processes.
///
/// - The program gets its argv and environment as given (never a shell), standard input from /dev/null, its output
///   in files (never in a pipe that could fill up) or as lines, and no other descriptor of this process: a daemon it
///   starts cannot hold a test runner's pipe open.
/// - It runs in its own process group (``signalGroup(_:)`` reaches its children), with default signal actions.
/// - A thread of its own waits for it, so it never lingers as a zombie, and notes the moment it exited: ``elapsed``
///   is the program's own run time, whatever the load on the task pool of the process that waits for it.
public final class ChildProcess: Sendable {
    /// Where the program's standard output or error goes.
    public enum Output: Sendable {
        /// /dev/null.
        case discard
        /// Appended to a file (created with mode 0600 if needed; emptied first with `truncate`). Standard output and
        /// standard error may share one file.
        case file(URL, truncate: Bool = false)
        /// Read line by line into ``ChildProcess/lines`` (standard output only), for a program that reports as it goes.
        case lines
    }

    /// The process id, which is also its process group id.
    public let pid: pid_t
    /// When it was started.
    public let started: ContinuousClock.Instant
    /// Its standard output, when it goes to a file.
    public let stdoutFile: URL?
    /// Its standard error, when it goes to a file.
    public let stderrFile: URL?
    /// Standard output's lines as they are written, when it was given as `.lines`; finishes at end of file.
    public let lines: AsyncStream<String>?
    private let readyFD: Int32?
    private let state = Mutex(State())

    private struct State {
        var exit: (status: Int32, at: ContinuousClock.Instant)?
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<Int32?, Never>] = [:]
    }

    /// Starts `argv` (the first element a path or a name looked up in PATH) with exactly `environment`.
    ///
    /// - Parameter readyPipe: a pipe on the child's descriptor 3, read by ``readReadyLine()`` (`pop fg --ready-fd 3`).
    /// - Parameter workingDirectory: the folder the program starts in (this process's by default).
    /// - Parameter stdin: a file the program reads as its standard input (/dev/null by default).
    public init(
        _ argv: [String], environment: [String: String], stdin: URL? = nil, stdout: Output = .discard,
        stderr: Output = .discard, readyPipe: Bool = false, workingDirectory: String? = nil
    ) throws {
        precondition(!argv.isEmpty, "a process needs an executable")
        if case .file(let url, _) = stdout { self.stdoutFile = url } else { self.stdoutFile = nil }
        if case .file(let url, _) = stderr { self.stderrFile = url } else { self.stderrFile = nil }
        // Emptied here, once, so that two descriptors appending to one file never overwrite each other.
        for case .file(let url, true) in [stdout, stderr] {
            let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            if fd >= 0 { close(fd) }
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaultSignals = sigset_t()
        sigemptyset(&defaultSignals)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGQUIT] { sigaddset(&defaultSignals, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaultSignals)

        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        posix_spawn_file_actions_addopen(&fileActions, 0, stdin?.path ?? "/dev/null", O_RDONLY, 0)
        var linesPipe: [Int32] = [-1, -1]
        for (descriptor, output) in [(Int32(1), stdout), (2, stderr)] {
            switch output {
            case .discard: posix_spawn_file_actions_addopen(&fileActions, descriptor, "/dev/null", O_WRONLY, 0)
            case .file(let url, _):
                posix_spawn_file_actions_addopen(&fileActions, descriptor, url.path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
            case .lines:
                precondition(descriptor == 1, "only standard output can be read as lines")
                guard pipe(&linesPipe) == 0 else {
                    throw ProcessError("could not create a pipe: \(String(cString: strerror(errno)))")
                }
                for end in linesPipe { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
                posix_spawn_file_actions_adddup2(&fileActions, linesPipe[1], 1)
            }
        }
        #if canImport(CPopAgentLinux)
        if let workingDirectory { cpop_spawn_add_chdir(&fileActions, workingDirectory) }
        #endif
        var pipeEnds: [Int32] = [-1, -1]
        if readyPipe {
            // Close-on-exec, so processes spawned meanwhile by other tests never hold the pipe open.
            guard pipe(&pipeEnds) == 0 else {
                throw ProcessError("could not create a pipe: \(String(cString: strerror(errno)))")
            }
            for end in pipeEnds { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
            posix_spawn_file_actions_adddup2(&fileActions, pipeEnds[1], 3)
        }
        #if canImport(CPopAgentLinux)
        cpop_spawn_add_closefrom(&fileActions, readyPipe ? 4 : 3)
        #endif

        let argvPointers = argv.map { strdup($0) } + [nil]
        defer { for pointer in argvPointers { free(pointer) } }
        let environmentPointers = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in environmentPointers { free(pointer) } }
        var pid: pid_t = 0
        let started = ContinuousClock.now
        let result = posix_spawnp(&pid, argv[0], &fileActions, &attributes, argvPointers, environmentPointers)
        if readyPipe { close(pipeEnds[1]) }
        if linesPipe[1] >= 0 { close(linesPipe[1]) }
        guard result == 0 else {
            if readyPipe { close(pipeEnds[0]) }
            if linesPipe[0] >= 0 { close(linesPipe[0]) }
            throw ProcessError("could not start \(argv[0]): \(String(cString: strerror(result)))")
        }
        self.lines = linesPipe[0] >= 0 ? Self.readLines(linesPipe[0]) : nil
        self.pid = pid
        self.started = started
        self.readyFD = readyPipe ? pipeEnds[0] : nil
        let spawned = pid
        // The thread keeps this object alive until the process has exited and been reaped.
        let waiter = Thread { [self] in
            var status: Int32 = 0
            while waitpid(spawned, &status, 0) == -1, errno == EINTR {}
            let exited = ContinuousClock.now
            let code = Self.exitCode(fromWaitStatus: status)
            let waiters = self.state.withLock { state in
                state.exit = (code, exited)
                defer { state.waiters = [:] }
                return state.waiters
            }
            for waiter in waiters.values { waiter.resume(returning: code) }
        }
        waiter.stackSize = 64 * 1024
        waiter.start()
    }

    deinit {
        if let readyFD { close(readyFD) }
    }

    /// Whether the process has exited.
    public var hasExited: Bool { self.state.withLock { $0.exit != nil } }

    /// The exit code, or 128 + the signal that ended it; nil while it runs.
    public var exitCode: Int32? { self.state.withLock { $0.exit?.status } }

    /// How long the program ran, from its start to the moment its exit was seen; nil while it runs.
    public var elapsed: Duration? { self.state.withLock { $0.exit.map { $0.at - self.started } } }

    /// The moment the program's exit was seen; nil while it runs.
    public var exited: ContinuousClock.Instant? { self.state.withLock { $0.exit?.at } }

    /// Sends `signal` to the process's whole group (a no-op once it has exited).
    public func signalGroup(_ signal: Int32) {
        guard !self.hasExited else { return }
        killpg(self.pid, signal)
    }

    /// Sends `signal` to the process alone.
    public func signal(_ signal: Int32) {
        guard !self.hasExited else { return }
        kill(self.pid, signal)
    }

    /// Waits until the process has exited and returns its exit code (128 + signal when a signal ended it).
    @discardableResult
    public func waitForExit() async -> Int32 {
        await self.wait(timeout: nil)!
    }

    /// Waits at most `timeout` for the process to exit; nil when it still runs.
    ///
    /// The waiting thread resumes the caller directly, and a dispatch timer ends the wait: no task of the caller's
    /// pool runs in between.
    public func waitForExit(timeout: Duration) async -> Int32? {
        await self.wait(timeout: timeout)
    }

    private func wait(timeout: Duration?) async -> Int32? {
        await withCheckedContinuation { (continuation: CheckedContinuation<Int32?, Never>) in
            let registered: Int? = self.state.withLock { state in
                if state.exit != nil { return nil }
                state.nextWaiter += 1
                state.waiters[state.nextWaiter] = continuation
                return state.nextWaiter
            }
            guard let id = registered else {
                continuation.resume(returning: self.exitCode)
                return
            }
            guard let timeout else { return }
            let nanoseconds = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(nanoseconds))) {
                self.state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
            }
        }
    }

    /// Reads the first line from the readiness pipe (blocking a dedicated thread); nil at end of file.
    public func readReadyLine() async -> String? {
        guard let fd = self.readyFD else { return nil }
        return await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var bytes: [UInt8] = []
                var byte: UInt8 = 0
                while true {
                    let count = read(fd, &byte, 1)
                    if count == 1 {
                        if byte == UInt8(ascii: "\n") { break }
                        bytes.append(byte)
                    } else if count == -1 && errno == EINTR {
                        continue
                    } else {
                        continuation.resume(returning: bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self))
                        return
                    }
                }
                continuation.resume(returning: String(decoding: bytes, as: UTF8.self))
            }
        }
    }

    /// Stops the process group: SIGTERM, then SIGKILL after `grace`; returns once the process has exited.
    public func stop(grace: Duration = .seconds(5)) async {
        guard !self.hasExited else { return }
        self.signalGroup(SIGTERM)
        if await self.waitForExit(timeout: grace) == nil {
            self.signalGroup(SIGKILL)
            await self.waitForExit()
        }
    }

    /// The lines read from `fd` on a thread of its own, until end of file; the descriptor is closed then.
    private static func readLines(_ fd: Int32) -> AsyncStream<String> {
        let (lines, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .unbounded)
        Thread.detachNewThread {
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { break }
                pending += buffer[0..<count]
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    continuation.yield(String(decoding: pending[..<newline], as: UTF8.self))
                    pending.removeSubrange(...newline)
                }
            }
            if !pending.isEmpty { continuation.yield(String(decoding: pending, as: UTF8.self)) }
            close(fd)
            continuation.finish()
        }
        return lines
    }

    /// The exit code a wait status stands for: the exit status, or 128 + the signal that ended the process.
    public static func exitCode(fromWaitStatus status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}
