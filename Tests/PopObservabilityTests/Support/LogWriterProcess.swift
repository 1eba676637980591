import CPopAgentLinux
import Foundation
import Glibc
import PopTestSupport

/// The real log writer (`pop-log`) run by a test: the test writes into its pipes, then closes them and waits for it to
/// have written everything and exited.
final class LogWriterProcess {
    let pid: pid_t
    private var inputs: [Int32]

    /// Starts `pop-log` writing `files` (one per pipe, e.g. `stdout.log`, `stderr.log`) into `folder`.
    init(folder: String, files: [String], maximumBytes: Int, keep: Int) throws {
        let executable = (try PopBinary.locate() as NSString).deletingLastPathComponent + "/pop-log"
        var readEnds: [Int32] = []
        var writeEnds: [Int32] = []
        for _ in files {
            var ends: [Int32] = [-1, -1]
            guard cpop_pipe_cloexec(&ends) == 0 else { throw POSIXError(.EMFILE) }
            readEnds.append(ends[0])
            writeEnds.append(ends[1])
        }
        let targets: [Int32] = [0, 3]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (index, fd) in readEnds.enumerated() { posix_spawn_file_actions_adddup2(&actions, fd, targets[index]) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        cpop_spawn_add_closefrom(&actions, 4)
        let arguments =
            [
                String(cString: cpop_log_writer_name()), String(cString: cpop_log_writer_marker()), folder,
                String(maximumBytes), String(keep),
            ] + files.enumerated().map { "\(targets[$0.offset])=\($0.element)" }
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var environment: [UnsafeMutablePointer<CChar>?] = [nil]
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, nil, argv, &environment)
        for fd in readEnds { close(fd) }
        guard result == 0 else {
            for fd in writeEnds { close(fd) }
            throw POSIXError(POSIXErrorCode(rawValue: result) ?? .EIO)
        }
        self.pid = pid
        self.inputs = writeEnds
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
