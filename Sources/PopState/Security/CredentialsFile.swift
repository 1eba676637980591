import Glibc

/// A file holding pop's credentials as one line `user:password`, readable only by its owner (as ssh demands of keys).
///
/// Blank lines and lines starting with `#` are ignored. A file that its group or other users can read or write, or
/// that another user owns, is refused without being read.
public struct CredentialsFile: Hashable, Sendable {
    /// The file's path.
    public let path: String

    /// The largest credentials file pop reads.
    static let maximumSize = 4096

    /// The credentials file at `path`.
    public init(path: String) {
        self.path = path
    }

    /// The default location: `$XDG_CONFIG_HOME/pop/credentials`, else `~/.config/pop/credentials`.
    public static func defaultPath(environment: [String: String]) -> String? {
        if let config = environment["XDG_CONFIG_HOME"], config.hasPrefix("/") {
            return config + "/pop/credentials"
        }
        if let home = environment["HOME"], home.hasPrefix("/") {
            return home + "/.config/pop/credentials"
        }
        return nil
    }

    /// Whether the file exists (as anything).
    public var exists: Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// Reads and checks the credentials.
    public func read() throws(PopError) -> StoreCredentials {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else { throw systemError("open") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw systemError("inspect") }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw PopError(.invalidInput, "The credentials file \(path) is not a regular file.", path: path)
        }
        try checkPrivate(info)
        guard info.st_size <= Self.maximumSize else {
            throw PopError(
                .invalidInput, "The credentials file \(path) is larger than \(Self.maximumSize) bytes; it should hold one line user:password.",
                path: path)
        }
        var bytes = [UInt8](repeating: 0, count: Self.maximumSize + 1)
        var count = 0
        while count < bytes.count {
            let n = bytes.withUnsafeMutableBytes { readBytes(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw systemError("read") }
            if n == 0 { break }
            count += n
        }
        let text = String(decoding: bytes[..<count], as: UTF8.self)
        let lines = text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).map { line in
            String(line.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" || $0 == "\r" }).reversed())
        }
        let entries = lines.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard entries.count == 1, let entry = entries.first else {
            throw PopError(
                .invalidInput,
                "The credentials file \(path) holds \(entries.count) entries; it should hold exactly one line user:password.",
                path: path)
        }
        return try StoreCredentials(parsing: entry, source: path)
    }

    /// Writes `credentials` to a new file of mode 600 in a private folder; an existing file is never overwritten.
    public func write(_ credentials: StoreCredentials) throws(PopError) {
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            try PrivateFiles.ensureFolder(String(path[..<slash]))
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            if errno == EEXIST {
                throw PopError(
                    .conflict, "The credentials file \(path) exists already; pop does not overwrite it.",
                    hint: "Remove it first, or set POP_AUTH_FILE to another path.", path: path)
            }
            throw systemError("create")
        }
        defer { close(fd) }
        let bytes = Array((credentials.pair + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { writeBytes(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw systemError("write") }
            offset += n
        }
        guard fsync(fd) == 0 else { throw systemError("write") }
    }

    private func checkPrivate(_ info: stat) throws(PopError) {
        guard info.st_uid == geteuid() else {
            throw PopError(
                .permissionDenied,
                "The credentials file \(path) belongs to user \(info.st_uid), not to this user (\(geteuid())); pop refuses to use it.",
                hint: "Run `chown \(geteuid()) \(path)` if the file is yours, or use your own credentials file.", path: path)
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw PopError(
                .permissionDenied,
                "The credentials file \(path) can be read or written by other users (mode \(String(mode, radix: 8))); pop refuses to use credentials others may see.",
                hint: "Run `chmod 600 \(path)`.", path: path)
        }
    }

    private func systemError(_ action: String) -> PopError {
        let reason = String(cString: strerror(errno))
        let code: PopError.Code = errno == EACCES || errno == EPERM ? .permissionDenied : errno == ENOENT ? .notFound : .system
        return PopError(code, "Cannot \(action) the credentials file \(path): \(reason).", path: path)
    }
}

private func readBytes(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    Glibc.read(fd, buffer, count)
}

private func writeBytes(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    Glibc.write(fd, buffer, count)
}
