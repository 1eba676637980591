extension PopNamespace {
    /// Sets (or with `nil`, removes) how configuration changes of a service roll out across its machines.
    public func setRollout(_ name: ServiceName, _ rollout: Rollout?) async throws {
        try await checkLayout()
        let path = paths.rollout(name)
        do {
            guard let rollout, rollout.paces else {
                if try await store.exists(path) != nil { try await store.delete(path, version: nil) }
                return
            }
            let data = try encode(rollout, at: path)
            if try await store.exists(path) != nil {
                _ = try await store.set(path, data: data, version: nil)
            } else {
                _ = try await store.multi([.check(paths.service(name)), .create(path, data: data)])
            }
        } catch let error as PopError where error.code == .conflict {
            // Created by someone else meanwhile: ours is the later write.
            if let rollout { _ = try await store.set(path, data: try encode(rollout, at: path), version: nil) }
        } catch let error as PopError {
            throw await explainMissing(error, service: name)
        }
    }

    /// How configuration changes of a service roll out; `nil` when all its machines restart at once.
    public func rollout(_ name: ServiceName) async throws -> Rollout? {
        try await checkLayout()
        guard let node = try await store.read([.get(paths.rollout(name))]).first?.nodeIfExists() else { return nil }
        return try decode(Rollout.self, node)
    }
}
