/// What a machine's agent must notice about one service placed on it, beyond its spec and its placement (which the
/// agent follows directly): `<root>/assignments/<machine>/<service>`.
///
/// The node exists exactly while the service is placed on the machine: it is created and deleted in the same
/// multi-operation as the placement, so an agent learns what is placed on it from its own assignment subtree, with
/// one watch, instead of following every service of the namespace. Writes that concern every machine of a service
/// but have no node the agent follows (a `pop run` request, packages recorded by an install) set the assignment of
/// each machine the service is placed on, in the same multi-operation. See docs/state.md.
public struct Assignment: Hashable, Sendable, Codable {
    /// How many task requests (`pop run`) were announced to the machine.
    public var taskRequests: Int
    /// The version of the service's `packages` node when it was last announced (0: as created).
    public var packagesVersion: Int32

    /// An assignment with nothing announced yet.
    public init(taskRequests: Int = 0, packagesVersion: Int32 = 0) {
        self.taskRequests = taskRequests
        self.packagesVersion = packagesVersion
    }
}
