import Foundation
import PopState

extension SessionHandle {
    // MARK: Instance records

    /// Writes one batch of instance records: sets of records this session created go in atomic multis of 500, creates
    /// are tried together too, and deletes go one at a time. Reports what happened to each record written before any
    /// failure.
    func publish(_ batch: [ServiceName: RecordWrite]) async -> AgentEvent {
        var outcomes: [ServiceName: PublishOutcome] = [:]
        do {
            try await publish(batch, outcomes: &outcomes)
        } catch {
            return .recordsPublished(outcomes, failure: error)
        }
        return .recordsPublished(outcomes, failure: nil)
    }

    private func publish(_ batch: [ServiceName: RecordWrite], outcomes: inout [ServiceName: PublishOutcome]) async throws {
        var sets: [(ServiceName, String, [UInt8])] = []
        var creates: [(ServiceName, String, [UInt8])] = []
        var deletes: [ServiceName] = []
        for (name, write) in batch.sorted(by: { $0.key < $1.key }) {
            let path = paths.instance(name, machine)
            switch write {
            case .delete: deletes.append(name)
            case .set(let record): sets.append((name, path, record.canonicalJSON))
            case .create(let record): creates.append((name, path, record.canonicalJSON))
            }
        }
        for chunk in Self.chunks(sets) {
            do {
                _ = try await store.multi(chunk.map { .set($0.1, data: $0.2, version: nil) })
                for (name, _, _) in chunk { outcomes[name] = .written }
            } catch let error as PopError where error.code == .notFound {
                // Some record vanished (undeploy, or someone deleted it): write the chunk one by one.
                for (name, path, data) in chunk {
                    outcomes[name] = try await createOrReplace(path: path, data: data)
                }
            }
        }
        if creates.count > 1 {
            // Most creates succeed; try them together first.
            for chunk in Self.chunks(creates) {
                do {
                    _ = try await store.multi(chunk.map { .create($0.1, data: $0.2, mode: .ephemeral) })
                    for (name, _, _) in chunk { outcomes[name] = .written }
                } catch let error as PopError where error.code == .notFound || error.code == .conflict {
                    for (name, path, data) in chunk {
                        outcomes[name] = try await createOrReplace(path: path, data: data)
                    }
                }
            }
        } else {
            for (name, path, data) in creates {
                outcomes[name] = try await createOrReplace(path: path, data: data)
            }
        }
        for name in deletes {
            try await namespace.deleteInstance(service: name, machine: machine)
            outcomes[name] = .deleted
        }
    }

    private static func chunks<T>(_ items: [T]) -> [ArraySlice<T>] {
        stride(from: 0, to: items.count, by: 500).map { items[$0..<min($0 + 500, items.count)] }
    }

    /// Creates an instance record; replaces one left by a previous session of this machine; writes nothing when the
    /// placement is gone.
    private func createOrReplace(path: String, data: [UInt8]) async throws -> PublishOutcome {
        for _ in 0..<4 {
            do {
                _ = try await store.create(path, data: data, mode: .ephemeral)
                return .written
            } catch let error as PopError where error.code == .notFound {
                return .notPlaced
            } catch let error as PopError where error.code == .conflict {
                guard let stat = try await store.exists(path) else { continue }
                if stat.ephemeralOwner == store.sessionID {
                    _ = try await store.set(path, data: data, version: nil)
                    return .written
                }
                // This machine is registered by this session, so another session's record of it is stale.
                do {
                    _ = try await store.multi([
                        .delete(path, version: stat.version), .create(path, data: data, mode: .ephemeral),
                    ])
                    return .written
                } catch let error as PopError where error.code == .notFound || error.code == .conflict {
                    continue
                }
            }
        }
        throw PopError(.conflict, "The record \(path) kept changing while it was written.", path: path)
    }

    // MARK: Tasks

    /// Writes task results in order, up to the first failure; a result whose request was deleted counts as written.
    func writeTaskResults(_ results: [TaskKey: TaskResult]) async -> AgentEvent {
        var written: [TaskKey: TaskResult] = [:]
        for (key, result) in results.sorted(by: { $0.key < $1.key }) {
            do {
                try await namespace.writeTaskResult(key.service, key.id, result)
            } catch let error as PopError where error.code == .notFound {
                // The request was deleted meanwhile.
            } catch {
                return .taskResultsWritten(written, failure: error)
            }
            written[key] = result
        }
        return .taskResultsWritten(written, failure: nil)
    }

    /// Appends a task's packages to its service's record (compare-and-set).
    func recordPackages(_ key: TaskKey, _ recording: PackageRecording) async -> AgentEvent {
        do {
            return .packagesRecorded(key, try await namespace.appendPackages(key.service, recording.packages))
        } catch {
            return .packagesNotRecorded(key, error)
        }
    }
}
