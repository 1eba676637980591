import Crypto
import NIOCore

/// One entry of a node's access control list: an identity and what it may do.
public struct ZooKeeperACL: Hashable, Sendable {
    /// What an ACL entry allows.
    public struct Permissions: OptionSet, Hashable, Sendable {
        /// ZooKeeper's numeric value.
        public var rawValue: Int32
        /// Creates permissions from ZooKeeper's bit mask.
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// Read the node's data and list its children.
        public static let read = Permissions(rawValue: 1)
        /// Set the node's data.
        public static let write = Permissions(rawValue: 2)
        /// Create children.
        public static let create = Permissions(rawValue: 4)
        /// Delete children.
        public static let delete = Permissions(rawValue: 8)
        /// Set the node's ACL.
        public static let admin = Permissions(rawValue: 16)
        /// Every permission.
        public static let all: Permissions = [.read, .write, .create, .delete, .admin]
    }

    /// An identity in a scheme, such as `world:anyone` or `digest:user:hash`.
    public struct ID: Hashable, Sendable {
        /// The scheme: `world`, `auth`, `digest`, `ip`, …
        public var scheme: String
        /// The identity within the scheme.
        public var id: String

        /// Creates an identity.
        public init(scheme: String, id: String) {
            self.scheme = scheme
            self.id = id
        }

        /// Everybody (`world:anyone`).
        public static let anyone = ID(scheme: "world", id: "anyone")
        /// Whoever is authenticated on the session that sets the ACL (`auth:`).
        public static let authenticated = ID(scheme: "auth", id: "")

        /// A digest identity for a user and password, computed as ZooKeeper does:
        /// `user:` + base64(SHA-1("user:password")).
        public static func digest(user: String, password: String) -> ID {
            ID(scheme: "digest", id: ZooKeeperACL.digest(user: user, password: password))
        }
    }

    /// What the identity may do.
    public var permissions: Permissions
    /// Who the entry applies to.
    public var id: ID

    /// Creates an ACL entry.
    public init(permissions: Permissions, id: ID) {
        self.permissions = permissions
        self.id = id
    }

    /// Computes a digest id (`user:base64(sha1("user:password"))`) as ZooKeeper's DigestAuthenticationProvider does.
    public static func digest(user: String, password: String) -> String {
        let hash = Insecure.SHA1.hash(data: Array("\(user):\(password)".utf8))
        return "\(user):\(Base64.encode(Array(hash)))"
    }

    /// Everybody may do everything (`world:anyone`, all permissions).
    public static let open: [ZooKeeperACL] = [ZooKeeperACL(permissions: .all, id: .anyone)]
    /// The session's authenticated identities may do everything; nobody else may do anything.
    public static let creatorAll: [ZooKeeperACL] = [ZooKeeperACL(permissions: .all, id: .authenticated)]
    /// Everybody may read; nobody may change anything.
    public static let readOnly: [ZooKeeperACL] = [ZooKeeperACL(permissions: .read, id: .anyone)]

    /// Full rights for one digest user.
    public static func digestAll(user: String, password: String) -> [ZooKeeperACL] {
        [ZooKeeperACL(permissions: .all, id: .digest(user: user, password: password))]
    }
}

extension ByteBuffer {
    mutating func writeZooKeeperACLs(_ acls: [ZooKeeperACL]) {
        self.writeInteger(Int32(acls.count))
        for acl in acls {
            self.writeInteger(acl.permissions.rawValue)
            self.writeJuteString(acl.id.scheme)
            self.writeJuteString(acl.id.id)
        }
    }

    mutating func readZooKeeperACLs() throws(JuteDecodingError) -> [ZooKeeperACL] {
        let count = try self.readJuteVectorCount(minimumElementSize: 12)
        var acls: [ZooKeeperACL] = []
        acls.reserveCapacity(count)
        for _ in 0..<count {
            let permissions = try self.readJuteInt()
            let scheme = try self.readJuteString()
            let id = try self.readJuteString()
            acls.append(ZooKeeperACL(permissions: ZooKeeperACL.Permissions(rawValue: permissions), id: ZooKeeperACL.ID(scheme: scheme, id: id)))
        }
        return acls
    }
}

/// Standard base64 (with padding), enough for digest ids.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index + 3 <= bytes.count {
            let n = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)]]
            index += 3
        }
        let rest = bytes.count - index
        if rest == 1 {
            let n = UInt32(bytes[index]) << 16
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], UInt8(ascii: "="), UInt8(ascii: "=")]
        } else if rest == 2 {
            let n = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], UInt8(ascii: "=")]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
