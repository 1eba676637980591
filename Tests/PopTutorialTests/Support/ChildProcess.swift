#if canImport(Glibc)
import Glibc
#endif
import CPopAgentLinux
import Foundation

/// Starts a program with posix_spawn (argv only, no shell) and waits for it with waitpid on a thread of its own.
enum ChildProcess {
    /// Why a program could not be started.
    struct SpawnFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// Starts `argv` with exactly `environment`, standard input from /dev/null, standard output and error into the
    /// given files (created or truncated), and no other descriptor of this process.
    static func spawn(_ argv: [String], environment: [String: String], stdout: String, stderr: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        cpop_spawn_add_closefrom(&actions, 3)
        let arguments = argv.map { strdup($0) } + [nil]
        let variables = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            arguments.forEach { free($0) }
            variables.forEach { free($0) }
        }
        var pid: pid_t = 0
        let error = posix_spawn(&pid, argv[0], &actions, nil, arguments, variables)
        guard error == 0 else {
            throw SpawnFailure(description: "could not start \(argv[0]): \(String(cString: strerror(error)))")
        }
        return pid
    }

    /// Waits for the child `pid` to exit; its exit status, or 128 + the signal that ended it.
    static func wait(_ pid: pid_t) async -> Int32 {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 {
                    guard errno == EINTR else {
                        continuation.resume(returning: -1)
                        return
                    }
                }
                let signal = status & 0x7f
                continuation.resume(returning: signal == 0 ? (status >> 8) & 0xff : 128 + signal)
            }
        }
    }
}
