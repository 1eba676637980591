extension PopNamespace {
    /// Stores a `pop run` request under the service; returns its id (`task-<seq>`).
    public func createTask(_ name: ServiceName, _ request: TaskRequest) async throws -> TaskID {
        try Self.validate(request)
        try await checkLayout()
        let prefix = paths.tasks(name) + "/task-"
        let data = try encode(request, at: prefix)
        for attempt in 1...8 {
            do {
                // The machines of the service learn of the request through their assignments.
                let announced = try await announcements(name) { $0.taskRequests += 1 }
                let results = try await store.multi(
                    [.create(prefix, data: data, mode: .persistentSequential)] + announced)
                guard case .created(let path)? = results.first else {
                    throw PopError(.corruptState, "The store did not say where it created the task request.", path: prefix)
                }
                return try TaskID(NodePath.name(path))
            } catch let error as PopError where error.code == .conflict && error.operationIndex != 0 && attempt < 8 {
                continue  // The service was placed, moved or announced to meanwhile; read again.
            } catch let error as PopError {
                throw await explainMissing(error, service: name)
            }
        }
        throw PopError(.conflict, "The service '\(name)' kept changing while the task was being requested.", hint: "Try again.")
    }

    /// The service's task ids, oldest first.
    public func tasks(_ name: ServiceName) async throws -> [TaskID] {
        try await checkLayout()
        let parent = paths.tasks(name)
        let names: [String]
        do {
            names = try await store.children(parent)
        } catch let error as PopError {
            throw await explainMissing(error, service: name)
        }
        return try names.map { (name) throws(PopError) in try parseName(name, under: parent, TaskID.init) }.sorted()
    }

    /// A task request.
    public func task(_ name: ServiceName, _ id: TaskID) async throws -> TaskRequest {
        try await checkLayout()
        do {
            return try decode(TaskRequest.self, try await store.get(paths.task(name, id)))
        } catch let error as PopError {
            throw await explainMissing(error, service: name)
        }
    }

    /// Writes (creates or replaces) a machine's result for a task.
    public func writeTaskResult(_ name: ServiceName, _ id: TaskID, _ result: TaskResult) async throws {
        try await checkLayout()
        let path = paths.taskResult(name, id, result.machine)
        let data = try encode(result, at: path)
        do {
            do {
                _ = try await store.create(path, data: data, mode: .persistent)
            } catch let error as PopError where error.code == .conflict && error.path == path {
                _ = try await store.set(path, data: data, version: nil)
            }
        } catch let error as PopError {
            throw await explainMissing(error, service: name)
        }
    }

    /// The results written so far for a task, by machine.
    public func taskResults(_ name: ServiceName, _ id: TaskID) async throws -> [MachineID: TaskResult] {
        try await checkLayout()
        let parent = paths.task(name, id)
        let names: [String]
        do {
            names = try await store.children(parent)
        } catch let error as PopError {
            throw await explainMissing(error, service: name)
        }
        let ids = try names.map { (name) throws(PopError) in try parseName(name, under: parent, MachineID.init) }
        let nodes = try await store.read(ids.map { .get(paths.taskResult(name, id, $0)) })
        var results: [MachineID: TaskResult] = [:]
        for (machine, node) in zip(ids, nodes) {
            guard let node = try node.nodeIfExists() else { continue }
            results[machine] = try decode(TaskResult.self, node)
        }
        return results
    }

    /// Deletes a task with its results.
    public func deleteTask(_ name: ServiceName, _ id: TaskID) async throws {
        try await deleteSubtree(paths.task(name, id))
    }

    static func validate(_ request: TaskRequest) throws(PopError) {
        let shown = NameRules.printable(request.task)
        guard !request.task.isEmpty, request.task.utf8.count <= 128,
            !request.task.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7f || $0 == "/" })
        else {
            throw PopError(.invalidInput, "The task name \(shown) is empty, too long, or contains spaces, '/' or control characters.")
        }
        guard request.timeoutMilliseconds > 0 else {
            throw PopError(.invalidInput, "The task timeout must be positive (got \(request.timeoutMilliseconds) ms).")
        }
        if let parallel = request.maxParallel, parallel < 1 {
            throw PopError(.invalidInput, "At least one machine must run the task at a time (got \(parallel)).")
        }
        for argument in request.arguments where argument.utf8.contains(0) {
            throw PopError(.invalidInput, "A task argument contains a NUL character.")
        }
    }
}
