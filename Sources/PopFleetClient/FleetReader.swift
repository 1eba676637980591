import AsyncAlgorithms
import Foundation
import NIOCore
import PopAgent
import PopState
import Synchronization

/// Reads the journals of every machine that runs a service (or of every machine, for events) and hands on one
/// stream in time order (``FleetMerge``): `pop logs` and `pop events`.
///
/// Each machine is read by a task of its own, through its agent's endpoint (or, on the embedded store, from the
/// files in this host's pop home). When following, store watches bring machines that start running the service (they
/// join) or stop (they leave), and new agent addresses. A machine that cannot be reached gets a marker, is tried again
/// (at once when its agent registers again, else with a growing delay), and is read again from its cursors: nothing
/// is lost and nothing comes twice.
public final class FleetReader: Sendable {
    /// How the machines' journals are reached.
    public enum Access: Sendable {
        /// In this host's pop home (the embedded store: every machine is this host).
        case local(PopHome)
        /// Through each machine's endpoint.
        case remote(EndpointClient)
    }

    /// What to read.
    public struct Options: Sendable {
        /// The service whose instances' journals to read; nil for the events of every machine (`pop events`).
        public var service: ServiceName?
        /// Only this machine.
        public var machine: MachineID?
        /// Streams, events, where to start, whether to follow, the pattern.
        public var request: JournalRequest
        /// While following, how often an idle agent says how far it is complete.
        public var heartbeatMilliseconds = 20
        /// A connection silent for this long counts as lost.
        public var readTimeout: Duration = .seconds(5)
        /// The longest wait before trying an unreachable machine again (a registration wakes it at once).
        public var maximumRetryDelay: Duration = .seconds(2)

        /// Options reading `request` of `service` (nil: every machine's events), or of one `machine` only.
        public init(service: ServiceName?, machine: MachineID? = nil, request: JournalRequest) {
            self.service = service
            self.machine = machine
            self.request = request
        }
    }

    private let namespace: PopNamespace
    private let access: Access
    private let options: Options

    /// A reader of `namespace`'s machines through `access`.
    public init(namespace: PopNamespace, access: Access, options: Options) {
        self.namespace = namespace
        self.access = access
        self.options = options
    }

    /// What a machine's task reports.
    enum Input: Sendable {
        case frames(String, [JournalFrame])
        case connected(String)
        case failed(String, String)
        case ended(String)
        case fatal(PopError)
        case placements(Set<MachineID>)
        case records([MachineRecord])
    }

    /// The agents' records, as last read: where each machine's endpoint is.
    final class AddressBook: Sendable {
        private let records = Mutex<[MachineID: MachineRecord]>([:])

        func set(_ list: [MachineRecord]) {
            records.withLock { $0 = Dictionary(list.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first }) }
        }

