import Foundation
import PopTestExpectations
import PopTestSupport
import PopState
import TestProcesses
import Testing
import ZooKeeperTestSupport

/// `--host`, `--prefix` and `--json` work before the subcommand (as with git or kubectl) and after it, for every command.
@Suite("global options before or after the subcommand")
struct GlobalOptionsTests {
    /// Where the global options go on the command line.
    enum Position: String, CaseIterable, CustomTestStringConvertible {
        case before, after
        var testDescription: String { rawValue }
    }

    /// One command, with the check that shows the global options took effect.
    struct Case: Sendable {
        var arguments: [String]
        /// The namespace the command works in (`--prefix`); `/alt` unless the command needs its own.
        var prefix = "/alt"
        var status: Int32 = 0
        var check: @Sendable (CommandResult, Position) throws -> Void = { _, _ in }
    }

    /// Every subcommand, including the hidden `dump`. `start` and `stop` come last: the agent registers in `/alt`.
    /// A backup of an empty namespace, as `pop dump --json` writes it, in a file of its own.
    static let emptyBackup: String = {
        let path = ProcessFolders.removedAtExit(
            FileManager.default.temporaryDirectory.appendingPathComponent("pop-backup-\(UUID().uuidString).json")
        ).path
        let nodes = [("/pop", #"{"layout":1}"#), ("/pop/machines", ""), ("/pop/services", "")].map { path, data in
            ["path": path, "version": 0, "ephemeral": false, "data": data] as [String: Any]
        }
        let object: [String: Any] = ["store": "test", "root": "/pop", "nodes": nodes]
        _ = FileManager.default.createFile(atPath: path, contents: try? JSONSerialization.data(withJSONObject: object))
        return path
    }()

    static func cases(_ position: Position) -> [(String, Case)] {
        let machine = "m-\(position.rawValue)"
        return [
            ("init", Case(arguments: ["init"], prefix: "/fresh-\(position.rawValue)") { result, position in
                let object = jsonObject(result) as? [String: String]
                #expect(object?["prefix"] == "/fresh-\(position.rawValue)", "\(result)")
                #expect(object?["store"]?.hasPrefix("ZooKeeper") == true, "\(result)")
            }),
            ("add", Case(arguments: ["add", "extra-\(position.rawValue)", "--template", "kit"]) { result, position in
                let object = jsonObject(result) as? [String: String]
                #expect(object?["service"] == "extra-\(position.rawValue)", "\(result)")
            }),
            ("describe", Case(arguments: ["describe", "kit"]) { result, _ in
                #expect((jsonObject(result) as? [String: Any])?["name"] as? String == "kit", "\(result)")
            }),
            ("list", Case(arguments: ["list"]) { result, _ in
                #expect((jsonObject(result) as? [[String: String]])?.contains { $0["template"] == "kit" } == true)
            }),
            ("status", Case(arguments: ["status"]) { result, _ in
                let status = jsonObject(result) as? [String: Any]
                #expect((status?["store"] as? String)?.hasPrefix("ZooKeeper") == true, "\(result)")
                let services = status?["services"] as? [[String: Any]]
                #expect(services?.contains { $0["service"] as? String == "alt" } == true, "\(result)")
            }),
            ("machines", Case(arguments: ["machines"]) { result, _ in
                let machines = jsonObject(result) as? [[String: Any]]
                #expect(machines?.contains { $0["id"] as? String == "m-alt" } == true, "\(result)")
            }),
            ("deploy", Case(arguments: ["deploy", "alt", machine]) { result, position in
                #expect((jsonObject(result) as? [String: String])?["deployed"] == "m-\(position.rawValue)")
            }),
            ("undeploy", Case(arguments: ["undeploy", "alt", machine]) { result, position in
                #expect((jsonObject(result) as? [String: String])?["undeployed"] == "m-\(position.rawValue)")
            }),
            // A pinned service has no count to change: parsed, then refused by the namespace the options name.
            ("scale", Case(arguments: ["scale", "alt", "2"], status: 4) { result, _ in
                #expect(result.stderr.contains("'alt' is pinned"), "\(result)")
            }),
            ("drain", Case(arguments: ["drain", "m-alt"]) { result, _ in
                #expect((jsonObject(result) as? [String: String])?["drained"] == "true", "\(result)")
            }),
            ("undrain", Case(arguments: ["undrain", "m-alt"]) { result, _ in
                #expect((jsonObject(result) as? [String: String])?["drained"] == "false", "\(result)")
            }),
            ("config", Case(arguments: ["config", "alt"]) { result, _ in
                #expect((jsonObject(result) as? [String: Any])?["template"] as? String == "kit", "\(result)")
            }),
            ("history", Case(arguments: ["history", "alt"]) { result, _ in
                #expect((jsonObject(result) as? [[String: Any]])?.first?["version"] as? Int == 0, "\(result)")
            }),
            // Only version 0 so far: parsed, then refused by the namespace the options name.
            ("rollback", Case(arguments: ["rollback", "alt"], status: 3) { result, _ in
                #expect(result.stderr.contains("'alt' has no earlier version"), "\(result)")
            }),
            ("restart", Case(arguments: ["restart", "alt"]) { result, _ in
                #expect((jsonObject(result) as? [String: String])?["restarted"] == "m-alt", "\(result)")
            }),
            // No agent answers: the task request reaches the store, and the JSON summary says m-alt was not reached.
            ("run", Case(arguments: ["run", "--timeout", "0.5", "alt", "echo", "hi"], status: 1) { result, _ in
                let summary = jsonObject(result) as? [String: Any]
                #expect((summary?["unreached"] as? [String: String])?["m-alt"] != nil, "\(result)")
            }),
            ("remove", Case(arguments: ["remove", "extra-\(position.rawValue)"]) { result, position in
                #expect((jsonObject(result) as? [String: String])?["removed"] == "extra-\(position.rawValue)")
            }),
            // A good backup, refused because the namespace the options name exists (without --force).
            ("restore", Case(arguments: ["restore", Self.emptyBackup], status: 4) { result, _ in
                #expect(result.stderr.contains("/alt already exists in the ZooKeeper"), "\(result)")
            }),
            ("dump", Case(arguments: ["dump"]) { result, _ in
                let dump = jsonObject(result) as? [String: Any]
                #expect((dump?["store"] as? String)?.hasPrefix("ZooKeeper") == true, "\(result)")
                let paths = (dump?["nodes"] as? [[String: Any]])?.compactMap { $0["path"] as? String } ?? []
                #expect(paths.contains("/alt/services/alt"), "\(result)")
            }),
            // Logs and events stay on the machine that wrote them: the command is parsed, finds where the service
            // runs in the namespace the options name, and says that machine's agent cannot be read.
            ("logs", Case(arguments: ["logs", "alt"], status: 5) { result, _ in
                #expect(result.stderr.contains("m-alt: its agent is not running"), "\(result)")
            }),
            ("events", Case(arguments: ["events", "alt"], status: 5) { result, _ in
                #expect(result.stderr.contains("m-alt: its agent is not running"), "\(result)")
            }),
            // The dashboard serves until stopped: in a namespace that does not exist it stops at once, naming the store.
            ("ui", Case(arguments: ["ui", "--listen", "127.0.0.1:0"], prefix: "/missing-\(position.rawValue)", status: 8) {
                result, position in
                #expect(result.stderr.contains("/missing-\(position.rawValue) does not exist in the ZooKeeper"), "\(result)")
            }),
            // Parsed, then refused for its own option's value.
            ("fg", Case(arguments: ["fg", "--log-level", "loud"], status: 2) { result, _ in
                #expect(result.stderr.contains("Unknown log level 'loud'"), "\(result)")
            }),
            ("start", Case(arguments: ["start"]) { result, _ in
                #expect((jsonObject(result) as? [String: Any])?["pid"] != nil, "\(result)")
            }),
            ("stop", Case(arguments: ["stop"]) { result, _ in
                #expect(result.stdout.contains("stopped"), "\(result)")
            }),
        ]
    }

    @Test("every command takes --host, --prefix and --json before or after its name", arguments: Position.allCases)
    func everyCommand(position: Position) async throws {
        let host = try await CLIFixture.chroot("globals")
        let pop = try PopRunner(environment: [
            "POP_PLUGIN_PATH": try TestPlugin.folder.path, "POP_MACHINE_ID": "m-local-\(position.rawValue)",
        ])
        try await pop.withAgentStoppedAfterwards {
            // Nothing in the environment names the store: only the options choose it.
            try await pop.ok("init", "--host", host, "--prefix", "/alt")
            try await pop.ok("add", "alt", "--template", "kit", "--host", host, "--prefix", "/alt")
            try await pop.ok("deploy", "alt", "m-alt", "--host", host, "--prefix", "/alt")
            let names = try await Self.commandNames(pop)
            #expect(Set(Self.cases(position).map(\.0)) == names, "every command is tried")
            for (name, command) in Self.cases(position) {
                if name == "machines" {
                    // A registered machine, as its agent would publish it.
                    try await pop.withNamespace(host: host, prefix: "/alt") { namespace in
                        try await CLIFixture.register("m-alt", in: namespace)
                        try await self.run(name, command, position, host: host, pop: pop)
                    }
                } else {
                    try await run(name, command, position, host: host, pop: pop)
                }
            }
        }
    }

    func run(_ name: String, _ command: Case, _ position: Position, host: String, pop: PopRunner) async throws {
        let global = ["--host", host, "--prefix", command.prefix, "--json"]
        let arguments =
            position == .before
            ? global + command.arguments : [command.arguments[0]] + global + command.arguments.dropFirst()
        let result = try await pop.run(arguments)
        #expect(result.status == command.status, "\(name):\n\(result)")
        #expect(!result.stderr.contains("Unknown option"), "\(name):\n\(result)")
        try command.check(result, position)
    }

    /// Every subcommand `pop --help` lists, and the hidden `dump`.
    static func commandNames(_ pop: PopRunner) async throws -> Set<String> {
        let help = try await pop.ok("--help").stdout
        let section = try #require(help.range(of: "SUBCOMMANDS:\n")).upperBound
        let names = help[section...].split(separator: "\n", omittingEmptySubsequences: false).prefix { $0.hasPrefix("  ") }
            .filter { !$0.hasPrefix("   ") }.compactMap { $0.split(separator: " ").first.map(String.init) }
        return Set(names + ["dump"])
    }

    /// A command line that starts with a subcommand's name is parsed by that subcommand first (`Pop.parse`); what it
    /// refuses must still get the root's answer: the usage line and hint under `pop`, help, and the version.
    @Test("each subcommand's usage error, help and version are the root's")
    func subcommandsParsedAloneAnswerAsTheRoot() async throws {
        try await PopRunner.with { pop in
            let version = try await pop.ok("--version").stdout
            for name in try await Self.commandNames(pop).sorted() {
                let refused = try await pop.run([name, "--no-such-option"])
                #expect(refused.status == PopExitCode.usage.rawValue, "\(name):\n\(refused)")
                // A command with a required argument reports the missing argument first.
                #expect(
                    refused.stderr.contains("Unknown option '--no-such-option'")
                        || refused.stderr.contains("Missing expected argument"), "\(name):\n\(refused)")
                #expect(refused.stderr.contains("Usage: pop \(name)"), "\(name):\n\(refused)")
                #expect(refused.stderr.contains("See 'pop \(name) --help'"), "\(name):\n\(refused)")

                let help = try await pop.run([name, "--help"])
                #expect(help.status == 0, "\(name):\n\(help)")
                #expect(help.stdout.contains("USAGE: pop \(name)"), "\(name):\n\(help)")

                let asked = try await pop.run([name, "--version"])
                #expect(asked.status == 0 && asked.stdout == version, "\(name):\n\(asked)")
            }
            // `help` is the root's own subcommand.
            let help = try await pop.run(["help", "status"])
            #expect(help.status == 0 && help.stdout.contains("USAGE: pop status"), "\(help)")
        }
    }

    @Test("pop --help lists the global options and the exit codes")
    func rootHelp() async throws {
        do {
            try await PopRunner.with { pop in
                let help = try await pop.ok("--help")
                #expect(help.stdout.contains("GLOBAL OPTIONS (before or after the subcommand):"), "\(help)")
                for option in ["--host <hosts>", "--prefix <path>", "--json"] {
                    #expect(help.stdout.contains("\n  \(option)"), "\(option) is not listed:\n\(help)")
                }
                #expect(help.stdout.contains("USAGE: pop [--host <hosts>] [--prefix <path>] [--json] <subcommand>"))
                for code in PopExitCode.allCases {
                    #expect(help.stdout.contains("\n  \(code.rawValue)  \(code)\n"), "exit code \(code.rawValue) is not listed")
                }
            }
        }
    }

    /// Standard output as JSON, nil when it is not JSON.
    static func jsonObject(_ result: CommandResult) -> Any? {
        try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
    }
}
