extension StoreConfiguration {
    /// How long commands and agents wait for a ZooKeeper member to answer before the store counts as unreachable.
    public static let connectTimeout: Duration = .seconds(5)
}

/// Opens the store a configuration names, with a new session.
///
/// The embedded store is opened in its folder (created private if missing), with `connections` (a command that runs
/// once needs one; see ``EmbeddedStore/Connections``); the ZooKeeper store connects to the ensemble, failing with
/// `.storeUnreachable` when no member answers within `connectTimeout`, and authenticates with the configuration's
/// credentials, creating every node with their digest ACL.
public func openStore(
    _ configuration: StoreConfiguration, sessionTimeout: Duration = .seconds(10),
    connectTimeout: Duration = StoreConfiguration.connectTimeout, connections: EmbeddedStore.Connections = .pool
) async throws -> any CoordinationStore {
    switch configuration.kind {
    case .embedded(let folder):
        return try await EmbeddedStore.open(
            folder: folder, options: .init(sessionTimeout: sessionTimeout, connections: connections))
    case .zooKeeper(let servers, let chroot):
        return try await ZooKeeperStore.open(
            servers: servers, chroot: chroot, sessionTimeout: sessionTimeout, connectTimeout: connectTimeout,
            credentials: configuration.credentials)
    }
}

/// Opens the store a configuration names and returns pop's namespace in it.
public func openNamespace(
    _ configuration: StoreConfiguration, sessionTimeout: Duration = .seconds(10)
) async throws -> PopNamespace {
    let store = try await openStore(configuration, sessionTimeout: sessionTimeout)
    return try PopNamespace(store: store, prefix: configuration.prefix)
}
