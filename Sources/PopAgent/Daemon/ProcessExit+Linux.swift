#if os(Linux)
import CPopAgentLinux
import Glibc
import PopState

/// Linux pieces of the daemon helpers: a new session for a spawned agent, and waiting for another process's exit on
/// a pidfd.
enum ProcessExit {
    /// glibc's `POSIX_SPAWN_SETSID` (0x80), which Swift's Glibc module does not export.
    static let spawnNewSessionFlag: Int16 = 0x80

    /// Sends `signal` to `pid` and waits up to `timeout` for it to exit; returns whether it did.
    static func signalAndWait(pid: Int32, signal: Int32, timeout: Duration) throws(PopError) -> Bool {
        let pidfd = cpop_pidfd_open(pid)
        guard pidfd >= 0 else {
            if errno == ESRCH { return true }
            throw AgentPidFile.systemError("watch the agent process \(pid)", errno: errno)
        }
        defer { close(pidfd) }
        // The pidfd pins the process: the wait below is for this very process even if its pid is reused later.
        guard kill(pid, signal) == 0 else {
            if errno == ESRCH { return true }
            throw AgentPidFile.systemError("signal the agent process \(pid)", errno: errno)
        }
        let deadline = ContinuousClock.now + timeout
        while true {
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero { return false }
            var descriptor = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, remaining.pollMilliseconds)
            if ready > 0 { return true }
            if ready < 0, errno != EINTR {
                throw AgentPidFile.systemError("wait for the agent process \(pid)", errno: errno)
            }
        }
    }
}
#endif
