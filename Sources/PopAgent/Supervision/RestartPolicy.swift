/// How an instance that exits unexpectedly is restarted, and when pop gives up on it.
///
/// An exit before the instance has been up for ``stableAfterMilliseconds`` is a *quick failure*. Each quick failure
/// doubles the wait before the next start, from ``initialBackoffMilliseconds`` up to ``maximumBackoffMilliseconds``;
/// after ``maximumQuickFailures`` of them in a row the instance becomes FATAL and stays so until it is restarted
/// deliberately. An exit after a stable run starts the count afresh.
public struct RestartPolicy: Hashable, Sendable, Codable {
    /// The wait before the first automatic restart.
    public var initialBackoffMilliseconds: Int
    /// The longest wait between automatic restarts.
    public var maximumBackoffMilliseconds: Int
    /// Uptime after which an instance counts as stable, so its next exit starts the failure count afresh.
    public var stableAfterMilliseconds: Int
    /// Quick failures in a row after which the instance becomes FATAL.
    public var maximumQuickFailures: Int

    /// Creates a policy; the defaults are 100 ms doubling to 30 s, stable after 10 s, FATAL after 5 quick failures.
    public init(
        initialBackoffMilliseconds: Int = 100, maximumBackoffMilliseconds: Int = 30_000,
        stableAfterMilliseconds: Int = 10_000, maximumQuickFailures: Int = 5
    ) {
        self.initialBackoffMilliseconds = initialBackoffMilliseconds
        self.maximumBackoffMilliseconds = maximumBackoffMilliseconds
        self.stableAfterMilliseconds = stableAfterMilliseconds
        self.maximumQuickFailures = maximumQuickFailures
    }

    /// The wait before the restart that follows the `failures`-th quick failure in a row (1-based).
    public func backoff(afterFailures failures: Int) -> Duration {
        var delay = max(initialBackoffMilliseconds, 0)
        var remaining = max(failures - 1, 0)
        while remaining > 0 && delay < maximumBackoffMilliseconds {
            delay *= 2
            remaining -= 1
        }
        return .milliseconds(min(delay, maximumBackoffMilliseconds))
    }
}
