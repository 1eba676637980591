import Foundation
import PopState

/// One open store session as the driver's work sees it: pop's namespace through the session's store handle, and the
/// session's watches. Its methods are the store round trips the core asks for; each returns what it found (as the
/// event the core receives) and decides nothing.
struct SessionHandle: Sendable {
    /// Which session of the agent this is (the driver drops what an ended session reports).
    let epoch: Int
    /// pop's records, through this session's store handle.
    let namespace: PopNamespace
    /// The session's watches.
    let watches: SessionWatches
    /// This machine.
    let machine: MachineID

    /// The store handle.
    var store: any CoordinationStore { namespace.store }
    /// pop's paths.
    var paths: NamespacePaths { namespace.paths }

    // MARK: Registration

    /// Registers the machine with `record`; on a conflict, reports who holds the registration.
    func register(_ record: MachineRecord) async -> AgentEvent {
        do {
            try await namespace.registerMachine(record)
            return .machineRegistered(record)
        } catch let error as PopError where error.code == .conflict {
            do {
                return .registrationConflict(ours: record, holder: try await registrationHolder())
            } catch {
                return .sessionFailed(error)
            }
        } catch {
            return .sessionFailed(error)
        }
    }

    /// Who holds this machine's registration, or `nil` when nobody does any more.
    private func registrationHolder() async throws -> RegistrationHolder? {
        let path = paths.machine(machine)
        guard let stat = try await store.exists(path) else { return nil }
        let node = try? await store.get(path)
        let record = node.flatMap { try? Self.decode(MachineRecord.self, $0) }
        return RegistrationHolder(
            record: record, version: stat.version, alive: record.map { Agent.isAlive($0.agentPID) } ?? false)
    }

    /// Deletes the stale registration if it still has `version`.
    func deleteRegistration(version: Int32) async -> AgentEvent {
        try? await store.delete(paths.machine(machine), version: version)
        return .staleRegistrationRemoved
    }

    /// Waits until nobody holds this machine's registration.
    func awaitRegistrationRelease() async -> AgentEvent {
        do {
            let (stat, watch) = try await store.existsAndWatch(paths.machine(machine))
            guard stat != nil else {
                watch.cancel()
                return .registrationReleased
            }
            _ = try await watch.event()
            return .registrationReleased
        } catch {
            return .sessionFailed(error)
        }
    }

    // MARK: Reads

    /// The names of the service nodes.
    func listServices() async -> AgentEvent {
        do {
            let listing = try await store.read([.children(paths.assignments(machine))])
            return .servicesListed(try listing[0].childrenIfExists() ?? [])
        } catch {
            return .passFailed(error)
        }
    }

    /// Reads the spec, this machine's placement, the packages and the task list of each service, in batched round
    /// trips of 300 services.
    func readServices(_ names: [ServiceName]) async -> AgentEvent {
        var snapshots: [ServiceName: ServiceSnapshot] = [:]
        do {
            for chunk in stride(from: 0, to: names.count, by: 300).map({ names[$0..<min($0 + 300, names.count)] }) {
                let reads = chunk.flatMap { name -> [ReadOperation] in
                    [
                        .get(paths.service(name)), .get(paths.placement(name, machine)), .get(paths.packages(name)),
                        .children(paths.tasks(name)),
                    ]
                }
                let results = try await store.read(reads)
                for (offset, name) in chunk.enumerated() {
                    var snapshot = ServiceSnapshot(spec: nil, placement: nil, packages: [])
                    snapshot.tasks = (try? results[offset * 4 + 3].childrenIfExists()) ?? []
                    if let node = try results[offset * 4].nodeIfExists() {
                        snapshot.spec = Result { () throws(PopError) in try Self.decodeSpec(node, name) }
                        snapshot.signature = ConfigSignature(of: node.data)
                    }
                    if let node = try results[offset * 4 + 1].nodeIfExists() {
                        snapshot.placement = Result { () throws(PopError) in try Self.decode(Placement.self, node) }
                    }
                    if let node = try results[offset * 4 + 2].nodeIfExists() {
                        snapshot.packages = (try? Self.decode([String].self, node)) ?? []
                    }
                    snapshots[name] = snapshot
                }
            }
            let required = Set(
                snapshots.values.compactMap { snapshot -> Set<ServiceName>? in
                    guard case .success(let spec)? = snapshot.spec, case .success? = snapshot.placement else { return nil }
                    return spec.requiredServices
                }.joined())
            if !required.isEmpty {
                let views = try await readRequiredServices(required.sorted())
                for name in snapshots.keys {
                    guard case .success(let spec)? = snapshots[name]?.spec else { continue }
                    snapshots[name]?.requirements = views.filter { spec.requiredServices.contains($0.key) }
                }
            }
        } catch {
            return .passFailed(error)
        }
        return .servicesRead(snapshots, at: Date())
    }

