extension PopNamespace {
    /// Reads everything `pop status` shows in three batched round trips: the root and the lists of machines and
    /// services; then every machine record, service spec and placement list; then every placement and instance.
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
        }
        second += factIDs.map { .get(paths.facts($0)) }
        let secondResults = try await store.read(second)
        var machines: [MachineRecord] = []
        for result in secondResults[..<machineIDs.count] {
            do {
                guard let node = try result.nodeIfExists() else { continue }
                machines.append(try decode(MachineRecord.self, node))
            } catch {
                problems.append(.init(service: nil, error: Self.statusProblem(error)))
            }
        }
        var services: [(VersionedService, [MachineID], SchedulingPolicy?)] = []
        for (index, name) in serviceNames.enumerated() {
            let base = machineIDs.count + index * 3
            do {
                guard let node = try secondResults[base].nodeIfExists(),
                    let placed = try secondResults[base + 1].childrenIfExists()
                else { continue }  // Removed meanwhile.
                let service = try decodeService(node, name)
                let ids = try placed.map { (machine) throws(PopError) in
                    try parseName(machine, under: paths.placements(name), MachineID.init)
                }
                let policy = try secondResults[base + 2].nodeIfExists().map { (node) throws(PopError) in
                    try decode(SchedulingPolicy.self, node)
                }
                services.append((service, ids, policy))
            } catch {
                problems.append(.init(service: name.rawValue, error: Self.statusProblem(error)))
            }
        }
        var facts: [MachineID: StatusSnapshot.FactsStatus] = [:]
        let factsBase = machineIDs.count + serviceNames.count * 3
        for (index, id) in factIDs.enumerated() {
            do {
                guard let node = try secondResults[factsBase + index].nodeIfExists() else { continue }
                facts[id] = .init(facts: try decode(MachineFacts.self, node), version: node.stat.version)
            } catch {
                problems.append(.init(service: nil, error: Self.statusProblem(error)))
            }
        }

        var third: [ReadOperation] = []
        for (service, ids, _) in services {
            for id in ids {
                third.append(.get(paths.placement(service.spec.name, id)))
                third.append(.get(paths.instance(service.spec.name, id)))
            }
        }
        let thirdResults = third.isEmpty ? [] : try await store.read(third)
        var index = 0
        var statuses: [StatusSnapshot.ServiceStatus] = []
        for (service, ids, policy) in services {
            var placements: [StatusSnapshot.PlacementStatus] = []
            for id in ids {
                defer { index += 2 }
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
                    scheduling: policy))
        }
        return StatusSnapshot(
            store: store.description, machines: machines, services: statuses, facts: facts, problems: problems)
    }

    /// Every error from reading a record is a PopError already; anything else is reported as damage.
    private static func statusProblem(_ error: any Error) -> PopError {
        (error as? PopError) ?? PopError(.corruptState, "A record could not be read: \(error)")
    }
}
