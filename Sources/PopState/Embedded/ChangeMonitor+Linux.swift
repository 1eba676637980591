#if os(Linux)
import Glibc
import Synchronization

/// Creates the platform's change monitor for `fileName` in `folder`.
package func makeChangeMonitor(folder: String, fileName: String) throws(PopError) -> any ChangeMonitor {
    try InotifyChangeMonitor(folder: folder, fileName: fileName)
}

/// A ``ChangeMonitor`` on inotify: a watch on the folder (so that a re-created file is still seen) plus a pipe for
/// interrupts, waited on together with poll(2).
///
/// The inotify watch is made only when the handle first needs it (its first watch): a one-shot command never
/// watches, and creating and closing an inotify instance costs several milliseconds of a short command's life.
final class InotifyChangeMonitor: ChangeMonitor {
    private let folder: String
    private let inotify = Mutex<Int32>(-1)
    private let wakeup: Int32
    private let wakeupWriter: Int32
    private let fileName: [UInt8]

    init(folder: String, fileName: String) throws(PopError) {
        var pipeEnds: [Int32] = [-1, -1]
        guard pipe(&pipeEnds) == 0 else {
            throw PopError(.system, "Cannot create a pipe: \(String(cString: strerror(errno))).")
        }
        for end in pipeEnds {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        self.folder = folder
        self.wakeup = pipeEnds[0]
        self.wakeupWriter = pipeEnds[1]
        self.fileName = Array(fileName.utf8)
    }

    func activate() throws(PopError) {
        let created: Bool = try inotify.withLock { (descriptor) throws(PopError) -> Bool in
            guard descriptor < 0 else { return false }
            let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
            guard fd >= 0 else {
                throw PopError(.system, "Cannot watch \(folder) for changes: inotify_init1 failed (\(String(cString: strerror(errno)))).")
            }
            let mask = UInt32(IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO | IN_ATTRIB)
            guard inotify_add_watch(fd, folder, mask) >= 0 else {
                let reason = String(cString: strerror(errno))
                Glibc.close(fd)
                throw PopError(
                    .system, "Cannot watch \(folder) for changes: inotify_add_watch failed (\(reason)).",
                    hint: "Raise fs.inotify.max_user_watches if the limit is reached.")
            }
            descriptor = fd
            return true
        }
        // The waiting thread polls without the new descriptor until it is woken once.
        if created { interrupt() }
    }

    func wait(timeoutMilliseconds: Int?) -> ChangeMonitorWake {
        let inotify = self.inotify.withLock { $0 }
        var fds = [
            pollfd(fd: wakeup, events: Int16(POLLIN), revents: 0),
            pollfd(fd: inotify, events: Int16(POLLIN), revents: 0),
        ]
        let ready = poll(&fds, inotify >= 0 ? 2 : 1, timeoutMilliseconds.map { Int32(clamping: max(0, $0)) } ?? -1)
        if ready == 0 { return .timeout }
        if ready < 0 { return .unrelated }  // EINTR: the caller loops.
        if fds[0].revents != 0 {
            var bytes = [UInt8](repeating: 0, count: 64)
            while read(wakeup, &bytes, bytes.count) > 0 {}
            return .interrupted
        }
        return drainEvents(inotify) ? .changed : .unrelated
    }

    func interrupt() {
        var one: UInt8 = 1
        _ = write(wakeupWriter, &one, 1)
    }

    func close() {
        let inotify = self.inotify.withLock { $0 }
        if inotify >= 0 { Glibc.close(inotify) }
        Glibc.close(wakeup)
        Glibc.close(wakeupWriter)
    }

    /// Reads every queued event; returns whether one names the watched file.
    private func drainEvents(_ inotify: Int32) -> Bool {
        var matched = false
        let size = 64 * 1024
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            let count = read(inotify, buffer, size)
            guard count > 0 else { break }
            var offset = 0
            while offset + MemoryLayout<inotify_event>.size <= count {
                let event = buffer.load(fromByteOffset: offset, as: inotify_event.self)
                let nameStart = offset + MemoryLayout<inotify_event>.size
                let nameLength = Int(event.len)
                if nameLength > 0 {
                    let bytes = UnsafeRawBufferPointer(start: buffer + nameStart, count: nameLength)
                    let name = bytes.prefix { $0 != 0 }
                    if name.elementsEqual(fileName) { matched = true }
                }
                if event.mask & UInt32(IN_Q_OVERFLOW) != 0 { matched = true }
                offset = nameStart + nameLength
            }
        }
        return matched
    }
}
#endif
