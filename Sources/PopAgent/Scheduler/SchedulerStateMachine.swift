import Foundation
import PopState

/// Everything the scheduler knows and decides, as one value: its part in the election, and, while it leads, the
/// read-plan-write loop that brings services deployed by count to their counts.
///
/// The election is ZooKeeper's leader-election recipe: each agent creates an ephemeral sequential candidate node
/// (`candidate-<machine>-<sequence>`, in the agent's own session); the lowest leads, and every other watches only the
/// candidate just before its own (no herd effect when the leader goes: one agent wakes). A candidate left from an
/// earlier round in the same session (its deletion failed) is not a rival: it is deleted when the candidates are
/// listed, and the scheduler deletes its own candidate when it ends its part while the session goes on. Another
/// session's candidate of the same machine (a dead agent's, until its session expires) is a rival like any other.
/// The leader follows only what it decides on (``Watch``), reads the scheduling state, plans with ``SchedulePlan``
/// and writes the plan fenced by its own candidate node, so a leader whose session ended writes nothing. Nothing it
/// knows lives only here: a new leader reads the same state and plans the same.
///
/// Pure: no I/O, no clock (events carry the time). ``SchedulerDriver`` feeds it and performs its actions.
struct SchedulerStateMachine {
    /// Where the scheduler stands.
    enum State: Hashable {
        /// Not started.
        case idle
        /// A store session is being opened.
        case opening
        /// This machine's labels and its candidate node are being written.
        case joining
        /// The candidates are being listed, to find out whether this one leads.
        case electing(candidate: String)
        /// Another candidate leads; the one before ours is watched.
        case following(candidate: String, predecessor: String)
        /// This candidate leads.
        case leading(candidate: String, Leader)
        /// Between sessions; the reopen timer runs.
        case waitingToReopen
        /// Shut down.
        case stopped
    }

    /// The leader's loop.
    struct Leader: Hashable {
        enum Step: Hashable {
            /// Waiting for a change (or the wake-up of a missing machine's deadline).
            case idle
            /// Reading the scheduling state.
            case reading
            /// Writing a plan.
            case writing
            /// Waiting to retry after a failed read or write.
            case pausing
        }

        var step: Step = .reading
        /// Whether something changed while a read or write was in flight.
        var changed = false
        /// The watches set (and not removed) in this session.
        var watching: Set<Watch> = Self.always
        /// Failures in a row, for the retry backoff.
        var failures = 0

        /// The watches every leader holds, set on election.
        static let always: Set<Watch> = [.registrations, .facts, .services]
    }

    /// What the leader follows: what a plan depends on, and no more. Each is a persistent watch, set before the
    /// read that depends on it; any event of any of them wakes the leader to read again.
    enum Watch: Hashable, Comparable {
        /// `machines`: registrations come and go (a node watch: its children).
        case registrations
        /// `facts` and below: labels, drains, absent-since.
        case facts
        /// `services`: services are created and removed (a node watch: its children).
        case services
        /// `services/<name>/scheduling`: the service is deployed by count, scaled, or pinned again.
        case policy(ServiceName)
        /// `services/<name>/machines`: a placement of a service deployed by count is made or deleted (a node watch:
        /// its children, and its data, which every placement write sets).
        case placements(ServiceName)
        /// `services/<name>` and below: the spec and instance records of a service whose drain waits for a
        /// replacement to run.
        case instances(ServiceName)
    }

    enum Timer: Hashable {
        case reopenSession
        case retry
        case wake
    }

    enum Action: Hashable {
        /// Borrow the agent's session (or wait for its next one).
        case openSession
        /// Writes this machine's labels and creates the candidate node.
        case join(labels: [String: String])
        case listCandidates
        /// Delete these candidates, left from earlier rounds in this session.
        case retire([String])
        /// Watch this candidate until it goes.
        case watchPredecessor(String)
        /// Set this watch (while leading).
        case watch(Watch)
        /// Remove this watch: what it followed no longer matters to the plan.
        case unwatch(Watch)
        case readState
        case write(SchedulePlan, factVersions: [MachineID: Int32], fence: String)
        case schedule(Timer, after: Duration)
        /// Wake at this moment (the earliest moment a missing machine's instances may move).
        case wake(at: Date)
        /// Stop using the session: drop the watches, and delete this candidate (when there is one) if the session
        /// goes on, so that it does not stand for a scheduler that no longer acts.
        case endSession(retire: String?)
        case note(Note)
    }

    enum Note: Hashable {
        case elected
        case following(predecessor: String)
        case placed(SchedulePlan.Change)
        case shortfall(ServiceName, String)
        case failed(String)
        case inconsistency(String)
    }

