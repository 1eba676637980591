import Foundation
import Logging
import PopState

extension Agent {
    /// Writes instance records as the supervisor reports changes, coalescing a burst into batched writes.
    func publishLoop(_ session: AgentSession) async throws {
        for await _ in session.publish.stream {
            let batch = state.withLock { state -> [ServiceName: AgentState.RecordUpdate] in
                defer { state.dirtyRecords = [:] }
                return state.dirtyRecords
            }
            guard !batch.isEmpty else { continue }
            do {
                try await publish(batch, session: session)
                memoryRelease.finished(batch.count)
            } catch {
                try Task.checkCancellation()
                // Keep newer updates made meanwhile; retry the rest after a pause.
                state.withLock { state in state.dirtyRecords.merge(batch) { newer, _ in newer } }
                logger.warning("cannot publish instance records; retrying", metadata: ["error": "\(error)"])
                try await Task.sleep(for: .seconds(1))
                session.publish.signal()
            }
        }
    }

    /// Writes one batch: sets of records this session created go in one atomic multi per chunk; creates and
    /// deletes go one at a time, since each may fail on its own (a placement removed meanwhile).
    func publish(_ batch: [ServiceName: AgentState.RecordUpdate], session: AgentSession) async throws {
        let namespace = session.namespace
        let encoder = PopJSON.canonicalEncoder()
        let owned = state.withLock { $0.publishedNodes }
        var sets: [(ServiceName, StoreOperation)] = []
        var creates: [(ServiceName, String, [UInt8])] = []
        var deletes: [ServiceName] = []
        for (name, update) in batch.sorted(by: { $0.key < $1.key }) {
            let path = namespace.paths.instance(name, machine)
            switch update {
            case .delete:
                deletes.append(name)
            case .publish(let record):
                let data = Array(try encoder.encode(record))
                if owned.contains(name) {
                    sets.append((name, .set(path, data: data, version: nil)))
                } else {
                    creates.append((name, path, data))
                }
            }
        }
        for chunk in stride(from: 0, to: sets.count, by: 500).map({ sets[$0..<min($0 + 500, sets.count)] }) {
            do {
                _ = try await namespace.store.multi(chunk.map(\.1))
            } catch let error as PopError where error.code == .notFound {
                // Some record vanished (undeploy): write the chunk one by one, creating where needed.
                for (name, operation) in chunk {
                    guard case .set(let path, let data, _) = operation else { continue }
                    try await createOrReplace(name, path: path, data: data, namespace: namespace)
                }
            }
        }
        if creates.count > 1 {
            // Most creates succeed; try them together first.
            let chunks = stride(from: 0, to: creates.count, by: 500).map { creates[$0..<min($0 + 500, creates.count)] }
            for chunk in chunks {
                do {
                    _ = try await namespace.store.multi(chunk.map { .create($0.1, data: $0.2, mode: .ephemeral) })
                    state.withLock { state in for (name, _, _) in chunk { state.publishedNodes.insert(name) } }
                } catch let error as PopError where error.code == .notFound || error.code == .conflict {
                    for (name, path, data) in chunk {
                        try await createOrReplace(name, path: path, data: data, namespace: namespace)
                    }
                }
            }
        } else {
            for (name, path, data) in creates {
                try await createOrReplace(name, path: path, data: data, namespace: namespace)
            }
        }
        for name in deletes {
            state.withLock { _ = $0.publishedNodes.remove(name) }
            try await namespace.deleteInstance(service: name, machine: machine)
        }
    }

    /// Creates an instance record; replaces one left by a previous session of this machine; does nothing when the
    /// placement is gone.
    func createOrReplace(_ name: ServiceName, path: String, data: [UInt8], namespace: PopNamespace) async throws {
        let store = namespace.store
        for _ in 0..<4 {
            do {
                _ = try await store.create(path, data: data, mode: .ephemeral)
                state.withLock { _ = $0.publishedNodes.insert(name) }
                return
            } catch let error as PopError where error.code == .notFound {
                return  // Not placed here any more: nothing to publish.
            } catch let error as PopError where error.code == .conflict {
                guard let stat = try await store.exists(path) else { continue }
                if stat.ephemeralOwner == store.sessionID {
                    _ = try await store.set(path, data: data, version: nil)
                    state.withLock { _ = $0.publishedNodes.insert(name) }
                    return
                }
                // This machine is registered by this session, so another session's record of it is stale.
                do {
                    _ = try await store.multi([
                        .delete(path, version: stat.version), .create(path, data: data, mode: .ephemeral),
                    ])
                    state.withLock { _ = $0.publishedNodes.insert(name) }
                    return
                } catch let error as PopError where error.code == .notFound || error.code == .conflict {
                    continue
                }
            }
        }
    }
}
