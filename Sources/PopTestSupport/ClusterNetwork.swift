import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The network of one test cluster: a Linux bridge in the root namespace and one network namespace per host, each
/// joined to the bridge by a veth pair and given its own address in 198.18.N.0/24 (the benchmarking range).
///
/// Every cluster takes a free index N under a lock in ``registryFolder``, which names everything it creates
/// (`popcN-br`, `popcN-h1`, …) and records its owner; a cluster whose owner died is torn down by the next one.
public struct ClusterNetwork: Sendable {
    /// Where running clusters are registered (on tmpfs: it lives exactly as long as the namespaces do).
    public static let registryFolder = "/run/pop-test-clusters"
    /// Every name a cluster creates starts with this, followed by its index.
    public static let namePrefix = "popc"

    /// The cluster's index, 1...250; its third address byte.
    public let index: Int
    /// The cluster's name, such as `popc12`.
    public var name: String { Self.namePrefix + String(self.index) }
    /// The bridge in the root namespace.
    public var bridge: String { self.name + "-br" }
    /// The bridge's address, where the ZooKeeper ensemble listens.
    public var bridgeAddress: String { "198.18.\(self.index).1" }

    /// The network namespace of host `number` (1-based).
    public func namespace(_ number: Int) -> String { "\(self.name)-h\(number)" }
    /// The address of host `number` (1-based): 198.18.N.(10 + number).
    public func address(_ number: Int) -> String { "198.18.\(self.index).\(10 + number)" }
    func hostVeth(_ number: Int) -> String { "\(self.name)-v\(number)" }
    func peerVeth(_ number: Int) -> String { "\(self.name)-p\(number)" }

    /// Takes a free index for this process, after sweeping the clusters whose owner died and the leftovers that no
    /// registry entry accounts for.
    ///
    /// A cluster registers its index before it creates anything and tears everything down before it releases the
    /// index. So the names are listed first, and then, under the lock, an index that has names but no entry is a
    /// leftover: a cluster created after the listing is not in it, and one released since has nothing left. Each
    /// index swept is claimed under the lock, so nobody takes it while its leftovers go.
    static func allocate(owner: ProcessIdentity = .current()) async throws -> ClusterNetwork {
        try IPTool.checkUsable()
        let named = Self.indexes(in: ((try? await IPTool.namespaces()) ?? []) + ((try? await IPTool.links()) ?? []))
        let (index, abandoned) = try Self.withRegistryLock { () throws -> (Int, [Int]) in
            var used = Set<Int>()
            var abandoned: [Int] = []
            for (index, holder) in Self.registeredClusters() {
                used.insert(index)
                if !holder.isAlive {
                    // Claim it, so nobody reuses the index before its leftovers are gone.
                    try Self.register(index, owner: owner)
                    abandoned.append(index)
                }
            }
            for orphan in named.subtracting(used).sorted() {
                try Self.register(orphan, owner: owner)
                used.insert(orphan)
                abandoned.append(orphan)
            }
            guard let free = (1...250).first(where: { !used.contains($0) }) else {
                throw ClusterError("all 250 test cluster networks are in use; see \(Self.registryFolder)")
            }
            try Self.register(free, owner: owner)
            return (free, abandoned)
        }
        for stale in abandoned {
            await ClusterNetwork(index: stale).tearDown()
            try? Self.withRegistryLock { Self.unregister(stale) }
        }
        return ClusterNetwork(index: index)
    }

    /// Creates the bridge and `hosts` namespaces, each with loopback up and its veth end renamed `eth0`.
    func create(hosts: Int) async throws {
        try await IPTool.run(["link", "add", self.bridge, "type", "bridge"])
        try await IPTool.run(["addr", "add", self.bridgeAddress + "/24", "dev", self.bridge])
        try await IPTool.run(["link", "set", self.bridge, "up"])
        precondition(hosts >= 1, "a cluster needs at least one host")
        for number in 1...hosts {
            let namespace = self.namespace(number)
            try await IPTool.run(["netns", "add", namespace])
            try await IPTool.run(["link", "add", self.hostVeth(number), "type", "veth", "peer", "name", self.peerVeth(number)])
            try await IPTool.run(["link", "set", self.peerVeth(number), "netns", namespace])
            try await IPTool.run(["link", "set", self.hostVeth(number), "master", self.bridge])
            try await IPTool.run(["link", "set", self.hostVeth(number), "up"])
            try await IPTool.run(["-n", namespace, "link", "set", self.peerVeth(number), "name", "eth0"])
            try await IPTool.run(["-n", namespace, "addr", "add", self.address(number) + "/24", "dev", "eth0"])
            try await IPTool.run(["-n", namespace, "link", "set", "eth0", "up"])
            try await IPTool.run(["-n", namespace, "link", "set", "lo", "up"])
        }
    }

