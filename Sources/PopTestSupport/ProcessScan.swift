import Foundation
import TestProcesses

#if canImport(Glibc)
import Glibc
#endif

/// Reads of /proc that tests check a machine with, independent of what pop says.
public enum ProcessScan {
    /// Every live process whose working folder is `folder` or below it.
    public static func processes(inFolderUnder folder: String) -> [Int32] {
        allPIDs().filter { pid in
            guard Processes.isAlive(pid),
                let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd")
            else { return false }
            return cwd == folder || cwd.hasPrefix(folder.hasSuffix("/") ? folder : folder + "/")
        }
    }

    /// Every live process whose environment has `NAME=VALUE`.
    public static func processes(withEnvironment name: String, _ value: String) -> [Int32] {
        let wanted = Array("\(name)=\(value)".utf8)
        return processes(whoseEnvironmentHas: { $0.elementsEqual(wanted) })
    }

    private static func processes(whoseEnvironmentHas matches: (ArraySlice<UInt8>) -> Bool) -> [Int32] {
        allPIDs().filter { pid in
            guard Processes.isAlive(pid),
                let data = read("/proc/\(pid)/environ")
            else { return false }
            return data.split(separator: 0).contains(where: matches)
        }
    }

    /// Whether `pid` is a zombie: exited, not reaped.
    public static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return stat[stat.index(after: close)...].split(separator: " ").first == "Z"
    }

    /// The pids of the processes listening on TCP `port` (IPv4 or IPv6), from /proc/net and /proc/PID/fd.
    public static func listeners(onPort port: Int) -> [Int32] {
        var inodes = Set<String>()
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let text = String(decoding: read(table) ?? [], as: UTF8.self)
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                guard fields.count > 9, fields[3] == "0A",
                    let colon = fields[1].lastIndex(of: ":"),
                    Int(fields[1][fields[1].index(after: colon)...], radix: 16) == port
                else { continue }
                inodes.insert(String(fields[9]))
            }
        }
        guard !inodes.isEmpty else { return [] }
        return allPIDs().filter { pid in
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
            return fds.contains { fd in
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"),
                    target.hasPrefix("socket:[")
                else { return false }
                return inodes.contains(String(target.dropFirst("socket:[".count).dropLast()))
            }
        }
    }

    public static func allPIDs() -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }
    }

    /// The log writers (`pop-log`) writing into the log folder `folder`, found by their command line.
    public static func logWriters(of folder: String) -> [Int32] {
        allPIDs().filter { pid in
            guard Processes.isAlive(pid), let line = read("/proc/\(pid)/cmdline") else { return false }
            let arguments = line.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return arguments.first == "pop-log" && arguments.count > 2 && arguments[2] == folder
        }
    }

    /// A process in a few words, for test failures: pid, state, parent, command line and working folder.
    public static func describe(_ pid: Int32) -> String {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? "gone"
        let state = stat.split(separator: ")").last.map { $0.split(separator: " ").prefix(2).joined(separator: " ") } ?? "?"
        let command = read("/proc/\(pid)/cmdline").map {
            $0.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }.joined(separator: " ")
        } ?? ""
        let folder = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd")) ?? "?"
        return "\(pid) [\(state)] \(command.prefix(60)) in \(folder)"
    }

    /// The whole of a file such as one in /proc, read until its end: /proc files say they are empty and hand out a
    /// page per read, so a single read (what reading a file of size 0 may amount to) misses all but the first page.
    public static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = Glibc.read(fd, &chunk, chunk.count)
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            bytes += chunk[..<count]
        }
        return bytes
    }
}
