import Foundation

extension PopNamespace {
    // MARK: Machine facts

    /// Every machine's facts (labels, drained, absent since), by machine; machines without a node are left out.
    public func machineFacts() async throws -> [MachineID: MachineFacts] {
        try await checkLayout()
        let names = try await store.read([.children(paths.facts)])[0].childrenIfExists() ?? []
        let ids = try names.map { (name) throws(PopError) in try parseName(name, under: paths.facts, MachineID.init) }
        let nodes = try await store.read(ids.map { .get(paths.facts($0)) })
        var result: [MachineID: MachineFacts] = [:]
        for (id, node) in zip(ids, nodes) {
            guard let node = try node.nodeIfExists() else { continue }
            result[id] = try decode(MachineFacts.self, node)
        }
        return result
    }

    /// Changes a machine's facts with compare-and-set (creating its node, and the `facts` folder of a namespace made
    /// before it existed); returns the facts before and after.
    @discardableResult
    public func updateFacts(
        _ machine: MachineID, _ change: @Sendable (inout MachineFacts) -> Void
    ) async throws -> (before: MachineFacts, after: MachineFacts) {
        try await checkLayout()
        let path = paths.facts(machine)
        for _ in 1...16 {
            let existing = try await store.read([.get(path)])[0].nodeIfExists()
            let before = try existing.map { (node) throws(PopError) in try decode(MachineFacts.self, node) } ?? MachineFacts()
            var after = before
            change(&after)
            if after == before { return (before, after) }
            let data = try encode(after, at: path)
            do {
                if let existing {
                    _ = try await store.set(path, data: data, version: existing.stat.version)
                } else {
                    try await ensureFactsFolder()
                    _ = try await store.create(path, data: data, mode: .persistent)
                }
                return (before, after)
            } catch let error as PopError where error.code == .conflict || error.code == .notFound {
                continue  // Changed or created meanwhile (the scheduler marks missing machines); read again.
            }
        }
        throw PopError(
            .conflict, "The facts of machine \(machine) kept changing while they were being written.",
            hint: "Try again.", path: path)
    }

    /// Creates `<root>/facts` when a namespace initialized by an earlier release lacks it.
    func ensureFactsFolder() async throws {
        guard try await store.exists(paths.facts) == nil else { return }
        do {
            _ = try await store.create(paths.facts, data: [], mode: .persistent)
        } catch let error as PopError where error.code == .conflict {
            // Created meanwhile.
        } catch let error as PopError {
            throw await explainMissing(error)
        }
    }

    // MARK: Deploying by count

    /// A service's scheduling policy and its node version; `nil` when the service is pinned.
    public func schedulingPolicy(_ name: ServiceName) async throws -> (policy: SchedulingPolicy, version: Int32)? {
        try await checkLayout()
        let results = try await store.read([.get(paths.service(name)), .get(paths.scheduling(name))])
        guard try results[0].nodeIfExists() != nil else {
            throw await explainMissing(PopError(.notFound, "", path: paths.service(name)), service: name)
        }
        guard let node = try results[1].nodeIfExists() else { return nil }
        return (try decode(SchedulingPolicy.self, node), node.stat.version)
    }

    /// Deploys a service by count: writes its scheduling policy, which the elected scheduler carries out.
    ///
    /// Refused with `.conflict` when the service has pinned placements (undeploy them first). A service already
    /// deployed by count gets the new policy.
    public func deploy(_ name: ServiceName, policy: SchedulingPolicy) async throws {
        let placed = try await placements(name)
        let pinned = placed.filter { !$0.value.isScheduled }.keys.sorted()
        guard pinned.isEmpty else {
            throw PopError(
                .conflict,
                "The service '\(name)' is pinned to \(pinned.map(\.rawValue).joined(separator: ", ")); it cannot also be deployed by count. Nothing was changed.",
                hint: "`pop undeploy \(name) --all` first, then `pop deploy \(name) --count N`.", path: paths.service(name))
        }
        let path = paths.scheduling(name)
        let data = try encode(policy, at: path)
        for _ in 1...8 {
            do {
                if let (_, version) = try await schedulingPolicy(name) {
                    _ = try await store.set(path, data: data, version: version)
                } else {
                    _ = try await store.multi([.check(paths.service(name)), .create(path, data: data)])
                }
                return
            } catch let error as PopError where error.code == .conflict {
                continue
            } catch let error as PopError {
                throw await explainMissing(error, service: name)
            }
        }
        throw PopError(.conflict, "The service '\(name)' kept changing while it was being deployed.", hint: "Try again.")
    }

