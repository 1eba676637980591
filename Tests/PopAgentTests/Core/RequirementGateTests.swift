import Foundation
import PopState
import Testing

@testable import PopAgent

/// The core's requirement gate and policies, driven event by event: an instance starts only once each requirement is
/// met somewhere in the fleet, and a running one follows its requirement's policy after the debounce.
@Suite struct RequirementGateTests {
    let f = CoreFixture()
    let app = try! ServiceName("app")
    let peers = WatchKey.subtree("/pop/services/db/machines")
    let instancePath = "/pop/services/db/machines/m0/instance"

    /// `app`, requiring `db` (interface redis) with this condition and policy and a 5 s debounce.
    func appSpec(_ condition: RequirementCondition = .healthy, policy: RequirementPolicy = .wait) -> ServiceSpec {
        var spec = f.spec(app)
        spec.template.requires = [
            "db": TemplateRequirement(interface: "redis", condition: condition, policy: policy, debounceMilliseconds: 5000)
        ]
        return spec
    }

    var dbSpec: ServiceSpec {
        var spec = f.spec(f.db)
        spec.template.provides = ["redis"]
        spec.template.options.append(TemplateOption(name: "port", type: .port, defaultValue: .int(6379)))
        spec.options["port"] = .int(6379)
        return spec
    }

    /// The db as the fleet has it: its instance on m0 in `state` (none for `nil`), m0 registered or not.
    func db(_ state: InstanceState?, registered: Bool = true) -> RequiredServiceView {
        var view = RequiredServiceView(spec: dbSpec)
        if let state {
            view.records[f.peer] = InstanceRecord(
                machine: f.peer, pid: 9, signature: dbSpec.signature, state: state, since: f.now)
        }
        if registered {
            view.machines[f.peer] = MachineRecord(
                id: f.peer, hostname: "host-b", addresses: ["10.0.0.2"], agentVersion: "test", started: f.now,
                agentPID: 1)
        }
        return view
    }

    func read(_ spec: ServiceSpec, _ view: RequiredServiceView) -> [ServiceName: ServiceSnapshot] {
        var snapshot = f.placed(spec)
        snapshot.requirements = [f.db: view]
        return [app: snapshot]
    }

    func at(_ seconds: Double) -> Date { f.now.addingTimeInterval(seconds) }

    func waitingRecord(_ spec: ServiceSpec, _ reason: String, since: Date? = nil) -> InstanceRecord {
        InstanceRecord(
            machine: f.me, pid: nil, signature: spec.signature, state: .waiting, since: since ?? f.now, lastError: reason)
    }

    func recovered(_ spec: ServiceSpec) -> AgentAction {
        .launch(
            InstanceLaunch(
                desired: DesiredInstance(service: app, signature: spec.signature, restartGeneration: 0),
                restart: .requirementRecovered(slot: "db"), spec: spec, packages: []))
    }

    // MARK: The start gate

