import Foundation
import PopState
import Synchronization

#if canImport(CPopAgentLinux)
import CPopAgentLinux
#endif

/// Reads an instance's log files for `pop logs`: the last lines, and new lines as they are written.
public enum InstanceLog {
    /// The last `count` lines of the file at `path` (all of it when shorter), read from its end.
    public static func tail(_ path: String, lines count: Int) throws(PopError) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw PopError(.notFound, "There is no log file \(path).", path: path)
        }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        guard count > 0, size > 0 else { return "" }
        var chunk: UInt64 = 64 * 1024
        while true {
            let start = size > chunk ? size - chunk : 0
            try? handle.seek(toOffset: start)
            let data = handle.readDataToEndOfFile()
            var text = String(decoding: data, as: UTF8.self)
            let newlines = text.reduce(0) { $0 + ($1 == "\n" ? 1 : 0) }
            if newlines > count || start == 0 {
                var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
                if lines.last == "" { lines.removeLast() }
                // A partial first line (cut by the chunk boundary) is dropped unless the file starts there.
                if start > 0 { lines.removeFirst() }
                text = lines.suffix(count).joined(separator: "\n")
                return text.isEmpty ? "" : text + "\n"
            }
            chunk *= 4
        }
    }

    /// Follows `paths`: the text appended to any of them from now on, as it is written, woken by inotify (no
    /// polling). A file that is truncated (log rotation copies then truncates) is followed from its new start.
    ///
    /// The follower's thread ends when ``LogFollower/stop()`` is called or its stream is dropped.
    public static func follow(_ paths: [String]) throws(PopError) -> LogFollower {
        try LogFollower(paths)
    }
}

/// The text appended to some log files, read by a thread of its own that ends with the follower.
public final class LogFollower: Sendable {
    /// A piece of one file's new text.
    public typealias Chunk = (path: String, text: String)

    /// The new text, in the order it was read; it finishes when the follower stops.
    public let chunks: AsyncThrowingStream<Chunk, any Error>
    private let thread: InotifyThread

    /// The name of the follower's thread, as /proc shows it.
    public static let threadName = "pop-log-follow"

    init(_ paths: [String]) throws(PopError) {
        thread = try InotifyThread(purpose: "follow the log files")
        var offsets: [Int32: (path: String, offset: UInt64)] = [:]
        for path in paths {
            let watch = inotify_add_watch(thread.inotify, path, UInt32(IN_MODIFY))
            guard watch >= 0 else {
                let code = errno
                close(thread.inotify)
                throw PopError(.notFound, "Could not watch \(path) (errno \(code)).", path: path)
            }
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64) ?? 0
            offsets[watch] = (path, size)
        }
        let (chunks, continuation) = AsyncThrowingStream<Chunk, any Error>.makeStream(bufferingPolicy: .unbounded)
        self.chunks = chunks
        let watched = offsets
        thread.start(name: Self.threadName) { thread in Self.follow(thread, offsets: watched, into: continuation) }
        // Dropping the stream (the command ends, or stops reading) stops the thread.
        continuation.onTermination = { [thread] _ in thread.signal() }
    }

    /// Stops following: the stream finishes and the thread ends (``finished()`` waits for that).
    public func stop() {
        thread.signal()
    }

    /// Waits until the thread has ended and closed its descriptors.
    public func finished() async {
        await thread.finished()
    }

    /// The thread's loop: waits on inotify and the wake descriptor at once, and reads what was appended.
    private static func follow(
        _ thread: InotifyThread, offsets initial: [Int32: (path: String, offset: UInt64)],
        into continuation: AsyncThrowingStream<Chunk, any Error>.Continuation
    ) {
        var offsets = initial
        var buffer = [UInt8](repeating: 0, count: 4096)
        defer { continuation.finish() }
        while true {
            guard let ready = thread.wait() else {
                continuation.finish(throwing: PopError(.system, "Following the logs failed: poll (errno \(errno))."))
                return
            }
            if ready.signaled { return }
            guard let events = thread.events(into: &buffer) else { return }
            for watch in Set(events.map(\.wd)).sorted() {
                guard let (path, offset) = offsets[watch], let handle = FileHandle(forReadingAtPath: path) else { continue }
                let size = (try? handle.seekToEnd()) ?? 0
                let start = size < offset ? 0 : offset
                try? handle.seek(toOffset: start)
                let data = handle.readDataToEndOfFile()
                try? handle.close()
                offsets[watch] = (path, start + UInt64(data.count))
                if !data.isEmpty {
                    continuation.yield((path, String(decoding: data, as: UTF8.self)))
                }
            }
        }
    }
}
