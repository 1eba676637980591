import Foundation
import NIOConcurrencyHelpers
import NIOCore

import Glibc

/// A real ZooKeeper server (Debian's 3.8) for tests and benchmarks: standalone, or one member of a
/// `ZooKeeperEnsemble`, on free ports with its own data folder and the AdminServer disabled.
///
/// Prefer the scoped `withZooKeeperServer { server in … }`, which stops the server even when the body throws.
/// Servers still running when the process exits are killed then, and leftovers of crashed runs are killed by
/// the next start.
public final class ZooKeeperServer: Sendable {
    /// How to run the server.
    public struct Options: Sendable {
        /// The address the client port binds to: loopback by default; `0.0.0.0` or a bridge address makes the
        /// server reachable from network namespaces.
        public var bindAddress: String = "127.0.0.1"
        /// ZooKeeper's tick in milliseconds; session timeouts are clamped to [2, 20] ticks.
        public var tickTime: Int = 500
        /// Allows TTL nodes (`zookeeper.extendedTypesEnabled`).
        public var extendedTypesEnabled: Bool = true
        /// Extra `zoo.cfg` lines, e.g. `["maxClientCnxns": "0"]`.
        public var extraConfiguration: [String: String] = [:]
        /// Extra JVM arguments, e.g. `-Djute.maxbuffer=…`.
        public var jvmArguments: [String] = []
        /// Use the JVM's full JIT (slower start, faster steady state), for benchmarks.
        public var optimizeForThroughput: Bool = false
        /// How long to wait for the server to answer `ruok`.
        public var startTimeout: Duration = .seconds(60)

        /// Default options: loopback, tickTime 500.
        public init() {}
    }

    /// The member id (1-based) within an ensemble; 0 for a standalone server.
    public let memberID: Int
    /// The address clients connect to.
    public let host: String
    /// The client port.
    public let clientPort: Int
    /// The server's folder (config, data, log).
    public let folder: URL
    let options: Options
    let configFile: URL
    private let process = NIOLockedValueBox<ZooKeeperProcess?>(nil)

    /// `host:port`, for a connect string.
    public var connectString: String { "\(self.host):\(self.clientPort)" }

