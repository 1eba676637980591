/// The per-machine assignments (``Assignment``), kept in step with the placements they mirror.
///
/// Every write that creates or deletes a placement also creates or deletes its assignment, and sets the service's
/// `machines` node (its data stays empty; its version grows). Every write that announces something to the machines
/// of a service (``announcements(_:_:)``) checks that version, so a placement made meanwhile makes the announcement
/// read the placements again instead of missing the new machine.
extension PopNamespace {
    /// Creates the assignment folders of `machines` that do not exist yet (empty persistent nodes, left in place).
    func ensureAssignmentFolders(_ machines: some Collection<MachineID>) async throws {
        guard !machines.isEmpty else { return }
        let ids = Array(Set(machines)).sorted()
        let found = try await store.read(ids.map { .get(paths.assignments($0)) })
        var missing: [MachineID] = []
        for (machine, result) in zip(ids, found) where try result.nodeIfExists() == nil { missing.append(machine) }
        // Each slice in one multi-operation; when another writer created one of them meanwhile (the multi fails
        // whole), that slice's folders are created one by one.
        for start in stride(from: 0, to: missing.count, by: 1000) {
            let slice = missing[start..<min(start + 1000, missing.count)]
            do {
                _ = try await store.multi(slice.map { .create(paths.assignments($0), data: []) })
            } catch let error as PopError where error.code == .conflict {
                for machine in slice {
                    do {
                        _ = try await store.create(paths.assignments(machine), data: [], mode: .persistent)
                    } catch let error as PopError where error.code == .conflict {
                        // Created meanwhile by another writer: fine.
                    }
                }
            }
        }
    }

    /// The operations that place a service on a machine: the placement, its assignment, and the version of the
    /// service's placements folder. The machine's assignment folder must exist (``ensureAssignmentFolders(_:)``).
    func placeOperations(_ name: ServiceName, on machine: MachineID, _ placement: Placement) throws(PopError)
        -> [StoreOperation]
    {
        let path = paths.placement(name, machine)
        let assignment = paths.assignment(machine, name)
        return [
            .create(path, data: try encode(placement, at: path)),
            .create(assignment, data: try encode(Assignment(), at: assignment)),
            .set(paths.placements(name), data: [], version: nil),
        ]
    }

    /// `operations` with each folder's version bump (an empty set at any version, as ``placeOperations(_:on:_:)``
    /// and ``unplaceOperations(_:on:hasInstance:hasAssignment:)`` end with) kept once: in one atomic multi-operation
    /// once says what many would, at one transaction record and one watch event instead of one per placement.
    static func bumpingEachFolderOnce(_ operations: [StoreOperation]) -> [StoreOperation] {
        var bumped: Set<String> = []
        return operations.filter { operation in
            guard case .set(let path, let data, nil) = operation, data.isEmpty else { return true }
            return bumped.insert(path).inserted
        }
    }

    /// The operations that take a service off a machine: its instance record (when there is one), the placement,
    /// its assignment (when there is one), and the version of the service's placements folder.
    func unplaceOperations(_ name: ServiceName, on machine: MachineID, hasInstance: Bool, hasAssignment: Bool)
        -> [StoreOperation]
    {
        var operations: [StoreOperation] = []
        if hasInstance { operations.append(.delete(paths.instance(name, machine))) }
        operations.append(.delete(paths.placement(name, machine)))
        if hasAssignment { operations.append(.delete(paths.assignment(machine, name))) }
        operations.append(.set(paths.placements(name), data: [], version: nil))
        return operations
    }

    /// Which of these machines hold an assignment of the service.
    func assigned(_ name: ServiceName, on machines: [MachineID]) async throws -> Set<MachineID> {
        let found = try await store.read(machines.map { .get(paths.assignment($0, name)) })
        var result: Set<MachineID> = []
        for (machine, node) in zip(machines, found) where try node.nodeIfExists() != nil { result.insert(machine) }
        return result
    }

    /// The operations that announce a change to every machine the service is placed on: a check of the placements
    /// folder's version, and each machine's assignment updated with compare-and-set (created if it is missing).
    /// Put them in the multi-operation that makes the change; a `.conflict` means the placements or an assignment
    /// changed since they were read: call again.
    func announcements(_ name: ServiceName, _ update: (inout Assignment) -> Void) async throws -> [StoreOperation] {
        let folder = paths.placements(name)
        let listing = try await store.read([.get(folder), .children(folder)])
        let version = try listing[0].node().stat.version
        let machines = try listing[1].children().compactMap { try? MachineID($0) }
        let nodes = try await store.read(machines.map { .get(paths.assignment($0, name)) })
        var operations: [StoreOperation] = [.check(folder, version: version)]
        var missing: [MachineID] = []
        for (machine, result) in zip(machines, nodes) {
            let path = paths.assignment(machine, name)
            if let node = try result.nodeIfExists() {
                var assignment = try decode(Assignment.self, node)
                update(&assignment)
                operations.append(.set(path, data: try encode(assignment, at: path), version: node.stat.version))
            } else {
                var assignment = Assignment()
                update(&assignment)
                operations.append(.create(path, data: try encode(assignment, at: path)))
                missing.append(machine)
            }
        }
        try await ensureAssignmentFolders(missing)
        return operations
    }
}