        func record(_ machine: MachineID) -> MachineRecord? { records.withLock { $0[machine] } }
    }

    /// A machine's task, and how to stop or nudge it.
    final class MachineLink: Sendable {
        let machine: MachineID
        let nudges: AsyncStream<Void>
        private let nudger: AsyncStream<Void>.Continuation
        private let stopped = Mutex(false)

        init(_ machine: MachineID) {
            self.machine = machine
            (nudges, nudger) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        }

        var isStopped: Bool { stopped.withLock { $0 } }
        func nudge() { nudger.yield() }
        func stop() {
            stopped.withLock { $0 = true }
            nudger.finish()
        }
    }

    /// The machines whose journals to read, now.
    func currentMachines() async throws -> Set<MachineID> {
        var machines: Set<MachineID>
        if let service = options.service {
            machines = Set(try await namespace.placements(service).keys)
        } else {
            machines = Set(try await namespace.machines().map(\.id))
            if case .local(let home) = access {
                // One host: the agents that ran here left their journals, registered or not.
                let folders = (try? FileManager.default.contentsOfDirectory(atPath: home.path + "/machines")) ?? []
                machines.formUnion(folders.compactMap { try? MachineID($0) })
            }
        }
        if let only = options.machine { machines = machines.filter { $0 == only } }
        return machines
    }

    /// Reads until every machine's journals have come (not following), or until the task is cancelled; hands each
    /// piece of the merged stream to `output` as soon as it can be printed. Returns the machines that could not be
    /// read (not following). Throws a ``PopError`` when an agent refuses the request (wrong key: `.permissionDenied`;
    /// a bad pattern: `.invalidInput`).
    @discardableResult
    public func run(_ output: ([FleetMerge.Output]) async throws -> Void) async throws -> [String] {
        let follow = options.request.follow
        let inputs = AsyncChannel<Input>()
        let addresses = AddressBook()
        if case .remote = access { addresses.set(try await namespace.machines()) }
        let initial = try await currentMachines()
        var merge = FleetMerge()
        var links: [MachineID: MachineLink] = [:]
        var unreadable: [String] = []
        var failures: [String: String] = [:]
        let started = Self.now()

        return try await withThrowingTaskGroup(of: Void.self) { group in
            func start(_ machine: MachineID, joined: Bool) -> [FleetMerge.Output] {
                let link = MachineLink(machine)
                links[machine] = link
                var request = options.request
                // A machine that starts running the service while following: what it wrote since the command started.
                if joined { request.start = .since(started) }
                if follow { request.heartbeatMilliseconds = options.heartbeatMilliseconds }
                group.addTask { await self.read(machine, link: link, request: request, addresses: addresses, into: inputs) }
                return merge.add(machine.rawValue, announce: joined)
            }
            for machine in initial.sorted(by: { $0.rawValue < $1.rawValue }) { _ = start(machine, joined: false) }
            if follow {
                let placements = options.service.map { namespace.paths.placements($0) } ?? namespace.paths.machines
                group.addTask { await self.watch(placements, into: inputs) { .placements(try await self.currentMachines()) } }
                if case .remote = access {
                    group.addTask {
                        await self.watch(self.namespace.paths.machines, into: inputs) { .records(try await self.namespace.machines()) }
                    }
                }
                group.addTask { await self.endWithTheSession(into: inputs) }
            }
            if initial.isEmpty && !follow {
                inputs.finish()
                group.cancelAll()
                return []
            }
            var open = Set(initial.map(\.rawValue))
            for await input in inputs {
                var out: [FleetMerge.Output] = []
                switch input {
                case .frames(let machine, let frames):
                    out = merge.receive(machine, frames)
                    if frames.contains(where: { if case .end = $0 { true } else { false } }) {
                        open.remove(machine)
                    }
                case .connected(let machine):
                    failures[machine] = nil
                    out = merge.connected(machine)
                case .failed(let machine, let reason):
                    failures[machine] = reason
                    out = merge.unreachable(machine, reason: reason)
                case .ended(let machine):
                    if let reason = failures[machine] { unreadable.append("\(machine): \(reason)") }
                    out = merge.ended(machine)
                    open.remove(machine)
                case .fatal(let error):
                    inputs.finish()
                    group.cancelAll()
                    throw error
                case .placements(let machines):
                    for machine in machines.subtracting(links.keys).sorted(by: { $0.rawValue < $1.rawValue }) {
                        out += start(machine, joined: true)
                    }
                    for machine in Set(links.keys).subtracting(machines) {
                        links.removeValue(forKey: machine)?.stop()
                        out += merge.remove(machine.rawValue)
                    }
                case .records(let records):
                    addresses.set(records)
                    for link in links.values { link.nudge() }
                }
                if !out.isEmpty { try await output(out) }
                if !follow && open.isEmpty { break }
            }
            let rest = merge.drain()
            if !rest.isEmpty { try await output(rest) }
            for link in links.values { link.stop() }
            inputs.finish()
            group.cancelAll()
            return unreadable.sorted()
        }
    }

    // MARK: One machine

    /// Reads one machine's journals, again after each failure, until stopped (or done when not following).
    private func read(
        _ machine: MachineID, link: MachineLink, request initial: JournalRequest,
        addresses: AddressBook, into inputs: AsyncChannel<Input>
    ) async {
        let name = machine.rawValue
        let follow = initial.follow
        var book = CursorBook(service: options.service)
        var delay = Duration.milliseconds(100)
        var reported: String?
        while !link.isStopped && !Task.isCancelled {
            do {
                switch access {
                case .local(let home):
                    let feed = try JournalFeed(home: home, machine: machine, request: initial)
                    await inputs.send(.connected(name))
                    try await feed.run { frames in await inputs.send(.frames(name, frames)) }
                    if !follow { return }
                case .remote(let client):
                    guard let record = addresses.record(machine) else {
                        throw PopError(.storeUnreachable, "its agent is not running")
                    }
                    guard let text = record.endpoint, let address = EndpointAddress(text) else {
                        throw PopError(.storeUnreachable, "its agent (version \(record.agentVersion)) serves no endpoint")
                    }
                    let request = book.resuming(initial)
                    let path = options.service == nil || (request.streams.isEmpty && request.events) ? "/events" : "/logs"
                    let finished = try await client.get(
                        address, path: path, query: request.queryItems, readTimeout: Self.timeAmount(options.readTimeout)
                    ) { answer -> Bool in
                        switch answer.status {
                        case 200: break
                        case 401:
                            throw PopError(
                                .permissionDenied,
                                "The agent of machine \(name) refused the request (401): this command's endpoint key is not the namespace's.",
                                hint: "Check that the command and the agents use the same namespace and credentials (POP_AUTH, the credentials file).")
                        case 400:
                            throw PopError(.invalidInput, "The agent of machine \(name) refused the request: \(try await answer.text().trimmingCharacters(in: .whitespacesAndNewlines))")
                        default:
                            throw PopError(.storeUnreachable, "its endpoint answered \(answer.status)")
                        }
                        await inputs.send(.connected(name))
                        reported = nil
                        delay = .milliseconds(100)
                        var decoder = JournalFrameDecoder()
                        while let buffer = try await answer.next() {
                            let frames = try decoder.decode(buffer.readableBytesView)
                            book.note(frames)
                            await inputs.send(.frames(name, frames))
                            if frames.contains(where: { if case .end = $0 { true } else { false } }) { return true }
                        }
                        return false
                    }
                    if finished || !follow { return }
                }
            } catch let error as PopError where error.code == .permissionDenied || error.code == .invalidInput {
                await inputs.send(.fatal(error))
                return
            } catch {
                if link.isStopped || Task.isCancelled { return }
                let reason = (error as? PopError)?.message ?? "\(error)"
                if !follow {
                    await inputs.send(.failed(name, reason))
                    await inputs.send(.ended(name))
                    return
                }
                if reported == nil {
                    reported = reason
                    await inputs.send(.failed(name, reason))
                }
            }
            // Wait before trying again; a new registration of its agent nudges at once.
            await withTaskGroup(of: Void.self) { wait in
                wait.addTask { [delay] in try? await Task.sleep(for: delay) }
                wait.addTask { for await _ in link.nudges { return } }
                await wait.next()
                wait.cancelAll()
            }
            delay = min(delay * 2, options.maximumRetryDelay)
        }
    }

    // MARK: Watches

    /// Sends `read()` at once and again after each burst of changes under `path`. A failed watch (the store
    /// unreachable for a while) is set again after a second; a session that ended for good ends the follow instead
    /// (``endWithTheSession(into:)``).
    private func watch(
        _ path: String, into inputs: AsyncChannel<Input>, _ read: @escaping @Sendable () async throws -> Input
    ) async {
        while !Task.isCancelled {
            do {
                let changes = try await namespace.store.changes(under: path)
                // Read after the watch is set, so that no change between the two is missed.
                await inputs.send(try await read())
                for try await _ in changes { await inputs.send(try await read()) }
            } catch {
                if Task.isCancelled { return }
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Ends the follow with the session's error once the store session has ended for good (expired, closed, its
    /// credentials refused): no watch can be set on it again.
    private func endWithTheSession(into inputs: AsyncChannel<Input>) async {
        for await event in namespace.store.sessionEvents() {
            if let error = event.endingError {
                await inputs.send(.fatal(error))
                return
            }
        }
    }

    /// Now, in nanoseconds since the epoch (the time of a marker).
    public static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000_000) }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        .nanoseconds(duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }
}
