import Foundation
import PopState

/// The lifecycle of one instance as a pure value: each event is a mutating function that returns what to do.
///
/// Nothing here touches a process, a file or a clock; the ``Supervisor`` feeds events in (with the time they happened)
/// and carries out the returned ``Action``. Timers and health probes are identified by a generation number, so one
/// that ends after the machine has moved on is recognised as stale and ignored instead of being cancelled.
///
/// Every other event that a phase cannot receive (a process that exits while none runs, a spawn while nothing was
/// being spawned) is a bug in the supervisor: it stops a debug build (``trapsOnImpossibleEvents``), and in a release
/// build it changes nothing and returns ``Action/impossible(event:phase:)``, which the supervisor logs as an error.
struct InstanceStateMachine: Sendable {
    /// What the machine needs to know from the instance's configuration.
    struct Parameters: Hashable, Sendable {
        struct Health: Hashable, Sendable {
            var interval: Duration
            var gracePeriod: Duration
        }

        var setupSteps: Int
        var health: Health?
        var stopSignal: StopSignal
        var stopTimeout: Duration
        var restart: RestartPolicy
    }

    /// Which process is being spawned or runs.
    enum ProcessKind: Hashable, Sendable {
        case setup(step: Int)
        case command
    }

    /// What happens once the current process has stopped.
    enum AfterStop: Hashable, Sendable {
        /// Stay stopped.
        case stay
        /// Start again (a deliberate restart or a configuration change).
        case start
        /// Count the stop as a failure with this message (an instance that stayed unhealthy).
        case fail(String)
        /// Forget the instance.
        case remove
    }

    enum Phase: Hashable, Sendable {
        case stopped
        case fatal
        /// A process is being spawned; `stopRequested` remembers a stop that arrived meanwhile.
        case spawning(ProcessKind, stopRequested: Bool)
        /// A setup step runs.
        case installing(step: Int, pid: Int32, started: Moment)
        /// The command runs but has not passed its health check yet.
        case starting(pid: Int32, started: Moment)
        /// The command runs (and is healthy, if it has a check); `healthySince` is the last healthy probe.
        case running(pid: Int32, started: Moment, lastHealthy: Moment?)
        /// Waiting to restart after an unexpected exit.
        case backoff
        /// The stop signal was sent; `killed` once SIGKILL followed.
        case stopping(pid: Int32, killed: Bool)
    }

    /// What the ``Supervisor`` must do after an event.
    enum Action: Hashable, Sendable {
        case none
        /// Run setup step `index` (or report it finished at once if its `creates` path exists).
        case runSetupStep(index: Int)
        /// Spawn the instance's command.
        case spawnCommand
        /// Fire ``timerFired(generation:at:)`` after `delay`.
        case scheduleTimer(after: Duration, generation: UInt64)
        /// Send `signal` to the process group led by `pid`, then fire the timer `generation` after `killAfter`.
        case signalGroup(pid: Int32, signal: StopSignal, killAfter: Duration, generation: UInt64)
        /// Send SIGKILL to the process group led by `pid`.
        case killGroup(pid: Int32)
        /// Probe the instance's health and report with ``probeFinished(generation:healthy:detail:at:)``.
        case probe(generation: UInt64)
        /// Stop supervising the instance (it has stopped and was asked to be removed).
        case forget
        /// Nothing: `event` cannot happen in `phase`, which is a bug to report (see ``trapsOnImpossibleEvents``).
        case impossible(event: String, phase: String)
    }

    /// Whether an event its phase cannot receive stops the program: in debug builds, so that the bug shows where it
    /// happens; in release builds the event changes nothing and is logged. Tests switch it off to see the report.
    @TaskLocal static var trapsOnImpossibleEvents: Bool = {
        #if DEBUG
        true
        #else
        false
        #endif
    }()

