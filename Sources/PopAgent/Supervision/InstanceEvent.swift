import PopState

/// A change the supervisor reports.
public enum InstanceEvent: Hashable, Sendable {
    /// An instance's status changed; this is its new snapshot.
    case changed(InstanceStatus)
    /// An instance was removed and is no longer supervised.
    case removed(ServiceName)
}
