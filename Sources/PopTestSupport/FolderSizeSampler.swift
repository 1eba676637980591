import Foundation

#if canImport(Glibc)
import Glibc
#endif
#if canImport(CPopAgentLinux)
import CPopAgentLinux
#endif

/// Follows a folder with inotify on a thread of its own and, at every change, adds up the sizes of the files whose
/// names start with `prefix`, keeping the largest file and the largest total seen.
public final class FolderSizeSampler: @unchecked Sendable {
    /// The largest sizes seen.
    public struct Peak: Sendable {
        /// The largest single file, in bytes.
        public var largestFile = 0
        /// The largest sum of the files, in bytes.
        public var total = 0
        /// How many times the folder was looked at (a loaded machine wakes the sampler less often than the folder
        /// changes: each look follows every change reported until then).
        public var samples = 0
        /// How many changes of the folder inotify reported.
        public var changes = 0
    }

    private let watcher: Int32
    private let stopper: Int32
    private let stopWriter: Int32
    private let lock = NSLock()
    private var peak = Peak()
    private let done = DispatchSemaphore(value: 0)

    /// Starts sampling `folder`.
    public init(folder: String, prefix: String) throws {
        watcher = inotify_init1(Int32(IN_CLOEXEC))
        var ends: [Int32] = [-1, -1]
        guard watcher >= 0, pipe(&ends) == 0,
            inotify_add_watch(watcher, folder, UInt32(IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM)) >= 0
        else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        stopper = ends[0]
        stopWriter = ends[1]
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                var entries = [pollfd(fd: watcher, events: Int16(POLLIN), revents: 0), pollfd(fd: stopper, events: Int16(POLLIN), revents: 0)]
                guard poll(&entries, 2, -1) >= 0 || errno == EINTR else { break }
                if entries[1].revents != 0 { break }
                var changes = 0
                if entries[0].revents != 0 {
                    // Each event: wd, mask, cookie and len (4 bytes each), then len bytes of name.
                    let count = read(watcher, &buffer, buffer.count)
                    var offset = 0
                    while offset + 16 <= count {
                        let length = buffer[offset + 12..<offset + 16].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
                        offset += 16 + Int(length)
                        changes += 1
                    }
                }
                var total = 0
                var largest = 0
                for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasPrefix(prefix) {
                    var info = stat()
                    guard stat(folder + "/" + name, &info) == 0 else { continue }
                    total += Int(info.st_size)
                    largest = max(largest, Int(info.st_size))
                }
                lock.lock()
                peak.total = max(peak.total, total)
                peak.largestFile = max(peak.largestFile, largest)
                peak.samples += 1
                peak.changes += changes
                lock.unlock()
            }
            done.signal()
        }
        thread.start()
    }

    /// Stops sampling and returns the peaks seen.
    public func stop() -> Peak {
        var byte: UInt8 = 1
        _ = write(stopWriter, &byte, 1)
        done.wait()
        close(watcher)
        close(stopper)
        close(stopWriter)
        lock.lock()
        defer { lock.unlock() }
        return peak
    }
}