    /// Reads what dependents need of the services they require: each one's spec, its instance records on every
    /// machine it is placed on, and the records of those machines that are registered.
    func readRequiredServices(_ names: [ServiceName]) async throws -> [ServiceName: RequiredServiceView] {
        let first = try await store.read(names.flatMap { [ReadOperation.get(paths.service($0)), .children(paths.placements($0))] })
        var views: [ServiceName: RequiredServiceView] = [:]
        var placed: [(ServiceName, MachineID)] = []
        for (offset, name) in names.enumerated() {
            var view = RequiredServiceView()
            if let node = try first[offset * 2].nodeIfExists() { view.spec = try? Self.decodeSpec(node, name) }
            for raw in try first[offset * 2 + 1].childrenIfExists() ?? [] {
                if let machine = try? MachineID(raw) { placed.append((name, machine)) }
            }
            views[name] = view
        }
        let records = try await store.read(
            placed.flatMap { [ReadOperation.get(paths.instance($0.0, $0.1)), .get(paths.machine($0.1))] })
        for (offset, (name, machine)) in placed.enumerated() {
            if let node = try records[offset * 2].nodeIfExists() {
                views[name]?.records[machine] = try? Self.decode(InstanceRecord.self, node)
            }
            if let node = try records[offset * 2 + 1].nodeIfExists() {
                views[name]?.machines[machine] = try? Self.decode(MachineRecord.self, node)
            }
        }
        return views
    }

    /// Reads each service's rollout; for a rollout with a limit, also its placed machines and the records and
    /// registrations of the machines before this one.
    func readRollouts(_ names: [ServiceName]) async -> AgentEvent {
        var views: [ServiceName: RolloutView] = [:]
        do {
            let nodes = try await store.read(names.map { .get(paths.rollout($0)) })
            for (name, result) in zip(names, nodes) {
                var view = RolloutView()
                if let node = try result.nodeIfExists() {
                    view.rollout = try? PopJSON.decoder().decode(Rollout.self, from: Data(node.data))
                }
                if view.rollout?.paces == true {
                    view.now = Date()
                    if let node = try await store.read([.get(paths.rolloutState(name))]).first?.nodeIfExists() {
                        view.state = try? PopJSON.decoder().decode(RolloutState.self, from: Data(node.data))
                    }
                    view.placed = try await store.children(paths.placements(name)).compactMap { try? MachineID($0) }
                    let before = view.placed.filter { $0 < machine }.sorted()
                    let results = try await store.read(
                        before.flatMap { [ReadOperation.get(paths.instance(name, $0)), .get(paths.machine($0))] })
                    for (offset, other) in before.enumerated() {
                        if let node = try results[offset * 2].nodeIfExists() {
                            view.records[other] = try? Self.decode(InstanceRecord.self, node)
                        }
                        if try results[offset * 2 + 1].nodeIfExists() != nil { view.registered.insert(other) }
                    }
                }
                views[name] = view
            }
        } catch {
            return .passFailed(error)
        }
        return .rolloutsRead(views)
    }