    /// Changes the count of a service deployed by count; returns the previous count.
    ///
    /// Refused with `.conflict` for a pinned service.
    @discardableResult
    public func scale(_ name: ServiceName, count: Int) async throws -> Int {
        try SchedulingPolicy.validate(count: count)
        for _ in 1...8 {
            guard let (policy, version) = try await schedulingPolicy(name) else {
                throw PopError(
                    .conflict, "The service '\(name)' is pinned to the machines `pop deploy` named; it has no count to change.",
                    hint: "`pop undeploy \(name) --all`, then `pop deploy \(name) --count \(count)`.",
                    path: paths.service(name))
            }
            var updated = policy
            updated.count = count
            do {
                _ = try await store.set(paths.scheduling(name), data: try encode(updated, at: paths.scheduling(name)), version: version)
                return policy.count
            } catch let error as PopError where error.code == .conflict {
                continue
            }
        }
        throw PopError(.conflict, "The service '\(name)' kept changing while it was being scaled.", hint: "Try again.")
    }

    /// Takes a service deployed by count off every machine: its policy goes first (so the scheduler places nothing
    /// more), then its placements.
    public func undeployCounted(_ name: ServiceName) async throws -> [MachineID] {
        try await checkLayout()
        do {
            try await store.delete(paths.scheduling(name), version: nil)
        } catch let error as PopError where error.code == .notFound {
        }
        return try await undeploy(name, machines: Array(try await placements(name).keys))
    }

    // MARK: The scheduler's reads

    /// Reads what the scheduler decides on, and nothing else: the registrations, the machines' facts and how many
    /// placements each registered machine holds (its assignments folder's child count), every service's name and
    /// scheduling policy, the placements of the services deployed by count, and instance records (with the spec, for
    /// its signature) only of the services where a drain waits for a replacement to run
    /// (``SchedulingState/awaitsReplacement(_:)``). The instance records of every other service, which change far
    /// more often than anything here, are neither read nor followed.
    ///
    /// At most five batched round trips. A record deleted between them is left out; a malformed one leaves its service
    /// (or machine) out, as in `pop status`, so one damaged record does not stop the scheduling of the others.
    /// Returns the state and the versions of the facts nodes read (for ``apply(_:factVersions:fence:)``).
    public func schedulingState() async throws -> (state: SchedulingState, factVersions: [MachineID: Int32]) {
        let first = try await store.read([
            .get(prefix), .children(paths.machines), .children(paths.services), .children(paths.facts),
        ])
        guard let root = try first[0].nodeIfExists() else { throw notInitialized() }
        try verifyLayout(root)
        layoutChecked.set()
        let registered = (try first[1].childrenIfExists() ?? []).compactMap {
            try? parseName($0, under: paths.machines, MachineID.init)
        }
        let names = (try first[2].childrenIfExists() ?? []).compactMap {
            try? parseName($0, under: paths.services, ServiceName.init)
        }
        let factIDs = (try first[3].childrenIfExists() ?? []).compactMap {
            try? parseName($0, under: paths.facts, MachineID.init)
        }

        let second = try await store.read(
            factIDs.map { .get(paths.facts($0)) } + registered.map { .get(paths.assignments($0)) }
                + names.map { .get(paths.scheduling($0)) })
        var facts: [MachineID: MachineFacts] = [:]
        var factVersions: [MachineID: Int32] = [:]
        for (id, result) in zip(factIDs, second) {
            guard let node = try? result.nodeIfExists(), let decoded = try? decode(MachineFacts.self, node) else { continue }
            facts[id] = decoded
            factVersions[id] = node.stat.version
        }
        var load: [MachineID: Int] = [:]
        for (id, result) in zip(registered, second[factIDs.count...]) {
            if let node = try? result.nodeIfExists() { load[id] = Int(node.stat.numChildren) }
        }
        var policies: [(ServiceName, SchedulingPolicy)] = []
        for (name, result) in zip(names, second[(factIDs.count + registered.count)...]) {
            guard let node = try? result.nodeIfExists(), let policy = try? decode(SchedulingPolicy.self, node) else {
                continue
            }
            policies.append((name, policy))
        }

        let listed = try await store.read(policies.map { .children(paths.placements($0.0)) })
        var placed: [(ServiceName, SchedulingPolicy, [MachineID])] = []
        for ((name, policy), result) in zip(policies, listed) {
            guard let children = try? result.childrenIfExists() else { continue }  // Removed meanwhile.
            placed.append((name, policy, children.compactMap { try? parseName($0, under: paths.placements(name), MachineID.init) }))
        }
        let placementReads = placed.flatMap { service in
            service.2.map { ReadOperation.get(paths.placement(service.0, $0)) }
        }
        let placementNodes = placementReads.isEmpty ? [] : try await store.read(placementReads)
        var index = 0
        var services: [SchedulingState.Service] = []
        for (name, policy, ids) in placed {
            var placements: [MachineID: Placement] = [:]
            for id in ids {
                defer { index += 1 }
                guard let node = try? placementNodes[index].nodeIfExists(),
                    let placement = try? decode(Placement.self, node)
                else { continue }
                placements[id] = placement
            }
            // The signature matters only where instance records are read; it is filled in below.
            services.append(.init(name: name, policy: policy, signature: ConfigSignature(of: []), placements: placements))
        }
        var state = SchedulingState(
            registered: Set(registered), facts: facts, services: services, names: Set(names), load: load)

        let waiting = state.services.indices.filter { state.awaitsReplacement(state.services[$0]) }
        guard !waiting.isEmpty else { return (state, factVersions) }
        var last: [ReadOperation] = []
        for position in waiting {
            let service = state.services[position]
            last.append(.get(paths.service(service.name)))
            last += service.placements.keys.sorted().map { .get(paths.instance(service.name, $0)) }
        }
        let results = try await store.read(last)
        var cursor = 0
        for position in waiting {
            let service = state.services[position]
            let machines = service.placements.keys.sorted()
            defer { cursor += 1 + machines.count }
            if let node = try? results[cursor].nodeIfExists(), let spec = try? decodeService(node, service.name) {
                state.services[position].signature = spec.signature
            }
            for (offset, machine) in machines.enumerated() {
                guard let node = try? results[cursor + 1 + offset].nodeIfExists(),
                    let record = try? decode(InstanceRecord.self, node)
                else { continue }
                state.services[position].instances[machine] = record
            }
        }
        return (state, factVersions)
    }

