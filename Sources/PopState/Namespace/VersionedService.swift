/// A service's spec with its configuration version (the version of its node).
public struct VersionedService: Hashable, Sendable {
    /// The desired configuration.
    public var spec: ServiceSpec
    /// The node version; pass it to ``PopNamespace/updateService(_:expectedVersion:)``.
    public var version: Int32

    /// Creates a versioned service.
    public init(spec: ServiceSpec, version: Int32) {
        self.spec = spec
        self.version = version
    }
}
