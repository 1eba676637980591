/// Path rules and chroot mapping.
enum ZooKeeperPath {
    /// Checks a path as ZooKeeper's PathUtils does; `sequential` allows a trailing '/' (the server appends the
    /// sequence number).
    static func validate(_ path: String, sequential: Bool = false) throws(ZooKeeperError) {
        func invalid(_ why: String) -> ZooKeeperError {
            ZooKeeperError(code: .invalidPath, path: path, message: "invalid path '\(path)': \(why)")
        }
        guard path.hasPrefix("/") else { throw invalid("it must start with '/'") }
        if path == "/" { return }
        let checked = sequential && path.hasSuffix("/") ? String(path.dropLast()) + "x" : path
        guard !checked.hasSuffix("/") else { throw invalid("it must not end with '/'") }
        for segment in checked.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            if segment.isEmpty { throw invalid("it has an empty segment") }
            if segment == "." || segment == ".." { throw invalid("'.' and '..' segments are not allowed") }
        }
        for scalar in path.unicodeScalars {
            if scalar.value == 0 || (scalar.value > 0 && scalar.value < 0x1f) || (0x7f...0x9f).contains(scalar.value)
                || (0xd800...0xf8ff).contains(scalar.value) || (0xfff0...0xffff).contains(scalar.value)
            {
                throw invalid("it contains the character U+\(String(scalar.value, radix: 16))")
            }
        }
    }

    /// The path the server sees: chroot + path ("/" maps to the chroot itself).
    static func serverPath(_ path: String, chroot: String) -> String {
        if chroot.isEmpty { return path }
        return path == "/" ? chroot : chroot + path
    }

    /// The path the caller sees: the server path without the chroot.
    static func clientPath(_ serverPath: String, chroot: String) -> String {
        guard !chroot.isEmpty else { return serverPath }
        if serverPath == chroot { return "/" }
        guard serverPath.hasPrefix(chroot), serverPath.utf8.dropFirst(chroot.utf8.count).first == UInt8(ascii: "/") else {
            return serverPath
        }
        return String(serverPath.dropFirst(chroot.count))
    }
}
