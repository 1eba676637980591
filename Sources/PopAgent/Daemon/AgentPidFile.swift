import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PopState

/// The pid file of one machine's agent, locked with `flock` for as long as the agent runs.
///
/// The lock, not the file's existence, says whether an agent runs: a pid file left by an agent that died is unlocked,
/// so the next agent takes it over. Two agents for one machine id cannot both hold it.
public final class AgentPidFile: Sendable {
    /// The file's path.
    public let path: String
    private let descriptor: Int32

    /// Creates the pid file at `path` (and its folder), locks it and writes this process's pid into it.
    ///
    /// Throws ``PopError`` with code `.conflict` naming the running agent's pid when another process holds the lock.
    public static func acquire(path: String, machine: MachineID) throws(PopError) -> AgentPidFile {
        try createFolder(of: path)
        while true {
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                throw systemError("open the agent's pid file \(path)", errno: errno)
            }
            if flock(fd, LOCK_EX | LOCK_NB) != 0 {
                let code = errno
                let owner = readPID(fd: fd)
                close(fd)
                if code == EWOULDBLOCK {
                    throw PopError(
                        .conflict,
                        "An agent for machine \(machine) is already running\(owner.map { " (pid \($0))" } ?? "").",
                        hint: "Stop it with `pop stop`, or give this agent another machine id with POP_MACHINE_ID.")
                }
                throw systemError("lock the agent's pid file \(path)", errno: code)
            }
            // The previous owner may have unlinked the file between our open and our lock: then lock the new one.
            var opened = stat()
            var current = stat()
            guard fstat(fd, &opened) == 0, stat(path, &current) == 0, opened.st_ino == current.st_ino,
                opened.st_dev == current.st_dev
            else {
                close(fd)
                continue
            }
            let text = Array("\(getpid())\n".utf8)
            guard ftruncate(fd, 0) == 0, pwrite(fd, text, text.count, 0) == text.count else {
                let code = errno
                close(fd)
                throw systemError("write the agent's pid file \(path)", errno: code)
            }
            return AgentPidFile(path: path, descriptor: fd)
        }
    }

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    /// Removes the file and releases the lock.
    public func release() {
        unlink(path)
        close(descriptor)
    }

    /// The pid of the agent holding the pid file at `path`, or `nil` when no agent holds it (no file, or a stale one).
    public static func runningAgent(path: String) throws(PopError) -> Int32? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw systemError("open the agent's pid file \(path)", errno: errno)
        }
        defer { close(fd) }
        // A shared lock succeeds only when no agent holds the exclusive one.
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return nil
        }
        guard errno == EWOULDBLOCK else { throw systemError("check the agent's pid file \(path)", errno: errno) }
        let pid = readPID(fd: fd)
        if let pid, !ProcessTable.isAlive(pid) {
            // The holder was killed and is still closing its descriptors (its main thread is already a zombie or
            // gone): its lock goes with the last of them, so wait for exactly that.
            if flock(fd, LOCK_SH) == 0 {
                flock(fd, LOCK_UN)
                return nil
            }
        }
        return pid
    }

    private static func readPID(fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = pread(fd, &buffer, buffer.count, 0)
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[..<count], as: UTF8.self)
        return Int32(String(text.filter { $0.isNumber }))
    }

    private static func createFolder(of path: String) throws(PopError) {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let folder = String(path[..<slash])
        var components: [Substring] = []
        for part in folder.split(separator: "/") {
            components.append(part)
            let prefix = "/" + components.joined(separator: "/")
            if mkdir(prefix, 0o700) != 0, errno != EEXIST {
                throw systemError("create the folder \(prefix)", errno: errno)
            }
        }
    }

    static func systemError(_ action: String, errno code: Int32) -> PopError {
        PopError(.system, "Could not \(action): \(String(cString: strerror(code))).")
    }
}
