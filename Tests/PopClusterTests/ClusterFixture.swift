import Foundation
import PopState
import PopTestSupport
import Testing

#if canImport(Glibc)
import Glibc
import TestProcesses
#endif

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
    func status() async throws -> StatusReport {
        try StatusReport.decode(try await self.cluster.popOK(["status", "--json"]).stdout)
    }

    /// The pid of each machine's instance, as `pop status` reports it.
    func pids() async throws -> [String: Int32] {
        var pids: [String: Int32] = [:]
        for row in try await self.status().service("web")?.instances ?? [] { pids[row.machine] = row.pid }
        return pids
    }

    /// What each machine's service answers at its own address (`MACHINE PID TAG`), from the root namespace.
    func answers() async -> [String: String] {
        var answers: [String: String] = [:]
        for machine in self.cluster.machines {
            answers[machine.id] = await TCPProbe.readLine(address: machine.address, port: self.port) ?? "no answer"
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

    /// Runs `body` with a watcher on `cluster`'s store, and closes its session before returning.
    @discardableResult static func with<T>(_ cluster: Cluster, _ body: (StoreWatcher) async throws -> T) async throws -> T {
        let configuration = try StoreConfiguration(kind: StoreConfiguration.parseHosts(cluster.host), prefix: "/pop")
        let watcher = StoreWatcher(namespace: try await openNamespace(configuration))
        do {
            let result = try await body(watcher)
            await watcher.namespace.store.close()
            return result
        } catch {
            await watcher.namespace.store.close()
            throw error
        }
    }

    /// Waits until `condition` holds for a status snapshot, reading again after each burst of changes below /pop.
    @discardableResult
    func wait(
        timeout: Duration, _ what: String, _ condition: @escaping @Sendable (StatusSnapshot) -> Bool
    ) async throws -> StatusSnapshot {
        let namespace = self.namespace
        guard
            let snapshot = try await namespace.read(
                { try await namespace.status() }, until: condition, wokenByChangesUnder: namespace.prefix,
                deadline: .now + timeout)
        else { throw ClusterError("timed out after \(timeout) waiting until \(what)") }
        return snapshot
    }
}
