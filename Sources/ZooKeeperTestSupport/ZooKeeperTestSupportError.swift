/// A failure to start or control a test server, with what to do about it.
public struct ZooKeeperTestSupportError: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    public var message: String

    /// Creates an error.
    public init(_ message: String) { self.message = message }

    /// A readable form, for logs and messages.
    public var description: String { self.message }
}
