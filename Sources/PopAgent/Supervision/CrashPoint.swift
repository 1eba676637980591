#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// A test hook: the supervisor's steps at which an agent can die, and a way to make it die there for real.
///
/// Whatever instant an agent is killed at, the next agent must adopt or stop every process it started. The fault
/// tests check that at each step by setting `POP_TEST_CRASH_POINT=STEP` (or `STEP:N`, the N-th time the step is
/// reached) in the agent's environment: the agent then sends itself SIGKILL at that step, exactly as `kill -9` would,
/// so no cleanup runs. Unset (always, outside those tests), ``reach(_:)`` only compares one pointer with nil.
/// Instances never see the variable: their environment is built from nothing.
enum CrashPoint: String, CaseIterable, Sendable {
    /// A process exists, waiting at its gate; the instance record does not name it yet.
    case spawnCloned = "spawn.cloned"
    /// The record names the process; its program has not been allowed to run.
    case spawnRecorded = "spawn.recorded"
    /// The program runs; the supervisor has not taken note yet.
    case spawnReleased = "spawn.released"
    /// The stop signal went to the process group; the process has not exited yet.
    case stopSignalled = "stop.signalled"
    /// The process exited; its group was not killed nor the process reaped yet.
    case exitSeen = "exit.seen"
    /// The group was killed and the process reaped; the record still names it.
    case exitReaped = "exit.reaped"
    /// The instance stopped for good and its record was removed.
    case recordRemoved = "record.removed"

    /// The environment variable that arms a crash point.
    static let variable = "POP_TEST_CRASH_POINT"

    private struct Armed {
        var point: CrashPoint
        var remaining: Int
    }

    private static let armed: Mutex<Armed?> = {
        guard let value = getenv(variable).map({ String(cString: $0) }), !value.isEmpty else { return Mutex(nil) }
        let parts = value.split(separator: ":", maxSplits: 1)
        guard let point = CrashPoint(rawValue: String(parts[0])) else { return Mutex(nil) }
        let count = parts.count > 1 ? Int(parts[1]) ?? 1 : 1
        return Mutex(Armed(point: point, remaining: max(1, count)))
    }()

    /// Kills this process with SIGKILL if it is armed for `point` and this is the time.
    static func reach(_ point: CrashPoint) {
        let fire = armed.withLock { armed -> Bool in
            guard armed?.point == point else { return false }
            armed!.remaining -= 1
            return armed!.remaining == 0
        }
        guard fire else { return }
        let message = Array("pop: test crash point \(point.rawValue) reached; killing this agent (\(variable))\n".utf8)
        _ = message.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        kill(getpid(), SIGKILL)
    }
}
