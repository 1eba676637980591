import Foundation
#if canImport(Glibc)
import Glibc
#endif
import PopState
import PopTestSupport
import TestProcesses
import Testing

extension PopClusterSuite {
    /// Services deployed by count on a real cluster: the elected scheduler places them, replaces a lost machine's
    /// instances, lets a returning machine stop its extras, and drains without a moment below the count.
    @Suite struct ClusterSchedulingTests {
        static let rescheduleAfter = 3

        static var fourMachines: Cluster.Options {
            var options = Cluster.Options()
            options.machines = 4
            return options
        }

        /// Four machines with agents (m4 labelled `zone=b`, the others `zone=a`), the probe template added as `web`.
        static func start(_ cluster: Cluster) async throws -> URL {
            let events = cluster.folder.appendingPathComponent("events.log")
            let plugin = try ClusterTestService.writePlugin(in: cluster.folder)
            for machine in cluster.machines {
                _ = try await machine.startAgent(arguments: ["--label", machine.id == "m4" ? "zone=b" : "zone=a"])
            }
            try await cluster.popOK(
                ["add", "web", "--template", ClusterTestService.templateName, "--events", events.path],
                environment: [("POP_PLUGIN_PATH", plugin.deletingLastPathComponent().path)])
            return events
        }

        /// The machines running `web` with the current signature, and every placement, from one snapshot.
        static func running(_ snapshot: StatusSnapshot) -> (running: Set<String>, placed: Set<String>) {
            guard let web = snapshot.services.first(where: { $0.spec.name.rawValue == "web" }) else { return ([], []) }
            let registered = Set(snapshot.machines.map(\.id))
            let running = web.placements.filter {
                registered.contains($0.machine) && $0.instance?.state == .running && $0.instance?.signature == web.signature
            }
            return (Set(running.map(\.machine.rawValue)), Set(web.placements.map(\.machine.rawValue)))
        }

        @Test("4 machines, --count 3: three distinct machines; a machine cut off is replaced, and on its return stops its extra")
        func linkCutAndBack() async throws {
            try await withCluster(Self.fourMachines) { cluster in
                _ = try await Self.start(cluster)
                try await cluster.popOK(
                    ["deploy", "web", "--count", "3", "--reschedule-after", String(Self.rescheduleAfter)])
                try await StoreWatcher.with(cluster) { watcher in
                    let first = try await watcher.wait(timeout: .seconds(60), "3 instances run") { Self.running($0).running.count == 3 }
                    let placed = Self.running(first).placed
                    #expect(placed.count == 3, "three distinct machines: \(placed)")
                    let victim = try #require(cluster.machines.first { placed.contains($0.id) })
                    try await cluster.setLink(of: victim, up: false)
                    try await watcher.wait(timeout: .seconds(60), "\(victim.id)'s session expires") { snapshot in
                        !snapshot.machines.contains { $0.id.rawValue == victim.id }
                    }
                    let gone = ContinuousClock.now
                    let replaced = try await watcher.wait(timeout: .seconds(60), "a replacement runs") { snapshot in
                        let state = Self.running(snapshot)
                        return state.running.count == 3 && !state.placed.contains(victim.id)
                    }
                    let elapsed = ContinuousClock.now - gone
                    #expect(elapsed < .seconds(Self.rescheduleAfter + 5), "replaced \(elapsed) after the machine was gone")
                    let web = try #require(replaced.services.first { $0.spec.name.rawValue == "web" })
                    let moved = web.placements.filter { $0.placement.rescheduledFrom?.rawValue == victim.id }
                    #expect(moved.count == 1, "the replacement names the machine it replaces: \(web.placements)")

                    // `pop status` says where it came from.
                    let table = try await cluster.popOK(["status", "web"]).stdout
                    #expect(table.contains("from \(victim.id)"), "\(table)")
                    #expect(table.contains("web: 3 of 3 running"), "\(table)")

                    try await cluster.setLink(of: victim, up: true)
                    try await watcher.wait(timeout: .seconds(60), "\(victim.id) is back") { snapshot in
                        snapshot.machines.contains { $0.id.rawValue == victim.id }
                    }
                }
                // Its agent stops the instance no longer placed there: exactly three run, one per machine.
                let processes = try await Self.waitForProcesses(cluster, total: 3)
                #expect(processes.values.allSatisfy { $0 <= 1 }, "one instance per machine: \(processes)")
            }
        }

