#if os(Linux)
import CPopAgentLinux
import Foundation
import Glibc

/// Starts an instance's log writer (`pop-log`): a small process that reads the instance's output from pipes and
/// appends it to the log files, rotating them so that none ever holds more than ``LogRotation/maximumBytes``.
///
/// An instance writes into pipes, not files, because only the reader of a pipe can bound what lands in a file at every
/// moment: a process writing to its own `O_APPEND` descriptor can outrun any rotation done beside it. The reader is
/// not the agent: an instance outlives its agent (`pop stop`, an upgrade, a crash), and a pipe whose reader died would
/// kill it with SIGPIPE, or block it once full. So each process the supervisor spawns gets a log writer of its own,
/// in a session of its own, which ends when the last writer of its pipes (the instance's whole group) has gone.
///
/// The log writer is the `pop-log` program beside this executable, or else this very executable started under the name
/// `pop-log`: a C constructor in `CPopAgentLinux` recognises the name and marker, runs the writer and exits before any
/// Swift code runs.
enum LogWriter {
    /// The program: `pop-log` beside this executable when it is there (a small C program that starts without libc's
    /// set-up, ~0.1 ms of CPU), else this
    /// executable itself, whose constructor recognises the name (it costs the start of the whole program: ~2.5 ms of
    /// CPU for pop's static release build, more for a debug build).
    static let executable: String = {
        let own = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        let beside = (own as NSString).deletingLastPathComponent + "/" + String(cString: cpop_log_writer_name())
        return !own.isEmpty && access(beside, X_OK) == 0 ? beside : "/proc/self/exe"
    }()

    /// The write ends of an instance's output pipes, for its stdout and stderr (the same one when both go to one file).
    struct Pipes {
        var output: Int32
        var errorOutput: Int32
        /// The log writer's pid (it is not tracked: the child reaper collects it, or whoever started it waits).
        var writer: pid_t = 0

        /// Closes the write ends (after the instance got its copies).
        func close() {
            Glibc.close(output)
            if errorOutput != output { Glibc.close(errorOutput) }
        }

        /// Whether the log writer still reads them: a pipe with no reader left reports an error to its writers.
        var readerIsAlive: Bool {
            var entries = [pollfd(fd: output, events: Int16(POLLOUT), revents: 0), pollfd(fd: errorOutput, events: Int16(POLLOUT), revents: 0)]
            guard poll(&entries, 2, 0) >= 0 else { return false }
            return entries.allSatisfy { $0.revents & Int16(POLLERR | POLLHUP | POLLNVAL) == 0 }
        }
    }

    /// The pipes of an instance's command kept by the supervisor between its processes, so that a restart reuses
    /// its log writer instead of starting one (which costs the writer's start, a few milliseconds of CPU, per start).
    struct Kept {
        var folder: String
        var rotation: LogRotation
        var pipes: Pipes
    }

    /// Creates a pipe per file in `files` (one or two) and starts a log writer reading them into `folder`; returns the
    /// write ends, which the caller hands to the instance and then closes.
    static func start(folder: String, files: [String], rotation: LogRotation) throws(SupervisorError) -> Pipes {
        var readEnds: [Int32] = []
        var writeEnds: [Int32] = []
        func closeAll() {
            for fd in readEnds + writeEnds { Glibc.close(fd) }
        }
        for _ in files {
            var ends: [Int32] = [-1, -1]
            guard cpop_pipe_cloexec(&ends) == 0 else {
                let error = SupervisorError.system("create a pipe for the instance's output")
                closeAll()
                throw error
            }
            readEnds.append(ends[0])
            writeEnds.append(ends[1])
        }
        // The writer reads its first pipe on descriptor 0 and the second on 3. It starts as the supervisor's
        // instances do (``GatedChild``), released at once: its own session, default signals, nothing else inherited.
        let arguments =
            [
                String(cString: cpop_log_writer_name()), String(cString: cpop_log_writer_marker()), folder,
                String(rotation.maximumBytes), String(rotation.keep),
            ] + files.enumerated().map { "\($0.offset == 0 ? 0 : 3)=\($0.element)" }
        let child = GatedChild(
            executable: executable, arguments: arguments, environment: [], directory: "/",
            descriptors: [readEnds[0], ProcessSpawner.devNull, ProcessSpawner.devNull] + readEnds.dropFirst())
        let result = child.start()
        for fd in readEnds { Glibc.close(fd) }
        guard result == 0 else {
            for fd in writeEnds { Glibc.close(fd) }
            throw SupervisorError(
                .spawnFailed, "Could not start the log writer for '\(folder)': \(String(cString: strerror(result))).")
        }
        defer { Glibc.close(child.handle) }
        do {
            try child.release()
        } catch {
            // It exited without running; its session is its own, so the child reaper collects it if this does not.
            var code: Int32 = 0
            var status: Int32 = 0
            _ = cpop_reap_pidfd(child.handle, &code, &status)
            for fd in writeEnds { Glibc.close(fd) }
            throw SupervisorError(.spawnFailed, "Could not start the log writer for '\(folder)': \(error.supervisorMessage)")
        }
        // It is in a session of its own and nobody tracks it: the child reaper collects it when it exits.
        return Pipes(
            output: writeEnds[0], errorOutput: writeEnds.count > 1 ? writeEnds[1] : writeEnds[0], writer: child.pid)
    }
}
#endif
