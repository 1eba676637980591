import ArgumentParser
import Foundation
import PopAgent
import PopFleetClient
import PopState

/// `pop logs NAME`: the output of a service's instances on every machine, merged in time order.
struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        _superCommandName: "pop",
        abstract: "Print a service's output from every machine that runs it, in time order.",
        discussion: """
            Each line is prefixed with its machine and stream (out, err, setup). Lines come from each machine's agent \
            (on the embedded store, from this host's files); nothing goes through the store.

            -n counts lines per instance. --since takes a duration (30s, 10m, 2h, 1d) or a time \
            (2025-01-31T12:34:56Z, '2025-01-31 12:34:56' in local time). --grep is evaluated by the agents.

            With -f, machines that start running the service join, machines that stop leave, and a machine that \
            cannot be reached gets a marker line, and another when it is back; its lines then resume where they \
            stopped, none lost and none twice. --json prints one object per line: time, machine, service, stream, \
            seq, line.
            """)

    /// Which log file.
    enum Stream: String, ExpressibleByArgument, CaseIterable {
        case stdout, stderr, setup, all
    }

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Argument(help: "The service.")
    var name: String

    @Option(name: .long, help: "Only the instance on this machine.")
    var machine: String?

    @Option(name: .long, help: "Which log: stdout, stderr, setup or all (stdout and stderr).")
    var stream: Stream = .all

    @Flag(name: .customLong("setup"), help: "Show the setup log (pip, setup steps); same as --stream setup.")
    var setup = false

    @Option(name: [.customShort("n"), .long], help: "How many lines to print from the end, per instance.")
    var lines: Int = 50

    @Option(name: .long, help: ArgumentHelp("Lines written since: a duration (10m) or a time.", valueName: "when"))
    var since: String?

    @Option(name: .long, help: ArgumentHelp("Only lines matching this regular expression.", valueName: "regex"))
    var grep: String?

    @Flag(name: .long, help: "Interleave the instances' lifecycle events (starts, exits, restarts).")
    var events = false

    @Flag(name: [.customShort("t"), .long], help: "Print each line's time.")
    var timestamps = false

    @Flag(name: .shortAndLong, help: "Keep printing new output as it is written.")
    var follow = false

    func validate() throws {
        if lines < 0 { throw ValidationError("-n must not be negative.") }
    }

    func run() async throws {
        let service = try ServiceName(name)
        let machineID = try machine.map { try MachineID($0) }
        let start: JournalRequest.Start = try since.map { .since(try JournalTime.parseSince($0)) } ?? .tail(lines)
        if let grep { _ = try JournalFeed.compile(grep) }
        let streams: [LogStreamKind] =
            setup ? [.setup] : stream == .all ? [.stdout, .stderr] : [LogStreamKind(rawValue: stream.rawValue)!]
        let request = JournalRequest(
            service: service, streams: streams, events: events, start: start, follow: follow, grep: grep)
        try await CommandContext.with(global) { context in
            _ = try await context.namespace.service(service)
            let placements = try await context.namespace.placements(service)
            if let machineID, placements[machineID] == nil {
                throw PopError(
                    .notFound, "The service '\(service)' is not deployed on machine \(machineID).",
                    hint: placements.isEmpty
                        ? "It is deployed nowhere: `pop deploy \(service) MACHINE`."
                        : "It is deployed on: \(placements.keys.map(\.rawValue).sorted().joined(separator: ", ")).")
            }
            if placements.isEmpty && !follow {
                throw PopError(
                    .notFound, "The service '\(service)' is not deployed on any machine, so it has no logs to show.",
                    hint: "`pop deploy \(service)` places it; `pop logs -f \(service)` waits for its machines.")
            }
            try await FleetLogs.print(
                context: context, options: FleetReader.Options(service: service, machine: machineID, request: request),
                machines: placements.keys.map(\.rawValue), timestamps: timestamps)
        }
    }
}

/// Runs a ``FleetReader`` for `pop logs` and `pop events` and prints what it hands on.
enum FleetLogs {
    static func print(
        context: CommandContext, options: FleetReader.Options, machines: [String], timestamps: Bool
    ) async throws {
        let access: FleetReader.Access
        if context.store.isMachineLocal {
            access = .local(try PopHome(environment: CommandEnvironment.variables))
        } else {
            access = .remote(EndpointClient(key: try await context.namespace.endpointKey()))
        }
        let reader = FleetReader(namespace: context.namespace, access: access, options: options)
        var printer = FleetPrinter(
            style: FleetPrinter.Style(
                json: context.json, color: context.out.colored, timestamps: timestamps, service: options.service?.rawValue),
            machines: machines)
        let unreadable: [String]
        do {
            unreadable = try await reader.run { outputs in
                // A reader that went away (a closed pipe) ends the command.
                guard printer.print(outputs), printer.flush() else { throw CancellationError() }
            }
        } catch is CancellationError {
            return
        }
        _ = printer.flush()
        guard unreadable.isEmpty else {
            throw PopError(
                .storeUnreachable,
                "Some machines' journals could not be read: \(unreadable.joined(separator: "; ")).",
                hint: "`pop machines` shows which agents run; their journals stay on their machines until they are back.")
        }
    }
}
