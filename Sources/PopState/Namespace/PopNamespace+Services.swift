import Foundation

extension PopNamespace {
    /// Adds a service with its packages, placements, tasks and history nodes (its spec as version 0); `.conflict` when
    /// it exists.
    public func addService(
        _ spec: ServiceSpec, origin: ChangeOrigin = .thisProcess(command: "add"), now: Date = Date()
    ) async throws {
        try await checkLayout()
        let path = paths.service(spec.name)
        let data = try encode(spec, at: path)
        let entry = HistoryEntry(version: 0, time: now, origin: origin, spec: spec)
        do {
            _ = try await store.multi([
                .create(path, data: data),
                .create(paths.packages(spec.name), data: try encode([String](), at: paths.packages(spec.name))),
                .create(paths.placements(spec.name), data: []),
                .create(paths.tasks(spec.name), data: []),
                .create(paths.history(spec.name), data: try encode(HistorySettings(), at: paths.history(spec.name))),
                .create(paths.historyEntry(spec.name, 0), data: try encode(entry, at: paths.historyEntry(spec.name, 0))),
            ])
        } catch let error as PopError where error.code == .conflict && error.operationIndex == 0 {
            throw PopError(
                .conflict, "The service '\(spec.name)' already exists in the \(store).",
                hint: "Choose another name, or `pop config \(spec.name)` to change it.", path: path)
        } catch let error as PopError {
            throw await explainMissing(error)
        }
    }

    /// A service's spec and configuration version; `.notFound` when there is no such service.
    public func service(_ name: ServiceName) async throws -> VersionedService {
        try await checkLayout()
        let node: StoreNode
        do {
            node = try await store.get(paths.service(name))
        } catch let error as PopError {
            throw await explainMissing(error, service: name)
        }
        return try decodeService(node, name)
    }

    func decodeService(_ node: StoreNode, _ name: ServiceName) throws(PopError) -> VersionedService {
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
        return VersionedService(spec: spec, version: node.stat.version, signature: ConfigSignature(of: node.data))
    }

    /// The names of every service, sorted.
    public func services() async throws -> [ServiceName] {
        try await checkLayout()
        let names = try await store.children(paths.services)
        return try names.map { (name) throws(PopError) in try parseName(name, under: paths.services, ServiceName.init) }
    }

    /// Replaces a service's spec if its configuration version is still `expectedVersion`, keeping it in the service's
    /// history (``changeService(_:from:origin:now:)``); returns the new node version.
    ///
    /// Fails with `.conflict` when someone changed it since it was read.
    @discardableResult
    public func updateService(
        _ spec: ServiceSpec, expectedVersion: Int32, origin: ChangeOrigin = .thisProcess(command: "update")
    ) async throws -> Int32 {
        let history = try await self.history(spec.name)
        guard history.current.version == expectedVersion else {
            throw PopError(
                .conflict,
                "The service '\(spec.name)' was changed by someone else since it was read (at version \(expectedVersion)).",
                hint: "Read it again and retry.", path: paths.service(spec.name))
        }
        try await changeService(spec, from: history, origin: origin)
        return expectedVersion + 1
    }

    /// Removes a service with everything under it (placements, instance records, tasks) in one multi-operation.
    public func removeService(_ name: ServiceName) async throws {
        try await checkLayout()
        do {
            // The assignments of its placements go in the same multi-operation.
            try await deleteSubtree(paths.service(name)) { nodes in
                let folder = paths.placements(name) + "/"
                let machines = nodes.compactMap { path -> MachineID? in
                    guard path.hasPrefix(folder), !path.dropFirst(folder.count).contains("/") else { return nil }
                    return try? MachineID(String(path.dropFirst(folder.count)))
                }
                return try await assigned(name, on: machines).sorted().map { paths.assignment($0, name) }
            }
        } catch let error as PopError where error.code == .notFound {
            throw await explainMissing(error, service: name)
        }
    }

    // MARK: Placements

    /// Places the service on `machines` (those not placed yet); returns the machines newly placed.
    @discardableResult
    public func deploy(_ name: ServiceName, machines: [MachineID], now: Date = Date()) async throws -> [MachineID] {
        try await checkLayout()
        if let (policy, _) = try await schedulingPolicy(name) {
            throw PopError(
                .conflict,
                "The service '\(name)' is deployed by count (\(policy.count)); the scheduler chooses its machines. Nothing was changed.",
                hint: "`pop scale \(name) N` changes the count; `pop machines label` and `pop drain` steer where it runs.",
                path: paths.scheduling(name))
        }
        for attempt in 1...8 {
            let placed = try await placements(name)
            let new = Array(Set(machines).subtracting(placed.keys)).sorted()
            guard !new.isEmpty else { return [] }
            try await ensureAssignmentFolders(new)
            do {
                var operations: [StoreOperation] = [.check(paths.service(name))]
                for machine in new {
                    operations += try placeOperations(name, on: machine, Placement(deployed: now))
                }
                _ = try await store.multi(Self.bumpingEachFolderOnce(operations))
                return new
            } catch let error as PopError where error.code == .conflict && attempt < 8 {
                continue  // Someone placed one of them meanwhile; read again.
            } catch let error as PopError {
                throw await explainMissing(error, service: name)
            }
        }
        return []
    }

