#if os(Linux)
import CPopAgentLinux
import Glibc
import Synchronization

/// The supervisor's one event thread: epoll over process handles (pidfds), probe sockets, the SIGCHLD wake-up and its
/// own wake-up, plus a heap of timers. Idle, it sleeps in `epoll_wait` with
/// no timeout unless a timer is due, so it uses no CPU.
final class ProcessEventLoop: Sendable {
    /// What woke the loop.
    enum Event: Sendable {
        /// A registered descriptor is ready; `mask` holds the epoll bits.
        case ready(token: UInt64, mask: UInt32)
        /// A timer is due.
        case timer(token: UInt64)
        /// A child process changed state (SIGCHLD): orphans may need reaping.
        case childSignal
    }

    /// Tokens below this value are the loop's own.
    static let firstUserToken: UInt64 = 16
    private static let wakeToken: UInt64 = 1
    private static let childSignalToken: UInt64 = 2

    static let readable = UInt32(EPOLLIN.rawValue)
    static let writable = UInt32(EPOLLOUT.rawValue)

    private let epoll: Int32
    private let wake: Int32
    private let timers = Mutex(TimerHeap())
    private let stopping = Atomic<Bool>(false)

    init() throws(SupervisorError) {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        wake = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard epoll >= 0, wake >= 0 else {
            let error = SupervisorError.system("create the supervisor's event loop (epoll, eventfd)")
            for fd in [epoll, wake] where fd >= 0 { close(fd) }
            throw error
        }
        _ = cpop_epoll_ctl(epoll, EPOLL_CTL_ADD, wake, Self.readable, Self.wakeToken)
        _ = cpop_epoll_ctl(epoll, EPOLL_CTL_ADD, ChildReaper.wakeDescriptor, Self.readable, Self.childSignalToken)
    }

    deinit {
        close(epoll)
        close(wake)
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
            var childSignal = false
            for index in 0..<Int(count) {
                var mask: UInt32 = 0
                var token: UInt64 = 0
                cpop_epoll_event_get(buffer, Int32(index), &mask, &token)
                switch token {
                case Self.wakeToken:
                    drain(wake)
                case Self.childSignalToken:
                    drain(ChildReaper.wakeDescriptor)
                    childSignal = true
                default:
                    handler(.ready(token: token, mask: mask))
                }
            }
            // After the exits this wake-up reported were handled (and those children reaped through their pidfds).
            if childSignal { handler(.childSignal) }
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
}

#endif
