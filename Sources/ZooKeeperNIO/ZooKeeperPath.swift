/// Path rules and chroot mapping.
enum ZooKeeperPath {
    /// Checks a path as ZooKeeper's PathUtils does; `sequential` allows a trailing '/' (the server appends the
    /// sequence number).
    static func validate(_ path: String, sequential: Bool = false) throws(ZooKeeperError) {
        if Self.isPlainValid(path) { return }
        try Self.validateFully(path, sequential: sequential)
    }

    /// One pass over a path of printable ASCII: true when it is certainly valid (no empty, '.' or '..' segment,
    /// no trailing '/'). Anything else, valid or not, is left to `validateFully`.
    private static func isPlainValid(_ path: String) -> Bool {
        var path = path
        return path.withUTF8 { bytes in
            guard bytes.count > 1, bytes[0] == UInt8(ascii: "/"), bytes[bytes.count - 1] != UInt8(ascii: "/") else { return false }
            var segmentStart = 1
            var index = 1
            while index <= bytes.count {
                if index == bytes.count || bytes[index] == UInt8(ascii: "/") {
                    let length = index - segmentStart
                    if length == 0 { return false }
                    if length <= 2, bytes[segmentStart] == UInt8(ascii: "."), length == 1 || bytes[segmentStart + 1] == UInt8(ascii: ".") {
                        return false
                    }
                    segmentStart = index + 1
                } else if bytes[index] < 0x20 || bytes[index] > 0x7e {
                    return false
                }
                index += 1
            }
            return true
        }
    }

    private static func validateFully(_ path: String, sequential: Bool) throws(ZooKeeperError) {
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
