#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One process to start: its program, argv, environment, folder, and where its output goes. Never a shell command
/// line.
struct SpawnRequest: Sendable {
    /// The program, as ``ProcessSpawner/resolveExecutable(_:environment:workingDirectory:)`` found it.
    var executable: String
    /// The argv.
    var arguments: [String]
    /// The complete environment.
    var environment: [String: String]
    /// The folder the process starts in.
    var workingDirectory: String
    /// The descriptor that becomes its stdout (the write end of its log writer's pipe).
    var standardOutput: Int32
    /// The descriptor that becomes its stderr.
    var standardError: Int32
}

/// Starts processes in their own session and process group, with stdin from /dev/null and output to given
/// descriptors.
enum ProcessSpawner {
    /// The search path used when an instance's environment has no `PATH`.
    static let defaultSearchPath = "/usr/local/bin:/usr/bin:/bin"

    /// Finds the executable for `name`: a name with a `/` is taken as a path (relative to the working folder),
    /// any other name is looked up in the `PATH` of the instance's environment.
    static func resolveExecutable(
        _ name: String, environment: [String: String], workingDirectory: String
    ) throws(SupervisorError) -> String {
        guard !name.isEmpty else {
            throw SupervisorError(.invalidConfiguration, "The command is empty.", hint: "Give the command as an argv array.")
        }
        if name.contains("/") {
            let path = name.hasPrefix("/") ? name : workingDirectory + "/" + name
            guard access(path, X_OK) == 0 else {
                throw SupervisorError(
                    .executableNotFound, "The executable '\(path)' does not exist or is not executable.",
                    hint: "Check the command's first element, and that the file has its executable bit set.")
            }
            return path
        }
        let searchPath = environment["PATH"] ?? defaultSearchPath
        for directory in searchPath.split(separator: ":", omittingEmptySubsequences: true) {
            let candidate = directory.hasPrefix("/")
                ? "\(directory)/\(name)" : "\(workingDirectory)/\(directory)/\(name)"
            var info = stat()
            if access(candidate, X_OK) == 0 && stat(candidate, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG {
                return candidate
            }
        }
        throw SupervisorError(
            .executableNotFound, "The executable '\(name)' was not found in PATH (\(searchPath)).",
            hint: "Install it, give its absolute path, or set PATH in the instance's environment.")
    }

    /// Creates `path` and its parents if missing.
    static func makeDirectory(_ path: String) throws(SupervisorError) {
        // Nearly always there already: one look instead of a mkdir per component.
        var info = stat()
        if stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR { return }
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw SupervisorError.system("create the folder '\(current)'")
            }
        }
    }
}
