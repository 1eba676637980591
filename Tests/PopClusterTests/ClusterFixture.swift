import Foundation
import PopState
import PopTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `pop status --json`, as far as the scenarios read it.
struct StatusJSON: Decodable {
    struct Row: Decodable {
        var machine: String
        var machineUp: Bool
        var state: String
        var pid: Int32?
        var signature: String?
        var current: Bool
    }

    struct Service: Decodable {
        var service: String
        var signature: String
        var instances: [Row]
    }

    var machinesUp: [String]
    var services: [Service]

    func service(_ name: String) -> Service? { services.first { $0.service == name } }
}

/// A cluster with the `cluster-probe` template deployed as service `web`, and helpers the scenarios share.
struct ProbeDeployment {
    let cluster: Cluster
    let events: URL
    let plugin: URL
    let service = "web"
    let port = 7000

    /// Starts every agent, adds `web` from the `cluster-probe` template, deploys it to every machine and waits until
    /// every instance runs.
    static func start(_ cluster: Cluster, extraOptions: [String] = []) async throws -> ProbeDeployment {
        let events = cluster.folder.appendingPathComponent("events.log")
        let plugin = try ClusterTestService.writePlugin(in: cluster.folder)
        let deployment = ProbeDeployment(cluster: cluster, events: events, plugin: plugin)
        try await cluster.startAgents()
        try await cluster.popOK(
            ["add", "web", "--template", ClusterTestService.templateName, "--events", events.path] + extraOptions,
            environment: [("POP_PLUGIN_PATH", plugin.deletingLastPathComponent().path)])
        try await cluster.popOK(["deploy", "web"] + cluster.machines.map(\.id))
        try await deployment.waitUntilRunning()
        return deployment
    }

    /// Waits (on watches, through `pop status --wait`) until every instance runs the current signature.
    func waitUntilRunning(timeout: Int = 60) async throws {
        try await self.cluster.popOK(["status", "web", "--wait", "running", "--timeout", String(timeout)], timeout: .seconds(timeout + 30))
    }

    /// `pop status --json` from the operator's workstation.
    func status() async throws -> StatusJSON {
        let result = try await self.cluster.popOK(["status", "--json"])
        return try JSONDecoder().decode(StatusJSON.self, from: Data(result.stdout.utf8))
    }

    /// The pid of each machine's instance, as `pop status` reports it.
    func pids() async throws -> [String: Int32] {
        var pids: [String: Int32] = [:]
        for row in try await self.status().service("web")?.instances ?? [] { pids[row.machine] = row.pid }
        return pids
    }

    /// What each machine's service answers at its own address (`MACHINE PID TAG`), from the root namespace.
    func answers() -> [String: String] {
        var answers: [String: String] = [:]
        for machine in self.cluster.machines {
            answers[machine.id] = TCPProbe.readLine(address: machine.address, port: self.port) ?? "no answer"
        }
        return answers
    }

    /// The instances' up and down events so far.
    func recordedEvents() -> [ClusterTestService.Event] { ClusterTestService.events(self.events) }

    /// The processes running the probe service in `machine`'s namespace (to find duplicates).
    func serviceProcesses(on machine: ClusterMachine) async throws -> [Int32] {
        let pids = try await machine.exec(["ip", "netns", "pids", machine.namespace ?? ""]).check().stdout
        return pids.split(separator: "\n").compactMap { Int32($0) }.filter { pid in
            let cmdline = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            return cmdline.contains("scripts/service.py")
        }
    }
}

/// A ZooKeeper session of the test's own that waits on watches for the store to reach a state.
struct StoreWatcher {
    let namespace: PopNamespace

    static func open(_ cluster: Cluster) async throws -> StoreWatcher {
        let configuration = try StoreConfiguration(
            kind: StoreConfiguration.parseHosts(cluster.host), prefix: "/pop")
        return StoreWatcher(namespace: try await openNamespace(configuration))
    }

    func close() async { await self.namespace.store.close() }

    /// Waits until `condition` holds for a status snapshot, re-reading after every change below /pop.
    @discardableResult
    func wait(
        timeout: Duration, _ what: String, _ condition: @escaping @Sendable (StatusSnapshot) -> Bool
    ) async throws -> StatusSnapshot {
        let namespace = self.namespace
        let events = try await namespace.store.watchSubtree(namespace.prefix)
        return try await withThrowingTaskGroup(of: StatusSnapshot?.self) { group in
            group.addTask {
                let first = try await namespace.status()
                if condition(first) { return first }
                for try await _ in events {
                    let snapshot = try await namespace.status()
                    if condition(snapshot) { return snapshot }
                }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            let result = try await group.next() ?? nil
            group.cancelAll()
            guard let result else { throw ClusterError("timed out after \(timeout) waiting until \(what)") }
            return result
        }
    }
}

/// Whether process `pid` is alive (not a zombie).
func isAlive(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return false }
    return !stat[stat.index(close, offsetBy: 2)...].hasPrefix("Z")
}
