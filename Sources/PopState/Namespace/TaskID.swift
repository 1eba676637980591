/// The id of a `pop run` request: `task-` and ten digits, assigned by the store's sequential nodes.
public struct TaskID: ValidatedName {
    /// The node name, such as `task-0000000007`.
    public let rawValue: String

    /// Validates a task id.
    public init(_ rawValue: String) throws(PopError) {
        let digits = rawValue.dropFirst(5)
        guard rawValue.hasPrefix("task-"), digits.count >= 10, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw PopError(
                .invalidInput, "The task id \(NameRules.printable(rawValue)) is not of the form task-0000000001.")
        }
        self.rawValue = rawValue
    }

    /// The sequence number.
    public var sequence: Int { Int(rawValue.dropFirst(5)) ?? 0 }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.sequence < rhs.sequence }
}
