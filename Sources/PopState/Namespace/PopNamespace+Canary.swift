import Foundation

extension PopNamespace {
    /// A service's rollout state with its node version; nil when it has none.
    public func rolloutState(_ name: ServiceName) async throws -> (state: RolloutState, version: Int32)? {
        try await checkLayout()
        guard let node = try await store.read([.get(paths.rolloutState(name))]).first?.nodeIfExists() else { return nil }
        return (try decode(RolloutState.self, node), node.stat.version)
    }

    /// The write of the rollout state that goes with a change of the spec to `spec` (none without canaries).
    ///
    /// What a revert brings back is the version that was healthy everywhere: the current one when every placed
    /// machine runs it, else the one the rollout in progress would have reverted to.
    func rolloutStateOperations(
        _ spec: ServiceSpec, from history: ServiceHistory, now: Date, revertReason: String?
    ) async throws -> [StoreOperation] {
        let name = spec.name
        guard try await rollout(name)?.canary != nil else { return [] }
        let existing = try await rolloutState(name)
        let state: RolloutState
        if let revertReason {
            state = RolloutState(
                signature: spec.signature, started: now, revertTo: nil, revertSignature: nil, phase: .reverted,
                reason: revertReason)
        } else {
            let placed = try await placements(name).keys
            let records = try await instances(name)
            let healthyEverywhere = !placed.isEmpty && placed.allSatisfy { machine in
                records[machine].map { $0.signature == history.current.signature && $0.state == .running } ?? false
            }
            var revertTo = history.version
            var revertSignature = history.current.signature
            if !healthyEverywhere, let old = existing?.state, old.phase == .rolling, let to = old.revertTo {
                revertTo = to
                revertSignature = old.revertSignature ?? revertSignature
            }
            state = RolloutState(
                signature: spec.signature, started: now, revertTo: revertTo, revertSignature: revertSignature,
                phase: .rolling)
        }
        let path = paths.rolloutState(name)
        let data = try encode(state, at: path)
        return [existing.map { .set(path, data: data, version: $0.version) } ?? .create(path, data: data)]
    }
}
