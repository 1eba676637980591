#if os(Linux)
import Glibc

/// What the processes of one process group (an instance) use, read from `/proc`.
public struct ProcessGroupUsage: Hashable, Sendable {
    /// CPU time of the group's live processes, user and system, including the children they waited for.
    public var cpuSeconds: Double
    /// Resident memory of the group's processes, summed.
    public var rssBytes: Int64
    /// How many processes the group has.
    public var processes: Int
    /// When the group's leader started, in seconds since the epoch (nil when the leader is gone).
    public var leaderStarted: Double?
}

/// Reads what instances use: one pass over `/proc` per sample, whatever the number of groups asked for.
public enum ProcessGroupSampler {
    /// The usage of each of `groups` (process group ids, which are the instances' leaders' pids) that has a process;
    /// of every process group on the host when `groups` is `nil`.
    public static func sample(groups: Set<Int32>?) -> [Int32: ProcessGroupUsage] {
        guard groups?.isEmpty != true, let directory = opendir("/proc") else { return [:] }
        defer { closedir(directory) }
        var usage: [Int32: ProcessGroupUsage] = [:]
        var buffer = [UInt8](repeating: 0, count: 1024)
        while let entry = readdir(directory) {
            let pid = withUnsafeBytes(of: entry.pointee.d_name) { Self.parsePid($0) }
            guard pid > 0 else { continue }
            let count = Self.readStat(pid, into: &buffer)
            guard count > 0, let stat = Self.parse(buffer[..<count]), groups?.contains(stat.group) != false else { continue }
            var group = usage[stat.group] ?? ProcessGroupUsage(cpuSeconds: 0, rssBytes: 0, processes: 0, leaderStarted: nil)
            group.cpuSeconds += Double(stat.ticks) / clockTicks
            group.rssBytes += stat.rssPages * pageSize
            group.processes += 1
            if pid == stat.group { group.leaderStarted = bootTime + Double(stat.startTicks) / clockTicks }
            usage[stat.group] = group
        }
        return usage
    }

    /// CPU use in percent of one core between two samples of a group (the lifetime average when there is no earlier
    /// sample, or when the group's CPU time went down because a process of it was reaped elsewhere).
    public static func cpuPercent(
        _ current: ProcessGroupUsage, at now: Double, previous: (usage: ProcessGroupUsage, at: Double)?
    ) -> Double {
        if let previous, now > previous.at, current.cpuSeconds >= previous.usage.cpuSeconds,
            current.leaderStarted == previous.usage.leaderStarted
        {
            return (current.cpuSeconds - previous.usage.cpuSeconds) / (now - previous.at) * 100
        }
        guard let started = current.leaderStarted, now > started else { return 0 }
        return current.cpuSeconds / (now - started) * 100
    }

    /// Seconds since the epoch, now.
    public static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    static let clockTicks = Double(sysconf(Int32(_SC_CLK_TCK)))
    static let pageSize = Int64(sysconf(Int32(_SC_PAGESIZE)))

    /// When the system booted, in seconds since the epoch (`btime` in /proc/stat).
    static let bootTime: Double = {
        let fd = open("/proc/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 1 << 16)
        var total = 0
        while total < bytes.count {
            let got = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
            if got <= 0 { break }
            total += got
        }
        let text = String(decoding: bytes[..<total], as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingPrefix(while: { $0 == " " })) ?? 0
        }
        return 0
    }()

    private static func parsePid(_ name: UnsafeRawBufferPointer) -> Int32 {
        var value: Int32 = 0
        for byte in name {
            if byte == 0 { break }
            guard byte >= 48 && byte <= 57 else { return 0 }
            value = value &* 10 &+ Int32(byte - 48)
        }
        return value
    }

    private static func readStat(_ pid: Int32, into buffer: inout [UInt8]) -> Int {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        return max(got, 0)
    }

    struct Stat {
        var group: Int32
        var ticks: Int64
        var startTicks: Int64
        var rssPages: Int64
    }

    /// Parses `/proc/PID/stat`: the fields after the command's closing parenthesis (the command may hold anything).
    static func parse(_ bytes: ArraySlice<UInt8>) -> Stat? {
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        // Fields from 3 (state) on, numbered as in proc(5).
        var field = 3
        var group: Int64?, utime: Int64?, stime: Int64?, cutime: Int64 = 0, cstime: Int64 = 0, start: Int64?, rss: Int64?
        var current: Int64 = 0
        var negative = false
        var inField = false
        var index = close + 1
        scan: while index < bytes.endIndex {
            let byte = bytes[index]
            index += 1
            if byte == 32 || byte == 10 {
                if inField {
                    let value = negative ? -current : current
                    switch field {
                    case 5: group = value
                    case 14: utime = value
                    case 15: stime = value
                    case 16: cutime = value
                    case 17: cstime = value
                    case 22: start = value
                    case 24:
                        rss = value
                        break scan
                    default: break
                    }
                    field += 1
                }
                inField = false
                current = 0
                negative = false
            } else {
                inField = true
                if byte == UInt8(ascii: "-") {
                    negative = true
                } else if byte >= 48 && byte <= 57 {
                    current = current &* 10 &+ Int64(byte - 48)
                }
            }
        }
        if field == 24 && inField { rss = negative ? -current : current }
        guard let group, let utime, let stime, let start, let rss else { return nil }
        return Stat(
            group: Int32(truncatingIfNeeded: group), ticks: utime + stime + cutime + cstime,
            startTicks: start, rssPages: max(rss, 0))
    }
}
#endif
