import Glibc

/// Creates and checks the folders and files that must be private to their owner (0700 folders, 0600 files).
///
/// Whoever can write pop's state can run programs on every machine, so a folder others can write is refused.
package enum PrivateFiles {
    /// Creates `path` (and missing parents) as a 0700 folder, or checks an existing one: it must be a folder owned
    /// by this user that no one else can write. A folder of ours readable by others is made private.
    package static func ensureFolder(_ path: String) throws(PopError) {
        var info = stat()
        if stat(path, &info) != 0 {
            guard errno == ENOENT else { throw systemError("inspect the folder", path) }
            if let parent = parentPath(path) { try ensureParent(parent) }
            if mkdir(path, 0o700) != 0 && errno != EEXIST { throw systemError("create the folder", path) }
            guard stat(path, &info) == 0 else { throw systemError("inspect the folder", path) }
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw PopError(.invalidInput, "\(path) is not a folder.", hint: "Set POP_HOME to a folder pop may use.")
        }
        guard info.st_uid == geteuid() else {
            throw PopError(
                .permissionDenied,
                "The folder \(path) belongs to user \(info.st_uid), not to this user (\(geteuid())); pop keeps its state only in folders of its own user.",
                hint: "Set POP_HOME to a folder of your own.", path: path)
        }
        guard info.st_mode & 0o022 == 0 else {
            throw PopError(
                .permissionDenied,
                "The folder \(path) can be written by other users (mode \(String(info.st_mode & 0o777, radix: 8))); whoever writes pop's state can run programs, so pop refuses to use it.",
                hint: "Run `chmod 700 \(path)` after checking its contents, or set POP_HOME elsewhere.", path: path)
        }
        if info.st_mode & 0o077 != 0 {
            guard chmod(path, 0o700) == 0 else { throw systemError("make the folder private", path) }
        }
    }

    /// Creates `path` as an empty 0600 file, or makes an existing one 0600. The folder must already be private.
    package static func ensureFile(_ path: String) throws(PopError) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw systemError("create the file", path) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw systemError("inspect the file", path) }
        guard info.st_uid == geteuid() else {
            throw PopError(
                .permissionDenied, "The file \(path) belongs to user \(info.st_uid), not to this user (\(geteuid())).",
                hint: "Set POP_HOME to a folder of your own.", path: path)
        }
        if info.st_mode & 0o077 != 0 {
            guard fchmod(fd, 0o600) == 0 else { throw systemError("make the file private", path) }
        }
    }

    /// Opens an existing file for writing, returning its descriptor.
    package static func openForWriting(_ path: String) throws(PopError) -> Int32 {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw systemError("open the file", path) }
        return fd
    }

    /// Writes one byte at the start of an open file, so that file monitors see it modified.
    package static func touch(_ fd: Int32) {
        var byte: UInt8 = 1
        _ = pwrite(fd, &byte, 1, 0)
    }

    /// Closes a descriptor.
    package static func closeDescriptor(_ fd: Int32) {
        _ = close(fd)
    }

    private static func ensureParent(_ path: String) throws(PopError) {
        var info = stat()
        if stat(path, &info) == 0 { return }
        if let parent = parentPath(path) { try ensureParent(parent) }
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw systemError("create the folder", path) }
    }

    private static func parentPath(_ path: String) -> String? {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return nil }
        if slash == trimmed.startIndex { return nil }
        return String(trimmed[..<slash])
    }

    private static func systemError(_ action: String, _ path: String) -> PopError {
        let reason = String(cString: strerror(errno))
        let code: PopError.Code = errno == EACCES || errno == EPERM ? .permissionDenied : .system
        return PopError(code, "Cannot \(action) \(path): \(reason).", path: path)
    }
}
