import Foundation
import Logging
import PopState

/// What the store says about one service, as far as this machine is concerned.
struct ServiceSnapshot: Sendable {
    /// The spec, or why it cannot be read; `nil` when the service does not exist.
    var spec: Result<ServiceSpec, PopError>?
    /// The configuration signature: the SHA-1 of the spec node's data.
    var signature: ConfigSignature?
    /// This machine's placement, or why it cannot be read; `nil` when the service is not placed here.
    var placement: Result<Placement, PopError>?
    /// The packages recorded with the service.
    var packages: [String]
    /// The names of the service's task requests.
    var tasks: [String] = []
}

/// A slow step the agent runs beside its reconcile loop.
enum AgentOperation: Sendable {
    /// Stop the instance, forget it, and delete its local records.
    case remove(ServiceName)
    /// Run a task request here.
    case runTask(AgentState.TaskKey, TaskRequest)
}

extension Agent {
    /// Runs coalesced reconcile passes until the session ends.
    func reconcileLoop(_ session: AgentSession) async throws {
        for await _ in session.reconcile.stream {
            let changes = state.withLock { state -> PendingChanges in
                defer { state.pending = PendingChanges() }
                return state.pending
            }
            do {
                if changes.isEmpty {
                    try await flushTaskResults(session)
                    continue
                }
                try await reconcile(changes, session: session)
            } catch {
                try Task.checkCancellation()
                state.withLock { $0.pending.merge(changes) }
                logger.warning(
                    "reconcile pass failed; instances keep running, retrying", metadata: ["error": "\(error)"])
                try await Task.sleep(for: .seconds(1))
                session.reconcile.signal()
            }
        }
    }

    /// One pass: reads what changed, plans, and carries out the plan.
    func reconcile(_ changes: PendingChanges, session: AgentSession) async throws {
        let namespace = session.namespace
        var scope = changes.services.union(changes.tasks.keys)
        if changes.everything || changes.serviceList {
            let names = try await namespace.store.children(namespace.paths.services)
            var listed: Set<ServiceName> = []
            for name in names {
                if let service = try? ServiceName(name) {
                    listed.insert(service)
                } else if changes.everything {
                    logger.warning("ignoring a service node with an invalid name", metadata: ["node": "\(name)"])
                }
            }
            // Set the watches of new services before reading them.
            let followed = try await track(listed, session: session)
            if changes.everything {
                scope = state.withLock { state in
                    state.templates = Set(state.specs.values.map(\.template))
                    return listed.union(state.known).union(state.statuses.keys).union(state.problems.keys)
                }
            } else {
                scope.formUnion(followed)
            }
        }
        let snapshots = try await readServices(scope.sorted(), namespace: namespace)
        let planned = state.withLock { state -> [ReconcileAction] in
            for (name, snapshot) in snapshots { apply(snapshot, of: name, to: &state) }
            return Reconciliation.plan(
                desired: state.desired, actual: state.actual, unreadable: Set(state.problems.keys).union(state.busy),
                scope: scope)
        }
        let actions = try await gateRollouts(planned, scope: scope, session: session)
        for action in actions {
            carryOut(action)
        }
        if !actions.isEmpty { session.publish.signal() }
        memoryRelease.finished(snapshots.count)

        // Tasks: every request of a service placed here on a full pass; otherwise those that changed, plus the
        // requests of services whose placement changed.
        var taskServices: [ServiceName] = []
        var taskKeys: Set<AgentState.TaskKey> = []
        state.withLock { state in
            for (service, ids) in changes.tasks {
                for raw in ids {
                    guard let id = try? TaskID(raw) else { continue }
                    let key = AgentState.TaskKey(service: service, id: id)
                    if state.tasks[key] != .done, state.tasks[key] != .running { taskKeys.insert(key) }
                }
            }
            let candidates = changes.everything ? Set(state.desired.keys) : changes.services
            taskServices = candidates.filter { state.desired[$0] != nil }.sorted()
        }
        if !taskServices.isEmpty {
            state.withLock { state in
                for service in taskServices {
                    for raw in snapshots[service]?.tasks ?? [] {
                        guard let id = try? TaskID(raw) else { continue }
                        let key = AgentState.TaskKey(service: service, id: id)
                        if state.tasks[key] == nil || state.tasks[key] == .waiting { taskKeys.insert(key) }
                    }
                }
            }
        }
        if !taskKeys.isEmpty {
            try await examineTasks(taskKeys.sorted { ($0.service, $0.id) < ($1.service, $1.id) }, session: session)
        }
        try await flushTaskResults(session)
    }

