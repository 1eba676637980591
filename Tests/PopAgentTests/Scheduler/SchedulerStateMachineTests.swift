import Foundation
import PopState
import Testing

@testable import PopAgent

/// The scheduler's election and leader loop, driven event by event with no store.
@Suite struct SchedulerStateMachineTests {
    let now = Date(timeIntervalSince1970: 1_700_000_000)

    func elected() -> SchedulerStateMachine {
        var core = SchedulerStateMachine(labels: [:])
        _ = core.start()
        _ = core.sessionOpened()
        _ = core.joined(candidate: "/pop/election/candidate-0000000003")
        _ = core.candidatesListed(["candidate-0000000003", "candidate-0000000007"])
        return core
    }

    @Test func theLowestCandidateLeadsAndTheOthersWatchOnlyTheirPredecessor() {
        var core = SchedulerStateMachine(labels: ["zone": "a"])
        #expect(core.start() == [.openSession])
        #expect(core.sessionOpened() == [.join(labels: ["zone": "a"])])
        #expect(core.joined(candidate: "/pop/election/candidate-0000000012") == [.listCandidates])
        // Sequence numbers order the candidates, whatever order they are listed in.
        #expect(
            core.candidatesListed(["candidate-0000000012", "candidate-0000000009", "candidate-0000000002"]) == [
                .note(.following(predecessor: "/pop/election/candidate-0000000009")),
                .watchPredecessor("/pop/election/candidate-0000000009"),
            ])
        #expect(!core.isLeading)
        // Another candidate's watch reporting late changes nothing.
        #expect(core.predecessorGone("/pop/election/candidate-0000000002") == [])
        #expect(core.predecessorGone("/pop/election/candidate-0000000009") == [.listCandidates])
        #expect(
            core.candidatesListed(["candidate-0000000012"]) == [.note(.elected), .followNamespace, .readState])
        #expect(core.isLeading)
    }

    @Test func aMissingCandidateStandsAgain() {
        var core = SchedulerStateMachine(labels: [:])
        _ = core.start()
        _ = core.sessionOpened()
        _ = core.joined(candidate: "/pop/election/candidate-0000000004")
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
        #expect(
            core.stateRead(state, factVersions: [:], now: now) == plan.changes.map { .note(.placed($0)) } + [
                .write(plan, factVersions: [:], fence: "/pop/election/candidate-0000000003")
            ])
        // A change while writing waits for the read that follows the write.
        #expect(core.storeChanged() == [])
        #expect(core.written() == [.readState])
        let settled = SchedulingState(registered: [try MachineID("a")], services: [])
        #expect(core.stateRead(settled, factVersions: [:], now: now) == [.readState])
        #expect(core.stateRead(settled, factVersions: [:], now: now) == [])
        #expect(core.storeChanged() == [.readState])
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
        #expect(core.sessionEnded() == [.endSession, .schedule(.reopenSession, after: .milliseconds(100))])
        #expect(!core.isLeading)
        #expect(core.storeChanged() == [])
        #expect(core.timerFired(.reopenSession) == [.openSession])
        #expect(core.shutdown() == [.endSession])
    }
}
