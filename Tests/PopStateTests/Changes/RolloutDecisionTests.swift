import Foundation
import Testing
@testable import PopState

/// The canary gate each agent applies to its own configuration restart.
@Suite
struct RolloutDecisionTests {
    static let new = ConfigSignature(hex: String(repeating: "b", count: 40))
    static let old = ConfigSignature(hex: String(repeating: "a", count: 40))
    static let now = Date(timeIntervalSince1970: 1_000_000)
    static let machines = ["m1", "m2", "m3", "m4"].map { try! MachineID($0) }
    static let policy = Rollout(
        maxParallel: 1, canary: 1, healthyTimeMilliseconds: 10_000, healthyDeadlineMilliseconds: 60_000,
        autoRevert: true)
    static let state = RolloutState(
        signature: new, started: now.addingTimeInterval(-5), revertTo: 3, revertSignature: old, phase: .rolling)

    static func record(_ machine: MachineID, _ signature: ConfigSignature, _ state: InstanceState, since seconds: Double, error: String? = nil) -> InstanceRecord {
        InstanceRecord(
            machine: machine, pid: 100, signature: signature, state: state, since: now.addingTimeInterval(-seconds),
            restarts: 0, lastError: error)
    }

    func decide(
        _ machine: Int, _ records: [InstanceRecord], policy: Rollout = Self.policy, state: RolloutState? = Self.state,
        now: Date = Self.now
    ) -> RolloutDecision {
        policy.decide(
            machine: Self.machines[machine], into: Self.new, placed: Self.machines,
            records: Dictionary(uniqueKeysWithValues: records.map { ($0.machine, $0) }), registered: Set(Self.machines),
            state: state, now: now)
    }

    @Test func theCanaryGoesFirstAndTheRestWaitUntilItHasBeenHealthyForTheHealthyTime() {
        let m = Self.machines
        #expect(decide(0, []) == .restart)
        // Still running the old signature: the canary has until the rollout's start plus the deadline.
        #expect(decide(1, [Self.record(m[0], Self.old, .running, since: 100)]) == .wait(until: Self.now.addingTimeInterval(55)))
        // Running the new one for 4 s of the 10 needed.
        #expect(decide(1, [Self.record(m[0], Self.new, .running, since: 4)]) == .wait(until: Self.now.addingTimeInterval(6)))
        #expect(decide(1, [Self.record(m[0], Self.new, .running, since: 10)]) == .restart)
        // Batches of one after the canary: m3 waits for m2.
        let canaryDone = Self.record(m[0], Self.new, .running, since: 30)
        #expect(decide(2, [canaryDone, Self.record(m[1], Self.new, .starting, since: 1)]) == .wait(until: Self.now.addingTimeInterval(59)))
        #expect(decide(2, [canaryDone, Self.record(m[1], Self.new, .running, since: 11)]) == .restart)
    }

    @Test func aFailedBatchIsRevertedOrHeldAndARevertRestartsAtOnce() {
        let m = Self.machines
        let crashing = Self.record(m[0], Self.new, .backoff, since: 1, error: "exited with status 1")
        #expect(decide(3, [crashing]) == .revert(reason: "m1: backoff: exited with status 1"))
        var holding = Self.policy
        holding.autoRevert = false
        #expect(decide(3, [crashing], policy: holding) == .wait(until: nil))
        // A health check that never passes: the deadline counts from the instance's own start.
        #expect(decide(1, [Self.record(m[0], Self.new, .starting, since: 61)]) == .revert(reason: "m1 not healthy within 60 s (starting)"))
        // A reverted rollout's signature goes everywhere at once.
        let reverted = RolloutState(signature: Self.new, started: Self.now, revertTo: nil, revertSignature: nil, phase: .reverted)
        #expect(decide(3, [crashing], state: reverted) == .restart)
    }