    /// Kills every process in the cluster's namespaces, then deletes the namespaces and the bridge.
    func tearDown() async {
        let namespaces = (try? await IPTool.namespaces())?.filter { $0.hasPrefix(self.name + "-") } ?? []
        for namespace in namespaces {
            await IPTool.killProcesses(in: namespace)
            _ = try? await IPTool.run(["netns", "delete", namespace], check: false)
        }
        // Deleting a namespace destroys its veth ends and so their peers; the bridge goes last.
        for link in (try? await IPTool.links())?.filter({ $0.hasPrefix(self.name + "-") }) ?? [] {
            _ = try? await IPTool.run(["link", "delete", link], check: false)
        }
    }

    /// Releases the index.
    func release() {
        try? Self.withRegistryLock { Self.unregister(self.index) }
    }

    // MARK: Registry

    private static func entry(_ index: Int) -> String { "\(registryFolder)/\(namePrefix)\(index)" }

    private static func register(_ index: Int, owner: ProcessIdentity) throws {
        try "\(owner.pid) \(owner.startTime)\n".write(toFile: entry(index), atomically: true, encoding: .utf8)
    }

    private static func unregister(_ index: Int) {
        unlink(entry(index))
    }

    private static func registeredClusters() -> [(Int, ProcessIdentity)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: registryFolder)) ?? []
        return names.compactMap { name -> (Int, ProcessIdentity)? in
            guard name.hasPrefix(namePrefix), let index = Int(name.dropFirst(namePrefix.count)) else { return nil }
            let text = (try? String(contentsOfFile: "\(registryFolder)/\(name)", encoding: .utf8)) ?? ""
            let fields = text.split(whereSeparator: \.isWhitespace)
            guard fields.count == 2, let pid = Int32(fields[0]), let start = UInt64(fields[1]) else {
                return (index, ProcessIdentity(pid: 0, startTime: 0))
            }
            return (index, ProcessIdentity(pid: pid, startTime: start))
        }
    }

    /// Runs `body` holding an exclusive lock on the registry (flock: released by the kernel if this process dies).
    private static func withRegistryLock<T>(_ body: () throws -> T) throws -> T {
        try FileManager.default.createDirectory(atPath: registryFolder, withIntermediateDirectories: true)
        let fd = open(registryFolder + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw ClusterError("could not open \(registryFolder)/.lock: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw ClusterError("could not lock \(registryFolder)/.lock: \(String(cString: strerror(errno)))") }
        }
        return try body()
    }

    /// The cluster indexes that `names` (of namespaces and links) belong to.
    static func indexes(in names: [String]) -> Set<Int> {
        var indexes = Set<Int>()
        for name in names where name.hasPrefix(namePrefix) {
            guard let dash = name.firstIndex(of: "-"),
                let index = Int(name[name.index(name.startIndex, offsetBy: namePrefix.count)..<dash])
            else { continue }
            indexes.insert(index)
        }
        return indexes
    }
}

/// A process identified by its pid and its start time, so a reused pid is not mistaken for it.
struct ProcessIdentity: Sendable, Hashable {
    var pid: Int32
    var startTime: UInt64

    /// This process.
    static func current() -> ProcessIdentity {
        ProcessIdentity(pid: getpid(), startTime: Self.startTime(of: getpid()) ?? 0)
    }

    /// Whether the process still runs (and is the same process).
    var isAlive: Bool {
        guard self.pid > 0, let start = Self.startTime(of: self.pid) else { return false }
        return start == self.startTime
    }

    /// Field 22 of /proc/PID/stat: the start time in clock ticks after boot.
    static func startTime(of pid: Int32) -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command come the state (field 3) and so on; field 22 is at offset 19.
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }
}
