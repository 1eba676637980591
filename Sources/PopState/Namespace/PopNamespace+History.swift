import Foundation

extension PopNamespace {
    /// A service's spec with the versions its history holds, in one round trip.
    public func history(_ name: ServiceName) async throws -> ServiceHistory {
        try await checkLayout()
        let results = try await store.read(historyReads(name))
        return try await history(name, from: results)
    }

    /// The reads ``history(_:from:)`` decodes: the spec, the `history` node and its children.
    func historyReads(_ name: ServiceName) -> [ReadOperation] {
        [.get(paths.service(name)), .get(paths.history(name)), .children(paths.history(name))]
    }

    /// A service's history from the results of ``historyReads(_:)`` (the first three of `results`).
    func history(_ name: ServiceName, from results: [ReadResult]) async throws -> ServiceHistory {
        let path = paths.history(name)
        let node: StoreNode
        do {
            node = try results[0].node()
        } catch {
            throw await explainMissing(error, service: name)
        }
        let current = try decodeService(node, name)
        let settingsNode = try results[1].nodeIfExists()
        let settings = try settingsNode.map { (node) throws(PopError) in try decode(HistorySettings.self, node) }
        let versions = try (results[2].childrenIfExists() ?? []).map { (child) throws(PopError) in
            try parseName(child, under: path) { (text) throws(PopError) in
                guard let version = HistoryEntry.version(ofNodeName: text) else {
                    throw PopError(.corruptState, "'\(text)' is not a version of ten digits.")
                }
                return version
            }
        }
        return ServiceHistory(
            current: current, versions: versions.sorted(), settings: try settings ?? HistorySettings(),
            exists: settingsNode != nil, modified: node.stat.modified)
    }

    /// The entries of a service's history, oldest first.
    public func historyEntries(_ name: ServiceName) async throws -> (ServiceHistory, [HistoryEntry]) {
        let history = try await self.history(name)
        let nodes = try await store.read(history.versions.map { .get(paths.historyEntry(name, $0)) })
        var entries: [HistoryEntry] = []
        for node in nodes {
            guard let node = try node.nodeIfExists() else { continue }  // Evicted meanwhile.
            entries.append(try decode(HistoryEntry.self, node))
        }
        return (history, entries)
    }

    /// The entry of `version` in a service's history; `.notFound` naming the versions kept when there is none.
    public func historyEntry(_ name: ServiceName, version: Int32) async throws -> HistoryEntry {
        let history = try await self.history(name)
        let path = paths.historyEntry(name, version)
        guard history.versions.contains(version),
            let node = try await store.read([.get(path)]).first?.nodeIfExists()
        else {
            throw PopError(
                .notFound,
                "The service '\(name)' has no version \(version) in its history (it keeps \(Self.describe(history.versions))). Nothing was changed.",
                hint: "`pop history \(name)` lists its versions.", path: path)
        }
        return try decode(HistoryEntry.self, node)
    }

    static func describe(_ versions: [Int32]) -> String {
        switch versions.count {
        case 0: "none"
        case 1: "version \(versions[0])"
        default: "versions \(versions.first!) to \(versions.last!)"
        }
    }

    /// Replaces a service's spec with `spec` if it is still as `history` read it, keeping the new spec in its history
    /// in the same multi-operation (and deleting the entries beyond its limit). Returns the service's new version.
    ///
    /// Fails with `.conflict` when someone changed it since it was read. A service added by an earlier release, which
    /// has no history yet, first gets an entry for the spec it had.
    ///
    /// Under a rollout policy with canaries, the same multi-operation writes the rollout's state: a new rollout of
    /// the spec's signature, or with `revertReason` a revert to it (``RolloutState``).
    @discardableResult
    public func changeService(
        _ spec: ServiceSpec, from history: ServiceHistory, origin: ChangeOrigin, now: Date = Date(),
        revertReason: String? = nil
    ) async throws -> Int32 {
        try await checkLayout()
        let name = spec.name
        let path = paths.service(name)
        var operations: [StoreOperation] = [.set(path, data: try encode(spec, at: path), version: history.current.version)]
        operations += try await rolloutStateOperations(spec, from: history, now: now, revertReason: revertReason)
        if !history.exists {
            operations.append(.create(paths.history(name), data: try encode(history.settings, at: paths.history(name))))
        }
        if history.versions.isEmpty {
            // The spec it had, so that this change can be rolled back.
            let before = HistoryEntry(
                version: history.version, time: history.modified,
                origin: ChangeOrigin(user: "unknown", command: "(before its history was kept)"), spec: history.current.spec)
            let entryPath = paths.historyEntry(name, before.version)
            operations.append(.create(entryPath, data: try encode(before, at: entryPath)))
        }
        let entry = HistoryEntry(version: history.nextVersion, time: now, origin: origin, spec: spec)
        let entryPath = paths.historyEntry(name, entry.version)
        operations.append(.create(entryPath, data: try encode(entry, at: entryPath)))
        var evicted = history.evictedByNextChange
        if history.versions.isEmpty, history.settings.limit == 1 { evicted = [history.version] }
        operations += evicted.map { .delete(paths.historyEntry(name, $0)) }
        do {
            _ = try await store.multi(operations)
            return entry.version
        } catch let error as PopError where error.code == .conflict || (error.code == .notFound && error.operationIndex != 0) {
            throw PopError(
                .conflict,
                "The service '\(name)' was changed by someone else since it was read (at version \(history.version)). Nothing was changed.",
                hint: "Read it again and retry.", path: path)
        } catch let error as PopError {
            throw await explainMissing(error, service: name)
        }
    }

    /// Sets how many specs a service's history keeps, deleting the oldest beyond it.
    public func setHistoryLimit(_ name: ServiceName, _ settings: HistorySettings) async throws {
        for attempt in 1...8 {
            let history = try await self.history(name)
            let path = paths.history(name)
            let data = try encode(settings, at: path)
            var operations: [StoreOperation] = [.check(paths.service(name), version: history.current.version)]
            operations.append(history.exists ? .set(path, data: data, version: nil) : .create(path, data: data))
            operations += history.versions.dropLast(settings.limit).map { .delete(paths.historyEntry(name, $0)) }
            do {
                _ = try await store.multi(operations)
                return
            } catch let error as PopError where (error.code == .conflict || error.code == .notFound) && attempt < 8 {
                continue  // Changed meanwhile; read again.
            } catch let error as PopError {
                throw await explainMissing(error, service: name)
            }
        }
    }
}
