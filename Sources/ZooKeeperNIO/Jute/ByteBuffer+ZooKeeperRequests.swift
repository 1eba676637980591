import NIOCore

/// Request bodies and response records of the operations.
extension ByteBuffer {
    mutating func writePathWatch(_ path: String, watch: Bool) {
        self.writeJuteString(path)
        self.writeJuteBool(watch)
    }

    mutating func writeCreate(path: String, data: [UInt8], acl: [ZooKeeperACL], mode: ZooKeeperCreateMode) {
        self.writeJuteString(path)
        self.writeJuteBuffer(data)
        self.writeZooKeeperACLs(acl)
        self.writeInteger(mode.flags)
        if let ttl = mode.ttl { self.writeInteger(ttl) }
    }

    mutating func writePathVersion(_ path: String, version: Int32) {
        self.writeJuteString(path)
        self.writeInteger(version)
    }

    mutating func writeSetData(path: String, data: [UInt8], version: Int32) {
        self.writeJuteString(path)
        self.writeJuteBuffer(data)
        self.writeInteger(version)
    }

    /// A multi request: each operation behind a MultiHeader, closed by `{-1, true, -1}`.
    mutating func writeMulti(_ operations: [(ZooKeeperOpCode, (inout ByteBuffer) -> Void)]) {
        for (opCode, writeBody) in operations {
            self.writeInteger(opCode.rawValue)
            self.writeJuteBool(false)
            self.writeInteger(Int32(-1))
            writeBody(&self)
        }
        self.writeInteger(Int32(-1))
        self.writeJuteBool(true)
        self.writeInteger(Int32(-1))
    }

    /// Reads one MultiHeader: the result type, whether the list is done, and an error code.
    mutating func readMultiHeader() throws(JuteDecodingError) -> (type: Int32, done: Bool, error: Int32) {
        (try self.readJuteInt(), try self.readJuteBool(), try self.readJuteInt())
    }
}

/// Decoding of multi results, shared by the client and the fuzz tests.
enum ZooKeeperMultiResponse {
    /// One result record of a multi reply.
    enum Entry: Hashable {
        case create(path: String, stat: ZooKeeperStat?)
        case delete
        case setData(ZooKeeperStat)
        case check
        case getData([UInt8], ZooKeeperStat)
        case getChildren([String])
        case error(Int32)
    }

    static func decode(_ body: inout ByteBuffer) throws(JuteDecodingError) -> [Entry] {
        var entries: [Entry] = []
        while true {
            let header = try body.readMultiHeader()
            if header.done { break }
            switch header.type {
            case ZooKeeperOpCode.create.rawValue:
                entries.append(.create(path: try body.readJuteString(), stat: nil))
            case ZooKeeperOpCode.create2.rawValue, ZooKeeperOpCode.createTTL.rawValue, ZooKeeperOpCode.createContainer.rawValue:
                entries.append(.create(path: try body.readJuteString(), stat: try body.readZooKeeperStat()))
            case ZooKeeperOpCode.delete.rawValue, ZooKeeperOpCode.deleteContainer.rawValue:
                entries.append(.delete)
            case ZooKeeperOpCode.setData.rawValue:
                entries.append(.setData(try body.readZooKeeperStat()))
            case ZooKeeperOpCode.check.rawValue:
                entries.append(.check)
            case ZooKeeperOpCode.getData.rawValue:
                entries.append(.getData(try body.readJuteBuffer(), try body.readZooKeeperStat()))
            case ZooKeeperOpCode.getChildren.rawValue:
                entries.append(.getChildren(try body.readJuteStringVector()))
            case ZooKeeperOpCode.error.rawValue:
                entries.append(.error(try body.readJuteInt()))
            default:
                throw .invalidValue("unknown multi result type \(header.type)")
            }
        }
        return entries
    }
}
