#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The agent's side of the readiness pipe that `pop start` waits on (`pop fg --ready-fd N`).
///
/// The agent writes `ready <pid>` once it has registered its machine, or `error <message>` when it could not start,
/// then closes the pipe. Only the first signal counts.
public final class AgentReadiness: Sendable {
    private let descriptor: Mutex<Int32?>

    /// Takes over the inherited pipe `fd`, marking it close-on-exec so that no instance inherits it.
    public init(fd: Int32) {
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        self.descriptor = Mutex(fd)
    }

    /// Reports that the agent is ready.
    public func ready() {
        send("ready \(getpid())\n")
    }

    /// Reports why the agent could not start.
    public func failed(_ message: String) {
        send("error " + message + "\n")
    }

    private func send(_ text: String) {
        guard let fd = descriptor.withLock({ fd in defer { fd = nil }; return fd }) else { return }
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                break
            }
            bytes = bytes.dropFirst(written)
        }
        close(fd)
    }
}
