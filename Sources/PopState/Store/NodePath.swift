/// ZooKeeper's path rules, shared by every store: absolute, `/`-separated, no empty, `.` or `..` component.
package enum NodePath {
    /// Checks a path, throwing `.invalidInput` that names it.
    ///
    /// One pass over the path's UTF-8 bytes: every store operation checks its path, so this is on every hot path. A
    /// control character (U+0000-U+001F, U+007F) is a single byte in UTF-8, and no byte of a multi-byte sequence is
    /// below 0x80, so checking bytes finds exactly the control characters.
    package static func validate(_ path: String) throws(PopError) {
        if let problem = problem(path) {
            throw PopError(
                .invalidInput, "The store path \(NameRules.printable(path)) \(problem).",
                hint: "Store paths are absolute, such as /pop/services/web.", path: path)
        }
    }

    /// What is wrong with `path`, or `nil` when it is valid; the first of the rules it breaks, in the order
    /// ``validate(_:)`` states them.
    static func problem(_ path: String) -> String? {
        var path = path
        return path.withUTF8 { bytes -> String? in
            let slash = UInt8(ascii: "/")
            let dot = UInt8(ascii: ".")
            guard bytes.first == slash else { return "must start with '/'" }
            if bytes.count == 1 { return nil }
            if bytes.last == slash { return "must not end with '/'" }
            var control = false
            var empty = false
            var dots = false
            // Each component starts after a slash; its length and whether it is all dots decide the rest.
            var length = 0
            var onlyDots = true
            for byte in bytes[1...] {
                if byte < 0x20 || byte == 0x7f { control = true }
                if byte == slash {
                    if length == 0 { empty = true }
                    if onlyDots && (length == 1 || length == 2) { dots = true }
                    length = 0
                    onlyDots = true
                } else {
                    length += 1
                    if byte != dot { onlyDots = false }
                }
            }
            if onlyDots && (length == 1 || length == 2) { dots = true }
            if control { return "contains a control character" }
            if empty { return "contains an empty component ('//')" }
            if dots { return "contains '.' or '..'" }
            return nil
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
