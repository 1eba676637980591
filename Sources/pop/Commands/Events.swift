import ArgumentParser
import Foundation
import PopFleetClient
import PopState

/// `pop events [NAME]`: lifecycle events of a service's instances, or of every instance and agent, in time order.
struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        _superCommandName: "pop",
        abstract: "Print lifecycle events (starts, exits, restarts and why, health, tasks) from every machine, in time order.",
        discussion: """
            Each agent keeps a bounded journal of events per instance and one of its own (started, stopped), which \
            survive agent restarts. Without NAME, every instance's and every agent's events are shown. -f follows, \
            as `pop logs -f` does; --json prints one object per line.
            """)

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Argument(help: "Only this service's instances.")
    var name: String?

    @Option(name: .long, help: "Only this machine.")
    var machine: String?

    @Option(name: [.customShort("n"), .long], help: "How many events to print from the end of each journal.")
    var lines: Int = 50

    @Option(name: .long, help: ArgumentHelp("Events since: a duration (10m) or a time.", valueName: "when"))
    var since: String?

    @Flag(name: [.customShort("t"), .long], help: "Print each event's time.")
    var timestamps = false

    @Flag(name: .shortAndLong, help: "Keep printing new events as they happen.")
    var follow = false

    func validate() throws {
        if lines < 0 { throw ValidationError("-n must not be negative.") }
    }

    func run() async throws {
        let service = try name.map { try ServiceName($0) }
        let machineID = try machine.map { try MachineID($0) }
        let start: JournalRequest.Start = try since.map { .since(try JournalTime.parseSince($0)) } ?? .tail(lines)
        let request = JournalRequest(service: service, streams: [], events: true, start: start, follow: follow)
        try await CommandContext.with(global) { context in
            var machines: [String]
            if let service {
                _ = try await context.namespace.service(service)
                machines = try await context.namespace.placements(service).keys.map(\.rawValue)
            } else {
                machines = try await context.namespace.machines().map(\.id.rawValue)
                if context.store.isMachineLocal {
                    let home = try PopHome(environment: CommandEnvironment.variables)
                    let folders = (try? FileManager.default.contentsOfDirectory(atPath: home.path + "/machines")) ?? []
                    machines = Array(Set(machines + folders.filter { (try? MachineID($0)) != nil })).sorted()
                }
            }
            if let machineID {
                guard machines.contains(machineID.rawValue) else {
                    throw PopError(
                        .notFound,
                        service.map { "The service '\($0)' is not deployed on machine \(machineID)." }
                            ?? "No agent of machine \(machineID) is registered.",
                        hint: "`pop status` shows where services run; `pop machines`, which agents are registered.")
                }
                machines = [machineID.rawValue]
            }
            try await FleetLogs.print(
                context: context, options: FleetReader.Options(service: service, machine: machineID, request: request),
                machines: machines, timestamps: timestamps)
        }
    }
}
