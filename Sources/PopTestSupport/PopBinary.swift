import Foundation

/// Finds the built `pop` executable the cluster's machines run.
public enum PopBinary {
    /// `POP_BINARY` when set; else the `pop` next to this executable or in one of its parent folders (swift build puts
    /// every product, test bundles included, in one folder).
    public static func locate(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        if let explicit = environment["POP_BINARY"], !explicit.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: explicit) else {
                throw ClusterError("POP_BINARY is \(explicit), which is not an executable file")
            }
            return explicit
        }
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var folder = executable.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = folder.appendingPathComponent("pop")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
            folder = folder.deletingLastPathComponent()
        }
        throw ClusterError(
            "the pop binary was not found near \(executable.path); build it first with `swift build` or set POP_BINARY")
    }
}
