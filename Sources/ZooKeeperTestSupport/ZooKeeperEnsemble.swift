import Foundation

/// A ZooKeeper ensemble (3 members by default) of real servers on free ports, each with its own data folder.
///
/// Members can be stopped, killed, paused and restarted one by one for failover tests; `leader()` finds the
/// current leader. Prefer the scoped `withZooKeeperEnsemble { ensemble in … }`.
public final class ZooKeeperEnsemble: Sendable {
    /// The members; `members[i].memberID == i + 1`.
    public let members: [ZooKeeperServer]
    /// The ensemble's folder.
    public let folder: URL

    /// `host:port,host:port,…` of every member.
    public var connectString: String { self.members.map(\.connectString).joined(separator: ",") }

    private init(members: [ZooKeeperServer], folder: URL) {
        self.members = members
        self.folder = folder
    }

    /// Starts `size` members and waits until they elected a leader.
    public static func start(size: Int = 3, options: ZooKeeperServer.Options = ZooKeeperServer.Options()) async throws -> ZooKeeperEnsemble {
        var lastError: (any Error)?
        for _ in 0..<4 {
            let folder = try ZooKeeperInstallation.makeScratchFolder()
            let peerAddress = options.bindAddress == "0.0.0.0" ? "127.0.0.1" : options.bindAddress
            // Every port distinct: two members given one client port would leave a 2-member ensemble whose
            // surviving member answers for the other.
            var picked: Set<Int> = []
            func pick(on address: String) throws -> Int {
                let port = try ZooKeeperInstallation.freePort(on: address, excluding: picked)
                picked.insert(port)
                return port
            }
            var ports: [(client: Int, peer: Int, election: Int)] = []
            for _ in 0..<size {
                ports.append((try pick(on: options.bindAddress), try pick(on: peerAddress), try pick(on: peerAddress)))
            }
            let serverLines = ports.enumerated().map { index, port in "server.\(index + 1)=\(peerAddress):\(port.peer):\(port.election)" }
            var members: [ZooKeeperServer] = []
            for (index, port) in ports.enumerated() {
                let memberFolder = folder.appendingPathComponent("member\(index + 1)")
                let configuration =
                    (ZooKeeperServer.baseConfiguration(folder: memberFolder, clientPort: port.client, options: options) + serverLines)
                    .joined(separator: "\n") + "\n"
                members.append(
                    try ZooKeeperServer(memberID: index + 1, clientPort: port.client, folder: memberFolder, configuration: configuration, options: options)
                )
            }
            let ensemble = ZooKeeperEnsemble(members: members, folder: folder)
            do {
                for member in members { try await member.launch() }
                for member in members { try await member.waitUntilServing(timeout: options.startTimeout) }
                try await ensemble.waitForQuorum(timeout: options.startTimeout)
                if let gone = members.first(where: { !$0.isRunning }) {
                    throw ZooKeeperTestSupportError(
                        "member \(gone.memberID) of the ensemble exited during startup; its log ends with:\n\(gone.logTail())")
                }
                return ensemble
            } catch let error as ZooKeeperTestSupportError where error.message.contains("exited") {
                lastError = error
                await ensemble.stop()
            } catch {
                await ensemble.stop()
                throw error
            }
        }
        throw lastError!
    }

    /// Waits until the running members serve clients with exactly one leader among them.
    public func waitForQuorum(timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            var modes: [Int: String] = [:]
            for member in self.members {
                if member.isRunning {
                    modes[member.memberID] = await member.mode() ?? "not serving"
                } else {
                    modes[member.memberID] = "not running"
                }
            }
            let running = modes.values.filter { $0 != "not running" }
            if running.filter({ $0 == "leader" }).count == 1, running.allSatisfy({ $0 == "leader" || $0 == "follower" }) { return }
            guard ContinuousClock.now < deadline else {
                let described = modes.sorted { $0.key < $1.key }.map { "member \($0.key): \($0.value)" }.joined(separator: ", ")
                throw ZooKeeperTestSupportError("the ensemble elected no leader within \(timeout) (\(described))")
            }
            // Elections are announced nowhere a client can wait on; ask again shortly.
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// The member that currently leads.
    public func leader() async throws -> ZooKeeperServer {
        for member in self.members where member.isRunning {
            if await member.mode() == "leader" { return member }
        }
        throw ZooKeeperTestSupportError("no running member of the ensemble is the leader")
    }

    /// The member whose `host:port` is `address` (as `ZooKeeperClient.connectedServer` reports it).
    public func member(at address: String) -> ZooKeeperServer? {
        self.members.first { $0.connectString == address }
    }

    /// Stops every member and removes the ensemble's folder.
    public func stop() async {
        for member in self.members { await member.halt() }
        try? FileManager.default.removeItem(at: self.folder)
    }
}

/// Runs `body` with a fresh ensemble and stops it afterwards, also when `body` throws.
public func withZooKeeperEnsemble<T>(
    size: Int = 3, options: ZooKeeperServer.Options = ZooKeeperServer.Options(), _ body: (ZooKeeperEnsemble) async throws -> T
) async throws -> T {
    let ensemble = try await ZooKeeperEnsemble.start(size: size, options: options)
    do {
        let result = try await body(ensemble)
        await ensemble.stop()
        return result
    } catch {
        await ensemble.stop()
        throw error
    }
}