    /// Reads task requests, and for each that names this machine the results of this machine and of the machines
    /// before it in the request's order.
    func readTasks(_ keys: [TaskKey]) async -> AgentEvent {
        var views: [TaskKey: TaskView] = [:]
        do {
            let reads = try await store.read(
                keys.flatMap { [.get(paths.task($0.service, $0.id)), .children(paths.task($0.service, $0.id))] })
            var candidates: [(TaskKey, TaskRequest, [MachineID])] = []
            for (offset, key) in keys.enumerated() {
                guard let node = try reads[offset * 2].nodeIfExists() else {
                    views[key] = .missing
                    continue
                }
                let request: TaskRequest
                do {
                    request = try Self.decode(TaskRequest.self, node)
                } catch {
                    views[key] = .malformed(error.message)
                    continue
                }
                guard let position = request.machines.firstIndex(of: machine) else {
                    views[key] = .request(request, results: [:])
                    continue
                }
                let relevant = Set(request.machines[...position])
                let answered = (try reads[offset * 2 + 1].childrenIfExists() ?? []).compactMap { try? MachineID($0) }
                candidates.append((key, request, answered.filter { relevant.contains($0) }))
            }
            let resultReads = candidates.flatMap { key, _, answered in answered.map { (key, $0) } }
            let nodes = try await store.read(resultReads.map { .get(paths.taskResult($0.0.service, $0.0.id, $0.1)) })
            var results: [TaskKey: [MachineID: TaskResult.State]] = [:]
            for ((key, other), node) in zip(resultReads, nodes) {
                guard let node = try node.nodeIfExists() else { continue }
                results[key, default: [:]][other] = (try? Self.decode(TaskResult.self, node))?.state ?? .failed
            }
            for (key, request, _) in candidates {
                views[key] = .request(request, results: results[key] ?? [:])
            }
        } catch {
            return .passFailed(error)
        }
        return .tasksRead(views, at: Date())
    }

    // MARK: Decoding

    static func decodeSpec(_ node: StoreNode, _ name: ServiceName) throws(PopError) -> ServiceSpec {
        let spec: ServiceSpec
        do {
            spec = try TemplateCache.shared.decodeSpec(node.data)
        } catch {
            throw malformed(node, ServiceSpec.self, error)
        }
        guard spec.name == name else {
            throw PopError(
                .corruptState, "The node \(node.path) holds the spec of service '\(spec.name)', not '\(name)'.",
                path: node.path)
        }
        return spec
    }

    /// Decodes a placement, read by ``JSONObjectReader`` when it takes it.
    static func decode(_ type: Placement.Type, _ node: StoreNode) throws(PopError) -> Placement {
        if let placement = Placement(json: node.data) { return placement }
        return try decodeWithJSONDecoder(type, node)
    }

    /// Decodes a machine record, read by ``JSONObjectReader`` when it takes it.
    static func decode(_ type: MachineRecord.Type, _ node: StoreNode) throws(PopError) -> MachineRecord {
        if let record = MachineRecord(json: node.data) { return record }
        return try decodeWithJSONDecoder(type, node)
    }

    /// Decodes an instance record, read by ``JSONObjectReader`` when it takes it.
    static func decode(_ type: InstanceRecord.Type, _ node: StoreNode) throws(PopError) -> InstanceRecord {
        if let record = InstanceRecord(json: node.data) { return record }
        return try decodeWithJSONDecoder(type, node)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ node: StoreNode) throws(PopError) -> T {
        try decodeWithJSONDecoder(type, node)
    }

    private static func decodeWithJSONDecoder<T: Decodable>(_ type: T.Type, _ node: StoreNode) throws(PopError) -> T {
        do {
            return try PopJSON.decoder().decode(type, from: Data(node.data))
        } catch {
            throw malformed(node, type, error)
        }
    }

    static func malformed<T>(_ node: StoreNode, _ type: T.Type, _ error: any Error) -> PopError {
        PopError(
            .corruptState, "The node \(node.path) holds malformed data; expected a \(type) record (\(error)).",
            hint: "Fix or delete the node (for a service, `pop remove` and `pop add` it again).", path: node.path)
    }
}

extension SessionHandle {
    /// Brings back the spec a failed canary rollout reverts to, as a new version, with the rollout's state marked
    /// reverted in the same multi-operation; returns what happened when it did not (already reverted, superseded).
    func revertRollout(_ name: ServiceName, reason: String) async -> String? {
        do {
            let history = try await namespace.history(name)
            guard let (state, _) = try await namespace.rolloutState(name), state.phase == .rolling,
                state.signature == history.current.signature, let version = state.revertTo
            else { return "not reverted: the rollout was reverted or superseded meanwhile" }
            let entry = try await namespace.historyEntry(name, version: version)
            try await namespace.changeService(
                entry.spec, from: history,
                origin: ChangeOrigin(user: "pop-agent@\(machine)", command: "automatic revert to version \(version): \(reason)"),
                revertReason: reason)
            return nil
        } catch let error as PopError where error.code == .conflict {
            return "not reverted: another change came first"
        } catch {
            return "revert failed: \(error)"
        }
    }
}
