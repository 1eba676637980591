import Foundation
import Synchronization

/// The PopStateProbe program running as a separate process on a shared embedded store; its output lines arrive
/// on ``lines``.
final class ProbeProcess: Sendable {
    let process: Process
    let lines: AsyncStream<String>

    init(_ arguments: [String], sessionMilliseconds: Int = 10_000) throws {
        let process = Process()
        process.executableURL = try Self.executable()
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["POP_PROBE_SESSION_MS"] = String(sessionMilliseconds)
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        let (lines, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .unbounded)
        self.process = process
        self.lines = lines
        let splitter = LineSplitter()
        output.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                continuation.finish()
                return
            }
            for line in splitter.append(data) { continuation.yield(line) }
        }
        try process.run()
    }

    /// Sends a signal to the process.
    func kill(_ signal: Int32) {
        Foundation.kill(process.processIdentifier, signal)
    }

    /// Waits for the process to exit and returns its status.
    func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                self.process.waitUntilExit()
                continuation.resume(returning: self.process.terminationStatus)
            }
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

/// Splits a byte stream into lines.
final class LineSplitter: Sendable {
    private let buffer = Mutex<[UInt8]>([])

    func append(_ data: Data) -> [String] {
        buffer.withLock { buffer in
            buffer.append(contentsOf: data)
            var lines: [String] = []
            while let newline = buffer.firstIndex(of: 0x0a) {
                lines.append(String(decoding: buffer[..<newline], as: UTF8.self))
                buffer.removeSubrange(...newline)
            }
            return lines
        }
    }
}
