#if canImport(Glibc)
import Glibc
#endif
import CPopAgentLinux
import Foundation

/// Finds and ends the processes one tutorial run left behind: its agent (which has the run's POP_HOME in its
/// environment) and every instance, setup step or task (which have POP_INSTANCE_DIR inside that home), each with its
/// whole process group, so a failed run leaves no Plone listening and no pip running.
enum LeftoverProcesses {
    /// The processes whose environment names `home` as POP_HOME or an instance folder inside it.
    static func find(home: String) -> [pid_t] {
        let markers = ["POP_HOME=\(home)", "POP_INSTANCE_DIR=\(home)/"]
        let own = getpid()
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { pid_t($0) }.filter { pid in
            guard pid != own, let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            return data.split(separator: 0).contains { entry in
                let text = String(decoding: entry, as: UTF8.self)
                return markers.contains { text.hasPrefix($0) }
            }
        }
    }

    /// Sends SIGKILL to the process group of every leftover process (or to the process alone when it shares this
    /// test's group) and returns what it found, for the test's report.
    @discardableResult
    static func kill(home: String) -> [pid_t] {
        let found = find(home: home)
        let ownGroup = getpgrp()
        for pid in found {
            let group = getpgid(pid)
            if group > 1, group != ownGroup {
                _ = Glibc.kill(-group, SIGKILL)
            } else {
                _ = Glibc.kill(pid, SIGKILL)
            }
        }
        return found
    }

    /// Waits until `pid` has exited, on its pidfd (no polling), on a thread of its own; false when it still runs
    /// after `timeout`.
    static func waitForExit(_ pid: pid_t, timeout: Duration) async -> Bool {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: blockingWaitForExit(pid, timeout: timeout)) }
        }
    }

    private static func blockingWaitForExit(_ pid: pid_t, timeout: Duration) -> Bool {
        let fd = cpop_pidfd_open(pid)
        guard fd >= 0 else { return errno == ESRCH }
        defer { close(fd) }
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        while true {
            let ready = poll(&entry, 1, milliseconds)
            if ready < 0, errno == EINTR { continue }
            return ready > 0
        }
    }
}
