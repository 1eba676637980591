import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process the cluster harness started, in its own process group, with its output in files.
///
/// A dedicated thread waits for it, so it never lingers as a zombie and its exit is seen at once. An optional pipe on
/// descriptor 3 carries a readiness line (`pop fg --ready-fd 3`).
public final class ClusterProcess: Sendable {
    /// The process id, which is also its process group id.
    public let pid: pid_t
    /// Where its standard output goes.
    public let stdoutFile: URL
    /// Where its standard error goes.
    public let stderrFile: URL
    private let readyFD: Int32?
    private let state = Mutex(State())

    private struct State {
        var exitStatus: Int32?
        var waiters: [CheckedContinuation<Int32, Never>] = []
    }

    /// Spawns `argv` (the first element a path or a name looked up in PATH) with exactly `environment`.
    ///
    /// - Parameter readyPipe: open a pipe on the child's descriptor 3 and keep its reading end for ``readLine()``.
    public init(
        _ argv: [String], environment: [String: String], stdout: URL, stderr: URL, readyPipe: Bool = false
    ) throws {
        precondition(!argv.isEmpty, "a process needs an executable")
        self.stdoutFile = stdout
        self.stderrFile = stderr
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
        posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fileActions, 1, stdout.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_addopen(&fileActions, 2, stderr.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        var pipeEnds: [Int32] = [-1, -1]
        if readyPipe {
            // Close-on-exec, so processes spawned meanwhile by other tests never hold the pipe open.
            guard pipe(&pipeEnds) == 0 else {
                throw ClusterError("could not create a pipe: \(String(cString: strerror(errno)))")
            }
            for end in pipeEnds { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
            posix_spawn_file_actions_adddup2(&fileActions, pipeEnds[1], 3)
        }

        let argvPointers = argv.map { strdup($0) } + [nil]
        defer { for pointer in argvPointers { free(pointer) } }
        let environmentPointers = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in environmentPointers { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawnp(&pid, argv[0], &fileActions, &attributes, argvPointers, environmentPointers)
        if readyPipe { close(pipeEnds[1]) }
        guard result == 0 else {
            if readyPipe { close(pipeEnds[0]) }
            throw ClusterError("could not start \(argv[0]): \(String(cString: strerror(result)))")
        }
        self.pid = pid
        self.readyFD = readyPipe ? pipeEnds[0] : nil
        let spawned = pid
        // The thread keeps this object alive until the process has exited and been reaped.
        Thread.detachNewThread { [self] in
            var status: Int32 = 0
            while waitpid(spawned, &status, 0) == -1, errno == EINTR {}
            let waiters = self.state.withLock { state in
                state.exitStatus = status
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume(returning: status) }
        }
    }

    deinit {
        if let readyFD { close(readyFD) }
    }

    /// Whether the process has exited.
    public var hasExited: Bool { self.state.withLock { $0.exitStatus != nil } }

    /// The exit code, or 128 + the signal that ended it; nil while it runs.
    public var exitCode: Int32? { self.state.withLock { $0.exitStatus }.map(Self.exitCode(fromWaitStatus:)) }

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
        let status = await withCheckedContinuation { continuation in
            let status: Int32? = self.state.withLock { state in
                if let status = state.exitStatus { return status }
                state.waiters.append(continuation)
                return nil
            }
            if let status { continuation.resume(returning: status) }
        }
        return Self.exitCode(fromWaitStatus: status)
    }

    /// Waits at most `timeout` for the process to exit; nil when it still runs.
    public func waitForExit(timeout: Duration) async -> Int32? {
        // Not a task group: that would wait for the exit waiter, which only returns once the process has exited.
        await withCheckedContinuation { (continuation: CheckedContinuation<Int32?, Never>) in
            let once = ResumeOnce(continuation)
            let timer = Task {
                // Cancelled once the process has exited (and the continuation resumed): then nothing is left to do.
                guard (try? await Task.sleep(for: timeout)) != nil else { return }
                once.resume(nil)
            }
            Task {
                let code = await self.waitForExit()
                once.resume(code)
                timer.cancel()
            }
        }
    }

    /// Reads the first line from the readiness pipe (blocking a dedicated thread); nil at end of file.
    func readReadyLine() async -> String? {
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

    /// Stops the process group: SIGTERM, then SIGKILL after `grace`.
    public func stop(grace: Duration = .seconds(5)) async {
        guard !self.hasExited else { return }
        self.signalGroup(SIGTERM)
        if await self.waitForExit(timeout: grace) == nil {
            self.signalGroup(SIGKILL)
            await self.waitForExit()
        }
    }

    static func exitCode(fromWaitStatus status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}

/// A continuation resumed by whichever of several racing tasks comes first.
private final class ResumeOnce: Sendable {
    private let continuation: Mutex<CheckedContinuation<Int32?, Never>?>

    init(_ continuation: CheckedContinuation<Int32?, Never>) {
        self.continuation = Mutex(continuation)
    }

    func resume(_ value: Int32?) {
        let continuation = self.continuation.withLock { continuation in
            defer { continuation = nil }
            return continuation
        }
        continuation?.resume(returning: value)
    }
}