    /// Removes the service's placements on `machines` (with their instance records); returns those removed.
    @discardableResult
    public func undeploy(_ name: ServiceName, machines: [MachineID]) async throws -> [MachineID] {
        try await checkLayout()
        for attempt in 1...8 {
            let placed = try await placements(name)
            let removed = Set(machines).intersection(placed.keys).sorted()
            guard !removed.isEmpty else { return [] }
            let instances = try await store.read(removed.map { .get(paths.instance(name, $0)) })
            let assigned = try await assigned(name, on: removed)
            var operations: [StoreOperation] = []
            for (machine, instance) in zip(removed, instances) {
                operations += unplaceOperations(
                    name, on: machine, hasInstance: try instance.nodeIfExists() != nil,
                    hasAssignment: assigned.contains(machine))
            }
            do {
                _ = try await store.multi(Self.bumpingEachFolderOnce(operations))
                return removed
            } catch let error as PopError
                where (error.code == .conflict || error.code == .notFound) && attempt < 8
            {
                continue  // An agent published or removed an instance meanwhile; read again.
            }
        }
        return []
    }

    /// The service's placements, by machine.
    public func placements(_ name: ServiceName) async throws -> [MachineID: Placement] {
        try await checkLayout()
        let parent = paths.placements(name)
        let machines: [String]
        do {
            machines = try await store.children(parent)
        } catch let error as PopError {
            throw await explainMissing(error, service: name)
        }
        let ids = try machines.map { (name) throws(PopError) in try parseName(name, under: parent, MachineID.init) }
        let nodes = try await store.read(ids.map { .get(paths.placement(name, $0)) })
        var result: [MachineID: Placement] = [:]
        for (id, node) in zip(ids, nodes) {
            guard let node = try node.nodeIfExists() else { continue }  // Undeployed meanwhile.
            result[id] = try decode(Placement.self, node)
        }
        return result
    }

    /// Bumps the restart generation of the service's placements on `machines` (all when `nil`), so that their
    /// agents restart the instances. Returns the machines affected.
    @discardableResult
    public func restart(_ name: ServiceName, machines: [MachineID]? = nil) async throws -> [MachineID] {
        try await checkLayout()
        for attempt in 1...8 {
            let placed = try await placements(name)
            let targets = Set(machines ?? Array(placed.keys)).intersection(placed.keys).sorted()
            guard !targets.isEmpty else { return [] }
            let nodes = try await store.read(targets.map { .get(paths.placement(name, $0)) })
            var operations: [StoreOperation] = []
            var restarted: [MachineID] = []
            for (machine, result) in zip(targets, nodes) {
                guard let node = try result.nodeIfExists() else { continue }  // Undeployed meanwhile.
                restarted.append(machine)
                var placement = try decode(Placement.self, node)
                placement.restartGeneration += 1
                operations.append(
                    .set(node.path, data: try encode(placement, at: node.path), version: node.stat.version))
            }
            do {
                if !operations.isEmpty { _ = try await store.multi(operations) }
                return restarted
            } catch let error as PopError
                where (error.code == .conflict || error.code == .notFound) && attempt < 8
            {
                continue
            }
        }
        return []
    }

    // MARK: Packages

    /// The packages added to the service by `pop run NAME install` (not part of its signature).
    public func packages(_ name: ServiceName) async throws -> [String] {
        try await checkLayout()
        do {
            return try decode([String].self, try await store.get(paths.packages(name)))
        } catch let error as PopError {
            throw await explainMissing(error, service: name)
        }
    }

    /// Appends packages (skipping ones already listed); returns the new list.
    @discardableResult
    public func appendPackages(_ name: ServiceName, _ packages: [String]) async throws -> [String] {
        for package in packages { try Self.validatePackage(package) }
        try await checkLayout()
        let path = paths.packages(name)
        while true {
            let node: StoreNode
            do {
                node = try await store.get(path)
            } catch let error as PopError {
                throw await explainMissing(error, service: name)
            }
            var list = try decode([String].self, node)
            let before = list.count
            for package in packages where !list.contains(package) { list.append(package) }
            guard list.count > before else { return list }
            do {
                // The machines of the service learn of the new list through their assignments.
                let version = node.stat.version
                let announced = try await announcements(name) { $0.packagesVersion = version + 1 }
                _ = try await store.multi(
                    [.set(path, data: try encode(list, at: path), version: version)] + announced)
                return list
            } catch let error as PopError where error.code == .conflict {
                continue  // Another install raced us; merge again.
            }
        }
    }

    static func validatePackage(_ package: String) throws(PopError) {
        let shown = NameRules.printable(package)
        guard !package.isEmpty, package.utf8.count <= 512 else {
            throw PopError(.invalidInput, "The package requirement \(shown) is empty or too long.")
        }
        guard !package.hasPrefix("-") else {
            throw PopError(
                .invalidInput, "The package requirement \(shown) starts with '-', which pip would read as an option.")
        }
        guard !package.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw PopError(.invalidInput, "The package requirement \(shown) contains a control character.")
        }
    }
}
