import Foundation

/// `pop status --json`, decoded independently of the `pop` executable's own types, so tests check the JSON itself.
public struct StatusJSON: Decodable, Sendable {
    /// One instance row: a service's placement on a machine and what that machine's agent reports.
    public struct Instance: Decodable, Sendable, CustomStringConvertible {
        public var machine: String
        public var hostname: String?
        public var machineUp: Bool
        public var state: String
        public var pid: Int32?
        public var signature: String?
        /// Whether the instance runs the service's current signature.
        public var current: Bool
        public var started: Date?
        public var since: Date?
        public var restarts: Int?
        public var lastError: String?

        public var description: String {
            "\(machine) \(state) pid \(pid.map(String.init) ?? "-") restarts \(restarts ?? 0) error \(lastError ?? "-")"
        }
    }

    /// One service with its instances.
    public struct Service: Decodable, Sendable {
        public var service: String
        public var template: String
        public var signature: String
        public var version: Int32
        public var instances: [Instance]
    }

    /// The store the command used.
    public var store: String
    /// The machines whose agents are registered.
    public var machinesUp: [String]
    public var services: [Service]

    /// The service named `name`, if shown.
    public func service(_ name: String) -> Service? { services.first { $0.service == name } }

    /// Decodes a `pop status --json` run's standard output (dates are ISO 8601).
    public static func decode(_ result: CommandResult) throws -> StatusJSON {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(StatusJSON.self, from: Data(result.stdout.utf8))
    }
}
