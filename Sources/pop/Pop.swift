import ArgumentParser
import Foundation

import PopState

/// The `pop` command: set the desired state once, and the machine agents make it so.
@main
struct Pop: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "pop",
        abstract: "Let pop run your services: desired state in ZooKeeper or an embedded store, kept by an agent on every machine.",
        usage: "pop \(HelpText.synopsis(of: GlobalOptions.self)) <subcommand>",
        discussion: """
            Without --host (or POP_HOST) pop uses the embedded store under POP_HOME, for a single machine. With \
            --host it uses a ZooKeeper ensemble, for many machines.

            GLOBAL OPTIONS (before or after the subcommand):
            \(HelpText.optionLines(of: GlobalOptions.self))

            EXIT CODES:
            \(HelpText.exitCodes)
            """,
        version: Pop.version,
        subcommands: [
            Init.self, Add.self, Describe.self, List.self, Start.self, Foreground.self, Stop.self,
            Deploy.self, Scale.self, Undeploy.self, Remove.self, Config.self, History.self, Rollback.self, Restart.self, Status.self, Machines.self,
            Drain.self, Undrain.self,
            Logs.self, Events.self, Run.self, UI.self, Dump.self, Restore.self,
        ]
    )

    /// Parses and runs a command, mapping every failure to a clear message and a documented exit code.
    static func main() async {
        // Global options may come before the command's name, as with git or kubectl.
        let arguments = GlobalOptions.placedAfterCommand(
            Array(CommandLine.arguments.dropFirst()), commands: configuration.subcommands)
        var command: any ParsableCommand
        do {
            command = try await asyncParseAsRoot(arguments)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                showHelpOrVersion(error)
            }
            let message = fullMessage(for: error)
            Terminal.standardError.write(message.hasSuffix("\n") ? message : message + "\n")
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
            Terminal.standardError.write("pop: \(fullMessage(for: error))\n")
            Foundation.exit(code == .validationFailure ? PopExitCode.usage.rawValue : PopExitCode.failure.rawValue)
        }
    }

    /// Prints the help or version a successful parse asked for, with the usage line wrapped like the rest, and exits 0.
    static func showHelpOrVersion(_ error: any Error) -> Never {
        Terminal.standardOutput.line(HelpText.wrappingUsage(fullMessage(for: error)))
        Foundation.exit(PopExitCode.success.rawValue)
    }
}
