import ArgumentParser
import Foundation
import Logging
import PopState
import PopUI
import ServiceLifecycle

/// `pop ui`: serves the web dashboard.
struct UI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ui",
        _superCommandName: "pop",
        abstract: "Serve a web dashboard of the whole fleet, live, with restart, deploy, undeploy and configuration.",
        discussion: """
            The page follows the store with watches and shows every service on every machine as it changes. Every \
            action needs the namespace's credentials: on a namespace protected by `pop init --auth` the page asks for \
            its user and password; otherwise `pop ui` prints an address with a random token, and only someone who \
            can read that output gets in. It listens on 127.0.0.1 unless --listen says otherwise (docs/ui.md). \
            SIGTERM or SIGINT stops it.
            """)

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Option(
        name: .long,
        help: ArgumentHelp("The address to listen on: HOST:PORT, [IPv6]:PORT; port 0 lets the system choose.", valueName: "address"))
    var listen: String = "127.0.0.1:8686"

    func validate() throws {
        _ = try Self.parseListen(listen)
    }

    func run() async throws {
        let (host, port) = try Self.parseListen(listen)
        let environment = CommandEnvironment.variables
        let context = try await CommandContext.open(global, connections: .pool)
        do {
            let login = DashboardLogin.fitting(try await context.namespace.protection())
            var logger = Logger(label: "pop.ui")
            logger.logLevel = .warning
            let out = context.out
            let server = DashboardServer(
                namespace: context.namespace,
                configuration: .init(host: host, port: port, login: login, home: try? PopHome(environment: environment)),
                logger: logger,
                onListening: { url in
                    switch login {
                    case .token(let token):
                        out.line("pop ui: \(url)/#token=\(token)")
                        out.line("  Open this address in a browser on this machine; the token in it is shown only here.")
                    case .namespaceCredentials:
                        out.line("pop ui: \(url)/")
                        out.line("  Log in with the namespace's user and password.")
                    }
                    out.line(out.paint("  store: \(context.store.description)", .dim))
                })
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(
                    services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        } catch {
            await context.store.close()
            throw Self.explain(error, listen: listen)
        }
        await context.store.close()
    }

    /// `HOST:PORT` or `[IPv6]:PORT`.
    static func parseListen(_ text: String) throws -> (host: String, port: Int) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw ValidationError("--listen \(text): give a port, as in [::1]:8686.") }
            portText = rest.dropFirst()
        } else if let colon = text.lastIndex(of: ":"), text.filter({ $0 == ":" }).count == 1 {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        } else {
            throw ValidationError("--listen \(text) is not HOST:PORT (for example 127.0.0.1:8686).")
        }
        guard !host.isEmpty, !host.contains(where: { $0 == "/" || $0 == " " }) else {
            throw ValidationError("--listen \(text): the host is empty or not a host name or address.")
        }
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw ValidationError("--listen \(text): the port must be a number from 0 to 65535.")
        }
        return (String(host), port)
    }

    /// A socket that cannot be bound is the user's to fix: say which address, and what to do.
    private static func explain(_ error: any Error, listen: String) -> any Error {
        if error is PopError || error is DashboardStartError { return error }
        let text = "\(error)"
        if text.contains("Address already in use") || text.contains("EADDRINUSE") {
            return PopError(
                .conflict, "Cannot listen on \(listen): the address is in use.",
                hint: "Choose another port with --listen, or stop what uses it.")
        }
        if text.contains("bind") || text.contains("Cannot assign requested address") {
            return PopError(.invalidInput, "Cannot listen on \(listen): \(text).", hint: "Use an address of this machine.")
        }
        return error
    }
}
