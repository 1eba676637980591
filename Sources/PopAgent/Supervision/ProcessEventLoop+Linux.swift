#if os(Linux)
import CPopAgentLinux
import Glibc
import Synchronization

/// The supervisor's one event thread: epoll over process handles (pidfds), probe sockets, the log folders' inotify
/// descriptor, the SIGCHLD wake-up and its own wake-up, plus a heap of timers. Idle, it sleeps in `epoll_wait` with
/// no timeout unless a timer is due, so it uses no CPU.
final class ProcessEventLoop: Sendable {
    /// What woke the loop.
    enum Event: Sendable {
        /// A registered descriptor is ready; `mask` holds the epoll bits.
        case ready(token: UInt64, mask: UInt32)
        /// A timer is due.
        case timer(token: UInt64)
        /// A file in a watched folder was modified; `watch` is the inotify watch descriptor.
        case folderModified(watch: Int32)
        /// A child process changed state (SIGCHLD): orphans may need reaping.
        case childSignal
    }

    /// Tokens below this value are the loop's own.
    static let firstUserToken: UInt64 = 16
    private static let wakeToken: UInt64 = 1
    private static let childSignalToken: UInt64 = 2
    private static let inotifyToken: UInt64 = 3

    static let readable = UInt32(EPOLLIN.rawValue)
    static let writable = UInt32(EPOLLOUT.rawValue)

    private let epoll: Int32
    private let wake: Int32
    private let inotify: Int32
    private let timers = Mutex(TimerHeap())
    private let stopping = Atomic<Bool>(false)

    init() throws(SupervisorError) {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        wake = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        inotify = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard epoll >= 0, wake >= 0, inotify >= 0 else {
            let error = SupervisorError.system("create the supervisor's event loop (epoll, eventfd, inotify)")
            for fd in [epoll, wake, inotify] where fd >= 0 { close(fd) }
            throw error
        }
        _ = cpop_epoll_ctl(epoll, EPOLL_CTL_ADD, wake, Self.readable, Self.wakeToken)
        _ = cpop_epoll_ctl(epoll, EPOLL_CTL_ADD, inotify, Self.readable, Self.inotifyToken)
        _ = cpop_epoll_ctl(epoll, EPOLL_CTL_ADD, ChildReaper.wakeDescriptor, Self.readable, Self.childSignalToken)
    }

    deinit {
        close(epoll)
        close(wake)
        close(inotify)
    }

    /// Watches `fd` for `mask` (``readable`` or ``writable``), reporting `token`.
    func add(_ fd: Int32, mask: UInt32, token: UInt64) {
        if cpop_epoll_ctl(epoll, EPOLL_CTL_ADD, fd, mask, token) != 0 && errno == EEXIST {
            _ = cpop_epoll_ctl(epoll, EPOLL_CTL_MOD, fd, mask, token)
        }
    }

    /// Stops watching `fd` (call before closing it).
    func remove(_ fd: Int32) {
        _ = cpop_epoll_ctl(epoll, EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Reports `.timer(token)` after `delay`.
    func schedule(after delay: Duration, token: UInt64) {
        let deadline = ContinuousClock.now.advanced(by: max(delay, .zero))
        let isEarliest = timers.withLock { heap in
            let earliest = heap.nextDeadline.map { deadline < $0 } ?? true
            heap.insert(deadline: deadline, token: token)
            return earliest
        }
        if isEarliest { signalWake() }
    }

    /// Watches `directory` for modified files; returns the watch descriptor, or `nil` if it cannot be watched.
    func watchFolder(_ directory: String) -> Int32? {
        let watch = inotify_add_watch(inotify, directory, UInt32(IN_MODIFY))
        return watch >= 0 ? watch : nil
    }

    /// Stops watching a folder.
    func unwatchFolder(_ watch: Int32) {
        _ = inotify_rm_watch(inotify, watch)
    }

    /// Ends ``run(_:)`` soon after.
    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        signalWake()
    }

    /// Runs the loop on the calling thread until ``stop()``, handing every event to `handler`.
    func run(_ handler: (Event) -> Void) {
        let capacity = 128
        let eventSize = cpop_epoll_event_size()
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: eventSize * capacity, alignment: 16)
        defer { buffer.deallocate() }
        while !stopping.load(ordering: .sequentiallyConsistent) {
            let count = epoll_wait(epoll, buffer.assumingMemoryBound(to: epoll_event.self), Int32(capacity), timeout())
            if count < 0 {
                if errno == EINTR { continue }
                return
            }
            for index in 0..<Int(count) {
                var mask: UInt32 = 0
                var token: UInt64 = 0
                cpop_epoll_event_get(buffer, Int32(index), &mask, &token)
                switch token {
                case Self.wakeToken:
                    drain(wake)
                case Self.childSignalToken:
                    drain(ChildReaper.wakeDescriptor)
                    handler(.childSignal)
                case Self.inotifyToken:
                    readFolderEvents(handler)
                default:
                    handler(.ready(token: token, mask: mask))
                }
            }
            let expired = timers.withLock { $0.popExpired(now: .now) }
            for token in expired {
                handler(.timer(token: token))
            }
        }
    }

    /// Milliseconds until the next timer, rounded up; -1 (forever) without one.
    private func timeout() -> Int32 {
        guard let deadline = timers.withLock({ $0.nextDeadline }) else { return -1 }
        let remaining = ContinuousClock.now.duration(to: deadline)
        if remaining <= .zero { return 0 }
        let (seconds, attoseconds) = remaining.components
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: milliseconds)
    }

    private func signalWake() {
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
    }

    private func drain(_ fd: Int32) {
        var value: UInt64 = 0
        _ = read(fd, &value, 8)
    }

    private func readFolderEvents(_ handler: (Event) -> Void) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(inotify, $0.baseAddress, $0.count) }
            guard count > 0 else { return }
            var offset = 0
            var watches: [Int32] = []
            buffer.withUnsafeBytes { raw in
                // struct inotify_event { int wd; uint32_t mask; uint32_t cookie; uint32_t len; char name[]; }
                while offset + 16 <= count {
                    let watch = raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                    let mask = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                    let length = raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)
                    if mask & UInt32(IN_MODIFY) != 0 && !watches.contains(watch) { watches.append(watch) }
                    offset += 16 + Int(length)
                }
            }
            for watch in watches { handler(.folderModified(watch: watch)) }
        }
    }
}

#endif
