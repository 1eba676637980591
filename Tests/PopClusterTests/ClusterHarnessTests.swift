import Foundation
import PopTestSupport
import Testing

#if canImport(Glibc)
import Glibc
import TestProcesses
#endif

extension PopClusterSuite {
    /// The harness on its own: separate hosts, the ensemble reachable from inside them, and a clean teardown.
    @Suite struct ClusterHarnessTests {
        @Test func machinesAreSeparateHostsAndEverythingIsTornDown() async throws {
            // What a crashed earlier run leaves: a registered cluster whose owner is gone, with a namespace and bridge.
            let leftover = "\(ClusterNetwork.namePrefix)250"
            try FileManager.default.createDirectory(atPath: ClusterNetwork.registryFolder, withIntermediateDirectories: true)
            try "\(try await deadProcessID()) 1\n".write(toFile: "\(ClusterNetwork.registryFolder)/\(leftover)", atomically: true, encoding: .utf8)
            if try await !namespaces().contains("\(leftover)-h1") { try await ip(["netns", "add", "\(leftover)-h1"]) }
            if try await !links().contains("\(leftover)-br") { try await ip(["link", "add", "\(leftover)-br", "type", "bridge"]) }
            // And what a run that died between tearing down and unregistering, or lost its registry, leaves: names
            // with no entry at all.
            let unregistered = "\(ClusterNetwork.namePrefix)249"
            unlink("\(ClusterNetwork.registryFolder)/\(unregistered)")
            if try await !links().contains("\(unregistered)-br") { try await ip(["link", "add", "\(unregistered)-br", "type", "bridge"]) }

            var options = Cluster.Options()
            options.machines = 2
            options.initialize = false
            var name = ""
            var services: [ChildProcess] = []
            try await withCluster(options) { cluster in
                name = cluster.network.name
                #expect(try await namespaces().contains { $0.hasPrefix(leftover + "-") } == false, "the crashed run's namespace was swept")
                #expect(try await links().contains { $0.hasPrefix(leftover + "-") } == false, "the crashed run's bridge was swept")
                #expect(!FileManager.default.fileExists(atPath: "\(ClusterNetwork.registryFolder)/\(leftover)"))
                #expect(try await links().contains { $0.hasPrefix(unregistered + "-") } == false, "the unregistered bridge was swept")
                #expect(!FileManager.default.fileExists(atPath: "\(ClusterNetwork.registryFolder)/\(unregistered)"))

                for machine in cluster.machines {
                    let addresses = try await machine.exec(["ip", "-4", "-o", "addr", "show"]).check().stdout
                    #expect(addresses.contains(" \(machine.address)/24 "), "\(machine.id) has its own address: \(addresses)")
                    #expect(addresses.contains(" 127.0.0.1/8 "), "\(machine.id) has loopback up: \(addresses)")
                    #expect(!addresses.contains(cluster.network.bridgeAddress + "/"))
                }
                // The ensemble, on the bridge, is reachable from inside a machine's namespace.
                let initialized = try await cluster.machines[0].pop(["init", "--host", cluster.host])
                #expect(initialized.succeeded, "\(initialized)")
                let status = try await cluster.machines[1].pop(["status", "--host", cluster.host])
                #expect(status.succeeded, "\(status)")
                #expect(status.stdout.contains("No services"), "\(status)")

                // The same port on every machine, each reached at its own address from the root namespace.
                let events = cluster.folder.appendingPathComponent("events.log")
                let plugin = try ClusterTestService.writePlugin(in: cluster.folder)
                for machine in cluster.machines {
                    services.append(
                        try machine.spawn(
                            ClusterTestService.argv(plugin: plugin, events: events, tag: "t1"),
                            environment: [("PORT", "7000"), ("POP_MACHINE", machine.id)], logName: "service.log"))
                }
                for machine in cluster.machines {
                    let answer = await eventually { await TCPProbe.readLine(address: machine.address, port: 7000) }
                    #expect(answer?.hasPrefix("\(machine.id) ") == true, "\(machine.address):7000 answered \(answer ?? "nothing")")
                }
            }
            #expect(!name.isEmpty)
            #expect(try await namespaces().contains { $0.hasPrefix(name + "-") } == false, "namespaces removed")
            #expect(try await links().contains { $0.hasPrefix(name + "-") } == false, "veths and bridge removed")
            #expect(!FileManager.default.fileExists(atPath: "\(ClusterNetwork.registryFolder)/\(name)"), "registry entry removed")
            for service in services {
                #expect(service.hasExited, "the service with pid \(service.pid) was killed with its namespace")
            }
        }
    }
}

/// The pid of a process that has exited and been reaped.
func deadProcessID() async throws -> Int32 {
    let process = try ChildProcess(["/bin/true"], environment: [:])
    await process.waitForExit()
    return process.pid
}

/// Runs `ip ARGUMENTS`, throwing when it fails.
@discardableResult
func ip(_ arguments: [String]) async throws -> String {
    try await CommandRunner.run(
        ["/usr/sbin/ip"] + arguments, environment: CommandRunner.baseEnvironment(),
        scratch: FileManager.default.temporaryDirectory, timeout: .seconds(60)
    ).check().stdout
}

func namespaces() async throws -> [String] {
    try await ip(["netns", "list"]).split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
}

func links() async throws -> [String] {
    try await ip(["-o", "link", "show"]).split(separator: "\n").compactMap { line in
        line.split(separator: " ").dropFirst().first.map { String($0.split(separator: "@")[0]).trimmingCharacters(in: CharacterSet(charactersIn: ":")) }
    }
}

/// Tries `attempt` until it returns a value, at most `limit`: for the few things nothing announces (a program
/// starting to listen on a port in another namespace).
func eventually<T>(limit: Duration = .seconds(20), _ attempt: () async throws -> T?) async rethrows -> T? {
    let deadline = ContinuousClock.now + limit
    while true {
        if let value = try await attempt() { return value }
        if ContinuousClock.now >= deadline { return nil }
        try? await Task.sleep(for: .milliseconds(100))
    }
}
