import AsyncAlgorithms
import Foundation
import Hummingbird
import NIOCore
import PopAgent
import PopFleetClient
import PopState

/// The agents' journals as the dashboard shows them: an instance's log and a service's lifecycle events, read with
/// the reader of `pop logs` and `pop events` (``FleetReader``) and sent to the page as server-sent events.
///
/// On ZooKeeper every machine is read through its agent's endpoint, each request signed with the namespace's endpoint
/// key, which the dashboard reads with its own credentials and never sends to the page; on the embedded store, from
/// this host's pop home. A stream reads only while its page is connected: when the connection closes, the reader
/// is cancelled, and with it every request to the agents (whose inotify watches end with them).
struct AgentJournals: Sendable {
    let namespace: PopNamespace
    let home: PopHome?
    /// While following several machines, how often an idle agent says how far it is complete (an event waits at
    /// most this long for the other machines before it is sent).
    static let heartbeatMilliseconds = 500

    /// How the journals are reached.
    func access() async throws -> FleetReader.Access {
        if namespace.store.isMachineLocal {
            guard let home else {
                throw DashboardError(.notFound, "This dashboard has no pop home to read the journals from.")
            }
            return .local(home)
        }
        do {
            return .remote(EndpointClient(key: try await namespace.endpointKey()))
        } catch let error as PopError {
            throw DashboardError(error)
        }
    }

    /// The last 200 lines of `service`'s instance on `machine`, then its lines as they are written.
    func log(_ service: ServiceName, on machine: MachineID, channel: any Channel) async throws -> Response {
        let placements: [MachineID: Placement]
        do {
            _ = try await namespace.service(service)
            placements = try await namespace.placements(service)
        } catch let error as PopError {
            throw DashboardError(error)
        }
        guard placements[machine] != nil else {
            throw DashboardError(
                .notFound, "The service '\(service)' is not deployed on machine \(machine).",
                hint: "The grid shows where it runs.")
        }
        let request = JournalRequest(service: service, streams: [.stdout, .stderr], events: false, start: .tail(200), follow: true)
        return try await stream(FleetReader.Options(service: service, machine: machine, request: request), channel: channel)
    }

    /// The last 50 lifecycle events of `service`'s instances on every machine it runs on, merged in time order, then
    /// each as it happens.
    func events(_ service: ServiceName, channel: any Channel) async throws -> Response {
        do {
            _ = try await namespace.service(service)
        } catch let error as PopError {
            throw DashboardError(error)
        }
        let request = JournalRequest(service: service, streams: [], events: true, start: .tail(50), follow: true)
        return try await stream(FleetReader.Options(service: service, request: request), channel: channel)
    }

    /// What `options` reads, as `journal` events (each an array of `pop logs --json` objects, ``JournalOutput``), and
    /// a `problem` event if the reader fails; until the page goes away or the server stops.
    private func stream(_ options: FleetReader.Options, channel: any Channel) async throws -> Response {
        var options = options
        options.heartbeatMilliseconds = Self.heartbeatMilliseconds
        let reader = FleetReader(namespace: namespace, access: try await access(), options: options)
        let service = options.service?.rawValue
        let pieces = AsyncChannel<String>()
        // The connection's end finishes the pieces: the body stops writing and cancels the reader.
        ConnectionClosing.watch(channel) { pieces.finish() }
        return Response(
            status: .ok, headers: DashboardRoutes.eventStreamHeaders,
            body: ResponseBody { writer in
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        do {
                            try await reader.run { outputs in await pieces.send(Self.event(outputs, service: service)) }
                        } catch is CancellationError {
                        } catch {
                            let message = (error as? PopError)?.message ?? "\(error)"
                            await pieces.send(ServerSentEvent.format(event: "problem", json: ["error": message]))
                        }
                        pieces.finish()
                    }
                    defer { group.cancelAll() }
                    do {
                        for await piece in pieces.cancelOnGracefulShutdown() {
                            try await writer.write(ByteBuffer(string: piece))
                        }
                    } catch {
                        // The connection failed: the reader is cancelled below.
                    }
                }
                try await writer.finish(nil)
            })
    }

    /// One `journal` event of the merged stream's outputs.
    static func event(_ outputs: [FleetMerge.Output], service: String?) -> String {
        let objects = outputs.map { output -> JournalOutput in
            switch output {
            case .item(let machine, .line(let line)):
                return JournalOutput(line: line, machine: machine, service: service)
            case .item(let machine, .event(let event)):
                return JournalOutput(event: event, machine: machine)
            case .marker(let machine, let marker):
                let (name, detail) = FleetPrinter.describe(marker)
                return JournalOutput(marker: name, detail: detail, machine: machine, time: FleetReader.now())
            }
        }
        return ServerSentEvent.format(event: "journal", json: objects)
    }
}