    private(set) var parameters: Parameters
    /// Parameters of a new configuration, applied when the next process starts (the current one stops as it was told).
    /// Seldom set, so kept in a box: a pointer in every instance's machine instead of the parameters' size.
    private var pendingParameters: Parameters? {
        get { pendingParametersBox?.value }
        set { pendingParametersBox = newValue.map { CopyOnWriteBox($0) } }
    }
    private var pendingParametersBox: CopyOnWriteBox<Parameters>?
    private(set) var phase: Phase = .stopped
    private(set) var afterStop: AfterStop = .stay
    /// Quick failures in a row.
    private(set) var quickFailures = 0
    /// Unexpected exits since the last deliberate (re)start.
    private(set) var restarts = 0
    private(set) var lastError: String?
    /// How the command's last process ended (nil until one has), for the lifecycle journal and the metrics.
    private(set) var lastExit: InstanceStatus.ProcessExit?
    /// What the last health probe of the current process said (nil without a check, or before its first answer).
    private(set) var healthy: Bool?
    /// Why the instance last failed: its process exited, it stayed unhealthy, or a setup step failed.
    private(set) var lastFailure: InstanceStatus.Failure?
    /// Whether the process being stopped is the command (not a setup step).
    private var stoppingCommand = false
    /// Why the next start of the command is a restart (set when the restart is decided, reported when it starts).
    private var pendingRestart: LifecycleEvent.RestartReason?
    /// Why the command was last started again.
    private(set) var lastRestart: LifecycleEvent.RestartReason?
    /// Why the command's next (or current) start is a restart, as its local record keeps it.
    var reasonOfNextStart: LifecycleEvent.RestartReason? { pendingRestart ?? lastRestart }
    /// What happened since the supervisor last took them (``takeFacts()``), in order, for the lifecycle journal.
    private(set) var facts: [Fact] = []
    /// When the public state last changed.
    private(set) var since: Date
    /// The generation of the one timer that is still meaningful.
    private(set) var timerGeneration: UInt64 = 0
    private var pendingTimer: TimerPurpose?
    /// The generation of the health probe under way, whose result still counts.
    private var probeInFlight: UInt64?
    /// How long to wait for the next probe while starting (doubles up to the interval).
    private var startingProbeDelay: Duration = .zero
    /// When the current `starting` phase began: its grace period counts from here (the process may be older).
    private var startingSince: Moment?

    /// Something that happened to the instance, as the machine saw it happen.
    enum Fact: Hashable, Sendable {
        /// The command's process started.
        case started(pid: Int32)
        /// The command's process ended.
        case exited(pid: Int32, ExitStatus)
        /// A new attempt of the command begins, and why.
        case restarted(LifecycleEvent.RestartReason)
        /// The instance waits before starting again.
        case backoff(String, after: Duration)
        /// It failed too often and stays stopped.
        case fatal(String)
        /// Its health check passed, or failed, where it had not.
        case health(Bool, String)
        /// It was stopped on purpose.
        case stopped
    }

    /// The facts gathered since the last call, oldest first.
    mutating func takeFacts() -> [Fact] {
        defer { facts = [] }
        return facts
    }

    private enum TimerPurpose: Hashable, Sendable {
        case backoff, stopTimeout, probe
    }

    init(parameters: Parameters, at now: Moment) {
        self.parameters = parameters
        self.since = now.date
    }

    // MARK: Derived status

    /// The state as published.
    var state: InstanceState {
        switch phase {
        case .stopped: .stopped
        case .fatal: .fatal
        case .spawning(.setup, _), .installing: .installing
        case .spawning(.command, _), .starting: .starting
        case .running: .running
        case .backoff: .backoff
        case .stopping: .stopping
        }
    }

    /// The pid of the process that exists now, if any.
    var pid: Int32? {
        switch phase {
        case .installing(_, let pid, _), .starting(let pid, _), .running(let pid, _, _), .stopping(let pid, _): pid
        case .stopped, .fatal, .spawning, .backoff: nil
        }
    }

    /// Whether the machine is at rest with no process and nothing pending (stopped or FATAL).
    var isSettled: Bool {
        switch phase {
        case .stopped, .fatal: true
        default: false
        }
    }

    /// Whether a stop was asked for and the process has not exited yet.
    var isStopInProgress: Bool {
        switch phase {
        case .stopping, .spawning(_, stopRequested: true): true
        default: false
        }
    }

    // MARK: Requests

    /// Start the instance if it is not running or on its way; a FATAL instance stays FATAL (use ``restart(with:at:)``).
    mutating func start(at now: Moment) -> Action {
        switch phase {
        case .stopped:
            pendingRestart = nil
            return begin(at: now)
        case .stopping:
            // A start supersedes a pending stop or removal: the later instruction wins.
            afterStop = .start
            return .none
        case .spawning(let kind, stopRequested: true):
            phase = .spawning(kind, stopRequested: false)
            afterStop = .stay
            return .none
        case .fatal, .spawning, .installing, .starting, .running, .backoff:
            return .none
        }
    }

