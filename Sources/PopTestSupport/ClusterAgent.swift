import Foundation

#if canImport(Glibc)
import Glibc
import TestProcesses
#endif

/// A machine agent (`pop fg`) the harness runs in a machine's network namespace.
public final class ClusterAgent: Sendable {
    /// The machine it serves.
    public let machineID: String
    /// The agent's process (`ip netns exec` execs `env`, which execs pop: one process throughout).
    public let process: ChildProcess
    /// Its log (standard output and error).
    public let logFile: URL

    /// The agent's process id.
    public var pid: Int32 { self.process.pid }

    init(machineID: String, process: ChildProcess, logFile: URL) {
        self.machineID = machineID
        self.process = process
        self.logFile = logFile
    }

    /// Waits for the agent's readiness line: it has registered its machine. Kills it and throws on failure.
    func waitUntilReady(timeout: Duration) async throws {
        let line = await withTaskGroup(of: String?.self) { group in
            group.addTask { await self.process.readReadyLine() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return "timeout"
            }
            let first = await group.next()!
            if first == "timeout" { self.process.signalGroup(SIGKILL) }
            group.cancelAll()
            return first
        }
        if let line, line.hasPrefix("ready") { return }
        self.process.signalGroup(SIGKILL)
        await self.process.waitForExit()
        let why: String
        switch line {
        case "timeout": why = "did not report ready within \(timeout)"
        case let line? where line.hasPrefix("error "): why = "failed: \(line.dropFirst("error ".count))"
        default: why = "exited (\(self.process.exitCode.map(String.init) ?? "?")) before it was ready"
        }
        throw ClusterError("the agent of machine \(self.machineID) \(why); its log ends with:\n\(self.logTail())")
    }

    /// SIGKILLs the agent alone, as a crash would: its instances keep running.
    public func crash() async {
        self.process.signal(SIGKILL)
        await self.process.waitForExit()
    }

    /// Stops the agent gracefully with SIGTERM (its instances keep running) and returns its exit code.
    @discardableResult
    public func stop(timeout: Duration = .seconds(30)) async -> Int32 {
        self.process.signal(SIGTERM)
        if let code = await self.process.waitForExit(timeout: timeout) { return code }
        self.process.signal(SIGKILL)
        return await self.process.waitForExit()
    }

    /// Whether the agent still runs.
    public var isRunning: Bool { !self.process.hasExited }

    /// The last `lines` lines of the agent's log.
    public func logTail(lines: Int = 40) -> String {
        guard let text = try? String(contentsOf: self.logFile, encoding: .utf8) else { return "(no log)" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}
