#if os(Linux)
import CPopAgentLinux
import Glibc

extension ProcessSpawner {
    /// Spawns `request` with posix_spawn in a new session (POSIX_SPAWN_SETSID), with default signal handling, an
    /// empty signal mask, stdin from /dev/null, output appended to its files, and every other descriptor closed.
    /// Returns the pid. The child opens its log files itself, so the agent holds no descriptor to them.
    static func spawn(_ request: SpawnRequest) throws(SupervisorError) -> Int32 {
        let executable = try resolveExecutable(
            request.arguments.first ?? "", environment: request.environment,
            workingDirectory: request.workingDirectory)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        let appendFlags = O_WRONLY | O_CREAT | O_APPEND
        cpop_spawn_add_chdir(&actions, request.workingDirectory)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, request.standardOutput, appendFlags, 0o644)
        if let standardError = request.standardError {
            posix_spawn_file_actions_addopen(&actions, 2, standardError, appendFlags, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        cpop_spawn_add_closefrom(&actions, 3)

        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(
            &attributes, cpop_spawn_setsid_flag() | Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = request.arguments.map { strdup($0) } + [nil]
        let envp = request.environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw SupervisorError(
                .spawnFailed,
                "Could not start '\(executable)' in '\(request.workingDirectory)': \(String(cString: strerror(result))).",
                hint: "Check that the working and log folders exist and are writable, and that the file is a program.")
        }
        return pid
    }
}
#endif
