import NIOCore

extension ZooKeeperClient {
    /// Creates a node and returns its actual path (with the sequence suffix for sequential modes) and stat.
    ///
    /// Throws `.nodeExists`, `.noNode` (missing parent), `.noChildrenForEphemerals`, `.noAuth`, `.invalidACL`,
    /// or `.unimplemented` for TTL modes on a server without extended types.
    public func create(
        _ path: String, data: [UInt8] = [], acl: [ZooKeeperACL] = ZooKeeperACL.open, mode: ZooKeeperCreateMode = .persistent
    ) async throws -> (path: String, stat: ZooKeeperStat) {
        let serverPath = try self.serverPath(path, sequential: mode.isSequential)
        var reply = try await self.execute(mode.opCode, path: path) { $0.writeCreate(path: serverPath, data: data, acl: acl, mode: mode) }
        return try decoding(path) { () throws(JuteDecodingError) in
            (self.clientPath(try reply.readJuteString()), try reply.readZooKeeperStat())
        }
    }

    /// Deletes a node if its version matches (`-1`: any version). Throws `.noNode`, `.badVersion`, `.notEmpty`.
    public func delete(_ path: String, version: Int32 = -1) async throws {
        let serverPath = try self.serverPath(path)
        _ = try await self.execute(.delete, path: path) { $0.writePathVersion(serverPath, version: version) }
    }

    /// Replaces a node's data if its version matches (`-1`: any version) and returns the new stat.
    public func setData(_ path: String, data: [UInt8], version: Int32 = -1) async throws -> ZooKeeperStat {
        let serverPath = try self.serverPath(path)
        var reply = try await self.execute(.setData, path: path) { $0.writeSetData(path: serverPath, data: data, version: version) }
        return try decoding(path) { () throws(JuteDecodingError) in try reply.readZooKeeperStat() }
    }

    /// The node's stat, or nil if it does not exist.
    public func exists(_ path: String) async throws -> ZooKeeperStat? {
        try await self.exists(path, registration: nil)
    }

    /// The node's stat (nil if missing) and a one-shot watch that fires when the node is created, changed or
    /// deleted.
    public func exists(_ path: String, watch: Bool) async throws -> (stat: ZooKeeperStat?, watch: ZooKeeperWatch) {
        try await self.watching(path, watch, WatchRegistration.exists) { try await self.exists(path, registration: $0) }
    }

    private func exists(_ path: String, registration: WatchRegistration?) async throws -> ZooKeeperStat? {
        let serverPath = try self.serverPath(path)
        do {
            var reply = try await self.execute(.exists, path: path, watch: registration) {
                $0.writePathWatch(serverPath, watch: registration != nil)
            }
            return try decoding(path) { () throws(JuteDecodingError) in try reply.readZooKeeperStat() }
        } catch let error as ZooKeeperError where error.code == .noNode {
            return nil
        }
    }

    /// The node's data and stat. Throws `.noNode` if it does not exist.
    public func getData(_ path: String) async throws -> (data: [UInt8], stat: ZooKeeperStat) {
        try await self.getData(path, registration: nil)
    }

    /// The node's data and stat, plus a one-shot watch that fires when the data changes or the node is deleted.
    public func getData(_ path: String, watch: Bool) async throws -> (data: [UInt8], stat: ZooKeeperStat, watch: ZooKeeperWatch) {
        let ((data, stat), watch) = try await self.watching(path, watch, WatchRegistration.data) {
            try await self.getData(path, registration: $0)
        }
        return (data, stat, watch)
    }

    private func getData(_ path: String, registration: WatchRegistration?) async throws -> (data: [UInt8], stat: ZooKeeperStat) {
        let serverPath = try self.serverPath(path)
        var reply = try await self.execute(.getData, path: path, watch: registration) {
            $0.writePathWatch(serverPath, watch: registration != nil)
        }
        return try decoding(path) { () throws(JuteDecodingError) in (try reply.readJuteBuffer(), try reply.readZooKeeperStat()) }
    }

    /// The node's children (names, not paths) and its stat. Throws `.noNode`.
    public func getChildren(_ path: String) async throws -> (children: [String], stat: ZooKeeperStat) {
        try await self.getChildren(path, registration: nil)
    }

