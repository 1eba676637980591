#if os(Linux)
import Glibc

extension SessionClock {
    /// Milliseconds since boot, including time suspended (CLOCK_BOOTTIME): the same in every process.
    package static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_BOOTTIME, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }

    /// This boot's id, from /proc/sys/kernel/random/boot_id.
    package static let bootID: String = {
        let fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "unknown" }
        defer { Glibc.close(fd) }
        var bytes = [UInt8](repeating: 0, count: 64)
        let count = read(fd, &bytes, bytes.count)
        guard count > 0 else { return "unknown" }
        return String(decoding: bytes[..<count].filter { $0 > 0x20 }, as: UTF8.self)
    }()
}
#endif
