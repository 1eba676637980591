import ArgumentParser
import Foundation
import Synchronization

import PopAgent
import PopState

/// The `pop` command: set the desired state once, and the machine agents make it so.
@main
struct Pop: AsyncParsableCommand {
    static let version = "0.1.0"

    /// The configuration the parser sees: the one with pop's whole help once a help or usage message is to be shown.
    ///
    /// That help lays out the global options' own help, which costs the argument parser as much again as parsing a
    /// command; a command that shows no help does not pay for it.
    static var configuration: CommandConfiguration {
        showsHelp.load(ordering: .relaxed) ? helpConfiguration : commandConfiguration
    }

    private static let showsHelp = Atomic<Bool>(false)

    /// The configuration for parsing a command, without the help text.
    ///
    /// The parser tries every command line a second and a third time as `--generate-completion-script` requests
    /// unless the root has a super-command name, which only changes help output; that configuration is used only when
    /// the arguments hold no such request (`main()`), and help is shown with ``helpConfiguration``.
    private static let commandConfiguration = {
        var configuration = makeConfiguration(usage: nil, discussion: "")
        configuration._superCommandName = "pop"
        return configuration
    }()

    private static let helpConfiguration = makeConfiguration(
        usage: "pop \(HelpText.synopsis(of: GlobalOptions.self)) <subcommand>",
        discussion: """
            Without --host (or POP_HOST) pop uses the embedded store under POP_HOME, for a single machine. With \
            --host it uses a ZooKeeper ensemble, for many machines.

            GLOBAL OPTIONS (before or after the subcommand):
            \(HelpText.optionLines(of: GlobalOptions.self))

            EXIT CODES:
            \(HelpText.exitCodes)
            """)

    private static func makeConfiguration(usage: String?, discussion: String) -> CommandConfiguration {
        CommandConfiguration(
            commandName: "pop",
            abstract: "Let pop run your services: desired state in ZooKeeper or an embedded store, kept by an agent on every machine.",
            usage: usage,
            discussion: discussion,
            version: Pop.version,
            subcommands: [
                Init.self, Add.self, Describe.self, List.self, Start.self, Foreground.self, Stop.self,
                Deploy.self, Scale.self, Undeploy.self, Remove.self, Config.self, History.self, Rollback.self, Restart.self,
                Status.self, Machines.self, Drain.self, Undrain.self,
                Logs.self, Events.self, Run.self, UI.self, Dump.self, Restore.self,
            ]
        )
    }

    /// The message the parser has for `error` (a help screen, a version, or a usage error), laid out with pop's help.
    static func message(for error: any Error) -> String {
        showsHelp.store(true, ordering: .relaxed)
        return fullMessage(for: error)
    }

    /// Parses and runs a command, mapping every failure to a clear message and a documented exit code.
    static func main() async {
        // Global options may come before the command's name, as with git or kubectl.
        if CommandLine.arguments.contains(where: { $0.hasPrefix("--generate-completion-script") }) {
            showsHelp.store(true, ordering: .relaxed)
        }
        let arguments = GlobalOptions.placedAfterCommand(
            Array(CommandLine.arguments.dropFirst()), commands: configuration.subcommands)
        // The agent keeps the C allocator to two arenas from its start, before another thread has taken one of its
        // own, and SwiftNIO to one event-loop thread (``MemoryRelease/prepareAgentProcess()``). A short command does
        // not: its threads allocate at once, and contending for two arenas made `pop status` slower
        // (docs/benchmarks.md).
        if arguments.first == Foreground._commandName {
            MemoryRelease.prepareAgentProcess()
        }
        var command: any ParsableCommand
        do {
            command = try await parse(arguments)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                showHelpOrVersion(error)
            }
            let text = message(for: error)
            Terminal.standardError.write(text.hasSuffix("\n") ? text : text + "\n")
            Foundation.exit(PopExitCode.usage.rawValue)
        }
        // Commands log warnings and errors only; the agent (`pop fg`) logs at the level it is given.
        CommandLogging.bootstrap(level: (command as? Foreground)?.level)
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as PopError {
            Terminal.standardError.writeError(error)
            Foundation.exit(PopExitCode(error.code).rawValue)
        } catch let error as ExitCode {
            Foundation.exit(error.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success || error is CleanExit {
                showHelpOrVersion(error)
            }
            Terminal.standardError.write("pop: \(message(for: error))\n")
            Foundation.exit(code == .validationFailure ? PopExitCode.usage.rawValue : PopExitCode.failure.rawValue)
        }
    }

    /// The command `arguments` ask for, as the parser gives it from the root.
    ///
    /// The root takes no options of its own, so a command line that starts with a subcommand's name and that the
    /// subcommand parses on its own gives the command the root would give. That parse comes first: the root's pass
    /// looks at every argument and builds the named subcommand's argument set twice more to check for pass-through
    /// arguments (docs/benchmarks.md). Each subcommand's configuration names `pop` as its
    /// super-command, as the root's does, so that parsed alone it is not tried again as a completion-script request
    /// either (the parser uses that name only for the root of a parse). Anything the subcommand alone refuses (help, a
    /// version request, a usage error) is parsed from the root, so that its message is the root's.
    static func parse(_ arguments: [String]) async throws -> any ParsableCommand {
        if let name = arguments.first,
            let subcommand = commandConfiguration.subcommands.first(where: { $0._commandName == name }),
            let command = try? subcommand.parseAsRoot(Array(arguments.dropFirst()))
        {
            return command
        }
        return try await asyncParseAsRoot(arguments)
    }

    /// Prints the help or version a successful parse asked for, with the usage line wrapped like the rest, and exits 0.
    static func showHelpOrVersion(_ error: any Error) -> Never {
        Terminal.standardOutput.line(HelpText.wrappingUsage(message(for: error)))
        Foundation.exit(PopExitCode.success.rawValue)
    }
}