    /// A deliberate restart (`reason`: a new configuration, or asked for): clears FATAL, the failure counts and the
    /// last error (it was about the previous configuration or run), adopts `parameters`, and starts afresh.
    mutating func restart(
        with parameters: Parameters, because reason: LifecycleEvent.RestartReason, at now: Moment
    ) -> Action {
        pendingRestart = reason
        pendingParameters = parameters
        quickFailures = 0
        restarts = 0
        lastError = nil
        switch phase {
        case .stopped, .fatal, .backoff:
            return begin(at: now)
        case .spawning(let kind, _):
            // The process being spawned runs the old configuration: stop it as soon as it exists, then start.
            phase = .spawning(kind, stopRequested: true)
            afterStop = .start
            return .none
        case .stopping:
            afterStop = .start
            return .none
        case .installing(_, let pid, _), .starting(let pid, _), .running(let pid, _, _):
            return beginStop(pid: pid, then: .start, at: now)
        }
    }

    /// Stop the instance and keep it stopped.
    mutating func stop(at now: Moment) -> Action {
        stop(then: .stay, at: now)
    }

    /// Stop the instance, then forget it.
    mutating func remove(at now: Moment) -> Action {
        stop(then: .remove, at: now)
    }

    private mutating func stop(then next: AfterStop, at now: Moment) -> Action {
        switch phase {
        case .stopped, .fatal, .backoff:
            setPhase(.stopped, at: now)
            pendingTimer = nil
            return next == .remove ? .forget : .none
        case .spawning(let kind, _):
            phase = .spawning(kind, stopRequested: true)
            afterStop = next
            return .none
        case .stopping:
            if afterStop != .remove { afterStop = next }
            return .none
        case .installing(_, let pid, _), .starting(let pid, _), .running(let pid, _, _):
            return beginStop(pid: pid, then: next, at: now)
        }
    }

    /// The instance's process was found alive by a new agent and is supervised again.
    mutating func adopted(
        pid: Int32, started: Moment, restarts: Int, lastRestart: LifecycleEvent.RestartReason? = nil, at now: Moment
    ) -> Action {
        self.restarts = restarts
        self.lastRestart = lastRestart
        if let health = parameters.health {
            // Running is what a passed check says: the previous agent may have died before the first one. A healthy
            // process passes at once; the grace period counts from now.
            setPhase(.starting(pid: pid, started: started), at: now)
            startingSince = now
            startingProbeDelay = min(.milliseconds(10), health.interval)
            return scheduleProbe(after: .zero)
        }
        setPhase(.running(pid: pid, started: started, lastHealthy: nil), at: now)
        return .none
    }

    // MARK: Process events

    /// The process that was being spawned exists now.
    mutating func spawned(pid: Int32, at now: Moment) -> Action {
        guard case .spawning(let kind, let stopRequested) = phase else { return impossible("spawned(pid: \(pid))") }
        switch kind {
        case .setup(let step):
            setPhase(.installing(step: step, pid: pid, started: now), at: now)
        case .command:
            if let reason = pendingRestart {
                facts.append(.restarted(reason))
                lastRestart = reason
                pendingRestart = nil
            }
            facts.append(.started(pid: pid))
            if let health = parameters.health {
                setPhase(.starting(pid: pid, started: now), at: now)
                startingSince = now
                startingProbeDelay = min(.milliseconds(10), health.interval)
                if !stopRequested { return scheduleProbe(after: .zero) }
            } else {
                setPhase(.running(pid: pid, started: now, lastHealthy: nil), at: now)
            }
        }
        if stopRequested {
            return beginStop(pid: pid, then: afterStop, at: now)
        }
        return .none
    }

    /// Spawning failed before any process existed (missing executable, unusable folder).
    mutating func spawnFailed(_ message: String, at now: Moment) -> Action {
        guard case .spawning(let kind, let stopRequested) = phase else { return impossible("spawnFailed") }
        if stopRequested {
            return settleAfterStop(at: now)
        }
        if case .setup(let step) = kind {
            return fail("setup step \(step + 1): \(message)", cause: .setup, uptime: .zero, at: now)
        }
        return fail(message, cause: .notStarted, uptime: .zero, at: now)
    }

