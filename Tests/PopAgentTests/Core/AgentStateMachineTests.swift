import Foundation
import PopState
import Testing

@testable import PopAgent

/// The agent's core, driven event by event as its driver would, with no store and no processes: each step compares
/// the actions returned with `==`.
@Suite struct AgentStateMachineTests {
    let f = CoreFixture()

    // MARK: Converging

    @Test func deployBeforeTheAgentStarts() {
        var core = f.core()
        let web = f.spec(f.web)
        #expect(core.start() == [.openSession])
        #expect(
            core.sessionOpened(isMachineLocal: false) == [
                .addWatches(
                    [.subtree("/pop/assignments/m1"), .node("/pop/machines"), .node("/pop/machines/m1")], purpose: .base)
            ])
        #expect(core.watchesAdded(.base) == [.registerMachine])
        #expect(core.machineRegistered(f.record) == [.reportReady(f.record), .listServices])
        #expect(core.servicesListed(["web"]) == [.addWatches(f.watches(of: f.web), purpose: .services)])
        #expect(core.watchesAdded(.services) == [.readServices([f.web])])
        #expect(core.servicesRead([f.web: f.placed(web)], at: f.now) == [f.start(web)])
        #expect(core.instanceLaunched(f.web, generation: 0) == [])
        // A command about to be spawned has no process yet: its record waits for the pid.
        #expect(core.supervisorReported(.changed(f.status(web, .starting, pid: nil))) == [])
        let running = f.status(web)
        #expect(core.supervisorReported(.changed(running)) == [.publish([f.web: .create(running.record(machine: f.me))])])
        #expect(core.recordsPublished([f.web: .written], failure: nil) == [])
    }

    @Test func deployAfterTheAgentStarted() {
        var core = f.core()
        let web = f.spec(f.web)
        #expect(f.registered(&core) == [])
        #expect(core.storeChanged(f.change(.childrenChanged, "/pop/services")) == [.listServices])
        #expect(core.servicesListed(["web"]) == [.addWatches(f.watches(of: f.web), purpose: .services)])
        #expect(core.watchesAdded(.services) == [.readServices([f.web])])
        #expect(core.servicesRead([f.web: f.notPlaced(web)], at: f.now) == [])
        #expect(core.storeChanged(f.change(.created, "/pop/services/web/machines/m1")) == [.readServices([f.web])])
        #expect(core.servicesRead([f.web: f.placed(web)], at: f.now) == [f.start(web)])
    }

    @Test func aServicePlacedHereIsFollowedThroughThisMachinesAssignments() {
        var core = f.core()
        let web = f.spec(f.web)
        #expect(f.registered(&core) == [])
        // The assignment appears with the placement and names the service: follow it (watch first), then read it,
        // with no listing of the assignments.
        #expect(
            core.storeChanged(f.change(.created, "/pop/assignments/m1/web")) == [
                .addWatches(f.watches(of: f.web), purpose: .services)
            ])
        #expect(core.watchesAdded(.services) == [.readServices([f.web])])
        #expect(core.servicesRead([f.web: f.placed(web)], at: f.now) == [f.start(web)])
        #expect(core.instanceLaunched(f.web, generation: 0) == [])
        let running = f.status(web)
        #expect(core.supervisorReported(.changed(running)) == [.publish([f.web: .create(running.record(machine: f.me))])])
        #expect(core.recordsPublished([f.web: .written], failure: nil) == [])
        // Another machine's assignment, or a write at an unknown place below this machine's, is nothing to it.
        #expect(core.storeChanged(f.change(.created, "/pop/assignments/m0/web")) == [])
        #expect(core.storeChanged(f.change(.created, "/pop/assignments/m1/web/x")) == [])
        // A set of the assignment announces a task request: the service is read again, and the request looked at.
        let key = TaskKey(service: f.web, id: try! TaskID("task-0000000001"))
        #expect(core.storeChanged(f.change(.dataChanged, "/pop/assignments/m1/web")) == [.readServices([f.web])])
        #expect(core.servicesRead([f.web: f.placed(web, tasks: ["task-0000000001"])], at: f.now) == [.readTasks([key])])
        #expect(core.tasksRead([key: .request(request(machines: [f.peer]), results: [:])], at: f.now) == [])
        // The assignment goes with the placement: the service's watches go, and its instance stops.
        #expect(
            core.storeChanged(f.change(.deleted, "/pop/assignments/m1/web")) == [
                .dropWatches(f.watches(of: f.web)), .readServices([f.web]),
            ])
        #expect(core.servicesRead([f.web: f.notPlaced(web)], at: f.now) == [.remove(f.web)])
    }

    @Test func aBurstOfChangesCostsOnePass() {
        var core = f.core()
        #expect(f.registered(&core) == [])
        #expect(core.storeChanged(f.change(.created, "/pop/services/web/machines/m1")) == [.readServices([f.web])])
        // While that read is in flight, more changes only gather.
        #expect(core.storeChanged(f.change(.created, "/pop/services/db/machines/m1")) == [])
        #expect(core.storeChanged(f.change(.dataChanged, "/pop/services/web")) == [])
        #expect(core.storeChanged(f.change(.dataChanged, "/pop/services/db/packages")) == [])
        // Another machine's placement does not concern this one.
        #expect(core.storeChanged(f.change(.created, "/pop/services/db/machines/m0")) == [])
        #expect(core.servicesRead([f.web: f.placed(f.spec(f.web))], at: f.now) == [f.start(f.spec(f.web)), .readServices([f.db, f.web])])
    }

    @Test func eventsFedInABurstShareOnePassAndOneBatch() {
        var core = f.core()
        let web = f.spec(f.web)
        let db = f.spec(f.db)
        _ = f.registered(&core, running: [db, web], supervised: [f.status(db), f.status(web)])
        core.beginBurst()
        let crashed = f.status(web, .backoff, pid: nil, restarts: 1)
        #expect(core.supervisorReported(.changed(crashed)) == [])
        #expect(core.storeChanged(f.change(.dataChanged, "/pop/services/db/packages")) == [])
        let stopped = f.status(db, .stopping)
        #expect(core.supervisorReported(.changed(stopped)) == [])
        #expect(core.storeChanged(f.change(.dataChanged, "/pop/services/web/packages")) == [])
        #expect(
            core.endBurst() == [
                .readServices([f.db, f.web]),
                .publish([f.web: .set(crashed.record(machine: f.me)), f.db: .set(stopped.record(machine: f.me))]),
            ])
    }

    @Test func aCrashIsTheSupervisorsToRestartAndOnlyItsRecordChanges() {
        var core = f.core()
        let web = f.spec(f.web)
        #expect(f.registered(&core, running: [web]) == [f.start(web)])
        _ = core.instanceLaunched(f.web, generation: 0)
        let first = f.status(web, pid: 100)
        f.publishAll(&core, core.supervisorReported(.changed(first)))
        let crashed = f.status(web, .backoff, pid: nil, restarts: 1)
        #expect(core.supervisorReported(.changed(crashed)) == [.publish([f.web: .set(crashed.record(machine: f.me))])])
        // Reports while that batch is in flight coalesce: only the latest is written next.
        #expect(core.supervisorReported(.changed(f.status(web, .starting, pid: 101, restarts: 1))) == [])
        let again = f.status(web, pid: 101, restarts: 1)
        #expect(core.supervisorReported(.changed(again)) == [])
        #expect(
            core.recordsPublished([f.web: .written], failure: nil) == [.publish([f.web: .set(again.record(machine: f.me))])])
        // Crashing until FATAL starts nothing either; `pop restart` does.
        #expect(core.recordsPublished([f.web: .written], failure: nil) == [])
        let fatal = f.status(web, .fatal, pid: nil, restarts: 5)
        #expect(core.supervisorReported(.changed(fatal)) == [.publish([f.web: .set(fatal.record(machine: f.me))])])
        #expect(core.recordsPublished([f.web: .written], failure: nil) == [])
        #expect(core.storeChanged(f.change(.dataChanged, "/pop/services/web/machines/m1")) == [.readServices([f.web])])
        #expect(core.servicesRead([f.web: f.placed(web, generation: 1)], at: f.now) == [f.restart(web, generation: 1)])
    }

    @Test func aConfigurationChangeRestartsTheInstance() {
        var core = f.core()
        let web = f.spec(f.web)
        #expect(f.registered(&core, running: [web], supervised: [f.status(web)]) == [])
        let changed = f.spec(f.web, greeting: "bonjour")
        #expect(core.storeChanged(f.change(.dataChanged, "/pop/services/web")) == [.readServices([f.web])])
        #expect(core.servicesRead([f.web: f.placed(changed)], at: f.now) == [.readRollouts([f.web])])
        #expect(core.rolloutsRead([f.web: RolloutView()]) == [f.restart(web, into: changed)])
    }

    @Test func aRolloutRestartWaitsForItsPeers() {
        var core = f.core()
        let web = f.spec(f.web)
        #expect(f.registered(&core, running: [web], supervised: [f.status(web)]) == [])
        let changed = f.spec(f.web, greeting: "bonjour")
        let peerRecord = { (signature: ConfigSignature) in
            InstanceRecord(machine: f.peer, pid: 7, signature: signature, state: .running, since: f.now)
        }
        let waiting = RolloutView(
            rollout: Rollout(maxParallel: 1), placed: [f.peer, f.me], records: [f.peer: peerRecord(web.signature)],
            registered: [f.peer])
        let peers = WatchKey.subtree("/pop/services/web/machines")
        _ = core.storeChanged(f.change(.dataChanged, "/pop/services/web"))
        #expect(core.servicesRead([f.web: f.placed(changed)], at: f.now) == [.readRollouts([f.web])])
        // m0 comes first and does not run the new signature yet: wait, following the peers' records.
        #expect(
            core.rolloutsRead([f.web: waiting]) == [
                .note(.rolloutTurnAwaited(f.web, changed.signature)), .addWatches([peers], purpose: .rolloutPeers([f.web])),
            ])
        // Once the watch is set, the service is read again (the peer may have moved on meanwhile).
        #expect(core.watchesAdded(.rolloutPeers([f.web])) == [.readServices([f.web])])
        #expect(core.servicesRead([f.web: f.placed(changed)], at: f.now) == [.readRollouts([f.web])])
        #expect(core.rolloutsRead([f.web: waiting]) == [.note(.rolloutTurnAwaited(f.web, changed.signature))])
        // Records of services that do not wait reach nothing; the peer's record wakes the waiting service.
        #expect(core.storeChanged(f.change(.dataChanged, "/pop/services/db/machines/m0/instance")) == [])
        #expect(
            core.storeChanged(f.change(.dataChanged, "/pop/services/web/machines/m0/instance")) == [
                .readServices([f.web])
            ])
        #expect(core.servicesRead([f.web: f.placed(changed)], at: f.now) == [.readRollouts([f.web])])
        var done = waiting
        done.records = [f.peer: peerRecord(changed.signature)]
        #expect(core.rolloutsRead([f.web: done]) == [.dropWatches([peers]), f.restart(web, into: changed)])
        // Nothing waits now: machines coming and going wake nothing.
        #expect(core.storeChanged(f.change(.childrenChanged, "/pop/machines")) == [])
    }

    @Test func onAMachineLocalStoreARolloutWaitsWithoutWatchesOfItsOwn() {
        var core = f.core(followsWholeNamespace: true)
        let web = f.spec(f.web)
        _ = core.instanceAdopted(f.status(web), generation: 0)
        _ = core.start()
        #expect(core.sessionOpened(isMachineLocal: false) == [.addWatches([.subtree("/pop")], purpose: .base)])
        _ = core.watchesAdded(.base)
        _ = core.machineRegistered(f.record)
        #expect(core.servicesListed(["web"]) == [.readServices([f.web])])
        let changed = f.spec(f.web, greeting: "bonjour")
        #expect(core.servicesRead([f.web: f.placed(changed)], at: f.now) == [.readRollouts([f.web])])
        let waiting = RolloutView(rollout: Rollout(maxParallel: 1), placed: [f.peer, f.me], registered: [f.peer])
        // The one subtree watch already sees the peers' records.
        #expect(core.rolloutsRead([f.web: waiting]) == [.note(.rolloutTurnAwaited(f.web, changed.signature))])
        #expect(
            core.storeChanged(f.change(.created, "/pop/services/web/machines/m0/instance")) == [.readServices([f.web])])
    }

    @Test func aMachineGoingAwayWakesAWaitingRestart() {
        var core = f.core()
        let web = f.spec(f.web)
        _ = f.registered(&core, running: [web], supervised: [f.status(web)])
        let changed = f.spec(f.web, greeting: "bonjour")
        _ = core.storeChanged(f.change(.dataChanged, "/pop/services/web"))
        _ = core.servicesRead([f.web: f.placed(changed)], at: f.now)
        let waiting = RolloutView(rollout: Rollout(maxParallel: 1), placed: [f.peer, f.me], registered: [f.peer])
        _ = core.rolloutsRead([f.web: waiting])
        _ = core.watchesAdded(.rolloutPeers([f.web]))
        _ = core.servicesRead([f.web: f.placed(changed)], at: f.now)
        _ = core.rolloutsRead([f.web: waiting])
        #expect(core.storeChanged(f.change(.dataChanged, "/pop/machines/m0")) == [])
        #expect(core.storeChanged(f.change(.deleted, "/pop/machines/m0")) == [.readServices([f.web])])
    }

    // MARK: Sessions

    @Test func anExpiredSessionIsReplacedWithoutStartingAnythingTwice() {
        var core = f.core()
        let web = f.spec(f.web)
        #expect(f.registered(&core, running: [web], supervised: [f.status(web)]) == [])
        let expired = PopError(.storeUnreachable, "The store session expired.")
        #expect(
            core.sessionChanged(.expired) == [
                .endSession, .note(.sessionEnded(expired, retryAfter: .milliseconds(200))),
                .schedule(.reopenSession, after: .milliseconds(200)),
            ])
        // The supervisor carries on between sessions; its reports wait for the next one.
        let restarted = f.status(web, pid: 101, restarts: 1)
        #expect(core.supervisorReported(.changed(restarted)) == [])
        #expect(core.timerFired(.reopenSession) == [.openSession])
        _ = core.sessionOpened(isMachineLocal: false)
        #expect(core.watchesAdded(.base) == [.registerMachine])
        // The dead session's registration is still there, naming this agent: replace it.
        let holder = RegistrationHolder(record: f.record, version: 3, alive: true)
        #expect(
            core.registrationConflict(ours: f.record, holder: holder) == [
                .note(.replacingStaleRegistration(pid: 4242)), .replaceStaleRegistration(version: 3),
            ])
        #expect(core.staleRegistrationRemoved() == [.registerMachine])
        // Registered again: no second ready, every record published afresh, everything read.
        #expect(
            core.machineRegistered(f.record) == [
                .listServices, .publish([f.web: .create(restarted.record(machine: f.me))]),
            ])
        // The replaced registration's deletion echoes; it does not end the new session.
        #expect(core.storeChanged(f.change(.deleted, "/pop/machines/m1")) == [])
        #expect(core.storeChanged(f.change(.created, "/pop/machines/m1")) == [])
        #expect(core.servicesListed(["web"]) == [.addWatches(f.watches(of: f.web), purpose: .services)])
        #expect(core.watchesAdded(.services) == [.readServices([f.web])])
        #expect(core.servicesRead([f.web: f.placed(web)], at: f.now) == [], "the running instance is not started again")
        // Someone deleting this session's registration ends the session.
        let deleted = PopError(.conflict, "This machine's registration was deleted.")
        #expect(
            core.storeChanged(f.change(.deleted, "/pop/machines/m1")) == [
                .endSession, .note(.sessionEnded(deleted, retryAfter: .milliseconds(200))),
                .schedule(.reopenSession, after: .milliseconds(200)),
            ])
    }

    @Test func failuresInARowBackOff() {
        var core = f.core()
        _ = f.registered(&core)
        let error = PopError(.storeUnreachable, "No ZooKeeper server answered.")
        var delays: [Duration] = []
        _ = core.sessionChanged(.closed)
        for _ in 0..<8 {
            #expect(core.timerFired(.reopenSession) == [.openSession])
            let actions = core.sessionFailed(error)
            #expect(actions.first == .endSession)
            #expect(actions.dropFirst().first == .note(.sessionEnded(error, retryAfter: core.retryDelay(core.failures))))
            if case .schedule(.reopenSession, let delay) = actions.last { delays.append(delay) }
        }
        #expect(delays == [400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000].map { .milliseconds($0) })
    }

    @Test func aRegistrationHeldByALiveAgentIsWaitedOut() {
        var core = f.core()
        _ = core.start()
        _ = core.sessionOpened(isMachineLocal: false)
        _ = core.watchesAdded(.base)
        var other = f.record
        other.hostname = "host-b"
        other.agentPID = 77
        #expect(
            core.registrationConflict(ours: f.record, holder: RegistrationHolder(record: other, version: 0, alive: false))
                == [.note(.registrationHeldElsewhere(pid: 77, host: "host-b")), .awaitRegistrationRelease])
        #expect(core.registrationReleased() == [.registerMachine])
        // Gone by the time it was looked at: register again at once.
        #expect(core.registrationConflict(ours: f.record, holder: nil) == [.registerMachine])
        // A live agent of this host with another pid is waited out too.
        other = f.record
        other.agentPID = 77
        #expect(
            core.registrationConflict(ours: f.record, holder: RegistrationHolder(record: other, version: 0, alive: true))
                == [.note(.registrationHeldElsewhere(pid: 77, host: "host-a")), .awaitRegistrationRelease])
    }

    @Test func theFirstSessionFailingStopsTheAgent() {
        var core = f.core()
        _ = core.start()
        let error = PopError(.notInitialized, "pop's namespace /pop does not exist.")
        #expect(core.sessionFailed(error) == [.endSession, .fail(error)])
        var registering = f.core()
        _ = registering.start()
        _ = registering.sessionOpened(isMachineLocal: false)
        _ = registering.watchesAdded(.base)
        #expect(registering.sessionFailed(error) == [.endSession, .fail(error)])
    }

    @Test func aReconnectReadsEverythingAgain() {
        var core = f.core()
        #expect(f.registered(&core) == [])
        #expect(core.sessionChanged(.connected) == [])
        #expect(core.sessionChanged(.disconnected) == [.note(.storeUnreachable)])
        #expect(core.sessionChanged(.reconnected) == [.note(.storeReachableAgain), .listServices])
    }

    @Test func onAMachineLocalStoreOneSubtreeWatchFollowsEverything() {
        var core = f.core(followsWholeNamespace: nil)
        _ = core.start()
        #expect(core.sessionOpened(isMachineLocal: true) == [.addWatches([.subtree("/pop")], purpose: .base)])
        _ = core.watchesAdded(.base)
        _ = core.machineRegistered(f.record)
        #expect(core.servicesListed(["web", "db"]) == [.readServices([f.db, f.web])])
        // Other machines' records are seen, and ignored.
        #expect(core.servicesRead([:], at: f.now) == [])
        #expect(core.storeChanged(f.change(.created, "/pop/services/web/machines/m0/instance")) == [])
        #expect(core.storeChanged(f.change(.dataChanged, "/pop/machines/m0")) == [])
    }

    // MARK: Adoption

    @Test func anAdoptedInstanceIsKeptAndPublished() {
        var core = f.core()
        let web = f.spec(f.web)
        let adopted = f.status(web, pid: 555)
        #expect(core.instanceAdopted(adopted, generation: 0) == [])
        _ = core.start()
        _ = core.sessionOpened(isMachineLocal: false)
        _ = core.watchesAdded(.base)
        #expect(
            core.machineRegistered(f.record) == [
                .reportReady(f.record), .listServices, .publish([f.web: .create(adopted.record(machine: f.me))]),
            ])
        _ = core.servicesListed(["web"])
        _ = core.watchesAdded(.services)
        #expect(core.servicesRead([f.web: f.placed(web)], at: f.now) == [], "not started again")
    }

    @Test func anAdoptedInstanceIsRestartedForARestartAskedWhileNoAgentRan() {
        var core = f.core()
        let web = f.spec(f.web)
        _ = core.instanceAdopted(f.status(web), generation: 1)
        #expect(f.registered(&core, snapshots: [f.web: f.placed(web, generation: 1)]) == [])
        _ = core.storeChanged(f.change(.dataChanged, "/pop/services/web/machines/m1"))
        #expect(core.servicesRead([f.web: f.placed(web, generation: 2)], at: f.now) == [f.restart(web, generation: 2)])
    }

    @Test func anAdoptedInstanceNoLongerPlacedIsRemoved() {
        var core = f.core()
        let web = f.spec(f.web)
        #expect(
            f.registered(&core, snapshots: [f.web: f.notPlaced(web)], supervised: [f.status(web)]) == [.remove(f.web)])
    }

    // MARK: Malformed data

    @Test func aDamagedSpecBesideHealthyOnes() {
        var core = f.core()
        let web = f.spec(f.web)
        let bad = try! ServiceName("bad")
        let malformed = PopError(.corruptState, "The node /pop/services/bad holds malformed data.")
        _ = f.registered(&core)
        _ = core.storeChanged(f.change(.childrenChanged, "/pop/services"))
        _ = core.servicesListed(["bad", "web"])
        #expect(core.watchesAdded(.services) == [.readServices([bad, f.web])])
        let damaged = ServiceSnapshot(
            spec: .failure(malformed), signature: ConfigSignature(hex: "ab"),
            placement: .success(Placement(deployed: f.now)), packages: [])
        let fatal = InstanceRecord(
            machine: f.me, pid: nil, signature: ConfigSignature(hex: ""), state: .fatal, since: f.now,
            lastError: malformed.message)
        #expect(
            core.servicesRead([bad: damaged, f.web: f.placed(web)], at: f.now) == [
                .note(.serviceUnusable(bad, malformed.message)), f.start(web), .publish([bad: .create(fatal)]),
            ])
        #expect(core.recordsPublished([bad: .written], failure: nil) == [])
        // Read again, still damaged: nothing new to say.
        _ = core.storeChanged(f.change(.dataChanged, "/pop/services/bad"))
        #expect(core.servicesRead([bad: damaged], at: f.now.addingTimeInterval(5)) == [])
        // Fixed: its record goes (nothing runs yet) and the instance starts.
        _ = core.storeChanged(f.change(.dataChanged, "/pop/services/bad"))
        let fixed = f.spec(bad)
        #expect(core.servicesRead([bad: f.placed(fixed)], at: f.now) == [f.start(fixed), .publish([bad: .delete])])
    }

    @Test func aDamagedSpecLeavesItsRunningInstanceAlone() {
        var core = f.core()
        let web = f.spec(f.web)
        let running = f.status(web)
        _ = f.registered(&core, running: [web], supervised: [running])
        let malformed = PopError(.corruptState, "The node /pop/services/web/machines/m1 holds malformed data.")
        _ = core.storeChanged(f.change(.dataChanged, "/pop/services/web/machines/m1"))
        var record = running.record(machine: f.me)
        record.lastError = malformed.message
        let damaged = ServiceSnapshot(
            spec: .success(web), signature: web.signature, placement: .failure(malformed), packages: [])
        #expect(
            core.servicesRead([f.web: damaged], at: f.now) == [
                .note(.serviceUnusable(f.web, malformed.message)), .publish([f.web: .set(record)]),
            ])
    }

    @Test func aSpecThatCannotStartIsTheInstancesProblemUntilReadAgain() {
        var core = f.core()
        let web = f.spec(f.web)
        #expect(f.registered(&core, running: [web]) == [f.start(web)])
        let reason = "The placeholder {nope} is unknown."
        let fatal = InstanceRecord(
            machine: f.me, pid: nil, signature: web.signature, state: .fatal, since: f.now, lastError: reason)
        #expect(core.instanceLaunchFailed(f.web, reason: reason, at: f.now) == [.publish([f.web: .create(fatal)])])
        #expect(core.recordsPublished([f.web: .written], failure: nil) == [])
        // The next pass leaves it alone until it is read again; then it is tried again.
        _ = core.storeChanged(f.change(.dataChanged, "/pop/services/web/packages"))
        #expect(core.servicesRead([f.web: f.placed(web)], at: f.now) == [f.start(web), .publish([f.web: .delete])])
    }

    // MARK: Undeploy

    @Test func redeployingWhileAStopIsInFlightWaitsForTheStop() {
        var core = f.core()
        let web = f.spec(f.web)
        let running = f.status(web)
        _ = f.registered(&core, running: [web], supervised: [running])
        #expect(core.storeChanged(f.change(.deleted, "/pop/services/web/machines/m1")) == [.readServices([f.web])])
        #expect(core.servicesRead([f.web: f.notPlaced(web)], at: f.now) == [.remove(f.web)])
        // Deployed again before the stop finished: the planner leaves the service alone meanwhile.
        #expect(core.storeChanged(f.change(.created, "/pop/services/web/machines/m1")) == [.readServices([f.web])])
        #expect(core.servicesRead([f.web: f.placed(web)], at: f.now) == [])
        #expect(core.supervisorReported(.removed(f.web)) == [.publish([f.web: .delete])])
        // Its own deletion's echo is not someone else's.
        #expect(core.storeChanged(f.change(.deleted, "/pop/services/web/machines/m1/instance")) == [])
        #expect(core.instanceRemoved(f.web) == [.readServices([f.web])])
        #expect(core.servicesRead([f.web: f.placed(web)], at: f.now) == [f.start(web)])
    }

    // MARK: Records

    @Test func aRecordDeletedBySomeoneElseIsWrittenAgain() {
        var core = f.core()
        let web = f.spec(f.web)
        let running = f.status(web)
        _ = f.registered(&core, running: [web], supervised: [running])
        #expect(
            core.storeChanged(f.change(.deleted, "/pop/services/web/machines/m1/instance")) == [
                .publish([f.web: .create(running.record(machine: f.me))])
            ])
        // Deleted again while that write is in flight: written once more after it.
        #expect(core.storeChanged(f.change(.deleted, "/pop/services/web/machines/m1/instance")) == [])
        #expect(
            core.recordsPublished([f.web: .written], failure: nil) == [
                .publish([f.web: .create(running.record(machine: f.me))])
            ])
        #expect(core.recordsPublished([f.web: .written], failure: nil) == [])
    }

    @Test func aFailedPublishIsRetriedAfterAPause() {
        var core = f.core()
        let web = f.spec(f.web)
        let running = f.status(web)
        _ = core.instanceAdopted(running, generation: 0)
        _ = core.start()
        _ = core.sessionOpened(isMachineLocal: false)
        _ = core.watchesAdded(.base)
        let batch: [ServiceName: RecordWrite] = [f.web: .create(running.record(machine: f.me))]
        #expect(core.machineRegistered(f.record) == [.reportReady(f.record), .listServices, .publish(batch)])
        let error = PopError(.storeUnreachable, "The store cannot be reached.")
        #expect(
            core.recordsPublished([:], failure: error) == [
                .note(.publishFailed(error)), .schedule(.resumePublishing, after: .seconds(1)),
            ])
        #expect(core.timerFired(.resumePublishing) == [.publish(batch)])
    }

    @Test func aFailedPassKeepsItsChangesAndIsRetriedAfterAPause() {
        var core = f.core()
        _ = f.registered(&core)
        _ = core.storeChanged(f.change(.created, "/pop/services/web/machines/m1"))
        let error = PopError(.storeUnreachable, "The store cannot be reached.")
        #expect(
            core.passFailed(error) == [.note(.passFailed(error)), .schedule(.resumePasses, after: .seconds(1))])
        #expect(core.storeChanged(f.change(.created, "/pop/services/db/machines/m1")) == [])
        #expect(core.timerFired(.resumePasses) == [.readServices([f.db, f.web])])
    }

    @Test func watchesThatCouldNotBeSetAreSetAgain() {
        var core = f.core()
        let web = f.spec(f.web)
        _ = f.registered(&core)
        _ = core.storeChanged(f.change(.childrenChanged, "/pop/services"))
        #expect(core.servicesListed(["web"]) == [.addWatches(f.watches(of: f.web), purpose: .services)])
        let error = PopError(.storeUnreachable, "The store cannot be reached.")
        #expect(core.passFailed(error) == [.note(.passFailed(error)), .schedule(.resumePasses, after: .seconds(1))])
        #expect(core.timerFired(.resumePasses) == [.listServices])
        #expect(core.servicesListed(["web"]) == [.addWatches(f.watches(of: f.web), purpose: .services)])
        #expect(core.watchesAdded(.services) == [.readServices([f.web])])
        #expect(core.servicesRead([f.web: f.placed(web)], at: f.now) == [f.start(web)])
        // Followed from now on: listing it again sets nothing.
        _ = core.storeChanged(f.change(.childrenChanged, "/pop/services"))
        #expect(core.servicesListed(["web"]) == [.readServices([])])
        #expect(core.servicesRead([:], at: f.now) == [])
        // Removed: its watches are dropped and it is read once more.
        _ = core.storeChanged(f.change(.childrenChanged, "/pop/services"))
        #expect(core.servicesListed([]) == [.dropWatches(f.watches(of: f.web)), .readServices([f.web])])
    }

    @Test func failedResultWritesAreRetriedAfterAPause() {
        var core = f.core()
        let web = f.spec(f.web)
        _ = f.registered(&core, running: [web], supervised: [f.status(web)])
        let key = TaskKey(service: f.web, id: try! TaskID("task-0000000001"))
        _ = core.storeChanged(f.change(.created, "/pop/services/web/tasks/task-0000000001"))
        _ = core.servicesRead([f.web: f.placed(web, tasks: ["task-0000000001"])], at: f.now)
        let launched = core.tasksRead([key: .request(request(machines: [f.me]), results: [:])], at: f.now)
        #expect(launched.count == 1)
        let running = TaskResult(machine: f.me, state: .running, started: f.now)
        #expect(core.taskStarted(key, running) == [.writeTaskResults([key: running])])
        let error = PopError(.storeUnreachable, "The store cannot be reached.")
        #expect(
            core.taskResultsWritten([:], failure: error) == [
                .note(.resultWritesFailed(error)), .schedule(.resumeResultWrites, after: .seconds(1)),
            ])
        let finished = TaskResult(machine: f.me, state: .succeeded, exitCode: 0, started: f.now, finished: f.now)
        #expect(core.taskFinished(key, finished) == [], "waits for the pause")
        #expect(core.timerFired(.resumeResultWrites) == [.writeTaskResults([key: finished])])
    }

    @Test func shuttingDownEndsWhateverSessionThereIs() {
        var idle = f.core()
        #expect(idle.shutdown() == [])
        var opening = f.core()
        _ = opening.start()
        #expect(opening.shutdown() == [.endSession])
        var registered = f.core()
        _ = f.registered(&registered)
        #expect(registered.shutdown() == [.endSession])
        var between = f.core()
        _ = f.registered(&between)
        _ = between.sessionChanged(.expired)
        #expect(between.shutdown() == [])
    }

    // MARK: Tasks

    func request(machines: [MachineID], maxParallel: Int? = nil, created: Date? = nil) -> TaskRequest {
        TaskRequest(
            task: "show", arguments: ["x"], machines: machines, maxParallel: maxParallel, created: created ?? f.now,
            timeoutMilliseconds: 20_000)
    }

    @Test func aTaskRequestRunsAndItsResultsAreWrittenInOrder() {
        var core = f.core()
        let web = f.spec(f.web)
        _ = f.registered(&core, running: [web], supervised: [f.status(web)])
        let key = TaskKey(service: f.web, id: try! TaskID("task-0000000001"))
        #expect(
            core.storeChanged(f.change(.created, "/pop/services/web/tasks/task-0000000001")) == [.readServices([f.web])])
        #expect(core.servicesRead([f.web: f.placed(web, tasks: ["task-0000000001"])], at: f.now) == [.readTasks([key])])
        let request = request(machines: [f.me])
        let placed = PlacedService(spec: web, signature: web.signature, packages: [], restartGeneration: 0)
        #expect(
            core.tasksRead([key: .request(request, results: [:])], at: f.now) == [
                .runTask(TaskLaunch(key: key, request: request, service: placed))
            ])
        let running = TaskResult(machine: f.me, state: .running, started: f.now)
        let finished = TaskResult(machine: f.me, state: .succeeded, exitCode: 0, output: "x\n", started: f.now, finished: f.now)
        #expect(core.taskStarted(key, running) == [.writeTaskResults([key: running])])
        #expect(core.taskFinished(key, finished) == [])
        #expect(core.taskResultsWritten([key: running], failure: nil) == [.writeTaskResults([key: finished])])
        #expect(core.taskResultsWritten([key: finished], failure: nil) == [])
        // The result's echo looks at the request again, which is answered: nothing to do.
        #expect(
            core.storeChanged(f.change(.created, "/pop/services/web/tasks/task-0000000001/m1")) == [
                .readServices([f.web])
            ])
        #expect(core.servicesRead([f.web: f.placed(web, tasks: ["task-0000000001"])], at: f.now) == [])
    }

    @Test func aTaskWaitsForItsTurnAndForTheInstallToFinish() {
        var core = f.core()
        let web = f.spec(f.web)
        _ = f.registered(&core, running: [web], supervised: [f.status(web, .installing)])
        let key = TaskKey(service: f.web, id: try! TaskID("task-0000000001"))
        let request = request(machines: [f.peer, f.me], maxParallel: 1)
        _ = core.storeChanged(f.change(.created, "/pop/services/web/tasks/task-0000000001"))
        _ = core.servicesRead([f.web: f.placed(web, tasks: ["task-0000000001"])], at: f.now)
        // While it waits, the agent follows the service's task list (then looks at the request again, in case m0
        // answered before the watch was set).
        let taskList = WatchKey.subtree("/pop/services/web/tasks")
        #expect(
            core.tasksRead([key: .request(request, results: [:])], at: f.now) == [
                .note(.taskWaits(key, unfinishedBefore: 1)), .addWatches([taskList], purpose: .taskPeers([key])),
            ])
        #expect(core.watchesAdded(.taskPeers([key])) == [.readServices([f.web])])
        #expect(core.servicesRead([f.web: f.placed(web, tasks: ["task-0000000001"])], at: f.now) == [.readTasks([key])])
        #expect(
            core.tasksRead([key: .request(request, results: [:])], at: f.now) == [
                .note(.taskWaits(key, unfinishedBefore: 1))
            ])
        // m0 finished: now only the install holds it back.
        _ = core.storeChanged(f.change(.created, "/pop/services/web/tasks/task-0000000001/m0"))
        #expect(core.servicesRead([f.web: f.placed(web, tasks: ["task-0000000001"])], at: f.now) == [.readTasks([key])])
        #expect(core.tasksRead([key: .request(request, results: [f.peer: .succeeded])], at: f.now) == [])
        // The install finished: the waiting request is looked at again.
        let running = f.status(web)
        #expect(
            core.supervisorReported(.changed(running)) == [
                .readServices([f.web]), .publish([f.web: .set(running.record(machine: f.me))]),
            ])
        #expect(core.servicesRead([f.web: f.placed(web, tasks: ["task-0000000001"])], at: f.now) == [.readTasks([key])])
        let placed = PlacedService(spec: web, signature: web.signature, packages: [], restartGeneration: 0)
        #expect(
            core.tasksRead([key: .request(request, results: [f.peer: .succeeded])], at: f.now) == [
                .runTask(TaskLaunch(key: key, request: request, service: placed)), .dropWatches([taskList]),
            ])
    }

    @Test func requestsNotForThisMachineOrExpiredOrLeftRunningAreNotRun() {
        var core = f.core()
        let web = f.spec(f.web)
        let ids = (1...4).map { try! TaskID(String(format: "task-%010d", $0)) }
        let keys = ids.map { TaskKey(service: f.web, id: $0) }
        // A full pass looks at every request of a service placed here.
        #expect(
            f.registered(
                &core, snapshots: [f.web: f.placed(web, tasks: ids.map(\.rawValue))], supervised: [f.status(web)])
                == [.readTasks(keys)])
        let unknown = TaskResult(
            machine: f.me, state: .failed, started: f.now, finished: f.now,
            error: "The agent restarted while the task ran; its outcome is unknown.")
        #expect(
            core.tasksRead(
                [
                    keys[0]: .request(request(machines: [f.peer]), results: [:]),
                    keys[1]: .request(request(machines: [f.me], created: f.now.addingTimeInterval(-60)), results: [:]),
                    keys[2]: .request(request(machines: [f.me]), results: [f.me: .running]),
                    keys[3]: .malformed("not JSON"),
                ], at: f.now) == [
                    .note(.malformedTaskRequest(keys[3], "not JSON")), .writeTaskResults([keys[2]: unknown]),
                ])
        // None is looked at again on the next full pass.
        _ = core.sessionChanged(.reconnected)
        #expect(core.servicesListed(["web"]) == [.readServices([f.web])])
        #expect(core.servicesRead([f.web: f.placed(web, tasks: ids.map(\.rawValue))], at: f.now) == [])
    }

    /// A core whose `install` task of web runs here, and the recording of what it installed.
    func installRunning() throws -> (AgentStateMachine, TaskKey, PackageRecording) {
        var core = f.core()
        let web = f.spec(f.web)
        _ = f.registered(&core, running: [web], supervised: [f.status(web)])
        let key = TaskKey(service: f.web, id: try TaskID("task-0000000001"))
        let request = TaskRequest(
            task: "install", arguments: ["lxml"], machines: [f.me], created: f.now, timeoutMilliseconds: 20_000)
        _ = core.storeChanged(f.change(.created, "/pop/services/web/tasks/task-0000000001"))
        _ = core.servicesRead([f.web: f.placed(web, tasks: ["task-0000000001"])], at: f.now)
        #expect(core.tasksRead([key: .request(request, results: [:])], at: f.now).count == 1)
        let result = TaskResult(machine: f.me, state: .succeeded, exitCode: 0, started: f.now, finished: f.now)
        let recording = PackageRecording(
            packages: ["lxml"],
            blueprint: try InstanceBlueprint(
                spec: web, machine: f.me, directory: "/srv/web", packages: [], baseEnvironment: [:]),
            spec: web, result: result)
        return (core, key, recording)
    }

    @Test func installedPackagesWaitForASessionToBeRecorded() throws {
        var (core, key, recording) = try installRunning()
        _ = core.sessionChanged(.expired)
        #expect(core.packagesInstalled(key, recording) == [], "no session: nothing to record in yet")
        #expect(core.timerFired(.reopenSession) == [.openSession])
        _ = core.sessionOpened(isMachineLocal: false)
        _ = core.watchesAdded(.base)
        let registered = core.machineRegistered(f.record)
        #expect(registered.last == .recordPackages(key, recording))
        let unreachable = PopError(.storeUnreachable, "The store cannot be reached.")
        #expect(
            core.packagesNotRecorded(key, unreachable) == [
                .note(.recordingFailed(key, unreachable)), .schedule(.resumeRecordings, after: .seconds(1)),
            ])
        #expect(core.timerFired(.resumeRecordings) == [.recordPackages(key, recording)])
        #expect(
            core.packagesRecorded(key, ["lxml"]) == [
                .markEnvironmentComplete(recording, packages: ["lxml"]), .writeTaskResults([key: recording.result]),
            ])
    }

    @Test func packagesThatCannotBeRecordedFailTheTask() throws {
        var (core, key, recording) = try installRunning()
        #expect(core.packagesInstalled(key, recording) == [.recordPackages(key, recording)])
        var failed = recording.result
        failed.state = .failed
        failed.error = "The packages were installed, but recording them with the service failed: The service was removed."
        #expect(
            core.packagesNotRecorded(key, PopError(.notFound, "The service was removed.")) == [
                .writeTaskResults([key: failed])
            ])
    }
}
