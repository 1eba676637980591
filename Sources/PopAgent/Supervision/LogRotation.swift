/// How an instance's log files are kept bounded: each is copied aside and truncated once it passes ``maximumBytes``.
public struct LogRotation: Hashable, Sendable, Codable {
    /// The size past which a log file is rotated.
    public var maximumBytes: Int
    /// How many rotated files (`stdout.log.1` ... `stdout.log.N`) are kept.
    public var keep: Int

    /// Creates a rotation policy; the default keeps 5 rotated files of 10 MiB each.
    public init(maximumBytes: Int = 10 << 20, keep: Int = 5) {
        self.maximumBytes = maximumBytes
        self.keep = keep
    }
}
