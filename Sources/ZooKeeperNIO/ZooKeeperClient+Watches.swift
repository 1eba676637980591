import NIOCore

extension ZooKeeperClient {
    /// Adds a persistent watch and returns its events, in order and never dropped (unbounded buffering).
    ///
    /// `.persistent` reports every change to the node itself (including children changes);
    /// `.persistentRecursive` reports creations, deletions and data changes of the node and all descendants.
    /// The watch survives reconnects and fires until `removeWatches(_:type:)` removes it. Stopping iteration
    /// removes the local registration, and the server's watch when no other local watch is left on the node.
    public func addWatch(_ path: String, mode: ZooKeeperAddWatchMode) async throws -> ZooKeeperWatchStream {
        let serverPath = try self.serverPath(path)
        let (stream, continuation) = ZooKeeperWatchStream.makeStream(bufferingPolicy: .unbounded)
        let id = self.makeStreamID()
        let controller = self.controller
        continuation.onTermination = { _ in
            controller.eventLoop.execute { controller.streamTerminated(id: id) }
        }
        _ = try await self.execute(
            .addWatch, path: path, watch: .persistent(serverPath: serverPath, mode, id: id, ZooKeeperWatchSink(continuation))
        ) {
            $0.writeJuteString(serverPath)
            $0.writeInteger(mode.rawValue)
        }
        return stream
    }

    /// Adds a persistent watch whose events go to `sink` rather than to a stream of its own, so that many watches can
    /// share one consumer without a task or a buffer each. The watch behaves as with ``addWatch(_:mode:)``: it
    /// survives reconnects, and `sink` is ended when the session ends or `removeWatches(_:type:)` removes it.
    /// ``detachWatch(_:)`` stops the deliveries.
    public func addWatch(_ path: String, mode: ZooKeeperAddWatchMode, sink: ZooKeeperWatchSink) async throws -> ZooKeeperWatchID {
        let serverPath = try self.serverPath(path)
        let id = self.makeStreamID()
        _ = try await self.execute(.addWatch, path: path, watch: .persistent(serverPath: serverPath, mode, id: id, sink)) {
            $0.writeJuteString(serverPath)
            $0.writeInteger(mode.rawValue)
        }
        return ZooKeeperWatchID(rawValue: id)
    }

    /// Adds several persistent watches whose events all go to `sink`, in as few requests as their paths allow: one
    /// SetWatches2 request carries up to 128 KiB of paths (ZooKeeper's own client re-registers its watches after a
    /// reconnect the same way), where ``addWatch(_:mode:sink:)`` sends one request per watch. Each watch behaves as
    /// one added with ``addWatch(_:mode:sink:)``, and the returned identifiers are in the order of `watches`.
    ///
    /// The server sets each watch when it handles the request, in the session's order, so a read sent after this
    /// call returns misses no change. If a request fails, the watches that other requests of the call set are
    /// detached again (as with ``detachWatch(_:)``) before the error is thrown: none of them delivers to `sink`.
    public func addWatches(
        _ watches: [(path: String, mode: ZooKeeperAddWatchMode)], sink: ZooKeeperWatchSink, maxPathBytes: Int = 128 * 1024
    ) async throws -> [ZooKeeperWatchID] {
        if watches.count == 1 {
            return [try await self.addWatch(watches[0].path, mode: watches[0].mode, sink: sink)]
        }
        // Each batch with the first of its paths as the caller gave it, for errors.
        var batches: [(path: String, [PersistentWatchRequest])] = []
        var batch: [PersistentWatchRequest] = []
        var first = ""
        var bytes = 0
        for watch in watches {
            let serverPath = try self.serverPath(watch.path)
            let size = serverPath.utf8.count + 4
            if bytes + size > maxPathBytes, !batch.isEmpty {
                batches.append((first, batch))
                batch = []
                bytes = 0
            }
            if batch.isEmpty { first = watch.path }
            batch.append(PersistentWatchRequest(serverPath: serverPath, mode: watch.mode, id: self.makeStreamID()))
            bytes += size
        }
        if !batch.isEmpty { batches.append((first, batch)) }
        let ids = batches.flatMap { $0.1.map { ZooKeeperWatchID(rawValue: $0.id) } }
        do {
            try await self.setWatches(batches, sink: sink)
        } catch {
            for id in ids { self.detachWatch(id) }
            throw error
        }
        return ids
    }

    /// Sends the SetWatches2 requests of ``addWatches(_:sink:maxPathBytes:)`` at once; returns when all succeeded.
    private func setWatches(_ batches: [(path: String, [PersistentWatchRequest])], sink: ZooKeeperWatchSink) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (path, batch) in batches {
                group.addTask {
                    _ = try await self.execute(.setWatches2, path: path, watch: .persistentMany(batch, sink)) {
                        $0.writeInteger(Int64(0))  // relativeZxid: the server ignores it for persistent watches
                        for _ in 0..<3 { $0.writeJuteStringVector([]) }  // data, exist and child watches
                        $0.writeJuteStringVector(batch.filter { $0.mode == .persistent }.map(\.serverPath))
                        $0.writeJuteStringVector(batch.filter { $0.mode == .persistentRecursive }.map(\.serverPath))
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Stops delivering the events of a watch set with ``addWatch(_:mode:sink:)`` (its sink is not ended). When no
    /// other local watch is left on its node, the server's watch is removed as well.
    public func detachWatch(_ id: ZooKeeperWatchID) {
        let controller = self.controller
        controller.eventLoop.execute { controller.streamTerminated(id: id.rawValue) }
    }

    /// Removes watches of `type` on `path` from the server and tells their local waiters: one-shot watches
    /// complete with a `dataWatchRemoved`/`childWatchRemoved` event, persistent streams get
    /// `persistentWatchRemoved` and finish. Throws `.noWatcher` if there is no such watch.
    ///
    /// ZooKeeper 3.8 servers know no removal type for persistent watches alone, so `.persistent` and
    /// `.persistentRecursive` remove every watch this session holds on `path` (as `.any` does).
    public func removeWatches(_ path: String, type: ZooKeeperWatcherType) async throws {
        let serverPath = try self.serverPath(path)
        let wireType: ZooKeeperWatcherType = type == .persistent || type == .persistentRecursive ? .any : type
        _ = try await self.execute(.removeWatches, path: path, watch: .removal(serverPath: serverPath, wireType)) {
            $0.writeJuteString(serverPath)
            $0.writeInteger(wireType.rawValue)
        }
    }
}
