import Foundation

extension PopNamespace {
    /// Reads everything `pop status` shows in three batched round trips: the root and the lists of machines and
    /// services; then every machine record, and each service's spec, placement list, scheduling policy and rollout;
    /// then every placement and instance, while the specs of the second are decoded.
    ///
    /// Nodes deleted between the rounds are left out. A malformed record (or child name) is reported in
    /// ``StatusSnapshot/problems`` and its service or machine left out, so the rest is still shown.
    public func status() async throws -> StatusSnapshot {
        let first = try await store.read([
            .get(prefix), .children(paths.machines), .children(paths.services), .children(paths.facts),
        ])
        guard let root = try first[0].nodeIfExists() else { throw notInitialized() }
        try verifyLayout(root)
        layoutChecked.set()
        var problems: [StatusSnapshot.Problem] = []
        let machineIDs = (try first[1].childrenIfExists() ?? []).compactMap { name -> MachineID? in
            do { return try parseName(name, under: paths.machines, MachineID.init) } catch {
                problems.append(.init(service: nil, error: Self.statusProblem(error)))
                return nil
            }
        }
        let serviceNames = (try first[2].childrenIfExists() ?? []).compactMap { name -> ServiceName? in
            do { return try parseName(name, under: paths.services, ServiceName.init) } catch {
                problems.append(.init(service: name, error: Self.statusProblem(error)))
                return nil
            }
        }

        let factIDs = (try first[3].childrenIfExists() ?? []).compactMap { name -> MachineID? in
            do { return try parseName(name, under: paths.facts, MachineID.init) } catch {
                problems.append(.init(service: nil, error: Self.statusProblem(error)))
                return nil
            }
        }

        var second: [ReadOperation] = machineIDs.map { .get(paths.machine($0)) }
        for name in serviceNames {
            second.append(.get(paths.service(name)))
            second.append(.children(paths.placements(name)))
            second.append(.get(paths.scheduling(name)))
            second.append(.get(paths.rolloutState(name)))
            second.append(.get(paths.rollout(name)))
        }
        second += factIDs.map { .get(paths.facts($0)) }
        let secondResults = try await store.read(second)

        // The third batch (each placement and its instance record) needs only the services' names and where they are
        // placed, so it is read while the machine records and the specs are decoded.
        var placed: [(ids: Result<[MachineID], PopError>, third: Int)?] = []
        var third: [ReadOperation] = []
        for (index, name) in serviceNames.enumerated() {
            let base = machineIDs.count + index * Self.readsPerService
            guard (try? secondResults[base].nodeIfExists()) != nil,
                let children = try? secondResults[base + 1].childrenIfExists()
            else {
                placed.append(nil)  // Removed meanwhile, or unreadable: the service's own read reports it.
                continue
            }
            let ids = Result { () throws(PopError) in
                try children.map { (machine) throws(PopError) in
                    try parseName(machine, under: paths.placements(name), MachineID.init)
                }
            }
            placed.append((ids, third.count))
            for id in (try? ids.get()) ?? [] {
                third.append(.get(paths.placement(name, id)))
                third.append(.get(paths.instance(name, id)))
            }
        }
        let store = store
        async let thirdRead = third.isEmpty ? [] : store.read(third)

        var machines: [MachineRecord] = []
        for result in secondResults[..<machineIDs.count] {
            do {
                guard let node = try result.nodeIfExists() else { continue }
                machines.append(try decode(MachineRecord.self, node))
            } catch {
                problems.append(.init(service: nil, error: Self.statusProblem(error)))
            }
        }
        var services: [(service: VersionedService, ids: [MachineID], third: Int, policy: SchedulingPolicy?, rollout: StatusSnapshot.RolloutStatus?)] = []
        for (index, name) in serviceNames.enumerated() {
            let base = machineIDs.count + index * Self.readsPerService
            do {
                guard let node = try secondResults[base].nodeIfExists(),
                    try secondResults[base + 1].childrenIfExists() != nil, let (ids, offset) = placed[index]
                else { continue }  // Removed meanwhile.
                let service = try decodeService(node, name)
                let placedOn = try ids.get()
                let policy = try secondResults[base + 2].nodeIfExists().map { (node) throws(PopError) in
                    try decode(SchedulingPolicy.self, node)
                }
                services.append((service, placedOn, offset, policy, Self.rollout(secondResults[base + 3], secondResults[base + 4])))
            } catch {
                problems.append(.init(service: name.rawValue, error: Self.statusProblem(error)))
            }
        }
        var facts: [MachineID: StatusSnapshot.FactsStatus] = [:]
        let factsBase = machineIDs.count + serviceNames.count * Self.readsPerService
        for (index, id) in factIDs.enumerated() {
            do {
                guard let node = try secondResults[factsBase + index].nodeIfExists() else { continue }
                facts[id] = .init(facts: try decode(MachineFacts.self, node), version: node.stat.version)
            } catch {
                problems.append(.init(service: nil, error: Self.statusProblem(error)))
            }
        }

        let thirdResults = try await thirdRead
        var statuses: [StatusSnapshot.ServiceStatus] = []
        for (service, ids, offset, policy, rollout) in services {
            var placements: [StatusSnapshot.PlacementStatus] = []
            for (position, id) in ids.enumerated() {
                let index = offset + position * 2
                do {
                    guard let placementNode = try thirdResults[index].nodeIfExists() else { continue }
                    let instance = try thirdResults[index + 1].nodeIfExists().map { (node) throws(PopError) in
                        try decode(InstanceRecord.self, node)
                    }
                    placements.append(
                        .init(machine: id, placement: try decode(Placement.self, placementNode), instance: instance))
                } catch {
                    problems.append(.init(service: service.spec.name.rawValue, error: Self.statusProblem(error)))
                }
            }
            statuses.append(
                .init(
                    spec: service.spec, version: service.version, signature: service.signature, placements: placements,
                    scheduling: policy, rollout: rollout))
        }
        return StatusSnapshot(
            store: store.description, machines: machines, services: statuses, facts: facts, problems: problems)
    }

    /// The reads of the second batch for each service: its spec, its placements, its scheduling policy, its rollout's
    /// state and its rollout policy.
    private static let readsPerService = 5

    /// A service's canary rollout, when its state node holds one; an unreadable state or policy shows none, as the
    /// rollout is what `pop config --canary` reports on, not part of the service's desired state.
    private static func rollout(_ state: ReadResult, _ policy: ReadResult) -> StatusSnapshot.RolloutStatus? {
        guard let node = try? state.nodeIfExists(),
            let state = try? PopJSON.decoder().decode(RolloutState.self, from: Data(node.data))
        else { return nil }
        let policy = (try? policy.nodeIfExists()).flatMap { try? PopJSON.decoder().decode(Rollout.self, from: Data($0.data)) }
        return StatusSnapshot.RolloutStatus(state: state, policy: policy)
    }

    /// Every error from reading a record is a PopError already; anything else is reported as damage.
    private static func statusProblem(_ error: any Error) -> PopError {
        (error as? PopError) ?? PopError(.corruptState, "A record could not be read: \(error)")
    }
}