    @Test func anInstanceWaitsUntilItsRequirementIsHealthyThenStarts() {
        var core = f.core()
        let spec = appSpec()
        #expect(
            f.registered(&core, snapshots: read(spec, db(.starting))) == [
                .note(.requirementsAwaited(app, ["db": "not healthy"])),
                .addWatches([peers], purpose: .rolloutPeers([app])),
                .publish([app: .create(waitingRecord(spec, "db: not healthy"))]),
            ])
        #expect(core.recordsPublished([app: .written], failure: nil) == [])
        // Once the watch on the db's instances is set, the app is read again (the db may have moved on meanwhile).
        #expect(core.watchesAdded(.rolloutPeers([app])) == [.readServices([app])])
        #expect(core.servicesRead(read(spec, db(.starting)), at: f.now) == [])
        // An instance record of the db wakes the app; healthy now, the app starts.
        #expect(core.storeChanged(f.change(.dataChanged, instancePath)) == [.readServices([app])])
        #expect(core.servicesRead(read(spec, db(.running)), at: at(1)) == [f.start(spec)])
    }

    @Test func startedIsEnoughForAStartedCondition() {
        var core = f.core()
        let spec = appSpec(.started)
        #expect(
            f.registered(&core, snapshots: read(spec, db(.starting))) == [
                f.start(spec), .addWatches([peers], purpose: .rolloutPeers([app])),
            ])
    }

    /// A core on a machine-local store, registered, whose first pass listed `app` and now reads it.
    func localCore() -> AgentStateMachine {
        var core = f.core(followsWholeNamespace: true)
        _ = core.start()
        _ = core.sessionOpened(isMachineLocal: true)
        _ = core.watchesAdded(.base)
        _ = core.machineRegistered(f.record)
        #expect(core.servicesListed(["app"]) == [.readServices([app])])
        return core
    }

    @Test func anInstanceOnAMachineThatIsDownMeetsNothing() {
        var core = localCore()
        let spec = appSpec()
        // The one subtree watch already follows the db: no watch of its own.
        #expect(
            core.servicesRead(read(spec, db(.running, registered: false)), at: f.now) == [
                .note(.requirementsAwaited(app, ["db": "not healthy"])),
                .publish([app: .create(waitingRecord(spec, "db: not healthy"))]),
            ])
        #expect(core.recordsPublished([app: .written], failure: nil) == [])
        // The machine's registration wakes the app.
        #expect(core.storeChanged(f.change(.created, "/pop/machines/m0")) == [.readServices([app])])
        #expect(core.servicesRead(read(spec, db(.running)), at: at(1)) == [f.start(spec)])
    }

    @Test func aMissingRequiredServiceIsNamed() {
        var core = localCore()
        let spec = appSpec()
        #expect(
            core.servicesRead(read(spec, RequiredServiceView()), at: f.now) == [
                .note(.requirementsAwaited(app, ["db": "service db missing"])),
                .publish([app: .create(waitingRecord(spec, "db: service db missing"))]),
            ])
    }

    // MARK: Policies

    /// A core running `spec` (started with `relations`) with its db healthy, its peers' watch set.
    func running(_ spec: ServiceSpec, relations: [String: String] = [:]) -> AgentStateMachine {
        var core = f.core()
        var status = f.status(spec)
        status.signature = spec.signature.with(relations: relations)
        #expect(
            f.registered(&core, snapshots: read(spec, db(.running)), supervised: [status]) == [
                .addWatches([peers], purpose: .rolloutPeers([app]))
            ])
        #expect(core.watchesAdded(.rolloutPeers([app])) == [.readServices([app])])
        #expect(core.servicesRead(read(spec, db(.running)), at: f.now) == [])
        return core
    }

    @Test func waitKeepsRunningWhenTheRequirementIsLost() {
        let spec = appSpec(policy: .wait)
        var core = running(spec)
        #expect(core.storeChanged(f.change(.deleted, instancePath)) == [.readServices([app])])
        #expect(core.servicesRead(read(spec, db(nil)), at: f.now) == [])
        #expect(core.storeChanged(f.change(.created, instancePath)) == [.readServices([app])])
        #expect(core.servicesRead(read(spec, db(.running)), at: at(60)) == [])
    }

    /// The db goes at `start` and comes back 2 s later, within the 5 s debounce: a recheck is scheduled for the end of
    /// the debounce, and when it fires there is nothing to do.
    func flap(_ core: inout AgentStateMachine, _ spec: ServiceSpec, from start: Double) {
        #expect(core.storeChanged(f.change(.deleted, instancePath)) == [.readServices([app])])
        #expect(
            core.servicesRead(read(spec, db(nil)), at: at(start)) == [
                .schedule(.recheckRequirements, after: .milliseconds(5001))
            ])
        _ = core.storeChanged(f.change(.created, instancePath))
        #expect(core.servicesRead(read(spec, db(.running)), at: at(start + 2)) == [])
        #expect(core.timerFired(.recheckRequirements) == [.readServices([app])])
        #expect(core.servicesRead(read(spec, db(.running)), at: at(start + 5)) == [])
    }

    /// The db goes at `start` and is still gone when the recheck fires, once the debounce has run out.
    func lose(_ core: inout AgentStateMachine, _ spec: ServiceSpec, from start: Double) {
        _ = core.storeChanged(f.change(.deleted, instancePath))
        #expect(
            core.servicesRead(read(spec, db(nil)), at: at(start)) == [
                .schedule(.recheckRequirements, after: .milliseconds(5001))
            ])
        #expect(core.timerFired(.recheckRequirements) == [.readServices([app])])
    }

    @Test func stopStopsAfterTheDebounceAndStartsOnceTheRequirementRecovers() {
        let spec = appSpec(policy: .stop)
        var core = running(spec)
        flap(&core, spec, from: 0)
        // Lost for longer than the debounce: stopped, and the record says why it waits.
        lose(&core, spec, from: 6)
        #expect(
            core.servicesRead(read(spec, db(nil)), at: at(11)) == [
                .note(.requirementPolicyApplied(app, slot: "db", .stop)),
                .note(.requirementsAwaited(app, ["db": "not healthy"])),
                .remove(app),
            ])
        #expect(
            core.supervisorReported(.removed(app)) == [
                .publish([app: .set(waitingRecord(spec, "db: not healthy", since: at(11)))])
            ])
        #expect(core.recordsPublished([app: .written], failure: nil) == [])
        #expect(core.instanceRemoved(app) == [.readServices([app])])
        #expect(core.servicesRead(read(spec, db(nil)), at: at(12)) == [])
        // The db is back: the app starts again.
        _ = core.storeChanged(f.change(.created, instancePath))
        #expect(core.servicesRead(read(spec, db(.running)), at: at(13)) == [f.start(spec)])
    }

    @Test func restartRestartsOnceTheRequirementHasBeenBackForTheDebounce() {
        let spec = appSpec(policy: .restart)
        var core = running(spec)
        // A flap shorter than the debounce restarts nothing.
        flap(&core, spec, from: 0)
        // Lost for longer than the debounce, the instance keeps running...
        lose(&core, spec, from: 10)
        #expect(core.servicesRead(read(spec, db(nil)), at: at(15)) == [])
        // ...and restarts once the requirement has been back for the debounce, once.
        _ = core.storeChanged(f.change(.created, instancePath))
        #expect(
            core.servicesRead(read(spec, db(.running)), at: at(20)) == [
                .schedule(.recheckRequirements, after: .milliseconds(5001))
            ])
        #expect(core.timerFired(.recheckRequirements) == [.readServices([app])])
        #expect(
            core.servicesRead(read(spec, db(.running)), at: at(25)) == [
                .note(.requirementPolicyApplied(app, slot: "db", .restart)), recovered(spec),
            ])
        _ = core.storeChanged(f.change(.dataChanged, instancePath))
        #expect(core.servicesRead(read(spec, db(.running)), at: at(40)) == [])
    }

    // MARK: Relation data

    @Test func aRequiredServiceMovingGivesTheDependentANewSignatureAndRestartsItUnderItsRollout() throws {
        var spec = appSpec()
        spec.template.command = ["app", "--redis={requires.db.addresses}", "{requires.db.port}"]
        let before = ["requires.db.addresses": "10.0.0.2:6379", "requires.db.port": "6379"]
        let after = ["requires.db.addresses": "10.0.0.3:6379", "requires.db.port": "6379"]
        let old = spec.signature.with(relations: before)
        let new = spec.signature.with(relations: after)
        #expect(old != new && old != spec.signature)
        var core = f.core()
        var status = f.status(spec)
        status.signature = old
        #expect(
            f.registered(&core, snapshots: read(spec, db(.running)), supervised: [status]) == [
                .addWatches([peers], purpose: .rolloutPeers([app]))
            ])
        _ = core.watchesAdded(.rolloutPeers([app]))
        #expect(core.servicesRead(read(spec, db(.running)), at: f.now) == [])
        let elsewhere = try MachineID("m2")
        var moved = RequiredServiceView(spec: dbSpec)
        moved.records[elsewhere] = InstanceRecord(
            machine: elsewhere, pid: 5, signature: dbSpec.signature, state: .running, since: f.now)
        moved.machines[elsewhere] = MachineRecord(
            id: elsewhere, hostname: "host-c", addresses: ["10.0.0.3"], agentVersion: "test", started: f.now, agentPID: 1)
        // Gone from m0 first: under the wait policy the instance keeps running what it runs.
        _ = core.storeChanged(f.change(.deleted, instancePath))
        #expect(core.servicesRead(read(spec, db(nil)), at: at(1)) == [])
        // Healthy on m2: a new signature, so a configuration restart, which asks its rollout first.
        _ = core.storeChanged(f.change(.created, "/pop/services/db/machines/m2/instance"))
        #expect(core.servicesRead(read(spec, moved), at: at(2)) == [.readRollouts([app])])
        #expect(
            core.rolloutsRead([app: RolloutView()]) == [
                .launch(
                    InstanceLaunch(
                        desired: DesiredInstance(service: app, signature: new, restartGeneration: 0),
                        restart: .configurationChanged(from: old, to: new), spec: spec, packages: [],
                        relations: after))
            ])
    }

    @Test func aRelationRestartWaitsForItsTurnInTheRollout() throws {
        var spec = appSpec()
        spec.template.command = ["app", "{requires.db.port}"]
        var core = running(spec, relations: ["requires.db.port": "6379"])
        var other = dbSpec
        other.options["port"] = .int(6380)
        var view = db(.running)
        view.spec = other
        view.records[f.peer]?.signature = other.signature
        let new = spec.signature.with(relations: ["requires.db.port": "6380"])
        let old = spec.signature.with(relations: ["requires.db.port": "6379"])
        _ = core.storeChanged(f.change(.dataChanged, "/pop/services/db"))
        #expect(core.servicesRead(read(spec, view), at: at(1)) == [.readRollouts([app])])
        // One machine at a time, and m0 (before this one) still runs the old signature: wait for it.
        let peerRunning = { (signature: ConfigSignature) in
            InstanceRecord(machine: f.peer, pid: 7, signature: signature, state: .running, since: f.now)
        }
        let rollout = RolloutView(
            rollout: Rollout(maxParallel: 1), placed: [f.peer, f.me], records: [f.peer: peerRunning(old)],
            registered: [f.peer])
        let appPeers = WatchKey.subtree("/pop/services/app/machines")
        #expect(
            core.rolloutsRead([app: rollout]) == [
                .note(.rolloutTurnAwaited(app, new)), .addWatches([appPeers], purpose: .rolloutPeers([app])),
            ])
        #expect(core.watchesAdded(.rolloutPeers([app])) == [.readServices([app])])
        #expect(core.servicesRead(read(spec, view), at: at(2)) == [.readRollouts([app])])
        #expect(core.rolloutsRead([app: rollout]) == [.note(.rolloutTurnAwaited(app, new))])
        // m0 runs the new signature: this machine's turn.
        var done = rollout
        done.records = [f.peer: peerRunning(new)]
        #expect(
            core.storeChanged(f.change(.dataChanged, "/pop/services/app/machines/m0/instance")) == [
                .readServices([app])
            ])
        #expect(core.servicesRead(read(spec, view), at: at(3)) == [.readRollouts([app])])
        #expect(
            core.rolloutsRead([app: done]) == [
                .dropWatches([appPeers]),
                .launch(
                    InstanceLaunch(
                        desired: DesiredInstance(service: app, signature: new, restartGeneration: 0),
                        restart: .configurationChanged(from: old, to: new), spec: spec, packages: [],
                        relations: ["requires.db.port": "6380"]))
            ])
    }

    @Test func relationDataListsEveryHealthyInstance() throws {
        var spec = appSpec()
        spec.template.command = ["app", "{requires.db.addresses}"]
        var view = db(.running)
        let other = try MachineID("m2")
        view.records[other] = InstanceRecord(machine: other, pid: 5, signature: dbSpec.signature, state: .running, since: f.now)
        view.machines[other] = MachineRecord(
            id: other, hostname: "host-c", addresses: ["fd00::3"], agentVersion: "test", started: f.now, agentPID: 1)
        let starting = try MachineID("m3")
        view.records[starting] = InstanceRecord(
            machine: starting, pid: 6, signature: dbSpec.signature, state: .starting, since: f.now)
        view.machines[starting] = MachineRecord(
            id: starting, hostname: "host-d", addresses: ["10.0.0.4"], agentVersion: "test", started: f.now, agentPID: 1)
        #expect(spec.relationValues([f.db: view]) == ["requires.db.addresses": "10.0.0.2:6379,[fd00::3]:6379"])
    }
}
