import Foundation

#if canImport(Glibc)
import Glibc
#endif
#if canImport(CPopAgentLinux)
import CPopAgentLinux
#endif

/// Waits on events, never in a loop of sleeps: a descriptor becoming readable (poll), a file gaining text (inotify).
/// (A process's exit: `Processes.waitForExit`, on pidfds.) Each wait ends at its time limit whether or not anything happened, and says which.
public enum Waiting {
    /// Whether `descriptor` becomes readable within `limit`. The poll runs on a thread of its own, so no task blocks.
    public static func readable(_ descriptor: Int32, within limit: Duration) async -> Bool {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                let deadline = ContinuousClock.now + limit
                while true {
                    let remaining = deadline - ContinuousClock.now
                    guard remaining > .zero else { return continuation.resume(returning: false) }
                    var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                    let milliseconds = Int32(clamping: remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000 + 1)
                    let ready = poll(&entry, 1, milliseconds)
                    if ready < 0, errno == EINTR { continue }
                    return continuation.resume(returning: ready > 0)
                }
            }
            thread.stackSize = 64 * 1024
            thread.start()
        }
    }

    /// One line read from `descriptor` within `limit`, without its newline; `nil` at end of file or at the limit.
    public static func line(from descriptor: Int32, within limit: Duration) async -> String? {
        let deadline = ContinuousClock.now + limit
        var bytes: [UInt8] = []
        while !bytes.contains(UInt8(ascii: "\n")) {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero, await readable(descriptor, within: remaining) else { return nil }
            var chunk = [UInt8](repeating: 0, count: 512)
            let count = read(descriptor, &chunk, chunk.count)
            guard count > 0 else { return nil }
            bytes += chunk[..<count]
        }
        return String(decoding: bytes.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
    }

    /// Whether the file at `path` contains `text` within `limit`, woken by inotify on its folder (which may not exist
    /// yet).
    public static func file(_ path: String, contains text: String, within limit: Duration) async -> Bool {
        await file(path, within: limit) { $0.contains(text) }
    }

    /// Whether the file at `path` satisfies `condition` within `limit`, checked whenever its folder changes.
    public static func file(_ path: String, within limit: Duration, _ condition: (String) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + limit
        let folder = (path as NSString).deletingLastPathComponent
        let watcher = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard watcher >= 0 else { return false }
        defer { close(watcher) }
        while true {
            // Watch first, then look: a change in between wakes the next wait.
            if inotify_add_watch(watcher, folder, UInt32(IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE)) < 0 {
                // The folder does not exist yet: wait for something to be created in the nearest existing parent.
                var parent = (folder as NSString).deletingLastPathComponent
                while access(parent, F_OK) != 0, parent != "/" { parent = (parent as NSString).deletingLastPathComponent }
                _ = inotify_add_watch(watcher, parent, UInt32(IN_CREATE | IN_MOVED_TO))
            }
            if let contents = try? String(contentsOfFile: path, encoding: .utf8), condition(contents) { return true }
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero, await readable(watcher, within: remaining) else { return false }
            var buffer = [UInt8](repeating: 0, count: 4096)
            while read(watcher, &buffer, buffer.count) > 0 {}
        }
    }
}
