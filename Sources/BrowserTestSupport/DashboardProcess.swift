import Foundation
import TestProcesses

#if canImport(Glibc)
import Glibc
#endif

/// A running `pop ui`, for the dashboard's tests and benchmark: the address it printed, and its output.
public struct DashboardProcess: Sendable {
    /// The process.
    public let process: ChildProcess
    /// The address `pop ui` printed, with its token fragment when it printed one: `http://127.0.0.1:PORT/#token=…`.
    public let address: String
    /// Its standard error.
    public let errorLog: URL

    /// `http://127.0.0.1:PORT`.
    public var origin: String {
        let afterScheme = address.dropFirst("http://".count)
        return "http://" + afterScheme.prefix { $0 != "/" }
    }

    /// The port it listens on.
    public var port: Int { Int(origin.split(separator: ":").last ?? "") ?? 0 }

    /// The token from the address, when the namespace is open.
    public var token: String? {
        address.range(of: "#token=").map { String(address[$0.upperBound...]) }
    }

    /// Runs `argv` (a `pop ui` command line, possibly wrapped by `env` or `ip netns exec`) with `environment`, waits
    /// for the address it prints, runs `body`, then stops it with SIGTERM and checks that it exits 0.
    public static func with<T: Sendable>(
        _ argv: [String], environment: [String: String], scratch: URL, startTimeout: Duration = .seconds(60),
        _ body: (DashboardProcess) async throws -> T
    ) async throws -> T {
        let errorLog = scratch.appendingPathComponent("pop-ui-\(UUID().uuidString.prefix(6)).log")
        let process = try ChildProcess(argv, environment: environment, stdout: .lines, stderr: .file(errorLog))
        let dashboard: DashboardProcess
        do {
            dashboard = try await waitForAddress(process, errorLog: errorLog, timeout: startTimeout)
        } catch {
            process.signalGroup(SIGKILL)
            await process.waitForExit()
            throw error
        }
        let result: T
        do {
            result = try await body(dashboard)
        } catch {
            process.signalGroup(SIGKILL)
            await process.waitForExit()
            throw error
        }
        process.signal(SIGTERM)
        let code = await process.waitForExit(timeout: .seconds(20))
        if code == nil {
            process.signalGroup(SIGKILL)
            await process.waitForExit()
        }
        guard code == 0 else {
            throw DevToolsError("pop ui did not exit cleanly on SIGTERM (\(code.map(String.init) ?? "still running")): \(Chromium.tail(errorLog))")
        }
        return result
    }

    private static func waitForAddress(_ process: ChildProcess, errorLog: URL, timeout: Duration) async throws -> DashboardProcess {
        let line = await withTaskGroup(of: String?.self) { group in
            group.addTask {
                for await line in process.lines! where line.hasPrefix("pop ui: ") { return line }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            return await group.next() ?? nil
        }
        guard let line else {
            throw DevToolsError("pop ui printed no address (exit \(process.exitCode.map(String.init) ?? "-")): \(Chromium.tail(errorLog))")
        }
        return DashboardProcess(process: process, address: String(line.dropFirst("pop ui: ".count)), errorLog: errorLog)
    }
}
