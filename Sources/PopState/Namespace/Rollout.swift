/// How a configuration change rolls out across a service's machines, kept beside its spec (not in its signature, so
/// changing it restarts nothing).
///
/// With `maxParallel` set, machines restart in machine-id order, each only when fewer than `maxParallel` of the
/// registered machines before it are still not running the new signature: 1 restarts one machine at a time, each
/// waiting for the previous instance to be running (healthy, when the template has a check).
public struct Rollout: Hashable, Sendable, Codable {
    /// At most this many machines restart at once; `nil` restarts them all at once.
    public var maxParallel: Int?

    /// Creates a rollout setting.
    public init(maxParallel: Int?) {
        self.maxParallel = maxParallel
    }

    /// Whether `machine` may restart into `signature` now, given the service's placed machines, their instance
    /// records, and which machines are registered. A machine whose agent is not registered does not hold the rollout
    /// up; one that runs the new signature in another state than `running` (or failed with it) does.
    public func allowsRestart(
        of machine: MachineID, into signature: ConfigSignature, placed: [MachineID],
        records: [MachineID: InstanceRecord], registered: Set<MachineID>
    ) -> Bool {
        guard let maxParallel else { return true }
        let before = placed.sorted().filter { $0 < machine }
        let unfinished = before.filter { other in
            guard registered.contains(other) else { return false }
            guard let record = records[other] else { return true }
            return !(record.state == .running && record.signature == signature)
        }
        return unfinished.count < maxParallel
    }
}
