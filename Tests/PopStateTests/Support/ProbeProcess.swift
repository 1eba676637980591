import Foundation
import TestProcesses

#if canImport(Glibc)
import Glibc
#endif

/// The PopStateProbe program running as a separate process on a shared embedded store; its output lines arrive
/// on ``lines``.
final class ProbeProcess: Sendable {
    let process: ChildProcess
    let lines: AsyncStream<String>

    init(_ arguments: [String], sessionMilliseconds: Int = 10_000) throws {
        var environment = ProcessInfo.processInfo.environment
        environment["POP_PROBE_SESSION_MS"] = String(sessionMilliseconds)
        process = try ChildProcess([try Self.executable().path] + arguments, environment: environment, stdout: .lines)
        lines = process.lines!
    }

    /// Sends a signal to the process.
    func kill(_ signal: Int32) {
        process.signal(signal)
    }

    /// Waits for the process to exit and returns its status.
    func wait() async -> Int32 {
        await process.waitForExit()
    }

    /// Runs `body` with a probe, which is killed (and waited for) afterwards if it still runs.
    static func with<T>(
        _ arguments: [String], sessionMilliseconds: Int = 10_000, _ body: (ProbeProcess) async throws -> T
    ) async throws -> T {
        let probe = try ProbeProcess(arguments, sessionMilliseconds: sessionMilliseconds)
        do {
            let result = try await body(probe)
            await probe.process.stop(grace: .zero)
            return result
        } catch {
            await probe.process.stop(grace: .zero)
            throw error
        }
    }

    /// The probe program, built next to the test binary.
    static func executable() throws -> URL {
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var folder = testBinary.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = folder.appendingPathComponent("PopStateProbe")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            folder = folder.deletingLastPathComponent()
        }
        throw ProbeMissing(near: testBinary.path)
    }

    struct ProbeMissing: Error, CustomStringConvertible {
        var near: String
        var description: String { "PopStateProbe was not built next to \(near); build with `swift build --build-tests`." }
    }
}
