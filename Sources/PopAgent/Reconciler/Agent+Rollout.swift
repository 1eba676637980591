import Foundation
import PopState

extension Agent {
    /// Holds back configuration restarts that the service's ``Rollout`` does not allow yet, and remembers them, so
    /// that a change of another machine's instance record or registration looks at them again.
    ///
    /// Only services with a configuration restart planned cost reads: their rollout node, then (when a rollout limit is
    /// set) their placements and the records and registrations of the machines before this one.
    func gateRollouts(
        _ actions: [ReconcileAction], scope: Set<ServiceName>, session: AgentSession
    ) async throws -> [ReconcileAction] {
        let namespace = session.namespace
        let restarts = actions.compactMap { action -> DesiredInstance? in
            if case .restart(let desired, .configurationChanged) = action { return desired }
            return nil
        }
        var held: Set<ServiceName> = []
        if !restarts.isEmpty {
            let paths = namespace.paths
            let rollouts = try await namespace.store.read(restarts.map { .get(paths.rollout($0.service)) })
            for (desired, result) in zip(restarts, rollouts) {
                guard let node = try result.nodeIfExists(),
                    let rollout = try? PopJSON.decoder().decode(Rollout.self, from: Data(node.data)),
                    rollout.maxParallel != nil
                else { continue }
                if try await !mayRestart(desired, rollout, namespace: namespace) {
                    held.insert(desired.service)
                    logger.info(
                        "configuration restart waits for its turn in the rollout",
                        metadata: ["service": "\(desired.service)", "signature": "\(desired.signature.short)"])
                }
            }
        }
        let waits = state.withLock { state in
            state.rolloutWaits.subtract(scope)
            state.rolloutWaits.formUnion(held)
            return state.rolloutWaits
        }
        try await followRolloutPeers(waits, session: session)
        return actions.filter { !held.contains($0.service) }
    }

    private func mayRestart(_ desired: DesiredInstance, _ rollout: Rollout, namespace: PopNamespace) async throws -> Bool {
        let paths = namespace.paths
        let name = desired.service
        let placed = try await namespace.store.children(paths.placements(name)).compactMap { try? MachineID($0) }
        let before = placed.filter { $0 < machine }.sorted()
        guard !before.isEmpty else { return true }
        let results = try await namespace.store.read(
            before.flatMap { [ReadOperation.get(paths.instance(name, $0)), .get(paths.machine($0))] })
        var records: [MachineID: InstanceRecord] = [:]
        var registered: Set<MachineID> = []
        for (offset, other) in before.enumerated() {
            if let node = try results[offset * 2].nodeIfExists() {
                records[other] = try? PopJSON.decoder().decode(InstanceRecord.self, from: Data(node.data))
            }
            if try results[offset * 2 + 1].nodeIfExists() != nil { registered.insert(other) }
        }
        return rollout.allowsRestart(
            of: machine, into: desired.signature, placed: placed, records: records, registered: registered)
    }

    /// Follows the placements and instance records of the services whose restart waits, and no others: only while it
    /// waits does an agent care about its peers' records. A service that starts being followed is read again, since
    /// its peers may have moved on before the watch was set.
    func followRolloutPeers(_ held: Set<ServiceName>, session: AgentSession) async throws {
        guard !session.watches.wholeNamespace else { return }
        let paths = session.namespace.paths
        let wanted = Set(held.map { SessionWatches.Key.subtree(paths.placements($0)) })
        session.watches.drop { $0.subtree && $0.path.hasSuffix("/machines") && !wanted.contains($0) }
        let new = wanted.subtracting(session.watches.keys)
        guard !new.isEmpty else { return }
        try await session.watches.add(new)
        state.withLock { state in
            state.pending.services.formUnion(held)
        }
        session.reconcile.signal()
    }

    /// The services a store change wakes while their restart waits for its turn: a change below such a service's
    /// placements (another machine's instance record), or any machine registering or going away.
    func rolloutWakeups(_ event: NodeEvent, paths: NamespacePaths) -> Set<ServiceName> {
        let waits = state.withLock { $0.rolloutWaits }
        guard !waits.isEmpty else { return [] }
        if event.path == paths.machines { return event.kind == .childrenChanged ? waits : [] }
        if event.path.hasPrefix(paths.machines + "/") { return event.kind == .dataChanged ? [] : waits }
        guard event.path.hasPrefix(paths.services + "/") else { return [] }
        let parts = event.path.dropFirst(paths.services.count + 1).split(separator: "/")
        guard parts.count >= 3, parts[1] == "machines", let service = try? ServiceName(String(parts[0])) else {
            return []
        }
        return waits.contains(service) ? [service] : []
    }
}