    /// Reads the spec, this machine's placement, the packages and the task list of each service, in batched round
    /// trips.
    func readServices(_ names: [ServiceName], namespace: PopNamespace) async throws -> [ServiceName: ServiceSnapshot] {
        var snapshots: [ServiceName: ServiceSnapshot] = [:]
        let paths = namespace.paths
        for chunk in stride(from: 0, to: names.count, by: 300).map({ names[$0..<min($0 + 300, names.count)] }) {
            let reads = chunk.flatMap { name -> [ReadOperation] in
                [
                    .get(paths.service(name)), .get(paths.placement(name, machine)), .get(paths.packages(name)),
                    .children(paths.tasks(name)),
                ]
            }
            let results = try await namespace.store.read(reads)
            for (offset, name) in chunk.enumerated() {
                let specResult = results[offset * 4]
                let placementResult = results[offset * 4 + 1]
                let packagesResult = results[offset * 4 + 2]
                var snapshot = ServiceSnapshot(spec: nil, placement: nil, packages: [])
                snapshot.tasks = (try? results[offset * 4 + 3].childrenIfExists()) ?? []
                if let node = try specResult.nodeIfExists() {
                    snapshot.spec = Result { () throws(PopError) in try Self.decodeSpec(node, name) }
                    snapshot.signature = ConfigSignature(of: node.data)
                }
                if let node = try placementResult.nodeIfExists() {
                    snapshot.placement = Result { () throws(PopError) in try Self.decode(Placement.self, node) }
                }
                if let node = try packagesResult.nodeIfExists() {
                    snapshot.packages = (try? Self.decode([String].self, node)) ?? []
                }
                snapshots[name] = snapshot
            }
        }
        return snapshots
    }

    /// Folds a snapshot into the state.
    func apply(_ snapshot: ServiceSnapshot, of name: ServiceName, to state: inout AgentState) {
        let oldProblem = state.problems[name]
        state.problems.removeValue(forKey: name)
        state.desired.removeValue(forKey: name)
        guard let spec = snapshot.spec, let signature = snapshot.signature else {
            state.known.remove(name)
            state.specs.removeValue(forKey: name)
            state.signatures.removeValue(forKey: name)
            state.packages.removeValue(forKey: name)
            if oldProblem != nil { state.refreshRecord(name, machine: machine) }
            return
        }
        state.known.insert(name)
        state.packages[name] = snapshot.packages
        switch spec {
        case .success(var spec):
            // Services made from one template share one copy of it (its strings and lists), which keeps an agent
            // with many services small.
            spec.template = state.templates.insert(spec.template).memberAfterInsert
            state.specs[name] = spec
            state.signatures[name] = signature
        case .failure:
            state.specs.removeValue(forKey: name)
            state.signatures.removeValue(forKey: name)
        }
        switch (spec, snapshot.placement) {
        case (_, nil):
            break
        case (.success, .success(let placement)?):
            state.desired[name] = DesiredInstance(
                service: name, signature: signature, restartGeneration: placement.restartGeneration)
        case (.failure(let error), _?):
            state.problems[name] = error.message
        case (_, .failure(let error)?):
            state.problems[name] = error.message
        }
        if let problem = state.problems[name], problem != oldProblem {
            logger.error(
                "service cannot be used; its instance is left as it is",
                metadata: ["service": "\(name)", "error": "\(problem)"])
        }
        if state.problems[name] != oldProblem { state.refreshRecord(name, machine: machine) }
    }

    /// Carries out one action: starts and restarts at once (the supervisor works them out), stops beside the loop.
    func carryOut(_ action: ReconcileAction) {
        logger.info("\(action)", metadata: ["service": "\(action.service)"])
        switch action {
        case .stop(let name):
            state.withLock { _ = $0.busy.insert(name) }
            operationSink.yield(.remove(name))
        case .start(let desired), .restart(let desired, .configurationChanged):
            guard let configuration = prepare(desired) else { return }
            // The supervisor restarts an instance whose configuration differs, and clears FATAL doing so.
            supervisor.start(configuration)
        case .restart(let desired, .restartRequested):
            guard let configuration = prepare(desired) else { return }
            // One deliberate restart with the current configuration, which clears FATAL and the failure count: when
            // the configuration differs, `start` already begins it and `restart` joins the stop in progress.
            supervisor.start(configuration)
            supervisor.restart(desired.service)
        }
    }

