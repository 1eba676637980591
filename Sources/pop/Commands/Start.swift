import ArgumentParser
import Foundation
import PopAgent
import PopState

/// `pop start`: starts this machine's agent in the background and returns once it has registered.
struct Start: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        _superCommandName: "pop",
        abstract: "Start this machine's agent in the background; returns once it has registered the machine.")

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Option(name: .long, help: "Seconds to wait for the agent to register.")
    var timeout: Double = 30

    @Option(name: .customLong("label"), help: ArgumentHelp("Label this machine when the agent starts (repeatable).", valueName: "key=value"))
    var labels: [String] = []

    @Option(
        name: .customLong("session-timeout"),
        help: ArgumentHelp("The agent's session timeout in seconds (see `pop fg --help`).", valueName: "seconds"))
    var sessionTimeout: Int = SessionTimeout.standard

    func validate() throws {
        try SessionTimeout.validate(sessionTimeout)
    }

    func run() async throws {
        _ = try MachineLabel.parse(labels)
        let environment = CommandEnvironment.variables
        let home = try PopHome(environment: environment)
        let machine = try MachineIdentity.current(environment: environment)
        let storeConfiguration = try StoreConfiguration(
            host: global.host, prefix: global.prefix, environment: environment, home: home)
        // The store is checked as the agent will first read it, so that a store pop cannot use is refused here with
        // its documented exit code (5 unreachable, 6 damaged or of another layout, 7 permission denied, 8 not
        // initialized) instead of as an agent that failed to start (1).
        try await CommandContext.with(global) { _ in }
        try home.ensurePrivateFolder(home.machineFolder(machine))
        var arguments = ["fg", "--prefix", global.prefix]
        if let host = global.host { arguments += ["--host", host] }
        for label in labels { arguments += ["--label", label] }
        if sessionTimeout != SessionTimeout.standard { arguments += ["--session-timeout", String(sessionTimeout)] }
        let logFile = AgentDaemon.agentLogFile(home: home, machine: machine)
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let outcome = try AgentDaemon.start(
            executable: executable, arguments: arguments, environment: environment,
            pidFile: home.agentPIDFile(machine), logFile: logFile, timeout: .milliseconds(Int(timeout * 1000)))
        let out = Terminal.standardOutput
        switch outcome {
        case .ready(let pid):
            if global.json {
                out.line(#"{"machine":"\#(machine)","pid":\#(pid),"log":"\#(logFile)"}"#)
            } else {
                out.line(out.paint("✓", .green) + " agent for machine \(machine) started (pid \(pid)); log: \(logFile)")
                out.line(out.paint("  store: \(storeConfiguration)", .dim))
            }
        case .alreadyRunning(let pid):
            throw PopError(
                .conflict, "The agent for machine \(machine) is already running (pid \(pid)).",
                hint: "`pop stop` stops it; `pop status` shows what it runs.")
        }
    }
}