        @Test("a machine killed with its instances is replaced; the scheduler's own machine killed mid-placement: the next leader completes it")
        func machinesKilled() async throws {
            try await withCluster(Self.fourMachines) { cluster in
                _ = try await Self.start(cluster)
                try await cluster.popOK(["deploy", "web", "--count", "1", "--reschedule-after", String(Self.rescheduleAfter)])
                try await StoreWatcher.with(cluster) { watcher in
                    var snapshot = try await watcher.wait(timeout: .seconds(60), "1 instance runs") { Self.running($0).running.count == 1 }
                    // The machine running the instance dies with it.
                    let victim = try #require(cluster.machines.first { Self.running(snapshot).placed.contains($0.id) })
                    await cluster.killProcesses(of: victim)
                    snapshot = try await watcher.wait(timeout: .seconds(60), "the replacement runs") { snapshot in
                        Self.running(snapshot).running.count == 1 && !Self.running(snapshot).placed.contains(victim.id)
                    }

                    // The scheduler's machine is killed as it places a new count: the next leader finishes the placement.
                    let leader = try await Self.leader(watcher)
                    let scheduler = try #require(cluster.machines.first { $0.id == leader })
                    try await cluster.popOK(["scale", "web", "2"])
                    await cluster.killProcesses(of: scheduler)
                    snapshot = try await watcher.wait(timeout: .seconds(90), "2 instances run on the 2 living machines") { snapshot in
                        let state = Self.running(snapshot)
                        return state.running.count == 2 && state.placed.count == 2
                            && !state.placed.contains(victim.id) && !state.placed.contains(scheduler.id)
                    }
                    #expect(try await Self.leader(watcher) != leader, "another agent leads")
                }
                // The killed machines' processes are gone with them: what runs is what the store says.
                let deployment = ProbeDeployment(
                    cluster: cluster, events: cluster.folder.appendingPathComponent("events.log"),
                    plugin: cluster.folder.appendingPathComponent(ClusterTestService.templateName))
                var processes: [String: Int] = [:]
                for machine in cluster.machines { processes[machine.id] = try await deployment.serviceProcesses(on: machine).count }
                #expect(processes.values.reduce(0, +) == 2 && processes.values.allSatisfy { $0 <= 1 }, "no duplicate: \(processes)")
            }
        }

        @Test("drain moves instances with no moment below the count; labels restrict; a count too large says why")
        func drainAndLabels() async throws {
            try await withCluster(Self.fourMachines) { cluster in
                let eventsFile = try await Self.start(cluster)
                // Only m1-m3 carry zone=a.
                try await cluster.popOK(["deploy", "web", "--count", "2", "--label", "zone=a"])
                try await StoreWatcher.with(cluster) { watcher in
                    let first = try await watcher.wait(timeout: .seconds(60), "2 instances run") { Self.running($0).running.count == 2 }
                    #expect(!Self.running(first).placed.contains("m4"), "m4 is not zone=a")
                    let drained = try #require(Self.running(first).placed.sorted().first)
                    let mark = ClusterTestService.events(eventsFile).count
                    try await cluster.popOK(["drain", drained])
                    try await watcher.wait(timeout: .seconds(60), "\(drained) is drained") { snapshot in
                        let state = Self.running(snapshot)
                        return state.running.count == 2 && !state.placed.contains(drained)
                    }
                    // The placement goes before the old process has stopped: wait for its own report of that.
                    let stopped = try await EventsFile.wait(eventsFile, timeout: .seconds(60)) { events in
                        let moves = events.dropFirst(mark)
                        return moves.contains { $0.kind == "up" } && moves.contains { $0.kind == "down" && $0.machine == drained }
                    }
                    let moves = Array(ClusterTestService.events(eventsFile).dropFirst(mark))
                    #expect(moves.contains { $0.kind == "up" }, "\(moves)")
                    #expect(stopped, "a replacement started and the instance on \(drained) stopped: \(moves)")
                    var up = 2
                    var lowest = up
                    for event in moves {
                        up += event.kind == "up" ? 1 : -1
                        lowest = min(lowest, up)
                    }
                    #expect(lowest >= 2, "at no moment fewer than 2 ran: \(moves)")

                    // Three asked for, two eligible zone=a machines left: two run, and status says why.
                    try await cluster.popOK(["scale", "web", "3"])
                    try await watcher.wait(timeout: .seconds(60), "the scale is read") { snapshot in
                        snapshot.services.first?.scheduling?.count == 3
                    }
                    let report = try StatusReport.decode(try await cluster.popOK(["status", "--json"]).stdout)
                    #expect(report.service("web")?.reason == "2 of 3: only 2 eligible machines with zone=a", "\(report)")
                    #expect(report.service("web")?.instances.map(\.machine).contains("m4") == false)
                    try await cluster.popOK(["undrain", drained])
                    try await watcher.wait(timeout: .seconds(60), "3 instances run") { Self.running($0).running.count == 3 }
                }
            }
        }

