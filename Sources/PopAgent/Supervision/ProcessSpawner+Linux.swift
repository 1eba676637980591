#if os(Linux)
import CPopAgentLinux
import Glibc

extension ProcessSpawner {
    /// Starts `request` as a child that waits at a gate: it already leads its own session and process group, has
    /// default signal handling, stdin from /dev/null, its output on the request's descriptors and every other
    /// descriptor closed, but has not run the program yet. ``GatedChild/release()`` runs it.
    ///
    /// The gate is what makes the instance record an intent: the supervisor writes the record naming the child
    /// between the two steps, and a child whose supervisor dies before releasing it exits without running anything.
    static func spawn(_ request: SpawnRequest) throws(SupervisorError) -> GatedChild {
        let child = GatedChild(
            executable: request.executable, arguments: request.arguments,
            environment: request.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" },
            directory: request.workingDirectory,
            descriptors: [Self.devNull, request.standardOutput, request.standardError])
        let result = child.start()
        guard result == 0 else {
            child.free()
            throw SupervisorError(
                .spawnFailed,
                "Could not start '\(request.executable)' in '\(request.workingDirectory)': \(String(cString: strerror(result))).",
                hint: "The system may be out of processes or memory.")
        }
        return child
    }

    /// `/dev/null`, opened once: every instance's stdin, and the log writer's stdout and stderr.
    static let devNull: Int32 = open("/dev/null", O_RDWR | O_CLOEXEC)

    /// The open-files limit this process had before ``raiseFileLimit()`` raised it, which programs get back; `nil`
    /// when it was not changed.
    static let originalFileLimit: (soft: Int64, hard: Int64)? = {
        var soft: Int64 = 0
        var hard: Int64 = 0
        return cpop_raise_file_limit(&soft, &hard) == 1 ? (soft, hard) : nil
    }()

    /// Raises the soft open-files limit to the hard one, once: a supervisor holds a pidfd and two pipe ends per
    /// instance, which a soft limit of 1,024 does not allow for hundreds of instances. The programs it starts get
    /// the limit they would have had.
    static func raiseFileLimit() {
        _ = originalFileLimit
    }
}

/// A spawned child waiting at its gate; exactly one of ``release()`` and ``abort()`` must follow.
final class GatedChild {
    fileprivate let image: UnsafeMutablePointer<cpop_spawn_image>
    fileprivate let state: UnsafeMutablePointer<cpop_gated_child>
    private let strings: [UnsafeMutablePointer<CChar>]
    private let argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    private let envp: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    private var freed = false
    private let executable: String
    private let directory: String

    /// A child of `executable` whose descriptors 0, 1, 2 (and 3, with four) are `descriptors`.
    init(executable: String, arguments: [String], environment: [String], directory: String, descriptors: [Int32]) {
        precondition(descriptors.count == 3 || descriptors.count == 4, "a gated child gets three or four descriptors")
        self.executable = executable
        self.directory = directory
        let path = strdup(executable)!
        let folder = strdup(directory)!
        let argumentStrings = arguments.map { strdup($0)! }
        let environmentStrings = environment.map { strdup($0)! }
        argv = .allocate(capacity: argumentStrings.count + 1)
        for (index, string) in argumentStrings.enumerated() { argv[index] = string }
        argv[argumentStrings.count] = nil
        envp = .allocate(capacity: environmentStrings.count + 1)
        for (index, string) in environmentStrings.enumerated() { envp[index] = string }
        envp[environmentStrings.count] = nil
        strings = [path, folder] + argumentStrings + environmentStrings
        image = .allocate(capacity: 1)
        let limit = ProcessSpawner.originalFileLimit
        image.initialize(
            to: cpop_spawn_image(
                path: path, argv: argv, envp: envp, directory: folder,
                fds: (descriptors[0], descriptors[1], descriptors[2], descriptors.count > 3 ? descriptors[3] : -1),
                fd_count: Int32(descriptors.count), nofile_soft: limit?.soft ?? -1, nofile_hard: limit?.hard ?? -1))
        state = .allocate(capacity: 1)
        state.initialize(to: cpop_gated_child())
    }

    /// The child's pid.
    private(set) var pid: Int32 = 0
    /// A pidfd for the child, opened with it; the caller owns it (it is not closed by ``release()`` or ``abort()``).
    private(set) var handle: Int32 = -1

    /// Creates the child; 0 or an errno.
    func start() -> Int32 {
        let result = cpop_gated_spawn(image, state)
        if result == 0 {
            pid = state.pointee.pid
            handle = state.pointee.pidfd
        }
        return result
    }

    /// Lets the child run its program and waits until it has; throws when exec failed (the child has then exited
    /// and must be reaped through ``handle``).
    func release() throws(SupervisorError) {
        let result = cpop_gated_release(state)
        free()
        guard result == 0 else {
            throw SupervisorError(
                .spawnFailed, "Could not start '\(executable)' in '\(directory)': \(String(cString: strerror(result))).",
                hint: "Check that the working and log folders exist and are writable, and that the file is a program.")
        }
    }

    /// Makes the child exit without running its program, and waits until it has; it must be reaped through
    /// ``handle``.
    func abort() {
        cpop_gated_abort(state)
        free()
    }

    fileprivate func free() {
        guard !freed else { return }
        freed = true
        for string in strings { Glibc.free(string) }
        argv.deallocate()
        envp.deallocate()
        image.deinitialize(count: 1)
        image.deallocate()
        state.deinitialize(count: 1)
        state.deallocate()
    }

    deinit {
        free()
    }
}
#endif
