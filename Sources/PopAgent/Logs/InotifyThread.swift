import Foundation
import PopState
import Synchronization

#if canImport(CPopAgentLinux)
import CPopAgentLinux
#endif

/// A thread of its own that waits on an inotify descriptor (no polling) and on a wake-up descriptor its owner writes to,
/// and runs its owner's loop until that returns; then it closes the inotify descriptor and says it has ended.
///
/// The shared part of ``LogFollower`` and ``FolderWatch``: each owns one and gives it the loop.
final class InotifyThread: Sendable {
    /// The inotify descriptor the loop adds its watches to (closed when the loop returns).
    let inotify: Int32
    /// Written to by ``signal()``; the loop reads it when ``wait()`` says so.
    private let wake: Int32
    private let state = Mutex<(finished: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    /// What woke the thread.
    struct Readiness {
        var changed: Bool
        var signaled: Bool
    }

    /// The descriptors, or an error saying what `purpose` could not do.
    init(purpose: String) throws(PopError) {
        #if os(Linux)
        let inotify = inotify_init1(Int32(IN_CLOEXEC))
        guard inotify >= 0 else {
            throw PopError(.system, "Could not \(purpose): inotify_init1 failed (errno \(errno)).")
        }
        let wake = eventfd(0, Int32(EFD_CLOEXEC))
        guard wake >= 0 else {
            close(inotify)
            throw PopError(.system, "Could not \(purpose): eventfd failed (errno \(errno)).")
        }
        self.inotify = inotify
        self.wake = wake
        #else
        throw PopError(.system, "Could not \(purpose): not supported on this platform yet.")
        #endif
    }

    deinit {
        close(wake)
    }

    /// Starts the thread, named `name` as /proc shows it, running `loop`.
    func start(name: String, _ loop: @escaping @Sendable (InotifyThread) -> Void) {
        let thread = Thread { [self] in
            Thread.current.name = name
            loop(self)
            close(inotify)
            let waiters = state.withLock { state in
                state.finished = true
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
        thread.start()
    }

    /// Wakes the loop (it then sees ``Readiness/signaled``).
    func signal() {
        var one: UInt64 = 1
        _ = write(wake, &one, MemoryLayout<UInt64>.size)
    }

    /// Blocks until inotify has events or the thread is signaled (the signal is consumed); nil when waiting failed.
    func wait() -> Readiness? {
        while true {
            var descriptors = [
                pollfd(fd: inotify, events: Int16(POLLIN), revents: 0), pollfd(fd: wake, events: Int16(POLLIN), revents: 0),
            ]
            if poll(&descriptors, 2, -1) < 0 {
                if errno == EINTR { continue }
                return nil
            }
            let signaled = descriptors[1].revents != 0
            if signaled {
                var count: UInt64 = 0
                _ = read(wake, &count, MemoryLayout<UInt64>.size)
            }
            return Readiness(changed: descriptors[0].revents != 0, signaled: signaled)
        }
    }

    /// The inotify events waiting, read at once; nil when reading failed.
    func events(into buffer: inout [UInt8]) -> [inotify_event]? {
        let count = buffer.withUnsafeMutableBytes { read(inotify, $0.baseAddress, $0.count) }
        if count < 0 { return errno == EINTR || errno == EAGAIN ? [] : nil }
        var events: [inotify_event] = []
        var index = 0
        while index + MemoryLayout<inotify_event>.size <= count {
            let event = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: index, as: inotify_event.self) }
            events.append(event)
            index += MemoryLayout<inotify_event>.size + Int(event.len)
        }
        return events
    }

    /// Waits until the thread has ended and closed its descriptors.
    func finished() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { state in
                if !state.finished { state.waiters.append(continuation) }
                return state.finished
            }
            if done { continuation.resume() }
        }
    }
}
