extension PopNamespace {
    /// Registers this machine's agent: an ephemeral node owned by the store handle's session.
    ///
    /// Updates the record when this session already owns the node. Fails with `.conflict` when another session
    /// owns it: another agent runs with the same machine id, or a previous agent's session has not expired yet
    /// (watch the node with ``CoordinationStore/existsAndWatch(_:)`` and retry when it is deleted).
    public func registerMachine(_ record: MachineRecord) async throws {
        try await checkLayout()
        let path = paths.machine(record.id)
        let data = try encode(record, at: path)
        do {
            _ = try await store.create(path, data: data, mode: .ephemeral)
        } catch let error as PopError where error.code == .conflict {
            guard let stat = try await store.exists(path) else { return try await registerMachine(record) }
            guard stat.ephemeralOwner == store.sessionID else {
                let other = try? decode(MachineRecord.self, try await store.get(path))
                throw PopError(
                    .conflict,
                    "Machine \(record.id) is already registered by another agent\(other.map { " (pid \($0.agentPID) on \($0.hostname))" } ?? "") in the \(store).",
                    hint: "Stop that agent, or give this one another POP_MACHINE_ID. A crashed agent's registration disappears when its session expires.",
                    path: path)
            }
            _ = try await store.set(path, data: data, version: nil)
        } catch let error as PopError {
            throw await explainMissing(error)
        }
    }

    /// The registered machines (those with a running agent), sorted by id.
    public func machines() async throws -> [MachineRecord] {
        try await checkLayout()
        let names = try await store.children(paths.machines)
        let ids = try names.map { (name) throws(PopError) in try parseName(name, under: paths.machines, MachineID.init) }
        return try await machineRecords(ids)
    }

    func machineRecords(_ ids: [MachineID]) async throws -> [MachineRecord] {
        let nodes = try await store.read(ids.map { .get(paths.machine($0)) })
        var records: [MachineRecord] = []
        for node in nodes {
            guard let node = try node.nodeIfExists() else { continue }  // Its agent stopped meanwhile.
            records.append(try decode(MachineRecord.self, node))
        }
        return records
    }

    // MARK: Instances

    /// Publishes an agent's record of its instance of `service` (an ephemeral node of this session).
    ///
    /// Fails with `.notFound` when the service is not (or no longer) placed on the record's machine.
    public func publishInstance(_ record: InstanceRecord, service name: ServiceName) async throws {
        try await checkLayout()
        let path = paths.instance(name, record.machine)
        let data = try encode(record, at: path)
        do {
            if let stat = try await store.exists(path), stat.ephemeralOwner == store.sessionID {
                _ = try await store.set(path, data: data, version: nil)
            } else {
                _ = try await store.create(path, data: data, mode: .ephemeral)
            }
        } catch let error as PopError where error.code == .notFound {
            throw PopError(
                .notFound, "The service '\(name)' is not deployed on machine \(record.machine) any more.",
                path: paths.placement(name, record.machine))
        }
    }

    /// Deletes an instance record (when the agent stopped the instance); nothing happens when there is none.
    public func deleteInstance(service name: ServiceName, machine: MachineID) async throws {
        do {
            try await store.delete(paths.instance(name, machine), version: nil)
        } catch let error as PopError where error.code == .notFound {
        }
    }

    /// The published instance records of a service, by machine.
    public func instances(_ name: ServiceName) async throws -> [MachineID: InstanceRecord] {
        try await checkLayout()
        let parent = paths.placements(name)
        let names: [String]
        do {
            names = try await store.children(parent)
        } catch let error as PopError {
            throw await explainMissing(error, service: name)
        }
        let ids = try names.map { (name) throws(PopError) in try parseName(name, under: parent, MachineID.init) }
        let nodes = try await store.read(ids.map { .get(paths.instance(name, $0)) })
        var result: [MachineID: InstanceRecord] = [:]
        for (id, node) in zip(ids, nodes) {
            guard let node = try node.nodeIfExists() else { continue }
            result[id] = try decode(InstanceRecord.self, node)
        }
        return result
    }
}