    /// A setup step was skipped because its `creates` path exists (the supervisor checks before spawning it).
    mutating func setupStepSucceeded(step: Int, at now: Moment) -> Action {
        guard case .spawning(.setup(step), let stopRequested) = phase else {
            return impossible("setupStepSucceeded(step: \(step))")
        }
        if stopRequested { return settleAfterStop(at: now) }
        return continueAfterSetupStep(step, at: now)
    }

    /// The process `pid` ended with `status`. `stepName` names the setup step, for the error message.
    mutating func processExited(pid: Int32, status: ExitStatus, stepName: String? = nil, at now: Moment) -> Action {
        switch phase {
        case .stopping(pid, _):
            if stoppingCommand {
                lastExit = InstanceStatus.ProcessExit(pid: pid, status: status)
                facts.append(.exited(pid: pid, status))
            }
            return settleAfterStop(at: now)
        case .installing(let step, pid, let started):
            if status.isSuccess {
                return continueAfterSetupStep(step, at: now)
            }
            let name = stepName.map { "'\($0)'" } ?? "\(step + 1)"
            return fail("setup step \(name) \(status)", cause: .setup, uptime: now.instant - started.instant, at: now)
        case .starting(pid, let started), .running(pid, let started, _):
            lastExit = InstanceStatus.ProcessExit(pid: pid, status: status)
            facts.append(.exited(pid: pid, status))
            return fail(status.description, cause: .exited, uptime: now.instant - started.instant, at: now)
        case .stopped, .fatal, .spawning, .backoff, .installing, .starting, .running, .stopping:
            // The supervisor reports only the exit of the process the machine says runs.
            return impossible("processExited(pid: \(pid))")
        }
    }

    /// The timer `generation` fired.
    mutating func timerFired(generation: UInt64, at now: Moment) -> Action {
        // A timer set before the machine moved on (every change that makes one pointless clears it) is stale.
        guard generation == timerGeneration, let purpose = pendingTimer else { return .none }
        pendingTimer = nil
        switch (purpose, phase) {
        case (.backoff, .backoff):
            pendingRestart = lastFailure == .unhealthy ? .health : .crash
            return begin(at: now)
        case (.stopTimeout, .stopping(let pid, killed: false)):
            phase = .stopping(pid: pid, killed: true)
            return .killGroup(pid: pid)
        case (.stopTimeout, .stopping(_, killed: true)):
            // Stopped with SIGKILL in the first place: nothing more to send.
            return .none
        case (.probe, .starting), (.probe, .running):
            probeInFlight = generation
            return .probe(generation: generation)
        case (.backoff, _), (.stopTimeout, _), (.probe, _):
            return impossible("timerFired(\(purpose))")
        }
    }

    /// The health probe `generation` finished.
    mutating func probeFinished(generation: UInt64, healthy: Bool, detail: String, at now: Moment) -> Action {
        // A probe of a phase the machine has left (stopping, or another process by now) is stale.
        guard probeInFlight == generation else { return .none }
        probeInFlight = nil
        guard let health = parameters.health else { return impossible("probeFinished without a health check") }
        if case .starting = phase, !healthy, self.healthy == nil {
            // Not up yet: a failing probe while starting is no news.
        } else {
            if self.healthy != healthy { facts.append(.health(healthy, detail)) }
            self.healthy = healthy
        }
        switch phase {
        case .starting(let pid, let started):
            if healthy {
                setPhase(.running(pid: pid, started: started, lastHealthy: now), at: now)
                return scheduleProbe(after: health.interval)
            }
            if now.instant - (startingSince ?? started).instant > health.gracePeriod {
                return beginStop(
                    pid: pid, then: .fail("not healthy within the grace period: \(detail)"), at: now)
            }
            let delay = startingProbeDelay
            startingProbeDelay = min(startingProbeDelay * 2, health.interval)
            return scheduleProbe(after: delay)
        case .running(let pid, let started, let lastHealthy):
            if healthy {
                phase = .running(pid: pid, started: started, lastHealthy: now)
                return scheduleProbe(after: health.interval)
            }
            let unhealthySince = lastHealthy ?? started
            if now.instant - unhealthySince.instant > health.gracePeriod {
                return beginStop(pid: pid, then: .fail("unhealthy for longer than the grace period: \(detail)"), at: now)
            }
            return scheduleProbe(after: health.interval)
        case .stopped, .fatal, .spawning, .installing, .backoff, .stopping:
            // Leaving starting or running forgets the probe under way.
            return impossible("probeFinished")
        }
    }

