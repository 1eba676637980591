import ZooKeeperNIO

/// Whether a namespace is closed to everyone without its credentials, as `pop init --auth` makes it.
public enum NamespaceProtection: Hashable, Sendable {
    /// Anyone who reaches the store may read and change it (the embedded store counts as open here: its files are
    /// private to their owner, but it has no credentials of its own).
    case open
    /// Only the digest identities listed (`user:base64(sha1(user:password))`, ZooKeeper's form) may use it.
    case digest(identities: [String])

    /// Whether `user` and `password` are credentials of this namespace: their digest is one of its identities,
    /// compared in constant time. Always false for an open namespace.
    public func accepts(user: String, password: String) -> Bool {
        guard case .digest(let identities) = self else { return false }
        let offered = Array(ZooKeeperACL.digest(user: user, password: password).utf8)
        var matched = false
        for identity in identities where ConstantTime.equal(Array(identity.utf8), offered) { matched = true }
        return matched
    }
}

extension PopNamespace {
    /// How the namespace root is protected: by digest credentials when its ACL grants rights only to digest
    /// identities, else open. Reading the ACL needs the rights the namespace's credentials give.
    public func protection() async throws -> NamespaceProtection {
        try await checkLayout()
        guard let zooKeeper = store as? ZooKeeperStore else { return .open }
        let entries: [ZooKeeperACL]
        do {
            entries = try await zooKeeper.client.getACL(prefix).acl
        } catch let error as ZooKeeperError {
            throw ZooKeeperStore.translate(error, path: prefix, label: zooKeeper.description, identity: zooKeeper.identity)
        }
        let digests = entries.filter { $0.id.scheme == "digest" }.map(\.id.id)
        if digests.isEmpty || entries.contains(where: { $0.id.scheme == "world" }) { return .open }
        return .digest(identities: digests)
    }
}

/// Comparisons whose time does not depend on where the inputs differ.
public enum ConstantTime {
    /// Whether `left` and `right` are equal, looking at every byte of the longer one.
    public static func equal(_ left: [UInt8], _ right: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: left.count ^ right.count)
        for index in 0..<max(left.count, right.count) {
            let a = index < left.count ? left[index] : 0
            let b = index < right.count ? right[index] : 0
            difference |= a ^ b
        }
        return difference == 0 && left.count == right.count
    }
}
