import Foundation
import Glibc
import TestProcesses

/// One ZooKeeper JVM, started in its own process group so it and anything it spawns can be signalled at once.
final class ZooKeeperProcess: Sendable {
    let process: ChildProcess
    let logFile: URL

    /// Spawns `java` with `arguments`, stdout and stderr going to `logFile`.
    init(java: String, arguments: [String], logFile: URL) throws {
        self.logFile = logFile
        self.process = try ChildProcess(
            [java] + arguments, environment: ProcessInfo.processInfo.environment, stdout: .file(logFile),
            stderr: .file(logFile))
    }

    /// The process id, which is also the process group id.
    var pid: pid_t { self.process.pid }

    /// Whether the process has exited.
    var hasExited: Bool { self.process.hasExited }

    /// Sends `signal` to the whole process group.
    func signal(_ signal: Int32) {
        self.process.signalGroup(signal)
    }

    /// Stops the process: SIGTERM, then SIGKILL after `grace`. The group is killed either way, so nothing the
    /// JVM started survives.
    func stop(grace: Duration = .seconds(3)) async {
        if self.hasExited { return }
        self.signal(SIGCONT)
        await self.process.stop(grace: grace)
        killpg(self.pid, SIGKILL)
    }

    /// Kills the process group at once (a crash, as far as the ensemble can tell).
    func kill() async {
        self.signal(SIGKILL)
        await self.process.waitForExit()
    }

    /// The last `lines` lines of the server's log, for error messages.
    func logTail(lines: Int = 30) -> String {
        guard let text = try? String(contentsOf: self.logFile, encoding: .utf8) else { return "(no log)" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}
