import Foundation

#if canImport(CPopAgentLinux)
import CPopAgentLinux
#endif

#if canImport(Glibc)
import Glibc
#endif

/// What /proc says about this host's processes, for tests that check what a command left running.
public enum Processes {
    /// Whether `pid` names a live process (not a zombie).
    public static func isAlive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0, let fields = statFields(pid) else { return false }
        return fields.first != "Z"
    }

    /// The live processes whose process group is `group`.
    public static func groupMembers(_ group: Int32) -> [Int32] {
        all().filter { pid in
            guard let fields = statFields(pid) else { return false }
            // After the command: state, ppid, pgrp.
            return fields.count > 2 && fields[0] != "Z" && Int32(fields[2]) == group
        }
    }

    /// The processes (other than this one) whose environment has an entry starting with one of `prefixes`, such as
    /// `POP_HOME=/tmp/x`: what a test's commands started, whatever became of their parents.
    public static func withEnvironment(startingWith prefixes: [String]) -> [Int32] {
        let own = getpid()
        return all().filter { pid in
            guard pid != own, let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            return data.split(separator: 0).contains { entry in
                let text = String(decoding: entry, as: UTF8.self)
                return prefixes.contains { text.hasPrefix($0) }
            }
        }
    }

    /// When `pid` started, in clock ticks since boot (`/proc/PID/stat` field 22): with the pid, it names one process
    /// for good, where the pid alone may be reused.
    public static func startTime(_ pid: Int32) -> UInt64? {
        guard let fields = statFields(pid), fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }

    /// The direct children of `pid`, from /proc.
    public static func children(of pid: Int32) -> [Int32] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.flatMap { task in
            ((try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/children", encoding: .utf8)) ?? "")
                .split(separator: " ").compactMap { Int32($0) }
        }
    }

    /// Every process id in /proc.
    static func all() -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }
    }

    /// The fields of /proc/PID/stat after the command name.
    static func statFields(_ pid: Int32) -> [Substring]? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }
}

extension Processes {
    /// Waits until every one of `pids` has exited (on their pidfds, on a thread of its own: no polling); false when
    /// one still runs after `timeout`.
    public static func waitForExit(_ pids: [Int32], timeout: Duration) async -> Bool {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: blockingWaitForExit(pids, timeout: timeout)) }
        }
    }

    private static func blockingWaitForExit(_ pids: [Int32], timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        for pid in pids {
            let fd = cpop_pidfd_open(pid)
            guard fd >= 0 else {
                if errno == ESRCH { continue }
                return false
            }
            defer { close(fd) }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            while true {
                let remaining = deadline - ContinuousClock.now
                if remaining <= .zero { return false }
                let ready = poll(&entry, 1, Int32(remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000 + 1))
                if ready > 0 { break }
                if ready == 0 || errno != EINTR { return false }
            }
        }
        return true
    }
}
