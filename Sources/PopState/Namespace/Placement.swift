import Foundation

/// A desired placement of a service on a machine (persistent; written by `pop deploy`).
public struct Placement: Hashable, Sendable, Codable {
    /// When the service was deployed on the machine.
    public var deployed: Date
    /// Bumped by `pop restart`; an agent restarts its instance when this grows.
    public var restartGeneration: Int

    /// Creates a placement.
    public init(deployed: Date, restartGeneration: Int = 0) {
        self.deployed = deployed
        self.restartGeneration = restartGeneration
    }
}
