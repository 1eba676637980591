import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Waits for files that a program under test writes, woken by inotify rather than by looking again and again.
public enum FileArrival {
    /// Waits until a file exists at `path` (its folder must exist); false when `timeout` passes first.
    public static func wait(for path: String, timeout: Duration) async -> Bool {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: blockingWait(for: path, timeout: timeout)) }
        }
    }

    private static func blockingWait(for path: String, timeout: Duration) -> Bool {
        let folder = (path as NSString).deletingLastPathComponent
        let fd = inotify_init1(Int32(IN_CLOEXEC))
        guard fd >= 0 else { return false }
        defer { close(fd) }
        // Watch first, then look: a file created in between is seen either way.
        guard inotify_add_watch(fd, folder, UInt32(IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE)) >= 0 else { return false }
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !FileManager.default.fileExists(atPath: path) {
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero { return false }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000 + 1)
            let ready = poll(&entry, 1, milliseconds)
            if ready < 0, errno != EINTR { return false }
            if ready > 0 { _ = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) } }
        }
        return true
    }
}
