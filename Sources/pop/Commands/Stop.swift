import ArgumentParser
import Foundation
import PopAgent
import PopState

/// `pop stop`: stops this machine's agent; its services keep running and the next agent adopts them.
struct Stop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        _superCommandName: "pop",
        abstract: "Stop this machine's agent. Its services keep running; the next agent adopts them.")

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Option(name: .long, help: ArgumentHelp("Seconds to wait for the agent to exit.", valueName: "seconds"))
    var timeout: Double = 30

    func run() async throws {
        let environment = CommandEnvironment.variables
        let home = try PopHome(environment: environment)
        let machine = try MachineIdentity.current(environment: environment)
        let outcome = try AgentDaemon.stop(
            pidFile: home.agentPIDFile(machine), timeout: .milliseconds(Int(timeout * 1000)))
        let out = Terminal.standardOutput
        switch outcome {
        case .stopped(let pid):
            out.line(out.paint("✓", .green) + " agent for machine \(machine) stopped (pid \(pid)); its services keep running")
        case .notRunning:
            out.line("No agent is running for machine \(machine).")
        }
    }
}
