/// Opens the store a configuration names, with a new session.
///
/// The embedded store is opened in its folder (created private if missing). The ZooKeeper store is not part of
/// this build yet: asking for it fails with `.invalidInput` saying so.
public func openStore(
    _ configuration: StoreConfiguration, sessionTimeout: Duration = .seconds(10)
) async throws -> any CoordinationStore {
    switch configuration.kind {
    case .embedded(let folder):
        return try await EmbeddedStore.open(folder: folder, options: .init(sessionTimeout: sessionTimeout))
    case .zooKeeper(let servers, _):
        throw PopError(
            .invalidInput,
            "The ZooKeeper store (\(servers.map(\.description).joined(separator: ","))) is not available in this build yet.",
            hint: "Leave out --host and POP_HOST to use the embedded store on this machine.")
    }
}

/// Opens the store a configuration names and returns pop's namespace in it.
public func openNamespace(
    _ configuration: StoreConfiguration, sessionTimeout: Duration = .seconds(10)
) async throws -> PopNamespace {
    let store = try await openStore(configuration, sessionTimeout: sessionTimeout)
    return try PopNamespace(store: store, prefix: configuration.prefix)
}
