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
    private let thread: InotifyThread
    private let state = Mutex<State>(State())

    private struct State {
        var folders: [String] = []
        var added = false
        var stopped = false
    }

    /// The name of the watch's thread, as /proc shows it.
    public static let threadName = "pop-folder-watch"

    /// Starts watching `folders`.
    public init(folders: [String]) throws(PopError) {
        thread = try InotifyThread(purpose: "watch the journals")
        (wakes, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        state.withLock { $0.folders = folders }
        thread.start(name: Self.threadName) { [self] thread in
            self.loop(thread)
            self.continuation.finish()
        }
        continuation.onTermination = { [self] _ in self.stop() }
    }

    /// Watches `folders` too (new instances found while following).
    public func add(folders: [String]) {
        state.withLock { state in
            state.folders += folders
            state.added = true
        }
        thread.signal()
    }

    /// Stops watching: the stream finishes and the thread ends (``finished()`` waits for that).
    public func stop() {
        state.withLock { $0.stopped = true }
        thread.signal()
    }

    /// Waits until the thread has ended and closed its descriptors.
    public func finished() async {
        await thread.finished()
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

    private func loop(_ thread: InotifyThread) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        arm(thread.inotify, state.withLock { $0.folders })
        while let ready = thread.wait() {
            if ready.signaled {
                let (stopped, added, folders) = state.withLock { state in
                    defer { state.added = false }
                    return (state.stopped, state.added, state.folders)
                }
                if stopped { return }
                if added {
                    arm(thread.inotify, folders)
                    continuation.yield()
                }
            }
            if ready.changed {
                guard let events = thread.events(into: &buffer) else { return }
                // A folder waited for may exist now; watching it again is harmless.
                if events.contains(where: { $0.mask & UInt32(IN_CREATE | IN_MOVED_TO) != 0 && $0.mask & UInt32(IN_ISDIR) != 0 }) {
                    arm(thread.inotify, state.withLock { $0.folders })
                }
                continuation.yield()
            }
        }
    }
}
