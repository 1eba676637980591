import Foundation

import Glibc

/// Where Debian's ZooKeeper lives, free ports, and the scratch folders of test servers.
enum ZooKeeperInstallation {
    static let jar = "/usr/share/java/zookeeper.jar"
    static let classPath = [
        "/etc/zookeeper/conf", jar, "/usr/share/java/slf4j-log4j12.jar", "/usr/share/java/log4j-1.2.jar",
    ].joined(separator: ":")
    static let scratchRoot = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("zookeeper-test-servers")

    /// The java binary, or an error telling how to install what is missing. Never a silent skip.
    static func java() throws -> String {
        guard FileManager.default.fileExists(atPath: jar) else {
            throw ZooKeeperTestSupportError(
                "ZooKeeper is not installed (\(jar) is missing); run `apt-get install zookeeper` (Debian's ZooKeeper 3.8) and try again"
            )
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in ["/usr/lib/jvm/default-java/bin"] + path.split(separator: ":").map(String.init) {
            let candidate = directory + "/java"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw ZooKeeperTestSupportError("java is not installed; run `apt-get install zookeeper` (it pulls in a Java runtime) and try again")
    }

    /// A TCP port that was free a moment ago on `address` (the kernel picks it by binding port 0) and is not in
    /// `excluding`. Ports picked one after another are released in between, so the kernel may pick the same one
    /// twice; whoever picks several passes those already picked.
    static func freePort(on address: String = "127.0.0.1", excluding: Set<Int> = []) throws -> Int {
        for _ in 0..<50 {
            let port = try self.portPickedByKernel(on: address)
            if !excluding.contains(port) { return port }
        }
        throw ZooKeeperTestSupportError("could not pick a free port on \(address) outside \(excluding.sorted())")
    }

    private static func portPickedByKernel(on address: String) throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ZooKeeperTestSupportError("socket() failed: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        inet_pton(AF_INET, address == "0.0.0.0" ? "127.0.0.1" : address, &addr.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw ZooKeeperTestSupportError("could not pick a free port on \(address): \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// A new scratch folder, named after this process so leftovers of crashed runs can be found and cleaned.
    static func makeScratchFolder() throws -> URL {
        try FileManager.default.createDirectory(at: scratchRoot, withIntermediateDirectories: true)
        sweepLeftovers()
        let folder = scratchRoot.appendingPathComponent("\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    /// Removes the scratch folders of this process (at exit, after its servers were killed).
    static func removeOwnFolders() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: scratchRoot.path) else { return }
        for entry in entries where entry.hasPrefix("\(getpid())-") {
            try? FileManager.default.removeItem(at: scratchRoot.appendingPathComponent(entry))
        }
    }

    /// Kills servers whose owning test process died without stopping them, and removes their folders.
    static func sweepLeftovers() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: scratchRoot.path) else { return }
        for entry in entries {
            guard let owner = Int32(entry.split(separator: "-").first ?? ""), owner != getpid() else { continue }
            if kill(owner, 0) == 0 || errno != ESRCH { continue }
            let folder = scratchRoot.appendingPathComponent(entry)
            let pidFiles = (FileManager.default.enumerator(atPath: folder.path)?.compactMap { $0 as? String } ?? []).filter { $0.hasSuffix("server.pid") }
            for pidFile in pidFiles {
                guard let text = try? String(contentsOf: folder.appendingPathComponent(pidFile), encoding: .utf8),
                    let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)),
                    let cmdline = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8),
                    cmdline.contains("QuorumPeerMain"), cmdline.contains(folder.path)
                else { continue }
                killpg(pid, SIGKILL)
            }
            try? FileManager.default.removeItem(at: folder)
        }
    }
}
