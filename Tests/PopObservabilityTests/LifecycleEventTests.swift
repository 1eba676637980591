import Foundation
import Logging
import PopAgent
import PopState
import PopTestSupport
import Testing

/// Lifecycle events as a real supervisor records them, where it decides and sees them, and the journal they go to.
@Suite(.timeLimit(.minutes(5)))
struct LifecycleEventTests {
    /// Runs a supervisor whose lifecycle events go to `journal`, until `body` returns; returns the events in order.
    func withTrackedSupervisor(
        journal: MachineJournal, _ body: @Sendable (Supervisor, LifecycleBox) async throws -> Void
    ) async throws -> [LifecycleEvent] {
        var logger = Logger(label: "pop.test.lifecycle")
        logger.logLevel = .warning
        let box = LifecycleBox(journal: journal)
        let supervisor = try Supervisor(options: .init(lifecycle: { box.record($0) }), logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await supervisor.run() }
            do {
                try await body(supervisor, box)
            } catch {
                await supervisor.stopAll()
                throw error
            }
            await supervisor.stopAll()
            group.cancelAll()
            try await group.waitForAll()
        }
        return box.events
    }

    func configuration(
        _ folder: String, _ command: [String], signature: String = "1111", health: HealthProbe? = nil, failures: Int = 3
    ) throws -> InstanceConfiguration {
        InstanceConfiguration(
            name: try ServiceName("web"), signature: ConfigSignature(hex: signature), command: command,
            environment: ["PATH": "/usr/local/bin:/usr/bin:/bin"], workingDirectory: folder + "/work",
            logDirectory: folder + "/logs", stateDirectory: folder + "/state", stopTimeoutMilliseconds: 5000,
            health: health,
            restartPolicy: RestartPolicy(initialBackoffMilliseconds: 20, maximumQuickFailures: failures))
    }

    func kinds(_ events: [LifecycleEvent]) -> [String] {
        events.map { event in
            switch event.kind {
            case .restarted: "restarted:\(event.reason?.rawValue ?? "?")"
            case .exited: "exited:\(event.exitCode.map(String.init) ?? event.signal.map { "signal \($0)" } ?? "?")"
            case .health: "health:\(event.healthy == true)"
            default: event.kind.rawValue
            }
        }
    }

    @Test func aCrashLoopEndsFatal() async throws {
        try await withTemporaryFolder { folder in
            let journal = MachineJournal(home: PopHome(path: folder + "/home"), machine: try MachineID("m1"), version: "test")
            let events = try await withTrackedSupervisor(journal: journal) { supervisor, box in
                supervisor.start(try configuration(folder, ["python3", "-c", "import sys; sys.exit(3)"], failures: 2))
                try await box.wait { $0.contains { $0.kind == .fatal } }
            }
            // (The fixture's end stops every instance: a FATAL one too.)
            #expect(kinds(events) == ["started", "exited:3", "backoff", "restarted:crash", "started", "exited:3", "fatal", "stopped"])
            // Written to the instance's journal, numbered, and counted for the metrics.
            let written = EventJournalFile.read(journal.journalPath(try ServiceName("web")))
            #expect(written.map(\.seq) == Array(1...8))
            #expect(written.map(\.kind) == events.map(\.kind))
            let figures = try #require(journal.figures().instances.first)
            #expect(figures.restarts == [.crash: 1] && figures.lastExitCode == 3 && figures.lastRestart == .crash)
        }
    }

    @Test func decidedRestartsAndHealthSayWhy() async throws {
        try await withTemporaryFolder { folder in
            let journal = MachineJournal(home: PopHome(path: folder + "/home"), machine: try MachineID("m1"), version: "test")
            let listener = ["python3", "-c", "import socket, sys, time; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\nwhile True: s.accept()[0].close()"]
            let port = try LoopbackHTTP.freePort()
            // A listener passes its check as soon as it listens, however long a loaded machine takes to start it; the
            // program that never listens fails it after a short grace period.
            let health = HealthProbe(target: .tcp(port: UInt16(port)), intervalMilliseconds: 50, timeoutMilliseconds: 500, gracePeriodMilliseconds: 60_000)
            let impatient = HealthProbe(target: .tcp(port: UInt16(port)), intervalMilliseconds: 50, timeoutMilliseconds: 500, gracePeriodMilliseconds: 300)
            let events = try await withTrackedSupervisor(journal: journal) { supervisor, box in
                supervisor.start(try configuration(folder, listener + [String(port)], health: health))
                try await box.wait { $0.contains { $0.kind == .health && $0.healthy == true } }
                // A new configuration: the supervisor restarts it, and says why.
                supervisor.start(try configuration(folder, listener + [String(port)], signature: "2222", health: health))
                try await box.wait { $0.filter { $0.kind == .health && $0.healthy == true }.count == 2 }
                supervisor.restart(try ServiceName("web"))
                try await box.wait { $0.filter { $0.kind == .health && $0.healthy == true }.count == 3 }
                // A program that never listens fails its check and is restarted for its health.
                let before = box.events.count
                supervisor.start(try configuration(folder, ["sleep", "600"], signature: "3333", health: impatient))
                try await box.wait { $0.dropFirst(before).contains { $0.kind == .restarted && $0.reason == .health } }
                // The status, and so the instance record `pop status` shows, says why too.
                let status = supervisor.status(of: try ServiceName("web"))
                #expect(status?.lastRestart == .health)
                #expect(status?.record(machine: try MachineID("m1")).lastRestart == .health)
            }
            let kinds = kinds(events)
            #expect(
                Array(kinds.prefix(11)) == [
                    "started", "health:true", "exited:signal 15", "restarted:config-change", "started", "health:true",
                    "exited:signal 15", "restarted:manual", "started", "health:true", "exited:signal 15",
                ], "\(kinds)")
            #expect(kinds.contains("restarted:health"), "\(kinds)")
            #expect(journal.lastRestart(of: try ServiceName("web")) == .health)
        }
    }
}

/// The events the supervisor records, written to the journal, and waits on them.
final class LifecycleBox: @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [LifecycleEvent] = []
    private var waiters: [(condition: ([LifecycleEvent]) -> Bool, continuation: CheckedContinuation<Void, Never>)] = []
    let journal: MachineJournal

    init(journal: MachineJournal) { self.journal = journal }

    var events: [LifecycleEvent] { lock.withLock { recorded } }

    func record(_ event: LifecycleEvent) {
        let written = journal.record(event)
        let ready = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            recorded.append(written)
            let ready = waiters.filter { $0.condition(recorded) }.map(\.continuation)
            waiters.removeAll { $0.condition(recorded) }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    /// Waits until the events satisfy `condition` (the suite's time limit ends a wait that never does).
    func wait(_ condition: @escaping ([LifecycleEvent]) -> Bool) async throws {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = lock.withLock {
                if condition(recorded) { return true }
                waiters.append((condition, continuation))
                return false
            }
            if done { continuation.resume() }
        }
    }
}

/// Reads an event journal's file as written.
enum EventJournalFile {
    static func read(_ path: String) -> [LifecycleEvent] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap {
            try? JSONDecoder().decode(LifecycleEvent.self, from: Data($0.utf8))
        }
    }
}
