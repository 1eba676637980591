import Foundation
import NIOConcurrencyHelpers

import Glibc

/// One ZooKeeper JVM, started in its own process group so it and anything it spawns can be signalled at once.
final class ZooKeeperProcess: Sendable {
    /// The process id, which is also the process group id.
    let pid: pid_t
    let logFile: URL
    private let state = NIOLockedValueBox(State())

    private struct State {
        var exitStatus: Int32?
        var waiters: [CheckedContinuation<Int32, Never>] = []
    }

    /// Spawns `java` with `arguments`, stdout and stderr going to `logFile`.
    init(java: String, arguments: [String], logFile: URL) throws {
        self.logFile = logFile
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
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaultSignals, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaultSignals)

        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fileActions, 1, logFile.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&fileActions, 1, 2)

        let argv = ([java] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, java, &fileActions, &attributes, argv, environ)
        guard result == 0 else {
            throw ZooKeeperTestSupportError("could not start \(java): \(String(cString: strerror(result)))")
        }
        self.pid = pid
        let spawned = pid
        let state = self.state
        // A dedicated thread reaps the process, so it never lingers as a zombie and exits are seen at once.
        Thread.detachNewThread {
            var status: Int32 = 0
            while waitpid(spawned, &status, 0) == -1, errno == EINTR {}
            let waiters = state.withLockedValue { state in
                state.exitStatus = status
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume(returning: status) }
        }
    }

    /// Whether the process has exited.
    var hasExited: Bool { self.state.withLockedValue { $0.exitStatus != nil } }

    /// Sends `signal` to the whole process group.
    func signal(_ signal: Int32) {
        guard !self.hasExited else { return }
        killpg(self.pid, signal)
    }

    /// Waits until the process has exited and returns its wait status.
    func waitForExit() async -> Int32 {
        await withCheckedContinuation { continuation in
            let status: Int32? = self.state.withLockedValue { state in
                if let status = state.exitStatus { return status }
                state.waiters.append(continuation)
                return nil
            }
            if let status { continuation.resume(returning: status) }
        }
    }

    /// Waits up to `timeout` for an exit; returns whether it happened.
    func waitForExit(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                _ = await self.waitForExit()
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next()!
            group.cancelAll()
            if !first {
                // Unblock the exit waiter by ending the process.
                self.signal(SIGKILL)
                _ = await group.next()
            }
            return first
        }
    }

    /// Stops the process: SIGTERM, then SIGKILL after `grace`. The group is killed either way, so nothing the
    /// JVM started survives.
    func stop(grace: Duration = .seconds(3)) async {
        if self.hasExited { return }
        self.signal(SIGCONT)
        self.signal(SIGTERM)
        if await !self.waitForExit(timeout: grace) {
            self.signal(SIGKILL)
            _ = await self.waitForExit()
        }
        killpg(self.pid, SIGKILL)
    }

    /// Kills the process group at once (a crash, as far as the ensemble can tell).
    func kill() async {
        self.signal(SIGKILL)
        _ = await self.waitForExit()
    }

    /// The last `lines` lines of the server's log, for error messages.
    func logTail(lines: Int = 30) -> String {
        guard let text = try? String(contentsOf: self.logFile, encoding: .utf8) else { return "(no log)" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}
