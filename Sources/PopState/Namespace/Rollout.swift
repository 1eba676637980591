import Foundation

/// How a configuration change rolls out across a service's machines, kept beside its spec (not in its signature, so
/// changing it restarts nothing).
///
/// With `maxParallel` set, machines restart in machine-id order, each only when fewer than `maxParallel` of the
/// registered machines before it are still not running the new signature: 1 restarts one machine at a time, each
/// waiting for the previous instance to be running (healthy, when the template has a check).
public struct Rollout: Hashable, Sendable, Codable {
    /// At most this many machines restart at once; `nil` restarts them all at once.
    public var maxParallel: Int?
    /// How many machines (the first in machine-id order) take a new signature first; the rest wait until these have
    /// been healthy for ``healthyTimeMilliseconds``. `nil`: no canary phase.
    public var canary: Int?
    /// How long a restarted instance must have been running (and passing its check) to count as healthy.
    public var healthyTimeMilliseconds: Int?
    /// How long a restarted instance has to become healthy; past it, the batch has failed.
    public var healthyDeadlineMilliseconds: Int?
    /// Whether a failed batch brings back, at once, the last signature that was healthy everywhere.
    public var autoRevert: Bool?

    /// Creates a rollout setting.
    public init(
        maxParallel: Int?, canary: Int? = nil, healthyTimeMilliseconds: Int? = nil,
        healthyDeadlineMilliseconds: Int? = nil, autoRevert: Bool? = nil
    ) {
        self.maxParallel = maxParallel
        self.canary = canary
        self.healthyTimeMilliseconds = healthyTimeMilliseconds
        self.healthyDeadlineMilliseconds = healthyDeadlineMilliseconds
        self.autoRevert = autoRevert
    }

    /// Whether restarts wait for anything (a limit or a canary phase): when not, the node need not exist.
    public var paces: Bool { maxParallel != nil || canary != nil }

    /// Whether `machine` may restart into `signature` now, given the service's placed machines, their instance
    /// records, and which machines are registered: ``decide(machine:into:placed:records:registered:state:now:)``
    /// answering `restart`, with no rollout state.
    public func allowsRestart(
        of machine: MachineID, into signature: ConfigSignature, placed: [MachineID],
        records: [MachineID: InstanceRecord], registered: Set<MachineID>, now: Date = Date()
    ) -> Bool {
        decide(
            machine: machine, into: signature, placed: placed, records: records, registered: registered, state: nil,
            now: now) == .restart
    }
}
