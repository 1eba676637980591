import ArgumentParser
import Foundation
import PopState

/// `pop init [--force] [--auth USER[:PASSWORD]] [--save-credentials]`: creates pop's namespace in the store.
struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        _superCommandName: "pop",
        abstract: "Create pop's namespace in the store.",
        discussion: """
            Refuses when a namespace exists already, unless --force, which resets it (every service is removed).

            With --auth (ZooKeeper only) every node of the namespace gets a digest ACL: only that user may read or \
            change it. --auth USER alone generates a password and prints it once. Afterwards the CLI and the agents \
            authenticate with POP_AUTH=user:password, or with a credentials file of mode 600 (POP_AUTH_FILE, else \
            ~/.config/pop/credentials). Prefer --auth USER or POP_AUTH to a password on the command line, which \
            other users can see in the process list while pop runs. See docs/security.md.
            """)

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Flag(name: .long, help: "Reset an existing namespace: every service, placement and task is removed.")
    var force = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Protect the namespace with ZooKeeper digest ACLs for this user; without :PASSWORD, the password is POP_AUTH's when it names the same user, else generated and printed once.",
            valueName: "user[:password]"))
    var auth: String?

    @Flag(
        name: .long,
        help: "With --auth, also write the credentials to a new file of mode 600 (POP_AUTH_FILE, else ~/.config/pop/credentials).")
    var saveCredentials = false

    func validate() throws {
        if saveCredentials && auth == nil {
            throw ValidationError("--save-credentials needs --auth.")
        }
    }

    func run() async throws {
        let environment = CommandEnvironment.variables
        var credentials: StoreCredentials?
        var generated = false
        if let auth {
            (credentials, generated) = try Self.credentials(auth, environment: environment)
            if case .embedded = try CommandContext.storeConfiguration(global, credentials: credentials).kind {
                throw PopError(
                    .invalidInput,
                    "--auth protects a ZooKeeper namespace; the embedded store is protected by its files' modes (0700 folder, 0600 files).",
                    hint: "Give --host (or POP_HOST) to use ZooKeeper, or leave out --auth.")
            }
        }
        // Check where the credentials go before changing anything in the store.
        let saveTo = saveCredentials ? try StoreCredentials.saveLocation(environment: environment) : nil
        if let saveTo, saveTo.exists {
            throw PopError(
                .conflict, "The credentials file \(saveTo.path) exists already; pop does not overwrite it.",
                hint: "Remove it first, set POP_AUTH_FILE to another path, or leave out --save-credentials.",
                path: saveTo.path)
        }
        try await CommandContext.with(global, requireNamespace: false, credentials: credentials) { context in
            try await context.namespace.initialize(force: force)
            if let saveTo, let credentials { try saveTo.write(credentials) }
            if context.json {
                var fields = ["prefix": context.namespace.prefix, "store": context.store.description]
                if let credentials {
                    fields["user"] = credentials.user
                    if generated { fields["credentials"] = credentials.pair }
                    if let saveTo { fields["credentialsFile"] = saveTo.path }
                }
                try context.printJSON(fields)
            }
            context.done("initialized namespace \(context.namespace.prefix)\(force ? " (reset)" : "")")
            guard !context.json, let credentials else { return }
            context.out.line("  protected: only digest user '\(credentials.user)' may read or change it")
            if generated {
                context.out.line("  credentials (shown only now): \(credentials.pair)")
            }
            if let saveTo {
                context.out.line("  saved to \(saveTo.path) (mode 600); pop and its agents read it from there")
            } else if generated {
                context.out.line("  give them to pop and its agents as POP_AUTH, or in a credentials file of mode 600")
            }
        }
    }

    /// The credentials `--auth` names: `user:password`, or `user` with POP_AUTH's password or a generated one.
    static func credentials(
        _ auth: String, environment: [String: String]
    ) throws -> (StoreCredentials, generated: Bool) {
        if auth.contains(":") {
            return (try StoreCredentials(parsing: auth, source: "--auth"), false)
        }
        try StoreCredentials.validate(user: auth, source: "--auth")
        if let pair = environment["POP_AUTH"], !pair.isEmpty {
            let fromEnvironment = try StoreCredentials(parsing: pair, source: "POP_AUTH")
            if fromEnvironment.user == auth { return (fromEnvironment, false) }
        }
        return (try StoreCredentials.generate(user: auth, source: "--auth"), true)
    }
}
