import Foundation
import Glibc

@testable import PopAgent

/// The real log writer (`pop-log`), started as the supervisor starts it: the test writes into its pipes, then closes
/// them and waits for it to have written everything and exited.
final class LogWriterProcess {
    let pid: pid_t
    private var inputs: [Int32]

    /// Starts a log writer of `files` (one or two, e.g. `stdout.log`, `stderr.log`) in `folder`.
    init(folder: String, files: [String], maximumBytes: Int, keep: Int) throws {
        let pipes = try LogWriter.start(
            folder: folder, files: files, rotation: LogRotation(maximumBytes: maximumBytes, keep: keep))
        pid = pipes.writer
        inputs = pipes.output == pipes.errorOutput ? [pipes.output] : [pipes.output, pipes.errorOutput]
    }

    /// Writes `text` into pipe `index` (0: the first file) in one write.
    func write(_ text: String, to index: Int = 0) {
        let bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(inputs[index], $0.baseAddress! + done, $0.count - done) }
            if written < 0 && errno == EINTR { continue }
            precondition(written > 0, "writing to the log writer failed")
            done += written
        }
    }

    /// Closes the pipes and waits until the writer has written everything and exited; returns its status.
    @discardableResult
    func finish() -> Int32 {
        for fd in inputs { close(fd) }
        inputs = []
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        return status
    }

    deinit {
        if !inputs.isEmpty { finish() }
    }
}

/// A temporary folder removed by ``withTemporaryFolder(_:)`` when the test is done.
func withTemporaryFolder<T>(_ body: (String) async throws -> T) async throws -> T {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pop-observe-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    do {
        let result = try await body(folder)
        try? FileManager.default.removeItem(atPath: folder)
        return result
    } catch {
        try? FileManager.default.removeItem(atPath: folder)
        throw error
    }
}