    // MARK: Transitions

    private mutating func begin(at now: Moment) -> Action {
        if let pending = pendingParameters {
            parameters = pending
            pendingParameters = nil
        }
        afterStop = .stay
        pendingTimer = nil
        if parameters.setupSteps > 0 {
            setPhase(.spawning(.setup(step: 0), stopRequested: false), at: now)
            return .runSetupStep(index: 0)
        }
        setPhase(.spawning(.command, stopRequested: false), at: now)
        return .spawnCommand
    }

    private mutating func continueAfterSetupStep(_ step: Int, at now: Moment) -> Action {
        if step + 1 < parameters.setupSteps {
            setPhase(.spawning(.setup(step: step + 1), stopRequested: false), at: now)
            return .runSetupStep(index: step + 1)
        }
        setPhase(.spawning(.command, stopRequested: false), at: now)
        return .spawnCommand
    }

    private mutating func beginStop(pid: Int32, then next: AfterStop, at now: Moment) -> Action {
        afterStop = next
        setPhase(.stopping(pid: pid, killed: parameters.stopSignal == .kill), at: now)
        timerGeneration += 1
        pendingTimer = .stopTimeout
        return .signalGroup(
            pid: pid, signal: parameters.stopSignal, killAfter: parameters.stopTimeout, generation: timerGeneration)
    }

    /// The process stopped (or never started) after a stop was requested: do what was asked next.
    private mutating func settleAfterStop(at now: Moment) -> Action {
        let next = afterStop
        afterStop = .stay
        pendingTimer = nil
        switch next {
        case .stay:
            setPhase(.stopped, at: now)
            return .none
        case .remove:
            setPhase(.stopped, at: now)
            return .forget
        case .start:
            return begin(at: now)
        case .fail(let message):
            // The uptime is irrelevant: an instance that never became healthy failed quickly by definition.
            return fail(message, cause: .unhealthy, uptime: .zero, at: now)
        }
    }

    private mutating func fail(_ message: String, cause: InstanceStatus.Failure, uptime: Duration, at now: Moment) -> Action {
        lastError = message
        lastFailure = cause
        restarts += 1
        if uptime >= .milliseconds(parameters.restart.stableAfterMilliseconds) {
            quickFailures = 0
        }
        quickFailures += 1
        if quickFailures >= parameters.restart.maximumQuickFailures {
            setPhase(.fatal, at: now)
            pendingTimer = nil
            facts.append(.fatal(message))
            return .none
        }
        setPhase(.backoff, at: now)
        timerGeneration += 1
        pendingTimer = .backoff
        let delay = parameters.restart.backoff(afterFailures: quickFailures)
        facts.append(.backoff(message, after: delay))
        return .scheduleTimer(after: delay, generation: timerGeneration)
    }

    private mutating func scheduleProbe(after delay: Duration) -> Action {
        timerGeneration += 1
        pendingTimer = .probe
        return .scheduleTimer(after: delay, generation: timerGeneration)
    }

    private mutating func setPhase(_ newPhase: Phase, at now: Moment) {
        let before = state
        if case .spawning(.command, _) = newPhase { healthy = nil }
        if case .stopping = newPhase {
            switch phase {
            case .starting, .running, .spawning(.command, _): stoppingCommand = true
            case .stopping: break
            case .stopped, .fatal, .spawning(.setup, _), .installing, .backoff: stoppingCommand = false
            }
        }
        phase = newPhase
        if state != before { since = now.date }
        if case .stopped = newPhase, before != .stopped { facts.append(.stopped) }
        switch newPhase {
        case .starting, .running: break
        case .stopped, .fatal, .spawning, .installing, .backoff, .stopping: probeInFlight = nil
        }
    }

    /// Reports an event `phase` cannot receive: stops a debug build, and otherwise changes nothing.
    private func impossible(_ event: String) -> Action {
        let report = Action.impossible(event: event, phase: "\(phase)")
        if Self.trapsOnImpossibleEvents {
            preconditionFailure("InstanceStateMachine: \(event) cannot happen in phase \(phase)")
        }
        return report
    }

    /// When the current process started, if one exists.
    var started: Date? {
        switch phase {
        case .installing(_, _, let started), .starting(_, let started), .running(_, let started, _):
            started.date
        default:
            nil
        }
    }
}
