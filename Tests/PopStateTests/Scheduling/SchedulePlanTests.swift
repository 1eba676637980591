import Foundation
import PopState
import Testing

/// The scheduler's decisions, as a pure function of the state read from the store and the time.
@Suite struct SchedulePlanTests {
    let now = Date(timeIntervalSince1970: 1_700_000_000)
    let web = try! ServiceName("web")
    let signature = ConfigSignature(of: Array("spec".utf8))

    func m(_ id: String) -> MachineID { try! MachineID(id) }

    func service(
        count: Int, labels: [String: String] = [:], spread: String? = nil, after: Int = 30_000,
        placed: [String: String?] = [:], running: [String] = []
    ) -> SchedulingState.Service {
        var placements: [MachineID: Placement] = [:]
        for (machine, from) in placed {
            placements[m(machine)] = Placement(
                deployed: now, scheduled: true, rescheduledFrom: from.map { m($0) })
        }
        var instances: [MachineID: InstanceRecord] = [:]
        for machine in running {
            instances[m(machine)] = InstanceRecord(
                machine: m(machine), pid: 10, signature: signature, state: .running, since: now)
        }
        return SchedulingState.Service(
            name: web, policy: try! SchedulingPolicy(count: count, labels: labels, spread: spread, rescheduleAfterMilliseconds: after),
            signature: signature, placements: placements, instances: instances)
    }

    func place(_ machine: String, from: String? = nil, at time: Date? = nil) -> SchedulePlan.Change {
        .place(web, m(machine), Placement(deployed: time ?? now, scheduled: true, rescheduledFrom: from.map { m($0) }))
    }

    @Test func placesOnDistinctMachinesWithTheFewestInstances() {
        let state = SchedulingState(
            registered: [m("a"), m("b"), m("c"), m("d")], services: [service(count: 3)],
            load: [m("a"): 2, m("b"): 0, m("c"): 1, m("d"): 0])
        let plan = SchedulePlan(state, now: now)
        #expect(plan.changes == [place("b"), place("d"), place("c")])
        #expect(plan.shortfalls.isEmpty && plan.facts.isEmpty && plan.wakeAt == nil)
    }

    @Test func spreadsAcrossLabelValuesFirst() {
        let facts: [MachineID: MachineFacts] = [
            m("a"): .init(labels: ["zone": "x"]), m("b"): .init(labels: ["zone": "x"]),
            m("c"): .init(labels: ["zone": "y"]), m("d"): .init(labels: ["zone": "y"]),
        ]
        let state = SchedulingState(
            registered: [m("a"), m("b"), m("c"), m("d")], facts: facts,
            services: [service(count: 2, spread: "zone", placed: ["a": nil])])
        #expect(SchedulePlan(state, now: now).changes == [place("c")])
    }

    @Test func labelsRestrictAndAShortfallSaysWhy() {
        let facts: [MachineID: MachineFacts] = [m("a"): .init(labels: ["disk": "ssd"]), m("b"): .init(labels: ["disk": "ssd"])]
        let state = SchedulingState(
            registered: [m("a"), m("b"), m("c")], facts: facts, services: [service(count: 3, labels: ["disk": "ssd"])])
        let plan = SchedulePlan(state, now: now)
        #expect(plan.changes == [place("a"), place("b")])
        #expect(plan.shortfalls == [web: "2 of 3: only 2 eligible machines with disk=ssd"])
    }

    @Test func aMissingMachineIsTimedThenReplaced() {
        let registered: Set<MachineID> = [m("a"), m("b"), m("d")]
        // First seen missing: its clock starts, and its instance still counts.
        var state = SchedulingState(registered: registered, services: [service(count: 3, placed: ["a": nil, "b": nil, "c": nil])])
        var plan = SchedulePlan(state, now: now)
        #expect(plan.changes.isEmpty)
        #expect(plan.facts == [m("c"): MachineFacts(absentSince: now)])
        #expect(plan.wakeAt == now.addingTimeInterval(30))
        // Before the deadline nothing moves.
        state.facts = plan.facts
        plan = SchedulePlan(state, now: now.addingTimeInterval(29))
        #expect(plan.writesNothing)
        // After it, the instance moves to the free machine, which names where it came from.
        let later = now.addingTimeInterval(30)
        plan = SchedulePlan(state, now: later)
        #expect(plan.changes == [place("d", from: "c", at: later), .unplace(web, m("c"), hasInstance: false)])
    }

