import ArgumentParser
import Foundation
import PopState

/// `pop deploy NAME [MACHINE ...]`: places a service on machines (by default this one).
struct Deploy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deploy",
        abstract: "Place a service on machines (by default this machine).",
        discussion: """
            Deploying before a machine's agent has started is normal: the service starts there when the agent does.
            """)

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Argument(help: "The service to deploy.")
    var name: String

    @Argument(help: "Machine ids (see `pop machines`); default: this machine.")
    var machines: [String] = []

    func run() async throws {
        let service = try ServiceName(name)
        let targets = try MachineArguments.resolve(machines)
        try await CommandContext.with(global) { context in
            _ = try await context.namespace.service(service)
            let registered = Set(try await context.namespace.machines().map(\.id))
            for machine in targets where !registered.contains(machine) {
                context.warn(
                    "machine \(machine) has no running agent registered; \(service) will start there once `pop start` runs on it.")
            }
            let added = try await context.namespace.deploy(service, machines: targets)
            if context.json {
                try context.printJSON(["service": service.rawValue, "deployed": added.map(\.rawValue).joined(separator: ",")])
            }
            let already = targets.filter { !added.contains($0) }
            if !already.isEmpty {
                context.err.line("\(service) was already deployed to \(already.map(\.rawValue).joined(separator: ", ")).")
            }
            context.done("deployed \(service) to \(targets.map(\.rawValue).joined(separator: ", "))")
        }
    }
}

/// Turns machine arguments into validated ids, defaulting to this machine.
enum MachineArguments {
    static func resolve(_ arguments: [String]) throws -> [MachineID] {
        if arguments.isEmpty {
            return [try MachineIdentity.current(environment: ProcessInfo.processInfo.environment)]
        }
        var seen = Set<MachineID>()
        return try arguments.compactMap { argument in
            let id = try MachineID(argument)
            return seen.insert(id).inserted ? id : nil
        }
    }
}
