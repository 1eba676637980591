import NIOCore

extension ZooKeeperClient {
    /// Runs operations atomically: all of them are applied, or none.
    ///
    /// On failure it throws the `ZooKeeperError` of the first failing operation, with `failedOperationIndex`
    /// set and a message naming the operation.
    public func multi(_ operations: [ZooKeeperOperation]) async throws -> [ZooKeeperOperationResult] {
        var encoded: [(ZooKeeperOpCode, (inout ByteBuffer) -> Void)] = []
        for operation in operations {
            switch operation {
            case .create(let path, let data, let acl, let mode):
                let serverPath = try self.serverPath(path, sequential: mode.isSequential)
                encoded.append((mode.opCode, { $0.writeCreate(path: serverPath, data: data, acl: acl, mode: mode) }))
            case .delete(let path, let version):
                let serverPath = try self.serverPath(path)
                encoded.append((.delete, { $0.writePathVersion(serverPath, version: version) }))
            case .setData(let path, let data, let version):
                let serverPath = try self.serverPath(path)
                encoded.append((.setData, { $0.writeSetData(path: serverPath, data: data, version: version) }))
            case .check(let path, let version):
                let serverPath = try self.serverPath(path)
                encoded.append((.check, { $0.writePathVersion(serverPath, version: version) }))
            }
        }
        var reply = try await self.execute(.multi, path: nil) { $0.writeMulti(encoded) }
        let entries = try decoding(nil) { () throws(JuteDecodingError) in try ZooKeeperMultiResponse.decode(&reply) }
        guard entries.count == operations.count else {
            throw ZooKeeperError(code: .protocolError, message: "the server answered a \(operations.count)-operation multi with \(entries.count) results")
        }
        // A failed multi answers every operation with an error: 0 before the culprit, -2 after it.
        for (index, entry) in entries.enumerated() {
            if case .error(let code) = entry, code != 0, code != ZooKeeperError.Code.runtimeInconsistency.rawValue {
                let errorCode = ZooKeeperError.Code(rawValue: code)
                let operation = operations[index]
                throw ZooKeeperError(
                    code: errorCode, path: operation.path,
                    message: "multi operation \(index + 1) of \(operations.count) (\(operation.kind) \(operation.path)) failed with \(errorCode.name): \(errorCode.summary); no operation was applied",
                    failedOperationIndex: index
                )
            }
        }
        if let index = entries.firstIndex(where: { if case .error = $0 { true } else { false } }) {
            throw ZooKeeperError(
                code: .runtimeInconsistency, path: operations[index].path,
                message: "multi was rolled back without naming a failing operation; no operation was applied", failedOperationIndex: index
            )
        }
        return try entries.map { entry throws(ZooKeeperError) in
            switch entry {
            case .create(let path, let stat): .create(path: self.clientPath(path), stat: stat)
            case .delete: .delete
            case .setData(let stat): .setData(stat: stat)
            case .check: .check
            default: throw ZooKeeperError(code: .protocolError, message: "unexpected result \(entry) in a multi reply")
            }
        }
    }

    /// Runs several reads in one round trip; each read succeeds or fails on its own.
    public func multiRead(_ operations: [ZooKeeperReadOperation]) async throws -> [ZooKeeperReadResult] {
        var encoded: [(ZooKeeperOpCode, (inout ByteBuffer) -> Void)] = []
        for operation in operations {
            let serverPath = try self.serverPath(operation.path)
            switch operation {
            case .getData: encoded.append((.getData, { $0.writePathWatch(serverPath, watch: false) }))
            case .getChildren: encoded.append((.getChildren, { $0.writePathWatch(serverPath, watch: false) }))
            }
        }
        var reply = try await self.execute(.multiRead, path: nil) { $0.writeMulti(encoded) }
        let entries = try decoding(nil) { () throws(JuteDecodingError) in try ZooKeeperMultiResponse.decode(&reply) }
        guard entries.count == operations.count else {
            throw ZooKeeperError(code: .protocolError, message: "the server answered a \(operations.count)-read multiRead with \(entries.count) results")
        }
        return try zip(entries, operations).map { entry, operation throws(ZooKeeperError) in
            switch entry {
            case .getData(let data, let stat): .data(data, stat: stat)
            case .getChildren(let children): .children(children)
            case .error(let code): .failure(ZooKeeperError(code: .init(rawValue: code), path: operation.path))
            default: throw ZooKeeperError(code: .protocolError, message: "unexpected result \(entry) in a multiRead reply")
            }
        }
    }
}

extension ZooKeeperOperation {
    var kind: String {
        switch self {
        case .create: "create"
        case .delete: "delete"
        case .setData: "setData"
        case .check: "check"
        }
    }
}