    @Test func aLostMachineWithNowhereToGoKeepsItsPlacement() {
        let state = SchedulingState(
            registered: [m("a")], facts: [m("c"): .init(absentSince: now)],
            services: [service(count: 2, placed: ["a": nil, "c": nil])])
        let plan = SchedulePlan(state, now: now.addingTimeInterval(60))
        #expect(plan.changes.isEmpty)
        #expect(plan.shortfalls == [web: "1 of 2: only 1 eligible machine"])
    }

    @Test func aReturningMachineClearsItsClock() {
        let state = SchedulingState(
            registered: [m("a"), m("c")], facts: [m("c"): .init(labels: ["zone": "x"], absentSince: now)],
            services: [service(count: 2, placed: ["a": nil, "c": nil])])
        let plan = SchedulePlan(state, now: now)
        #expect(plan.facts == [m("c"): MachineFacts(labels: ["zone": "x"])])
        #expect(plan.changes.isEmpty)
    }

    @Test func drainPlacesTheReplacementFirstAndRemovesOnlyOnceEnoughRun() {
        let facts: [MachineID: MachineFacts] = [m("a"): .init(drained: true)]
        // The replacement is placed; the drained instance stays.
        var state = SchedulingState(
            registered: [m("a"), m("b"), m("c")], facts: facts,
            services: [service(count: 2, placed: ["a": nil, "b": nil], running: ["a", "b"])])
        #expect(SchedulePlan(state, now: now).changes == [place("c", from: "a")])
        // Placed but not running yet: still nothing removed.
        state.services = [service(count: 2, placed: ["a": nil, "b": nil, "c": "a"], running: ["a", "b"])]
        #expect(SchedulePlan(state, now: now).writesNothing)
        // Running: now the drained one goes.
        state.services = [service(count: 2, placed: ["a": nil, "b": nil, "c": "a"], running: ["a", "b", "c"])]
        #expect(SchedulePlan(state, now: now).changes == [.unplace(web, m("a"), hasInstance: true)])
    }

    @Test func scalingDownRemovesMissingMachinesFirstThenTheMostLoaded() {
        let state = SchedulingState(
            registered: [m("a"), m("b"), m("c")], facts: [m("d"): .init(absentSince: now)],
            services: [service(count: 2, placed: ["a": nil, "b": nil, "c": nil, "d": nil])],
            load: [m("a"): 1, m("b"): 3, m("c"): 1, m("d"): 1])
        #expect(
            SchedulePlan(state, now: now).changes == [
                .unplace(web, m("d"), hasInstance: false), .unplace(web, m("b"), hasInstance: false),
            ])
    }

    @Test func pinnedPlacementsAreNeverTouched() {
        var pinned = service(count: 1)
        pinned.placements = [m("a"): Placement(deployed: now)]
        let state = SchedulingState(registered: [m("b")], facts: [m("a"): .init(drained: true)], services: [pinned])
        #expect(SchedulePlan(state, now: now).changes == [place("b")])
    }

    @Test func policiesRefuseBadInput() throws {
        #expect(throws: PopError.self) { try SchedulingPolicy(count: 0) }
        #expect(throws: PopError.self) { try SchedulingPolicy(count: 10_001) }
        #expect(throws: PopError.self) { try MachineLabel.parse("zone") }
        #expect(throws: PopError.self) { try MachineLabel.parse("Zone=a") }
        #expect(throws: PopError.self) { try MachineLabel.parse("zone=a b") }
        #expect(try MachineLabel.parse(["zone=a", "disk=ssd"]) == ["zone": "a", "disk": "ssd"])
    }
}
