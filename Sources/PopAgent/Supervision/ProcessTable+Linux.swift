#if os(Linux)
import CPopAgentLinux
import Glibc

/// What `/proc/PID/stat` says about a process.
struct ProcessStat: Hashable, Sendable {
    /// The state letter (`R`, `S`, `Z`, ...).
    var state: UInt8
    /// The parent's pid.
    var parent: Int32
    /// The process group.
    var processGroup: Int32
    /// The session.
    var session: Int32
    /// Start time in clock ticks since boot (field 22), which tells a reused pid from the original process.
    var startTime: UInt64

    /// Whether the process has exited and waits to be reaped.
    var isZombie: Bool { state == UInt8(ascii: "Z") }

    /// Whether the process has exited: a zombie waiting to be reaped, or one being torn down (`X`).
    var hasExited: Bool { state == UInt8(ascii: "Z") || state == UInt8(ascii: "X") }
}

/// Linux's view of processes: `/proc`, pidfds, reaping and the child-subreaper flag.
enum ProcessTable {
    /// Reads `/proc/PID/stat`, or `nil` if no such process exists.
    static func stat(_ pid: Int32) -> ProcessStat? {
        guard pid > 0, let bytes = readSmallFile("/proc/\(pid)/stat") else { return nil }
        return parseStat(bytes)
    }

    /// Whether `pid` names a process that has not exited.
    ///
    /// This is pop's one liveness check. `kill(pid, 0)` is not one: it succeeds for a zombie, which has exited and
    /// only waits for its parent to reap it (a killed agent stays a zombie for as long as a PID 1 that reaps late
    /// lets it). The state comes from `/proc/PID/stat`, which anyone may read, so a process of another user counts
    /// too. For a multi-threaded process the state is its main thread's: a process whose main thread is a zombie
    /// is exiting.
    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = stat(pid) else { return false }
        return !stat.hasExited
    }

    /// Parses the text of `/proc/PID/stat`. The command name (field 2) may hold spaces and parentheses, so fields
    /// are counted from the last `)`.
    static func parseStat(_ bytes: [UInt8]) -> ProcessStat? {
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        // fields[0] is field 3 (state); field N is fields[N - 3].
        guard fields.count >= 20, let state = fields[0].first,
            let parent = Int32(String(decoding: fields[1], as: UTF8.self)),
            let group = Int32(String(decoding: fields[2], as: UTF8.self)),
            let session = Int32(String(decoding: fields[3], as: UTF8.self)),
            let start = UInt64(String(decoding: fields[19], as: UTF8.self))
        else { return nil }
        return ProcessStat(state: state, parent: parent, processGroup: group, session: session, startTime: start)
    }

    /// Opens a pidfd for `pid`: a descriptor that becomes readable when the process exits.
    static func openHandle(_ pid: Int32) throws(SupervisorError) -> Int32 {
        let fd = cpop_pidfd_open(pid)
        guard fd >= 0 else { throw .system("open a pidfd for process \(pid)") }
        return fd
    }

    /// What reaping a process found.
    enum Reaped: Hashable, Sendable {
        case exited(ExitStatus)
        case stillRunning
        case notOurChild
    }

    /// Reaps the child behind `handle` without blocking.
    static func reap(handle: Int32) -> Reaped {
        var code: Int32 = 0
        var status: Int32 = 0
        switch cpop_reap_pidfd(handle, &code, &status) {
        case 1:
            return .exited(code == Int32(CLD_EXITED) ? .exited(status) : .signaled(status))
        case 0:
            return .stillRunning
        default:
            return .notOurChild
        }
    }

    /// Waits until the child behind `handle` has exited, then reaps it.
    static func reapWhenExited(handle: Int32) -> Reaped {
        var entry = pollfd(fd: handle, events: Int16(POLLIN), revents: 0)
        while poll(&entry, 1, -1) < 0 && errno == EINTR {}
        return reap(handle: handle)
    }

    /// Makes this process the reaper of its orphaned descendants, so grandchildren never escape to init unreaped.
    static func becomeSubreaper() {
        _ = cpop_become_child_subreaper()
    }

    /// The pids of this process's children (from every thread's `/proc/self/task/TID/children`).
    static func children() -> [Int32] {
        numericEntries(of: "/proc/self/task").flatMap { tid -> [Int32] in
            guard let bytes = readSmallFile("/proc/self/task/\(tid)/children") else { return [] }
            return bytes.split(whereSeparator: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\n") })
                .compactMap { Int32(String(decoding: $0, as: UTF8.self)) }
        }
    }

    /// Every process in process group `group`, read from `/proc`.
    static func processes(inGroup group: Int32) -> [Int32] {
        numericEntries(of: "/proc").filter { stat($0)?.processGroup == group }
    }

    /// The names of a folder's entries that are numbers (pids, thread ids).
    private static func numericEntries(of path: String) -> [Int32] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var numbers: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if let number = Int32(name) { numbers.append(number) }
        }
        return numbers
    }

    /// Reads a small file (at most 1 MiB) such as one in `/proc`.
    static func readSmallFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        var length = 0
        while true {
            if length == bytes.count {
                guard bytes.count < 1 << 20 else { break }
                bytes.append(contentsOf: [UInt8](repeating: 0, count: bytes.count))
            }
            let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + length, $0.count - length) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            length += count
        }
        return Array(bytes[..<length])
    }
}
#endif