        /// The machine whose candidate leads the scheduler election.
        static func leader(_ watcher: StoreWatcher) async throws -> String {
            let store = watcher.namespace.store
            let election = watcher.namespace.paths.election
            let first = try #require(try await store.children(election).min {
                SchedulerCandidate.sequence($0) < SchedulerCandidate.sequence($1)
            })
            return String(decoding: try await store.get(election + "/" + first).data, as: UTF8.self)
        }

        /// Waits (woken by inotify on the events file) until the probe's events say `total` instances are up, then
        /// counts the probe processes on each machine.
        static func waitForProcesses(_ cluster: Cluster, total: Int) async throws -> [String: Int] {
            let file = cluster.folder.appendingPathComponent("events.log")
            let settled = try await EventsFile.wait(file, timeout: .seconds(60)) { events in
                var up: [Int32: Bool] = [:]
                for event in events { up[event.pid] = event.kind == "up" }
                return up.values.filter { $0 }.count == total
            }
            #expect(settled, "the events say \(total) instances are up: \(ClusterTestService.events(file))")
            // A probe says it is down as it begins to exit: wait until each that said so has gone.
            var last: [Int32: String] = [:]
            for event in ClusterTestService.events(file) { last[event.pid] = event.kind }
            let stopping = last.filter { $0.value == "down" }.map(\.key)
            #expect(await Processes.waitForExit(stopping, timeout: .seconds(60)), "stopped probes still run: \(stopping)")
            let deployment = ProbeDeployment(
                cluster: cluster, events: file, plugin: cluster.folder.appendingPathComponent(ClusterTestService.templateName))
            var counts: [String: Int] = [:]
            for machine in cluster.machines {
                counts[machine.id] = try await deployment.serviceProcesses(on: machine).count
            }
            #expect(counts.values.reduce(0, +) == total, "\(counts)")
            return counts
        }
    }
}

/// Waits on the probe's events file with inotify: no polling.
enum EventsFile {
    static func wait(
        _ file: URL, timeout: Duration, until condition: ([ClusterTestService.Event]) -> Bool
    ) async throws -> Bool {
        let descriptor = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard descriptor >= 0 else { throw ClusterError("inotify_init1 failed: \(errno)") }
        defer { close(descriptor) }
        guard inotify_add_watch(descriptor, file.deletingLastPathComponent().path, UInt32(IN_MODIFY | IN_CREATE)) >= 0 else {
            throw ClusterError("inotify_add_watch failed: \(errno)")
        }
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            if condition(ClusterTestService.events(file)) { return true }
            let left = deadline - ContinuousClock.now
            if left <= .zero { return false }
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(min(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000, 1000))
            // Blocks in the kernel until the folder changes (at most a second, so cancellation is noticed).
            _ = await Task.detached { poll(&poller, 1, max(milliseconds, 1)) }.value
            _ = read(descriptor, &buffer, buffer.count)
            try Task.checkCancellation()
        }
    }
}

/// Sequence numbers of election candidates, as the scheduler orders them.
enum SchedulerCandidate {
    static func sequence(_ name: String) -> Int {
        Int(name.reversed().prefix { $0.isNumber }.reversed().map(String.init).joined()) ?? Int.max
    }
}
