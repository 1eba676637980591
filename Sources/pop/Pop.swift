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
        discussion: """
            Without --host (or POP_HOST) pop uses the embedded store under POP_HOME, for a single machine.
            With --host it uses a ZooKeeper ensemble, for many machines.
            Exit codes: 0 success, 1 failure, 2 usage or invalid input, 3 not found, 4 conflict,
            5 store unreachable, 6 store holds unreadable or incompatible data, 7 permission denied,
            8 namespace not initialized (run `pop init`).
            """,
        version: Pop.version,
        subcommands: [
            Init.self, Add.self, Describe.self, List.self, Start.self, Foreground.self, Stop.self,
            Deploy.self, Undeploy.self, Remove.self, Config.self, Restart.self, Status.self, Machines.self,
            Logs.self, Run.self, Dump.self, Restore.self,
        ]
    )

    /// Parses and runs a command, mapping every failure to a clear message and a documented exit code.
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        var command: any ParsableCommand
        do {
            command = try await asyncParseAsRoot(arguments)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                exit(withError: error)
            }
            let message = fullMessage(for: error)
            Terminal.standardError.write(message.hasSuffix("\n") ? message : message + "\n")
            Foundation.exit(ExitStatus.usage.rawValue)
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
            Foundation.exit(ExitStatus(error.code).rawValue)
        } catch let error as ExitCode {
            Foundation.exit(error.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success || error is CleanExit {
                exit(withError: error)
            }
            Terminal.standardError.write("pop: \(fullMessage(for: error))\n")
            Foundation.exit(code == .validationFailure ? ExitStatus.usage.rawValue : ExitStatus.failure.rawValue)
        }
    }
}
