import Foundation
import Logging
import PopAgent
import PopState
import ServiceLifecycle

/// An agent's endpoint served in this process for one test, on a free loopback port (or a unix socket), over a
/// temporary pop home; stopped, and awaited, when the test's body returns.
struct EndpointFixture: Sendable {
    let home: PopHome
    let machine: MachineID
    let journal: MachineJournal
    let key: EndpointKey
    let address: EndpointAddress

    /// The logs folder of `service`'s instance (made).
    func logsFolder(_ service: String) throws -> String {
        let folder = home.instanceFolder(machine, try ServiceName(service)) + "/logs"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return folder
    }

    static func with<T: Sendable>(
        credentials: StoreCredentials? = nil, listen: AgentEndpoint.Configuration.Listen? = nil,
        tls: AgentEndpoint.Configuration.TLSFiles? = nil, machine: String = "m1",
        _ body: @Sendable (EndpointFixture) async throws -> T
    ) async throws -> T {
        try await withTemporaryFolder { folder in
            let home = PopHome(path: folder + "/home")
            try FileManager.default.createDirectory(atPath: home.path, withIntermediateDirectories: true)
            let machine = try MachineID(machine)
            let journal = MachineJournal(home: home, machine: machine, version: "test")
            let key = EndpointKey.generate()
            let access = EndpointAccess(credentials: credentials, key: key, refresh: { key })
            let (addresses, announce) = AsyncStream<EndpointAddress>.makeStream()
            var logger = Logger(label: "pop.test.endpoint")
            logger.logLevel = .warning
            let endpoint = AgentEndpoint(
                configuration: AgentEndpoint.Configuration(
                    listen: listen ?? .tcp(host: "127.0.0.1", port: 0, anyPortWhenTaken: false), tls: tls),
                home: home, machine: machine, journal: journal, access: access, logger: logger,
                onListening: { announce.yield($0) })
            let group = ServiceGroup(services: [endpoint], logger: logger)
            return try await withThrowingTaskGroup(of: T?.self) { tasks in
                tasks.addTask {
                    try await group.run()
                    return nil
                }
                var listening = addresses.makeAsyncIterator()
                guard let address = await listening.next() else { throw EndpointFixtureError("the endpoint never listened") }
                do {
                    let result = try await body(
                        EndpointFixture(home: home, machine: machine, journal: journal, key: key, address: address))
                    await group.triggerGracefulShutdown()
                    while let next = try await tasks.next() { _ = next }
                    return result
                } catch {
                    await group.triggerGracefulShutdown()
                    while (try? await tasks.next()) != nil {}
                    throw error
                }
            }
        }
    }
}

struct EndpointFixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
