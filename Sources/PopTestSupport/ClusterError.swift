/// A failure to build, use or tear down a test cluster, saying what to do about it.
public struct ClusterError: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    public var message: String

    /// Creates an error.
    public init(_ message: String) { self.message = message }

    public var description: String { self.message }
}