    init(memberID: Int, clientPort: Int, folder: URL, configuration: String, options: Options) throws {
        self.memberID = memberID
        self.host = options.bindAddress == "0.0.0.0" ? "127.0.0.1" : options.bindAddress
        self.clientPort = clientPort
        self.folder = folder
        self.options = options
        self.configFile = folder.appendingPathComponent("zoo.cfg")
        let dataFolder = folder.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: dataFolder, withIntermediateDirectories: true)
        if memberID > 0 {
            try "\(memberID)\n".write(to: dataFolder.appendingPathComponent("myid"), atomically: true, encoding: .utf8)
        }
        try configuration.write(to: self.configFile, atomically: true, encoding: .utf8)
    }

    /// The `zoo.cfg` lines every test server shares.
    static func baseConfiguration(folder: URL, clientPort: Int, options: Options) -> [String] {
        var lines = [
            "tickTime=\(options.tickTime)",
            "dataDir=\(folder.appendingPathComponent("data").path)",
            "clientPort=\(clientPort)",
            "clientPortAddress=\(options.bindAddress)",
            "admin.enableServer=false",
            "4lw.commands.whitelist=ruok,srvr,mntr,wchc,cons",
            "maxClientCnxns=0",
            // A test that is not about expiry asks for a long session, so that no pause of a loaded machine ends it.
            "maxSessionTimeout=120000",
            "initLimit=10",
            "syncLimit=5",
        ]
        for (key, value) in options.extraConfiguration.sorted(by: { $0.key < $1.key }) { lines.append("\(key)=\(value)") }
        return lines
    }

    /// Starts a standalone server on a free port and waits until it answers `ruok`.
    public static func start(_ options: Options = Options()) async throws -> ZooKeeperServer {
        var lastError: (any Error)?
        // A port picked as free can be taken before the JVM binds it; then try other ports.
        for _ in 0..<5 {
            let folder = try ZooKeeperInstallation.makeScratchFolder()
            let port = try ZooKeeperInstallation.freePort(on: options.bindAddress)
            let configuration = Self.baseConfiguration(folder: folder, clientPort: port, options: options).joined(separator: "\n") + "\n"
            let server = try ZooKeeperServer(memberID: 0, clientPort: port, folder: folder, configuration: configuration, options: options)
            do {
                try await server.launch()
                try await server.waitUntilServing(timeout: options.startTimeout)
                return server
            } catch let error as ZooKeeperTestSupportError where error.message.contains("exited") {
                lastError = error
                await server.stop()
            } catch {
                await server.stop()
                throw error
            }
        }
        throw lastError!
    }

    /// One standalone server shared by every caller in this process (started on first use, killed at exit).
    /// Tests sharing it should each work under their own root path.
    public static func shared() async throws -> ZooKeeperServer {
        let task = sharedServer.withLockedValue { task in
            if let task { return task }
            let newTask = Task { try await ZooKeeperServer.start() }
            task = newTask
            return newTask
        }
        return try await task.value
    }

    /// Starts the JVM (again, after a stop, with the same port and data).
    func launch() async throws {
        let java = try ZooKeeperInstallation.java()
        var arguments = [
            "-Xmx192m", "-XX:+UseSerialGC", "-XX:-UsePerfData", "-Djava.net.preferIPv4Stack=true",
            "-Dzookeeper.root.logger=INFO,CONSOLE", "-Dzookeeper.admin.enableServer=false",
            "-Dzookeeper.extendedTypesEnabled=\(self.options.extendedTypesEnabled)",
            // Empty containers and expired TTL nodes are removed within a second instead of a minute.
            "-Dznode.container.checkIntervalMs=500",
        ]
        if !self.options.optimizeForThroughput { arguments.append("-XX:TieredStopAtLevel=1") }
        arguments += self.options.jvmArguments
        arguments += ["-cp", ZooKeeperInstallation.classPath, "org.apache.zookeeper.server.quorum.QuorumPeerMain", self.configFile.path]
        let process = try ZooKeeperProcess(java: java, arguments: arguments, logFile: self.folder.appendingPathComponent("server.log"))
        try "\(process.pid)\n".write(to: self.folder.appendingPathComponent("server.pid"), atomically: true, encoding: .utf8)
        self.process.withLockedValue { $0 = process }
        LiveProcesses.add(process)
    }

    /// Waits until the server answers `ruok` with `imok`.
    func waitUntilServing(timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            guard let process = self.process.withLockedValue({ $0 }), !process.hasExited else {
                throw ZooKeeperTestSupportError(
                    "the ZooKeeper server on port \(self.clientPort) exited during startup; its log ends with:\n\(self.logTail())"
                )
            }
            if let answer = try? await self.fourLetterWord("ruok"), answer == "imok" { return }
            guard ContinuousClock.now < deadline else {
                throw ZooKeeperTestSupportError(
                    "the ZooKeeper server on port \(self.clientPort) did not answer 'ruok' within \(timeout); its log ends with:\n\(self.logTail())"
                )
            }
            // No event tells when a JVM starts listening, so ask again shortly.
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Sends a four-letter command (`ruok`, `srvr`, `mntr`) and returns the answer, failing after `timeout`.
    public func fourLetterWord(_ command: String, timeout: Duration = .seconds(2)) async throws -> String {
        try await zooKeeperFourLetterWord(command, host: self.host, port: self.clientPort, timeout: TimeAmount(timeout))
    }

    /// The server's role from `srvr`: `standalone`, `leader`, `follower`, or nil when not serving.
    public func mode() async -> String? {
        guard let answer = try? await self.fourLetterWord("srvr") else { return nil }
        for line in answer.split(separator: "\n") where line.hasPrefix("Mode: ") {
            return String(line.dropFirst("Mode: ".count))
        }
        return nil
    }

    /// The server's process id while it runs.
    public var pid: Int32? { self.process.withLockedValue { process in process.flatMap { $0.hasExited ? nil : $0.pid } } }

    /// Whether the server process is running.
    public var isRunning: Bool { self.process.withLockedValue { $0.map { !$0.hasExited } ?? false } }

    /// Stops the server (SIGTERM, then SIGKILL to its process group) and removes its folder.
    public func stop() async {
        await self.halt()
        try? FileManager.default.removeItem(at: self.folder)
    }

    /// Stops the server process but keeps its data, so `restart()` can bring it back.
    public func halt() async {
        guard let process = self.process.withLockedValue({ $0 }) else { return }
        await process.stop()
        LiveProcesses.remove(process)
    }

    /// Kills the server at once with SIGKILL, as a crash would; keeps its data.
    public func kill() async {
        guard let process = self.process.withLockedValue({ $0 }) else { return }
        await process.kill()
        LiveProcesses.remove(process)
    }

    /// Freezes the server with SIGSTOP: connections stay open but nothing is answered.
    public func pause() {
        self.process.withLockedValue { $0 }?.signal(SIGSTOP)
    }

    /// Resumes a paused server with SIGCONT.
    public func resume() {
        self.process.withLockedValue { $0 }?.signal(SIGCONT)
    }

    /// Starts a stopped or killed server again with the same port and data, and waits until it answers.
    public func restart() async throws {
        if self.isRunning { await self.halt() }
        try await self.launch()
        try await self.waitUntilServing(timeout: self.options.startTimeout)
    }

    /// The end of the server's log.
    public func logTail(lines: Int = 30) -> String {
        self.process.withLockedValue { $0 }?.logTail(lines: lines) ?? "(not started)"
    }
}

/// Runs `body` with a fresh standalone server and stops the server afterwards, also when `body` throws.
public func withZooKeeperServer<T>(
    _ options: ZooKeeperServer.Options = ZooKeeperServer.Options(), _ body: (ZooKeeperServer) async throws -> T
) async throws -> T {
    let server = try await ZooKeeperServer.start(options)
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}

private let sharedServer = NIOLockedValueBox<Task<ZooKeeperServer, any Error>?>(nil)

/// Every server process this process started and has not stopped; all are killed when the process exits.
enum LiveProcesses {
    private static let processes = NIOLockedValueBox<[pid_t: ZooKeeperProcess]>([:])
    private static let installed = NIOLockedValueBox(false)

    static func add(_ process: ZooKeeperProcess) {
        self.processes.withLockedValue { $0[process.pid] = process }
        let needsInstall = self.installed.withLockedValue { installed in
            defer { installed = true }
            return !installed
        }
        if needsInstall {
            atexit {
                for process in LiveProcesses.all() { process.signal(SIGKILL) }
                ZooKeeperInstallation.removeOwnFolders()
            }
        }
    }

    static func remove(_ process: ZooKeeperProcess) {
        _ = self.processes.withLockedValue { $0.removeValue(forKey: process.pid) }
    }

    static func all() -> [ZooKeeperProcess] {
        self.processes.withLockedValue { Array($0.values) }
    }
}
