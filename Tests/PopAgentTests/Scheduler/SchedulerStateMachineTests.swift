import Foundation
import PopState
import Testing

@testable import PopAgent

/// The scheduler's election and leader loop, driven event by event with no store.
@Suite struct SchedulerStateMachineTests {
    static let machine = try! MachineID("m3")
    let now = Date(timeIntervalSince1970: 1_700_000_000)

    func elected() -> SchedulerStateMachine {
        var core = SchedulerStateMachine(machine: Self.machine, labels: [:])
        _ = core.start()
        _ = core.sessionOpened()
        _ = core.joined(candidate: "/pop/election/candidate-m3-0000000003")
        _ = core.candidatesListed(["candidate-m3-0000000003", "candidate-m7-0000000007"])
        return core
    }

    @Test func theLowestCandidateLeadsAndTheOthersWatchOnlyTheirPredecessor() {
        var core = SchedulerStateMachine(machine: Self.machine, labels: ["zone": "a"])
        #expect(core.start() == [.openSession])
        #expect(core.sessionOpened() == [.join(labels: ["zone": "a"])])
        #expect(core.joined(candidate: "/pop/election/candidate-m3-0000000012") == [.listCandidates])
        // Sequence numbers order the candidates, whatever order they are listed in.
        #expect(
            core.candidatesListed(["candidate-m3-0000000012", "candidate-m9-0000000009", "candidate-m2-0000000002"]) == [
                .note(.following(predecessor: "/pop/election/candidate-m9-0000000009")),
                .watchPredecessor("/pop/election/candidate-m9-0000000009"),
            ])
        #expect(!core.isLeading)
        // Another candidate's watch reporting late changes nothing.
        #expect(core.predecessorGone("/pop/election/candidate-m2-0000000002") == [])
        #expect(core.predecessorGone("/pop/election/candidate-m9-0000000009") == [.listCandidates])
        #expect(
            core.candidatesListed(["candidate-m3-0000000012"]) == [
                .note(.elected), .watch(.registrations), .watch(.facts), .watch(.services), .readState,
            ])
        #expect(core.isLeading)
    }

    @Test func aMissingCandidateStandsAgain() {
        var core = SchedulerStateMachine(machine: Self.machine, labels: [:])
        _ = core.start()
        _ = core.sessionOpened()
        _ = core.joined(candidate: "/pop/election/candidate-m3-0000000004")
        #expect(core.candidatesListed([]) == [.join(labels: [:])])
    }

    @Test func theLeaderWritesWhatThePlanSaysThenReadsAgain() throws {
        var core = elected()
        let web = try ServiceName("web")
        let state = SchedulingState(
            registered: [try MachineID("a")],
            services: [
                .init(name: web, policy: try SchedulingPolicy(count: 1), signature: ConfigSignature(of: []), placements: [:])
            ])
        let plan = SchedulePlan(state, now: now)
        // The service's policy and placements are followed before the plan from them is written.
        #expect(
            core.stateRead(state, factVersions: [:], now: now) == [.watch(.policy(web)), .watch(.placements(web))]
                + plan.changes.map { .note(.placed($0)) } + [
                    .write(plan, factVersions: [:], fence: "/pop/election/candidate-m3-0000000003")
                ])
        // A change while writing waits for the read that follows the write.
        #expect(core.storeChanged() == [])
        #expect(core.written() == [.readState])
        // The service is gone: so are its watches; the change seen meanwhile is read once more.
        let settled = SchedulingState(registered: [try MachineID("a")], services: [])
        #expect(
            core.stateRead(settled, factVersions: [:], now: now) == [
                .unwatch(.policy(web)), .unwatch(.placements(web)), .readState,
            ])
        #expect(core.stateRead(settled, factVersions: [:], now: now) == [])
        #expect(core.storeChanged() == [.readState])
    }

    /// The leader follows a pinned service's policy node only, a counted one's placements too, and instance records
    /// only while a drain waits for a replacement to run. A watch set after the read means one more read, even when
    /// the plan writes nothing.
    @Test func theLeaderFollowsOnlyWhatItDecidesOn() throws {
        var core = elected()
        let (a, b) = (try MachineID("a"), try MachineID("b"))
        let (web, api, db) = (try ServiceName("web"), try ServiceName("api"), try ServiceName("db"))
        let signature = ConfigSignature(of: Array("web".utf8))
        let policy = try SchedulingPolicy(count: 1)
        let placedOnA = [a: Placement(deployed: now, scheduled: true)]
        let quiet = SchedulingState(
            registered: [a, b], services: [.init(name: web, policy: policy, signature: signature, placements: placedOnA)],
            names: [web, api])
        #expect(SchedulePlan(quiet, now: now).writesNothing)
        #expect(
            core.stateRead(quiet, factVersions: [:], now: now) == [
                .watch(.policy(api)), .watch(.policy(web)), .watch(.placements(web)), .readState,
            ])
        #expect(core.stateRead(quiet, factVersions: [:], now: now) == [])

        // `a` is drained: its instance stays until the replacement on `b` runs, so web's instances are followed.
        var drained = quiet
        drained.facts = [a: MachineFacts(drained: true)]
        drained.names.insert(db)
        #expect(core.storeChanged() == [.readState])
        let replace = SchedulePlan(drained, now: now)
        #expect(replace.changes.count == 1)
        #expect(
            core.stateRead(drained, factVersions: [:], now: now) == [.watch(.policy(db)), .watch(.instances(web))]
                + replace.changes.map { .note(.placed($0)) } + [
                    .write(replace, factVersions: [:], fence: "/pop/election/candidate-m3-0000000003")
                ])
        #expect(core.written() == [.readState])

        // The replacement runs and the drained placement is gone: the instance records are no longer followed.
        var done = drained
        done.services[0].placements = [b: Placement(deployed: now, scheduled: true, rescheduledFrom: a)]
        #expect(SchedulePlan(done, now: now).writesNothing)
        #expect(core.stateRead(done, factVersions: [:], now: now) == [.unwatch(.instances(web))])
    }

    @Test func aConflictReadsAgainAndOtherFailuresBackOff() {
        var core = elected()
        #expect(core.failed(PopError(.conflict, "moved")) == [.readState])
        #expect(
            core.failed(PopError(.storeUnreachable, "gone")) == [
                .note(.failed("gone")), .schedule(.retry, after: .milliseconds(200)),
            ])
        #expect(core.storeChanged() == [])
        #expect(core.timerFired(.retry) == [.readState])
    }

    @Test func anEndedSessionStandsAgainInANewOne() {
        var core = elected()
        // The session may live on (it is the agent's): the candidate goes with the scheduler's part in it.
        #expect(
            core.sessionEnded() == [
                .endSession(retire: "/pop/election/candidate-m3-0000000003"),
                .schedule(.reopenSession, after: .milliseconds(100)),
            ])
        #expect(!core.isLeading)
        #expect(core.storeChanged() == [])
        #expect(core.timerFired(.reopenSession) == [.openSession])
        // Between borrowing the session and standing, there is no candidate to delete.
        #expect(core.shutdown() == [.endSession(retire: nil)])
    }

    @Test func thisMachinesEarlierCandidatesAreRetiredNotFollowed() {
        var core = SchedulerStateMachine(machine: Self.machine, labels: [:])
        _ = core.start()
        _ = core.sessionOpened()
        #expect(core.joined(candidate: "/pop/election/candidate-m3-0000000008") == [.listCandidates])
        // m3's candidate 2 is left from an earlier round in the same session; m3-1's is another machine's.
        #expect(
            core.candidatesListed(
                [
                    "candidate-m3-0000000008", "candidate-m3-0000000002", "candidate-m3-1-0000000005",
                    "candidate-m9-0000000006",
                ], ownedBySession: ["candidate-m3-0000000002"]) == [
                .retire(["/pop/election/candidate-m3-0000000002"]),
                .note(.following(predecessor: "/pop/election/candidate-m9-0000000006")),
                .watchPredecessor("/pop/election/candidate-m9-0000000006"),
            ])
        // Had it been the lowest, this candidate leads: the earlier one stands for nobody.
        #expect(core.predecessorGone("/pop/election/candidate-m9-0000000006") == [.listCandidates])
        #expect(
            core.candidatesListed(
                ["candidate-m3-0000000008", "candidate-m3-0000000002"], ownedBySession: ["candidate-m3-0000000002"]) == [
                .retire(["/pop/election/candidate-m3-0000000002"]),
                .note(.elected), .watch(.registrations), .watch(.facts), .watch(.services), .readState,
            ])
        // Another session's candidate of this machine (a dead agent's, until its session expires) is a rival.
        var other = SchedulerStateMachine(machine: Self.machine, labels: [:])
        _ = other.start()
        _ = other.sessionOpened()
        _ = other.joined(candidate: "/pop/election/candidate-m3-0000000008")
        #expect(
            other.candidatesListed(["candidate-m3-0000000008", "candidate-m3-0000000002"]) == [
                .note(.following(predecessor: "/pop/election/candidate-m3-0000000002")),
                .watchPredecessor("/pop/election/candidate-m3-0000000002"),
            ])
        #expect(SchedulerStateMachine.isCandidate("candidate-m3-0000000002", of: Self.machine))
        #expect(!SchedulerStateMachine.isCandidate("candidate-m3-1-0000000005", of: Self.machine))
        #expect(!SchedulerStateMachine.isCandidate("candidate-m3-", of: Self.machine))
        #expect(!SchedulerStateMachine.isCandidate("candidate-0000000002", of: Self.machine))
    }
}
