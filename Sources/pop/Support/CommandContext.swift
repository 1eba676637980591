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
    static func open(_ options: GlobalOptions, requireNamespace: Bool = true) async throws -> CommandContext {
        let environment = ProcessInfo.processInfo.environment
        let configuration = try StoreConfiguration(
            host: options.host, prefix: options.prefix, environment: environment, home: try PopHome(environment: environment))
        let store = try await openStore(configuration)
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

    /// Runs `body` with an open context and always closes the store's session afterwards.
    static func with<T: Sendable>(
        _ options: GlobalOptions, requireNamespace: Bool = true, _ body: (CommandContext) async throws -> T
    ) async throws -> T {
        let context = try await open(options, requireNamespace: requireNamespace)
        do {
            let result = try await body(context)
            await context.store.close()
            return result
        } catch {
            await context.store.close()
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
        let encoder = PopJSON.canonicalEncoder()
        encoder.outputFormatting.insert(.prettyPrinted)
        encoder.dateEncodingStrategy = .iso8601
        out.line(String(decoding: try encoder.encode(value), as: UTF8.self))
    }
}
