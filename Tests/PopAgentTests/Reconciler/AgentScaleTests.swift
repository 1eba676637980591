#if canImport(Glibc)
import Glibc
#endif
import Foundation
import PopAgent
import PopState
import Testing

/// Many instances on one agent: the coalesced passes and batched writes keep a large deploy fast.
@Suite(.serialized) struct AgentScaleTests {
    @Test func manyInstancesFromZeroToRunning() async throws {
        let count = Int(ProcessInfo.processInfo.environment["POP_SCALE_INSTANCES"] ?? "") ?? 200
        // How fast is `pop-bench agent`'s business (1,000 in under 5 s on a quiet machine). This test checks that a
        // burst of placements all reach `running`; on a loaded 2-core machine beside the other suites that took up
        // to 16 s for 200, so the bound only separates "slow" from "never".
        let limit = Duration.seconds(Double(count) / 1000 * 60 + 60)
        try await withAgentFixture { fixture in
            try await fixture.withAgent { _ in
                let specs = try (0..<count).map { try AgentFixture.spec("s\($0)") }
                // Add the services first, then place them all in one burst, as `pop deploy` of many services would.
                for spec in specs { try await fixture.namespace.addService(spec) }
                let events = try await fixture.store.watchSubtree(fixture.namespace.paths.services)
                let clock = ContinuousClock()
                let start = clock.now
                let assignments = fixture.namespace.paths.assignments(fixture.machine)
                _ = try await fixture.store.create(assignments, data: [], mode: .persistent)
                _ = try await fixture.store.multi(
                    specs.flatMap { spec -> [StoreOperation] in
                        [
                            .create(
                                fixture.namespace.paths.placement(spec.name, fixture.machine),
                                data: Array(try! PopJSON.canonicalEncoder().encode(Placement(deployed: Date())))),
                            .create(
                                fixture.namespace.paths.assignment(fixture.machine, spec.name),
                                data: Array(try! PopJSON.canonicalEncoder().encode(Assignment()))),
                        ]
                    })
                // Follow the records through the watch, reading only the record each event names.
                let paths = fixture.namespace.paths
                let machine = fixture.machine
                let recordPaths = Set(specs.map { paths.instance($0.name, machine) })
                let store = fixture.store
                let running = try await AgentFixture.within(limit, "\(count) instances running") { () -> Int? in
                    var running: Set<String> = []
                    for try await event in events where recordPaths.contains(event.path) {
                        if event.kind == .deleted {
                            running.remove(event.path)
                            continue
                        }
                        guard let node = try? await store.get(event.path),
                            let record = try? PopJSON.decoder().decode(InstanceRecord.self, from: Data(node.data))
                        else { continue }
                        if record.state == .running { running.insert(event.path) } else { running.remove(event.path) }
                        if running.count == count { return count }
                    }
                    return nil
                }
                #expect(running == count)
                print("\(count) instances from zero to running in \(clock.now - start)")
                // Each record names a process of its own, alive, started once: no instance of the burst was started twice.
                var pids: [Int32: String] = [:]
                for spec in specs {
                    let node = try await store.get(paths.instance(spec.name, machine))
                    let record = try PopJSON.decoder().decode(InstanceRecord.self, from: Data(node.data))
                    let pid = try #require(record.pid, "\(spec.name) is running without a pid")
                    #expect(pids.updateValue(spec.name.rawValue, forKey: pid) == nil, "two records name process \(pid)")
                    #expect(kill(pid, 0) == 0, "\(spec.name)'s process \(pid) is not alive")
                    #expect(record.restarts == 0, "\(spec.name) was started \(record.restarts + 1) times")
                }
                #expect(pids.count == count)
            }
        }
    }
}
