import Foundation
import PopState

/// An open store and namespace for one command, plus how to print.
struct CommandContext: Sendable {
    let store: any CoordinationStore
    let namespace: PopNamespace
    let json: Bool
    let out = Terminal.standardOutput
    let err = Terminal.standardError

    /// Opens the store the global options select and checks the namespace's layout.
    ///
    /// ZooKeeper credentials come from the environment (POP_AUTH, POP_AUTH_FILE or the default credentials file)
    /// unless `credentials` replaces them, as `pop init --auth` does. A command holds one connection to the embedded
    /// store; one that serves many callers at once (the dashboard) asks for the pool.
    static func open(
        _ options: GlobalOptions, requireNamespace: Bool = true, credentials: StoreCredentials? = nil,
        connections: EmbeddedStore.Connections = .single
    ) async throws -> CommandContext {
        let configuration = try storeConfiguration(options, credentials: credentials)
        let store = try await openStore(configuration, connections: connections)
        do {
            let namespace = try PopNamespace(store: store, prefix: configuration.prefix)
            if requireNamespace {
                try await namespace.checkLayout()
            }
            return CommandContext(store: store, namespace: namespace, json: options.json)
        } catch {
            await store.close()
            throw error
        }
    }

    /// The store configuration the global options and the environment select, with `credentials` if given.
    static func storeConfiguration(
        _ options: GlobalOptions, credentials: StoreCredentials? = nil
    ) throws -> StoreConfiguration {
        let environment = CommandEnvironment.variables
        let home = try PopHome(environment: environment)
        guard let credentials else {
            return try StoreConfiguration(host: options.host, prefix: options.prefix, environment: environment, home: home)
        }
        // Explicit credentials replace the environment's, so a bad POP_AUTH or credentials file does not matter here.
        var withoutCredentials = environment
        for key in ["POP_AUTH", "POP_AUTH_FILE", "XDG_CONFIG_HOME", "HOME"] { withoutCredentials.removeValue(forKey: key) }
        var configuration = try StoreConfiguration(
            host: options.host, prefix: options.prefix, environment: withoutCredentials,
            home: home)
        configuration.credentials = credentials
        return configuration
    }

    /// Runs `body` with an open context and always closes the store's session afterwards, without waiting for
    /// ZooKeeper's answer to the close: the command exits next, and it holds no ephemeral node.
    static func with<T: Sendable>(
        _ options: GlobalOptions, requireNamespace: Bool = true, credentials: StoreCredentials? = nil,
        _ body: (CommandContext) async throws -> T
    ) async throws -> T {
        let context = try await open(options, requireNamespace: requireNamespace, credentials: credentials)
        do {
            let result = try await body(context)
            await context.store.closeBeforeExit()
            return result
        } catch {
            await context.store.closeBeforeExit()
            throw error
        }
    }

    /// Says which store a change was written to: every state-changing command ends with this.
    func done(_ message: String) {
        guard !json else { return }
        out.line(out.paint("✓", .green) + " " + message)
        out.line(out.paint("  store: \(store.description)", .dim))
    }

    /// Prints a warning on standard error.
    func warn(_ message: String) {
        err.line(err.paint("warning:", .yellow) + " " + message)
    }

    /// Prints a value as pretty JSON on standard output.
    func printJSON<T: Encodable>(_ value: T) throws {
        out.line(String(decoding: try PopJSON.outputEncoder().encode(value), as: UTF8.self))
    }
}