    /// Works out the instance's configuration, writes its files and remembers its restart generation; a spec that
    /// cannot be turned into a command becomes the instance's problem.
    func prepare(_ desired: DesiredInstance) -> InstanceConfiguration? {
        let name = desired.service
        let (spec, packages) = state.withLock { ($0.specs[name], $0.packages[name] ?? []) }
        guard let spec else { return nil }
        do {
            let blueprint = try InstanceBlueprint(
                spec: spec, signature: desired.signature, machine: machine,
                directory: configuration.instanceDirectory(name), packages: packages,
                baseEnvironment: configuration.instanceBaseEnvironment)
            let instance = try instanceConfiguration(blueprint, template: spec.template)
            try InstanceFolder.prepare(blueprint, stateDirectory: configuration.stateDirectory(name))
            try PlacementMemory.write(desired.restartGeneration, to: configuration.stateDirectory(name))
            state.withLock { $0.generations[name] = desired.restartGeneration }
            return instance
        } catch {
            let message = (error as? PopError)?.message ?? "\(error)"
            logger.error("cannot start instance", metadata: ["service": "\(name)", "error": "\(message)"])
            let session = state.withLock { state -> AgentSession? in
                state.problems[name] = message
                state.refreshRecord(name, machine: machine)
                return state.session
            }
            session?.publish.signal()
            return nil
        }
    }

    /// The supervisor's view of a blueprint.
    func instanceConfiguration(_ blueprint: InstanceBlueprint, template: ResolvedTemplate) throws -> InstanceConfiguration {
        let name = blueprint.service
        do {
            return InstanceConfiguration(
                name: name, signature: blueprint.signature, command: blueprint.command,
                environment: blueprint.environment, workingDirectory: blueprint.directory,
                logDirectory: configuration.logDirectory(name), stateDirectory: configuration.stateDirectory(name),
                setup: blueprint.setup, stopSignal: template.stopSignal,
                stopTimeoutMilliseconds: template.stopTimeoutMilliseconds,
                health: try blueprint.health.map { (check) throws(SupervisorError) in try HealthProbe(check) },
                restartPolicy: configuration.restartPolicy, logRotation: configuration.logRotation)
        } catch {
            throw error.popError
        }
    }

    /// Carries out slow steps concurrently, each beside the reconcile loop.
    func performOperations() async {
        await withDiscardingTaskGroup { group in
            for await operation in operations {
                group.addTask { await self.perform(operation) }
            }
        }
    }

    func perform(_ operation: AgentOperation) async {
        let service: ServiceName
        switch operation {
        case .remove(let name):
            service = name
            await supervisor.remove(name)
            PlacementMemory.remove(from: configuration.stateDirectory(name))
        case .runTask(let key, let request):
            await runTask(key, request)
            return
        }
        // Look at the service again: its placement may have changed while this ran.
        let session = state.withLock { state -> AgentSession? in
            state.busy.remove(service)
            state.pending.services.insert(service)
            return state.session
        }
        session?.reconcile.signal()
    }

    // MARK: Decoding

    static func decodeSpec(_ node: StoreNode, _ name: ServiceName) throws(PopError) -> ServiceSpec {
        let spec = try decode(ServiceSpec.self, node)
        guard spec.name == name else {
            throw PopError(
                .corruptState, "The node \(node.path) holds the spec of service '\(spec.name)', not '\(name)'.",
                path: node.path)
        }
        return spec
    }

    static func decode<T: Decodable>(_ type: T.Type, _ node: StoreNode) throws(PopError) -> T {
        do {
            return try PopJSON.decoder().decode(type, from: Data(node.data))
        } catch {
            throw PopError(
                .corruptState, "The node \(node.path) holds malformed data; expected a \(type) record (\(error)).",
                hint: "Fix or delete the node (for a service, `pop remove` and `pop add` it again).", path: node.path)
        }
    }
}
