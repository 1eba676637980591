import Foundation
import PopState

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

    /// Text appended to any of `paths` from now on, as it is written, woken by inotify (no polling).
    ///
    /// A file that is truncated (log rotation copies then truncates) is followed from its new start.
    public static func follow(_ paths: [String]) throws(PopError) -> AsyncThrowingStream<(path: String, text: String), any Error> {
        #if os(Linux)
        let fd = inotify_init1(Int32(IN_CLOEXEC))
        guard fd >= 0 else {
            throw PopError(.system, "Could not watch log files: inotify_init1 failed (errno \(errno)).")
        }
        var offsets: [Int32: (path: String, offset: UInt64)] = [:]
        for path in paths {
            let watch = inotify_add_watch(fd, path, UInt32(IN_MODIFY))
            guard watch >= 0 else {
                close(fd)
                throw PopError(.notFound, "Could not watch \(path) (errno \(errno)).", path: path)
            }
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64) ?? 0
            offsets[watch] = (path, size ?? 0)
        }
        let state = offsets
        return AsyncThrowingStream { continuation in
            // A blocking read on the inotify descriptor wakes only when a file changes. `pop logs -f` follows until the
            // process is interrupted, so the thread lives as long as the process.
            let thread = Thread {
                var offsets = state
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if count <= 0 {
                        if count < 0 && errno == EINTR { continue }
                        continuation.finish()
                        return
                    }
                    var index = 0
                    var changed = Set<Int32>()
                    while index + MemoryLayout<inotify_event>.size <= count {
                        let event = buffer.withUnsafeBytes {
                            $0.loadUnaligned(fromByteOffset: index, as: inotify_event.self)
                        }
                        changed.insert(event.wd)
                        index += MemoryLayout<inotify_event>.size + Int(event.len)
                    }
                    for watch in changed.sorted() {
                        guard let (path, offset) = offsets[watch], let handle = FileHandle(forReadingAtPath: path)
                        else { continue }
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
            continuation.onTermination = { _ in close(fd) }
            thread.start()
        }
        #else
        throw PopError(.system, "Following logs is not supported on this platform yet.")
        #endif
    }
}
