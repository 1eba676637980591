/// How many instances of a service run, and where they may run, when it is deployed by count (`pop deploy NAME
/// --count N`). Kept beside the spec (`<root>/services/<name>/scheduling`), not in its signature, so `pop scale`
/// restarts nothing. A service without one is pinned: it runs exactly where `pop deploy NAME M1 M2` put it.
public struct SchedulingPolicy: Hashable, Sendable, Codable {
    /// The largest count pop accepts.
    public static let maximumCount = 10_000
    /// How long a machine may be missing before its instances move, unless a service says otherwise.
    public static let defaultRescheduleAfterMilliseconds = 30_000

    /// How many instances should run, each on a distinct machine.
    public var count: Int
    /// Only machines with every one of these labels are eligible.
    public var labels: [String: String]
    /// A label key to spread instances across: machines are chosen from the value with the fewest instances.
    public var spread: String?
    /// How long a machine's registration must have been gone before its instances are placed elsewhere.
    public var rescheduleAfterMilliseconds: Int

    /// Creates a policy, checking it.
    public init(
        count: Int, labels: [String: String] = [:], spread: String? = nil,
        rescheduleAfterMilliseconds: Int = SchedulingPolicy.defaultRescheduleAfterMilliseconds
    ) throws(PopError) {
        try Self.validate(count: count)
        for (key, value) in labels {
            try MachineLabel.validateKey(key)
            try MachineLabel.validateValue(value, key: key)
        }
        if let spread { try MachineLabel.validateKey(spread) }
        guard rescheduleAfterMilliseconds >= 0, rescheduleAfterMilliseconds <= 86_400_000 else {
            throw PopError(
                .invalidInput, "--reschedule-after must be between 0 and 86400 seconds.",
                hint: "The default is \(Self.defaultRescheduleAfterMilliseconds / 1000) seconds.")
        }
        self.count = count
        self.labels = labels
        self.spread = spread
        self.rescheduleAfterMilliseconds = rescheduleAfterMilliseconds
    }

    /// Checks a desired count.
    public static func validate(count: Int) throws(PopError) {
        guard count >= 1, count <= maximumCount else {
            throw PopError(
                .invalidInput, "The count \(count) is out of range: give 1 to \(maximumCount) instances.",
                hint: "`pop undeploy NAME --all` takes every instance away.")
        }
    }

    /// Whether a machine with `facts` may receive an instance (its agent being registered is checked elsewhere).
    public func admits(_ facts: MachineFacts?) -> Bool {
        guard facts?.drained != true else { return false }
        let have = facts?.labels ?? [:]
        return labels.allSatisfy { have[$0.key] == $0.value }
    }

    /// The labels asked for, as `key=value` text.
    public var labelText: String {
        labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }
}
