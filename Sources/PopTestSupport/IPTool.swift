import Foundation

#if canImport(Glibc)
import Glibc
import TestProcesses
#endif

/// Runs iproute2's `ip`, which builds the cluster's namespaces, veth pairs and bridge.
enum IPTool {
    /// The `ip` executable, or nil when iproute2 is not installed.
    static let path: String? = {
        let searchPath = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let folders = searchPath.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        return folders.map { $0 + "/ip" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// Throws a clear error unless this process can create network namespaces: `ip` installed and running as root.
    static func checkUsable() throws {
        guard Self.path != nil else {
            throw ClusterError("the cluster harness needs iproute2's `ip` command, which is not installed; run `apt-get install iproute2`")
        }
        guard geteuid() == 0 else {
            throw ClusterError(
                "the cluster harness creates network namespaces, veth pairs and a bridge, which needs root; run the tests as root (e.g. `sudo swift test --filter PopClusterTests`)")
        }
    }

    /// The argv that runs `arguments` inside `namespace`.
    static func inNamespace(_ namespace: String, _ arguments: [String]) -> [String] {
        [Self.path ?? "ip", "netns", "exec", namespace] + arguments
    }

    /// Runs `ip ARGUMENTS`; throws with its error output when it fails and `check` is set.
    @discardableResult
    static func run(_ arguments: [String], check: Bool = true) async throws -> CommandResult {
        let result = try await CommandRunner.run(
            [Self.path ?? "ip"] + arguments, environment: CommandRunner.baseEnvironment(),
            scratch: URL(fileURLWithPath: NSTemporaryDirectory()), timeout: .seconds(30))
        if check && !result.succeeded {
            throw ClusterError("`ip \(arguments.joined(separator: " "))` failed (exit \(result.status)): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return result
    }

    /// The names of every network namespace.
    static func namespaces() async throws -> [String] {
        try await run(["netns", "list"]).stdout.split(separator: "\n").compactMap { line in
            line.split(separator: " ").first.map(String.init)
        }
    }

    /// The names of every link in the root namespace (without the `@peer` suffix).
    static func links() async throws -> [String] {
        try await run(["-o", "link", "show"]).stdout.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 1 else { return nil }
            return String(fields[1].split(separator: "@").first ?? "").trimmingCharacters(in: CharacterSet(charactersIn: ":"))
        }
    }

    /// The processes living in `namespace`.
    static func processes(in namespace: String) async -> [Int32] {
        guard let result = try? await run(["netns", "pids", namespace], check: false) else { return [] }
        return result.stdout.split(separator: "\n").compactMap { Int32($0.trimmingCharacters(in: .whitespaces)) }
    }

    /// SIGKILLs every process in `namespace` (agents, instances, tasks) until none is left.
    static func killProcesses(in namespace: String) async {
        for _ in 0..<50 {
            let pids = await Self.processes(in: namespace)
            if pids.isEmpty { return }
            for pid in pids { kill(pid, SIGKILL) }
            // A SIGKILLed process leaves the namespace once the kernel has torn it down; nothing announces that
            // for processes that are not our children, so look again shortly.
            try? await Task.sleep(for: .milliseconds(50))
        }
    }
}
