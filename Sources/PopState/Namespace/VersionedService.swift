/// A service's spec with its configuration version (the version of its node) and signature.
public struct VersionedService: Hashable, Sendable {
    /// The desired configuration.
    public var spec: ServiceSpec
    /// The node version; pass it to ``PopNamespace/updateService(_:expectedVersion:)``.
    public var version: Int32
    /// The configuration signature: the SHA-1 of the node's data (which pop writes as the spec's canonical encoding).
    public var signature: ConfigSignature

    /// Creates a versioned service.
    public init(spec: ServiceSpec, version: Int32, signature: ConfigSignature) {
        self.spec = spec
        self.version = version
        self.signature = signature
    }
}
