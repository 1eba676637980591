import Foundation
import PopState
import Synchronization

#if canImport(CPopAgentLinux)
import CPopAgentLinux
#endif

/// Wakes a reader when anything changes in some folders: a file in them written, created, renamed or removed.
///
/// A folder that does not exist yet is waited for through its nearest existing parent, and watched once it appears.
/// One thread per watch waits on inotify (no polling) and ends when the watch stops or its stream is dropped. Wakes
/// are coalesced: a reader that is busy finds one wake waiting, however many changes happened meanwhile.
public final class FolderWatch: Sendable {
    /// One element per burst of changes (at most one waiting); finishes when the watch stops.
    public let wakes: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation
    private let wake: Int32
    private let state = Mutex<State>(State())

    private struct State {
        var folders: [String] = []
        var added = false
        var stopped = false
        var finished = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    /// The name of the watch's thread, as /proc shows it.
    public static let threadName = "pop-folder-watch"

    /// Starts watching `folders`.
    public init(folders: [String]) throws(PopError) {
        #if os(Linux)
        let inotify = inotify_init1(Int32(IN_CLOEXEC))
        guard inotify >= 0 else {
            throw PopError(.system, "Could not watch the journals: inotify_init1 failed (errno \(errno)).")
        }
        let wake = eventfd(0, Int32(EFD_CLOEXEC))
        guard wake >= 0 else {
            close(inotify)
            throw PopError(.system, "Could not watch the journals: eventfd failed (errno \(errno)).")
        }
        self.wake = wake
        (wakes, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        state.withLock { $0.folders = folders }
        let thread = Thread { [self] in
            Thread.current.name = Self.threadName
            self.loop(inotify: inotify)
            close(inotify)
            self.threadEnded()
        }
        continuation.onTermination = { [self] _ in self.stop() }
        thread.start()
        #else
        throw PopError(.system, "Watching journals is not supported on this platform yet.")
        #endif
    }

    deinit {
        close(wake)
    }

    /// Watches `folders` too (new instances found while following).
    public func add(folders: [String]) {
        state.withLock { state in
            state.folders += folders
            state.added = true
        }
        signal()
    }

    /// Stops watching: the stream finishes and the thread ends (``finished()`` waits for that).
    public func stop() {
        state.withLock { $0.stopped = true }
        signal()
    }

    /// Waits until the thread has ended and closed its descriptors.
    public func finished() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { state in
                if !state.finished { state.waiters.append(continuation) }
                return state.finished
            }
            if done { continuation.resume() }
        }
    }

    private func signal() {
        var one: UInt64 = 1
        _ = write(wake, &one, MemoryLayout<UInt64>.size)
    }

    private func threadEnded() {
        continuation.finish()
        let waiters = state.withLock { state in
            state.finished = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Watches each folder, or its nearest existing parent for the folder's creation.
    private func arm(_ inotify: Int32, _ folders: [String]) {
        let changes = UInt32(IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CLOSE_WRITE) | UInt32(IN_MASK_ADD)
        for folder in folders {
            if inotify_add_watch(inotify, folder, changes) >= 0 { continue }
            var parent = (folder as NSString).deletingLastPathComponent
            while parent.count > 1, inotify_add_watch(inotify, parent, UInt32(IN_CREATE | IN_MOVED_TO) | UInt32(IN_MASK_ADD)) < 0 {
                parent = (parent as NSString).deletingLastPathComponent
            }
            // Created between the two calls: watched now.
            _ = inotify_add_watch(inotify, folder, changes)
        }
    }

    private func loop(inotify: Int32) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        arm(inotify, state.withLock { $0.folders })
        while true {
            var descriptors = [
                pollfd(fd: inotify, events: Int16(POLLIN), revents: 0), pollfd(fd: wake, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&descriptors, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                return
            }
            if descriptors[1].revents != 0 {
                var count: UInt64 = 0
                _ = read(wake, &count, MemoryLayout<UInt64>.size)
                let (stopped, added, folders) = state.withLock { state in
                    defer { state.added = false }
                    return (state.stopped, state.added, state.folders)
                }
                if stopped { return }
                if added {
                    arm(inotify, folders)
                    continuation.yield()
                }
            }
            if descriptors[0].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(inotify, $0.baseAddress, $0.count) }
                if count < 0 && errno != EINTR && errno != EAGAIN { return }
                // A folder waited for may exist now; watching it again is harmless.
                var created = false
                var index = 0
                while index + MemoryLayout<inotify_event>.size <= max(count, 0) {
                    let event = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: index, as: inotify_event.self) }
                    if event.mask & UInt32(IN_CREATE | IN_MOVED_TO) != 0 && event.mask & UInt32(IN_ISDIR) != 0 { created = true }
                    index += MemoryLayout<inotify_event>.size + Int(event.len)
                }
                if created { arm(inotify, state.withLock { $0.folders }) }
                continuation.yield()
            }
        }
    }
}