    /// The node's children and stat, plus a one-shot watch that fires when a child is added or removed or the
    /// node is deleted.
    public func getChildren(_ path: String, watch: Bool) async throws -> (children: [String], stat: ZooKeeperStat, watch: ZooKeeperWatch) {
        let ((children, stat), watch) = try await self.watching(path, watch, WatchRegistration.child) {
            try await self.getChildren(path, registration: $0)
        }
        return (children, stat, watch)
    }

    /// Runs a read that may set a one-shot watch, and returns its result with the watch.
    private func watching<T>(
        _ path: String, _ watch: Bool, _ registration: (String, EventLoopPromise<ZooKeeperWatchEvent>) -> WatchRegistration,
        _ read: (WatchRegistration?) async throws -> T
    ) async throws -> (T, ZooKeeperWatch) {
        guard watch else { return (try await read(nil), ZooKeeperWatch(future: nil)) }
        let promise = self.eventLoop.makePromise(of: ZooKeeperWatchEvent.self)
        let result = try await read(registration(try self.serverPath(path), promise))
        return (result, ZooKeeperWatch(future: promise.futureResult, controller: self.controller))
    }

    private func getChildren(_ path: String, registration: WatchRegistration?) async throws -> (children: [String], stat: ZooKeeperStat) {
        let serverPath = try self.serverPath(path)
        var reply = try await self.execute(.getChildren2, path: path, watch: registration) {
            $0.writePathWatch(serverPath, watch: registration != nil)
        }
        return try decoding(path) { () throws(JuteDecodingError) in (try reply.readJuteStringVector(), try reply.readZooKeeperStat()) }
    }

    /// The number of all descendants of a node.
    public func getAllChildrenNumber(_ path: String) async throws -> Int {
        let serverPath = try self.serverPath(path)
        var reply = try await self.execute(.getAllChildrenNumber, path: path) { $0.writeJuteString(serverPath) }
        return try decoding(path) { () throws(JuteDecodingError) in Int(try reply.readJuteInt()) }
    }

    /// The node's ACL and stat.
    public func getACL(_ path: String) async throws -> (acl: [ZooKeeperACL], stat: ZooKeeperStat) {
        let serverPath = try self.serverPath(path)
        var reply = try await self.execute(.getACL, path: path) { $0.writeJuteString(serverPath) }
        return try decoding(path) { () throws(JuteDecodingError) in (try reply.readZooKeeperACLs(), try reply.readZooKeeperStat()) }
    }

    /// Replaces the node's ACL if its ACL version (`stat.aversion`) matches (`-1`: any) and returns the new stat.
    public func setACL(_ path: String, acl: [ZooKeeperACL], version: Int32 = -1) async throws -> ZooKeeperStat {
        let serverPath = try self.serverPath(path)
        var reply = try await self.execute(.setACL, path: path) {
            $0.writeJuteString(serverPath)
            $0.writeZooKeeperACLs(acl)
            $0.writeInteger(version)
        }
        return try decoding(path) { () throws(JuteDecodingError) in try reply.readZooKeeperStat() }
    }

    /// Waits until the server this client is connected to has caught up with the leader for `path`, so a
    /// following read sees every write committed before the sync.
    public func sync(_ path: String = "/") async throws {
        let serverPath = try self.serverPath(path)
        _ = try await self.execute(.sync, path: path) { $0.writeJuteString(serverPath) }
    }

    /// The paths of the session's ephemeral nodes under `prefix` (all of them for "/").
    public func getEphemerals(_ prefix: String = "/") async throws -> [String] {
        let serverPath = try self.serverPath(prefix)
        var reply = try await self.execute(.getEphemerals, path: prefix) { $0.writeJuteString(serverPath) }
        return try decoding(prefix) { () throws(JuteDecodingError) in try reply.readJuteStringVector() }.map { self.clientPath($0) }
    }

    /// The server's view of who this session is (`whoAmI`): each identity's scheme and id.
    public func whoAmI() async throws -> [ZooKeeperACL.ID] {
        var reply = try await self.execute(.whoAmI, path: nil) { _ in }
        return try decoding(nil) { () throws(JuteDecodingError) in
            let count = try reply.readJuteVectorCount(minimumElementSize: 8)
            var ids: [ZooKeeperACL.ID] = []
            for _ in 0..<count { ids.append(ZooKeeperACL.ID(scheme: try reply.readJuteString(), id: try reply.readJuteString())) }
            return ids
        }
    }
}
