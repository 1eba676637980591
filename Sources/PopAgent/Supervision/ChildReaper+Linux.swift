#if os(Linux)
import CPopAgentLinux
import Glibc
import Synchronization

/// Reaps orphaned descendants that were reparented to this process (it is a child subreaper), without ever taking
/// the exit status of a child someone else waits for.
///
/// A zombie child is reaped here only when (1) no supervisor tracks its pid, and (2) it is in another session than
/// the agent. Every instance runs in its own session, so its orphans qualify, while children started by other code
/// in the agent (such as swift-subprocess, which waits on its own pidfds) stay in the agent's session and are left
/// alone. Spawning holds the same lock as the reaping decision, so a child is tracked before the reaper can see it.
enum ChildReaper {
    private static let tracked = Mutex<Set<Int32>>([])

    /// An eventfd that the SIGCHLD handler bumps; event loops watch it.
    static let wakeDescriptor: Int32 = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))

    private static let installation: Void = {
        ProcessTable.becomeSubreaper()
        _ = cpop_install_sigchld_wake(wakeDescriptor)
    }()

    /// Makes this process a subreaper and installs the SIGCHLD wake-up (once per process).
    static func install() {
        _ = installation
    }

    /// Runs `spawn` under the reaper's lock and tracks the child it returns, so the reaper never takes its status.
    static func spawnTracked<Failure: Error>(_ spawn: () throws(Failure) -> GatedChild) throws(Failure) -> GatedChild {
        let result: Result<GatedChild, Failure> = tracked.withLock { set in
            do throws(Failure) {
                let child = try spawn()
                set.insert(child.pid)
                return .success(child)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Tracks a child that was not spawned through ``spawnTracked(_:)`` (an adopted process that is our child).
    static func track(_ pid: Int32) {
        _ = tracked.withLock { $0.insert(pid) }
    }

    /// Stops tracking a pid once its supervisor has reaped it, or has let go of it.
    static func untrack(_ pid: Int32) {
        _ = tracked.withLock { $0.remove(pid) }
    }

    private struct Sweeps {
        var done = 0
        var nextWaiter = 0
        var waiting: [Int: (after: Int, continuation: CheckedContinuation<Void, Never>)] = [:]
    }

    private static let sweeps = Mutex(Sweeps())

    /// How many sweeps have finished so far (for tests).
    static var sweepsDone: Int { sweeps.withLock { $0.done } }

    /// Returns once more than `count` sweeps have finished, or when the task is cancelled (for tests: a sweep reaps
    /// every zombie that existed when it began).
    static func sweep(after count: Int) async {
        let id = sweeps.withLock { sweeps in
            defer { sweeps.nextWaiter += 1 }
            return sweeps.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = sweeps.withLock { sweeps -> Bool in
                    if Task.isCancelled || sweeps.done > count { return true }
                    sweeps.waiting[id] = (count, continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            sweeps.withLock { $0.waiting.removeValue(forKey: id) }?.continuation.resume()
        }
    }

    /// Reaps every untracked zombie child in another session; returns how many were reaped.
    @discardableResult
    static func sweep() -> Int {
        defer {
            let waiters = sweeps.withLock { sweeps in
                sweeps.done += 1
                let due = sweeps.waiting.filter { $0.value.after < sweeps.done }
                for id in due.keys { sweeps.waiting[id] = nil }
                return due.values.map(\.continuation)
            }
            for waiter in waiters { waiter.resume() }
        }
        // Most SIGCHLDs are for instances, which their pidfd handlers have reaped by now (the event loop handles
        // SIGCHLD after the other events it woke for): with no exited child at all there is nothing to look for.
        guard cpop_has_exited_child() == 1 else { return 0 }
        let ownSession = getsid(0)
        var reaped = 0
        // Most children are tracked instance leaders: leave them out before reading anything from /proc.
        let untracked = tracked.withLock { set in ProcessTable.children().filter { !set.contains($0) } }
        for pid in untracked {
            guard let stat = ProcessTable.stat(pid), stat.isZombie, stat.session != ownSession else { continue }
            let done = tracked.withLock { set -> Bool in
                guard !set.contains(pid) else { return false }
                var status: Int32 = 0
                return waitpid(pid, &status, WNOHANG) == pid
            }
            if done { reaped += 1 }
        }
        return reaped
    }
}
#endif