    /// This machine, whose name its candidates carry.
    let machine: MachineID
    let labels: [String: String]
    let maximumRetryDelay: Duration
    private(set) var state: State = .idle
    private var reopenAttempts = 0
    /// The shortfalls reported last, so each is logged once.
    private var reported: [ServiceName: String] = [:]

    init(machine: MachineID, labels: [String: String], maximumRetryDelay: Duration = .seconds(10)) {
        self.machine = machine
        self.labels = labels
        self.maximumRetryDelay = maximumRetryDelay
    }

    var isLeading: Bool {
        if case .leading = state { return true }
        return false
    }

    mutating func start() -> [Action] {
        guard state == .idle else { return inconsistent("start while \(state)") }
        state = .opening
        return [.openSession]
    }

    mutating func sessionOpened() -> [Action] {
        guard state == .opening else { return inconsistent("a session opened while \(state)") }
        state = .joining
        return [.join(labels: labels)]
    }

    mutating func joined(candidate: String) -> [Action] {
        guard state == .joining else { return inconsistent("joined while \(state)") }
        reopenAttempts = 0
        state = .electing(candidate: candidate)
        return [.listCandidates]
    }

    /// The candidates' names (children of the election node), in any order, and those of them that this session
    /// created besides the current one.
    mutating func candidatesListed(_ names: [String], ownedBySession: Set<String> = []) -> [Action] {
        guard case .electing(let candidate) = state else { return inconsistent("candidates listed while \(state)") }
        let mine = NodePath.name(candidate)
        let folder = NodePath.parent(candidate) ?? "/"
        let earlier = names.filter { $0 != mine && ownedBySession.contains($0) }
        let retire: [Action] = earlier.isEmpty ? [] : [.retire(earlier.sorted().map { NodePath.join(folder, $0) })]
        let ordered = names.filter { !earlier.contains($0) }.sorted { Self.sequence($0) < Self.sequence($1) }
        guard let index = ordered.firstIndex(of: mine) else {
            // Our candidate is gone (the namespace was reset): stand again.
            state = .joining
            return retire + [.join(labels: labels)]
        }
        if index == 0 {
            state = .leading(candidate: candidate, Leader())
            return retire + [.note(.elected)] + Leader.always.sorted().map { .watch($0) } + [.readState]
        }
        let predecessor = NodePath.join(folder, ordered[index - 1])
        state = .following(candidate: candidate, predecessor: predecessor)
        return retire + [.note(.following(predecessor: predecessor)), .watchPredecessor(predecessor)]
    }

    /// The watched candidate went (or was already gone): find out again where this one stands.
    mutating func predecessorGone(_ path: String) -> [Action] {
        guard case .following(let candidate, let predecessor) = state, predecessor == path else {
            return []  // A watch of an earlier election round; the current one decides.
        }
        state = .electing(candidate: candidate)
        return [.listCandidates]
    }

    /// Something changed in the namespace (while leading).
    mutating func storeChanged() -> [Action] {
        guard case .leading(let candidate, var leader) = state else { return [] }
        switch leader.step {
        case .idle:
            leader.step = .reading
            state = .leading(candidate: candidate, leader)
            return [.readState]
        case .reading, .writing, .pausing:
            leader.changed = true
            state = .leading(candidate: candidate, leader)
            return []
        }
    }

    /// The scheduling state was read at `now`.
    mutating func stateRead(_ scheduling: SchedulingState, factVersions: [MachineID: Int32], now: Date) -> [Action] {
        guard case .leading(let candidate, var leader) = state, leader.step == .reading else {
            return inconsistent("a state read while \(state)")
        }
        var changedMeanwhile = leader.changed
        leader.changed = false
        leader.failures = 0
        // Follow what this state depends on before planning from it. A watch set only now may have missed a change
        // made since the read: when the plan writes nothing, read once more (a write is followed by a read anyway).
        let wanted = Self.watches(for: scheduling)
        let added = wanted.subtracting(leader.watching).sorted()
        let removed = leader.watching.subtracting(wanted).sorted()
        leader.watching = wanted
        if !added.isEmpty { changedMeanwhile = true }
        var actions: [Action] = added.map { .watch($0) } + removed.map { .unwatch($0) }
        let plan = SchedulePlan(scheduling, now: now)
        for (service, reason) in plan.shortfalls.sorted(by: { $0.key < $1.key }) where reported[service] != reason {
            actions.append(.note(.shortfall(service, reason)))
        }
        reported = plan.shortfalls
        if let wakeAt = plan.wakeAt { actions.append(.wake(at: wakeAt)) }
        if plan.writesNothing {
            // A change that arrived during the read may not be in it: read once more.
            leader.step = changedMeanwhile ? .reading : .idle
            if changedMeanwhile { actions.append(.readState) }
        } else {
            leader.step = .writing
            actions += plan.changes.map { .note(.placed($0)) }
            actions.append(.write(plan, factVersions: factVersions, fence: candidate))
        }
        state = .leading(candidate: candidate, leader)
        return actions
    }

