import Foundation

/// The parts of `pop status --json` the walk reads.
struct StatusJSON: Decodable {
    struct Instance: Decodable {
        var machine: String
        var state: String
        var pid: Int32?
        var signature: String?
        var current: Bool
        var started: Date?
        var restarts: Int?
    }

    struct Service: Decodable {
        var service: String
        var signature: String
        var instances: [Instance]
    }

    var services: [Service]
}
