/// ZooKeeper's path rules, shared by every store: absolute, `/`-separated, no empty, `.` or `..` component.
package enum NodePath {
    /// Checks a path, throwing `.invalidInput` that names it.
    package static func validate(_ path: String) throws(PopError) {
        let problem: String?
        if path.isEmpty || !path.hasPrefix("/") {
            problem = "must start with '/'"
        } else if path == "/" {
            problem = nil
        } else if path.hasSuffix("/") {
            problem = "must not end with '/'"
        } else if path.utf8.contains(0) || path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            problem = "contains a control character"
        } else {
            let components = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
            if components.contains(where: { $0.isEmpty }) {
                problem = "contains an empty component ('//')"
            } else if components.contains(where: { $0 == "." || $0 == ".." }) {
                problem = "contains '.' or '..'"
            } else {
                problem = nil
            }
        }
        if let problem {
            throw PopError(
                .invalidInput, "The store path \(NameRules.printable(path)) \(problem).",
                hint: "Store paths are absolute, such as /pop/services/web.", path: path)
        }
    }

    /// The parent of a valid path (`/` for top-level nodes); `nil` for the root.
    package static func parent(_ path: String) -> String? {
        guard path != "/" else { return nil }
        guard let slash = path.lastIndex(of: "/") else { return nil }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// A valid path, then each node above it up to `/`: `/a/b`, `/a`, `/`.
    package static func selfAndAncestors(_ path: String) -> [String] {
        var paths = [path]
        let bytes = path.utf8
        var end = bytes.endIndex
        while let slash = bytes[..<end].lastIndex(of: UInt8(ascii: "/")) {
            if slash == bytes.startIndex {
                if path != "/" { paths.append("/") }
                break
            }
            paths.append(String(path[..<slash]))
            end = slash
        }
        return paths
    }

    /// The last component of a valid path.
    package static func name(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    /// Joins a parent path and a child name.
    package static func join(_ parent: String, _ name: String) -> String {
        parent == "/" ? "/" + name : parent + "/" + name
    }

    /// Whether `path` is `root` or lies below it.
    package static func isWithin(_ path: String, _ root: String) -> Bool {
        root == "/" || path == root || path.hasPrefix(root + "/")
    }

    /// The `%010d` suffix ZooKeeper gives sequential nodes.
    package static func sequenceSuffix(_ sequence: Int32) -> String {
        let digits = String(sequence)
        if sequence < 0 { return digits }
        return String(repeating: "0", count: max(0, 10 - digits.count)) + digits
    }
}
