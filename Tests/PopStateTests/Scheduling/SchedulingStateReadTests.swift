import Foundation
import Testing

@testable import PopState

extension PopNamespaceTests {
    /// The scheduler's read holds what `pop status` holds for its decisions, and instance records only of the
    /// services whose drain waits for a replacement to run.
    @Test(arguments: StoreKind.allCases)
    func theSchedulersReadHoldsInstancesOnlyWhereADrainWaits(_ kind: StoreKind) async throws {
        try await withNamespace(kind) { namespace, fixture in
            let (web, api, db) = (try Self.spec("web"), try Self.spec("api", port: 8081), try Self.spec("db", port: 8082))
            let (m1, m2) = (try Self.machine("m1"), try Self.machine("m2"))
            for spec in [web, api, db] { try await namespace.addService(spec) }
            try await namespace.deploy(web.name, policy: try SchedulingPolicy(count: 2))
            try await namespace.deploy(api.name, policy: try SchedulingPolicy(count: 1))
            try await namespace.deploy(db.name, machines: [m1])
            let now = Date(timeIntervalSince1970: 1_700_000_000)
            try await namespace.apply(
                SchedulePlan(changes: [
                    .place(web.name, m1, Placement(deployed: now, scheduled: true)),
                    .place(web.name, m2, Placement(deployed: now, scheduled: true)),
                    .place(api.name, m2, Placement(deployed: now, scheduled: true)),
                ]), factVersions: [:], fence: nil)

            let agentStore = try await fixture.open()
            let agent = try PopNamespace(store: agentStore)
            for machine in [m1, m2] {
                try await agent.registerMachine(
                    MachineRecord(
                        id: machine, hostname: machine.rawValue, addresses: [], agentVersion: "1", started: now, agentPID: 1))
            }
            let records = [
                (web.name, InstanceRecord(machine: m1, pid: 5, signature: web.signature, state: .running, since: now)),
                (web.name, InstanceRecord(machine: m2, pid: 6, signature: web.signature, state: .running, since: now)),
                (api.name, InstanceRecord(machine: m2, pid: 7, signature: api.signature, state: .running, since: now)),
            ]
            for (service, record) in records { try await agent.publishInstance(record, service: service) }

            // Nothing drained: no instance record is read.
            let quiet = try await namespace.schedulingState().state
            let snapshot = SchedulingState(try await namespace.status())
            #expect(quiet.registered == snapshot.registered)
            #expect(quiet.load == snapshot.load)
            #expect(quiet.load == [m1: 2, m2: 2])
            #expect(quiet.names == [web.name, api.name, db.name])
            #expect(quiet.services.map(\.name).sorted() == [api.name, web.name])
            #expect(quiet.services.allSatisfy { $0.instances.isEmpty })
            #expect(quiet.services.map(\.placements) == snapshot.services.map(\.placements))

            // m1 drained: web waits for a replacement, so its records (and signature) are read; api's are not.
            try await namespace.updateFacts(m1) { $0.drained = true }
            let (draining, versions) = try await namespace.schedulingState()
            #expect(versions.keys.sorted() == [m1])
            #expect(draining.facts[m1]?.drained == true)
            let waiting = try #require(draining.services.first { $0.name == web.name })
            #expect(waiting.instances == [m1: records[0].1, m2: records[1].1])
            #expect(waiting.running == [m1, m2])
            #expect(draining.services.first { $0.name == api.name }?.instances == [:])
            await agentStore.close()
        }
    }
}
