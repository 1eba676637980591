import NIOCore

/// The metadata ZooKeeper keeps for every node (its `Stat`).
public struct ZooKeeperStat: Hashable, Sendable {
    /// The zxid of the change that created the node.
    public var czxid: Int64
    /// The zxid of the change that last modified the node's data.
    public var mzxid: Int64
    /// When the node was created, in milliseconds since the epoch.
    public var ctime: Int64
    /// When the node's data was last modified, in milliseconds since the epoch.
    public var mtime: Int64
    /// The number of changes to the node's data; pass it to `setData`/`delete` for compare-and-set.
    public var version: Int32
    /// The number of changes to the node's children.
    public var cversion: Int32
    /// The number of changes to the node's ACL.
    public var aversion: Int32
    /// The session id owning the node if it is ephemeral, otherwise 0.
    public var ephemeralOwner: Int64
    /// The length of the node's data in bytes.
    public var dataLength: Int32
    /// The number of children.
    public var numChildren: Int32
    /// The zxid of the change that last modified the node's children.
    public var pzxid: Int64

    /// Creates a stat from its fields.
    public init(
        czxid: Int64 = 0, mzxid: Int64 = 0, ctime: Int64 = 0, mtime: Int64 = 0, version: Int32 = 0,
        cversion: Int32 = 0, aversion: Int32 = 0, ephemeralOwner: Int64 = 0, dataLength: Int32 = 0,
        numChildren: Int32 = 0, pzxid: Int64 = 0
    ) {
        self.czxid = czxid
        self.mzxid = mzxid
        self.ctime = ctime
        self.mtime = mtime
        self.version = version
        self.cversion = cversion
        self.aversion = aversion
        self.ephemeralOwner = ephemeralOwner
        self.dataLength = dataLength
        self.numChildren = numChildren
        self.pzxid = pzxid
    }

    /// Whether the node is ephemeral (owned by a session).
    public var isEphemeral: Bool { self.ephemeralOwner != 0 }

    /// The encoded size of a Stat.
    static let encodedSize = 68
}

extension ByteBuffer {
    mutating func readZooKeeperStat() throws(JuteDecodingError) -> ZooKeeperStat {
        guard self.readableBytes >= ZooKeeperStat.encodedSize else { throw .truncated }
        return ZooKeeperStat(
            czxid: try self.readJuteLong(), mzxid: try self.readJuteLong(), ctime: try self.readJuteLong(),
            mtime: try self.readJuteLong(), version: try self.readJuteInt(), cversion: try self.readJuteInt(),
            aversion: try self.readJuteInt(), ephemeralOwner: try self.readJuteLong(),
            dataLength: try self.readJuteInt(), numChildren: try self.readJuteInt(), pzxid: try self.readJuteLong()
        )
    }

    mutating func writeZooKeeperStat(_ stat: ZooKeeperStat) {
        self.writeInteger(stat.czxid)
        self.writeInteger(stat.mzxid)
        self.writeInteger(stat.ctime)
        self.writeInteger(stat.mtime)
        self.writeInteger(stat.version)
        self.writeInteger(stat.cversion)
        self.writeInteger(stat.aversion)
        self.writeInteger(stat.ephemeralOwner)
        self.writeInteger(stat.dataLength)
        self.writeInteger(stat.numChildren)
        self.writeInteger(stat.pzxid)
    }
}