    // MARK: The scheduler's writes

    /// Writes a schedule: each batch of changes is one multi-operation that holds only while `fence` (the
    /// scheduler's election node) exists, so a scheduler that lost its session writes nothing.
    ///
    /// `factVersions` are the versions of the facts nodes the plan was made from (a node not listed is created).
    /// A `.conflict` or `.notFound` means the state moved on since it was read: read it again and plan again.
    public func apply(_ plan: SchedulePlan, factVersions: [MachineID: Int32], fence: String?) async throws {
        var operations: [StoreOperation] = []
        if plan.facts.contains(where: { factVersions[$0.key] == nil }) { try await ensureFactsFolder() }
        for (machine, facts) in plan.facts.sorted(by: { $0.key < $1.key }) {
            let path = paths.facts(machine)
            let data = try encode(facts, at: path)
            if let version = factVersions[machine] {
                operations.append(.set(path, data: data, version: version))
            } else {
                operations.append(.create(path, data: data))
            }
        }
        // Each change is a group of operations kept in one multi-operation: a placement with its assignment and
        // the placements folder's version; an unplace with its instance record.
        var groups: [[StoreOperation]] = operations.map { [$0] }
        var placedOn: [MachineID] = []
        var unplaced: [String] = []
        for change in plan.changes {
            switch change {
            case .place(_, let machine, _): placedOn.append(machine)
            case .unplace(let service, let machine, _): unplaced.append(paths.assignment(machine, service))
            }
        }
        try await ensureAssignmentFolders(placedOn)
        var assignedNow: Set<String> = []
        for (path, node) in zip(unplaced, try await store.read(unplaced.map { .get($0) }))
        where try node.nodeIfExists() != nil {
            assignedNow.insert(path)
        }
        for change in plan.changes {
            switch change {
            case .place(let service, let machine, let placement):
                groups.append(try placeOperations(service, on: machine, placement))
            case .unplace(let service, let machine, let hasInstance):
                groups.append(
                    unplaceOperations(
                        service, on: machine, hasInstance: hasInstance,
                        hasAssignment: assignedNow.contains(paths.assignment(machine, service))))
            }
        }
        // Batches of up to 256 KiB, a quarter of what one ZooKeeper request may carry (jute.maxbuffer), each
        // bumping a placements folder once however many of its placements it changes.
        var batch: [StoreOperation] = []
        var bytes = 0
        for (index, group) in groups.enumerated() {
            batch += group
            bytes += group.reduce(0) { $0 + Self.estimatedSize($1) }
            if bytes >= Self.batchBytes || index == groups.count - 1 {
                _ = try await store.multi((fence.map { [StoreOperation.check($0)] } ?? []) + Self.bumpingEachFolderOnce(batch))
                batch = []
                bytes = 0
            }
        }
    }

    /// How many bytes of operations one of the scheduler's multi-operations carries at most (plus one group).
    static let batchBytes = 256 * 1024

    /// About what an operation weighs in a ZooKeeper request: its path, its data, and a header.
    static func estimatedSize(_ operation: StoreOperation) -> Int {
        switch operation {
        case .create(let path, let data, _), .set(let path, let data, _): path.utf8.count + data.count + 32
        case .delete(let path, _), .check(let path, _): path.utf8.count + 16
        }
    }
}