    @Test func aMachineStillWaitingForTheOnesBeforeItIsNotLateTheyAre() {
        let m = Self.machines
        // The canary started 2 s after the rollout and does not pass its check: past the rollout's start plus the
        // deadline, m2 (which waits for it) has not restarted, but the canary is the one to blame, at its own deadline.
        let starting = Self.record(m[0], Self.new, .starting, since: 3)
        let lateState = RolloutState(
            signature: Self.new, started: Self.now.addingTimeInterval(-61), revertTo: 3, revertSignature: Self.old,
            phase: .rolling)
        #expect(decide(2, [starting], state: lateState) == .wait(until: Self.now.addingTimeInterval(57)))
        #expect(
            decide(2, [Self.record(m[0], Self.new, .starting, since: 60)], state: lateState)
                == .revert(reason: "m1 not healthy within 60 s (starting)"))
        // A long rollout: m3 was let go when m2 became healthy (10 s after its start 15 s ago), 5 s ago. The rollout
        // started long before the deadline, but m3 has until 55 s from now, counted from when it could restart.
        let longAgo = RolloutState(
            signature: Self.new, started: Self.now.addingTimeInterval(-600), revertTo: 3, revertSignature: Self.old,
            phase: .rolling)
        let earlier = [Self.record(m[0], Self.new, .running, since: 500), Self.record(m[1], Self.new, .running, since: 15)]
        #expect(decide(3, earlier, state: longAgo) == .wait(until: Self.now.addingTimeInterval(55)))
        #expect(
            decide(3, earlier, state: longAgo, now: Self.now.addingTimeInterval(56))
                == .revert(reason: "m3 not healthy within 60 s (not restarted)"))
    }

    @Test func withoutCanariesItIsTheRollingRestartOfMaxParallel() {
        let m = Self.machines
        let rolling = Rollout(maxParallel: 2)
        let records = [Self.record(m[0], Self.new, .starting, since: 1), Self.record(m[1], Self.old, .running, since: 50)]
        #expect(decide(2, records, policy: rolling, state: nil) == .wait(until: nil))
        #expect(decide(1, records, policy: rolling, state: nil) == .restart)
        let allowed = rolling.allowsRestart(
            of: m[2], into: Self.new, placed: m, records: Dictionary(uniqueKeysWithValues: records.map { ($0.machine, $0) }),
            registered: Set(m))
        #expect(!allowed, "the same answer as before canaries")
    }

    @Test func statusShowsTheCanaryPhaseUntilTheCanaryIsHealthyThenRollingCompletedOrReverted() {
        func row(_ machine: String, _ signature: ConfigSignature, _ state: String, since seconds: Double, up: Bool = true)
            -> StatusReport.Instance
        {
            StatusReport.Instance(
                machine: machine, machineUp: up, state: state, signature: signature.hex, current: signature == Self.new,
                since: Self.now.addingTimeInterval(-seconds))
        }
        func report(_ rows: [StatusReport.Instance], state: RolloutState = Self.state) -> StatusReport.Rollout? {
            state.report(current: Self.new, policy: Self.policy, instances: rows, now: Self.now)
        }
        let rest = [row("m2", Self.old, "running", since: 100), row("m3", Self.old, "running", since: 100)]
        // The canary is in its healthy time (4 s of 10): still the canary phase.
        let early = report([row("m1", Self.new, "running", since: 4)] + rest)
        #expect(early == StatusReport.Rollout(phase: .canary, signature: Self.new.hex, running: 1, machines: 3))
        #expect(early?.description == "rollout canary; 1 of 3 run bbbbbbbb")
        #expect(report([row("m1", Self.new, "running", since: 10)] + rest)?.phase == .rolling)
        // A machine whose agent is down counts neither way.
        let done = report([row("m1", Self.new, "running", since: 30), row("m2", Self.new, "running", since: 5), row("m3", Self.old, "unknown", since: 100, up: false)])
        #expect(done == StatusReport.Rollout(phase: .completed, signature: Self.new.hex, running: 2, machines: 2))
        let reverted = RolloutState(
            signature: Self.new, started: Self.now, revertTo: nil, revertSignature: nil, phase: .reverted, reason: "m1: backoff")
        let back = report([row("m1", Self.new, "starting", since: 0)] + rest, state: reverted)
        #expect(back?.phase == .reverted && back?.reason == "m1: backoff")
        #expect(back?.description == "rollout reverted (m1: backoff); 0 of 3 run bbbbbbbb")
        // A state about another signature (a superseded rollout) shows nothing.
        #expect(Self.state.report(current: Self.old, policy: Self.policy, instances: rest, now: Self.now) == nil)
    }
}
