import Foundation

/// What the page is sent when the fleet changes: the whole model, or only the rows and columns that changed.
///
/// A client that has a model gets the difference to the newest one; a burst of changes the client had no time to
/// receive is folded into one update, since only the client's last model and the newest one are compared.
public enum FleetUpdate: Hashable, Sendable {
    /// The whole model: the first update of a client, and whenever machines or services were added or removed (the
    /// grid's shape changed).
    case full(FleetModel)
    /// The services and machines whose content changed; the grid keeps its shape.
    case rows(services: [FleetModel.Service], machines: [FleetModel.Machine], problems: [String])

    /// The update that brings a client from `previous` (nil: it has nothing yet) to `next`; nil when nothing changed.
    public static func between(_ previous: FleetModel?, _ next: FleetModel) -> FleetUpdate? {
        guard let previous else { return .full(next) }
        guard previous != next else { return nil }
        guard previous.store == next.store, previous.machines.map(\.id) == next.machines.map(\.id),
            previous.services.map(\.name) == next.services.map(\.name),
            zip(previous.services, next.services).allSatisfy({ $0.instances.map(\.machine) == $1.instances.map(\.machine) })
        else { return .full(next) }
        let services = zip(previous.services, next.services).filter { $0 != $1 }.map(\.1)
        let machines = zip(previous.machines, next.machines).filter { $0 != $1 }.map(\.1)
        return .rows(services: services, machines: machines, problems: next.problems)
    }

    /// The server-sent event that carries this update: `event: fleet` or `event: rows`, with JSON data.
    public func serverSentEvent(now: Date) -> String {
        switch self {
        case .full(let model):
            return ServerSentEvent.format(event: "fleet", json: Envelope(now: now, fleet: model))
        case .rows(let services, let machines, let problems):
            return ServerSentEvent.format(
                event: "rows", json: RowsEnvelope(now: now, services: services, machines: machines, problems: problems))
        }
    }

    private struct Envelope: Encodable {
        var now: Date
        var fleet: FleetModel
    }

    private struct RowsEnvelope: Encodable {
        var now: Date
        var services: [FleetModel.Service]
        var machines: [FleetModel.Machine]
        var problems: [String]
    }
}

/// The text/event-stream format (one event: its name, then its data on one line).
enum ServerSentEvent {
    /// The encoder of everything the page receives: sorted keys, dates as epoch milliseconds.
    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .millisecondsSince1970
        return encoder
    }

    /// `event: NAME`, `data: JSON` and the blank line that ends an event. JSON holds no raw newline, so one data line
    /// carries it whole.
    static func format<T: Encodable>(event: String, json value: T) -> String {
        let data = (try? encoder().encode(value)) ?? Data("null".utf8)
        return "event: \(event)\ndata: \(String(decoding: data, as: UTF8.self))\n\n"
    }

    /// A comment line, which keeps the connection alive and is ignored by the page.
    static let keepAlive = ": keep-alive\n\n"
}