    /// A plan was written: read again, to confirm it and to see what changed meanwhile.
    mutating func written() -> [Action] {
        guard case .leading(let candidate, var leader) = state, leader.step == .writing else {
            return inconsistent("a write finished while \(state)")
        }
        leader.step = .reading
        state = .leading(candidate: candidate, leader)
        return [.readState]
    }

    /// A read or write failed. A conflict (the state moved on) is read again at once; anything else after a backoff.
    mutating func failed(_ error: PopError) -> [Action] {
        guard case .leading(let candidate, var leader) = state, leader.step == .reading || leader.step == .writing else {
            return inconsistent("a read or write failed while \(state)")
        }
        if error.code == .conflict || error.code == .notFound, leader.failures < 3 {
            leader.failures += 1
            leader.step = .reading
            state = .leading(candidate: candidate, leader)
            return [.readState]
        }
        leader.failures += 1
        leader.step = .pausing
        state = .leading(candidate: candidate, leader)
        return [.note(.failed(error.message)), .schedule(.retry, after: backoff(leader.failures))]
    }

    mutating func timerFired(_ timer: Timer) -> [Action] {
        switch (timer, state) {
        case (.reopenSession, .waitingToReopen):
            state = .opening
            return [.openSession]
        case (.retry, .leading(let candidate, var leader)) where leader.step == .pausing:
            leader.step = .reading
            state = .leading(candidate: candidate, leader)
            return [.readState]
        case (.wake, .leading):
            return storeChanged()
        default:
            return []  // A timer of a role this scheduler no longer has.
        }
    }

    /// The session ended (expired, closed, or an operation found it unusable): stand again in a new one.
    mutating func sessionEnded() -> [Action] {
        switch state {
        case .opening, .joining, .electing, .following, .leading:
            let candidate = self.candidate
            reopenAttempts += 1
            state = .waitingToReopen
            return [.endSession(retire: candidate), .schedule(.reopenSession, after: backoff(reopenAttempts))]
        case .idle, .waitingToReopen, .stopped:
            return []
        }
    }

    mutating func shutdown() -> [Action] {
        let wasOpen = state != .idle && state != .stopped && state != .waitingToReopen
        let candidate = self.candidate
        state = .stopped
        return wasOpen ? [.endSession(retire: candidate)] : []
    }

    /// This scheduler's candidate node, while it has one.
    var candidate: String? {
        switch state {
        case .electing(let candidate), .following(let candidate, _), .leading(let candidate, _): candidate
        case .idle, .opening, .joining, .waitingToReopen, .stopped: nil
        }
    }

    /// The prefix of the names of `machine`'s candidates; the server appends the sequence number.
    static func candidatePrefix(_ machine: MachineID) -> String {
        "candidate-\(machine)-"
    }

    /// Whether `name` is a candidate of `machine` (its prefix, then only the sequence number).
    static func isCandidate(_ name: String, of machine: MachineID) -> Bool {
        let prefix = candidatePrefix(machine)
        guard name.hasPrefix(prefix) else { return false }
        let sequence = name.dropFirst(prefix.count)
        return !sequence.isEmpty && sequence.allSatisfy(\.isASCII) && sequence.allSatisfy(\.isNumber)
    }

    /// The watches a leader holds for this state: the three always held, each service's policy node, the
    /// placements of each service deployed by count, and everything of each service whose drain waits for a
    /// replacement to run.
    static func watches(for state: SchedulingState) -> Set<Watch> {
        var watches = Leader.always
        for name in state.names { watches.insert(.policy(name)) }
        for service in state.services {
            watches.insert(.placements(service.name))
            if state.awaitsReplacement(service) { watches.insert(.instances(service.name)) }
        }
        return watches
    }

    private func backoff(_ attempts: Int) -> Duration {
        let milliseconds = 100 * (1 << min(max(attempts - 1, 0), 10))
        return min(.milliseconds(milliseconds), maximumRetryDelay)
    }

    private func inconsistent(_ what: String) -> [Action] {
        assertionFailure("scheduler: \(what)")
        return [.note(.inconsistency(what))]
    }

    /// The sequence number ZooKeeper appends to a sequential node's name (`candidate-0000000012` → 12).
    static func sequence(_ name: String) -> Int {
        Int(name.reversed().prefix { $0.isNumber }.reversed().map(String.init).joined()) ?? Int.max
    }
}
