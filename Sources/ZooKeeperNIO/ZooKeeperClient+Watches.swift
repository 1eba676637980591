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
