import Foundation
import PopTestExpectations
import PopTestSupport
import TestProcesses
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// pop's home on a real, full file system (a small tmpfs): what only reads keeps working, what writes fails clearly
/// and changes nothing.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct FullDiskTests {
    @Test func readOnlyCommandsWorkWhenTheDiskIsFull() async throws {
        try await withSmallDisk { pop, disk in
            try await pop.ok("add", "web", "--template", "command", "--command", "sh -c 'echo hello-from-web; exec sleep 100000'")
            try await pop.ok("deploy", "web")
            try await pop.ok("start")
            try await pop.waitUntilRunning()
            let logs = pop.instanceFolder("web") + "/logs/stdout.log"
            #expect(await Waiting.file(logs, contains: "hello-from-web", within: .seconds(20)))

            try disk.fill()
            let before = try await pop.run(["dump", "/"])
            #expect(before.status == 0, "\(before)")
            try await expectReadsWork(pop, agentRunning: true)

            // A write fails, says why, and changes nothing.
            let refused = try await pop.fails(1, ["add", "other", "--template", "command", "--command", "sleep 1"], mentioning: ["full", "Free space"])
            #expect(!refused.stderr.contains("Fatal error"))
            let after = try await pop.run(["dump", "/"])
            #expect(after.stdout == before.stdout, "the store changed:\n\(before.stdout)\n---\n\(after.stdout)")

            // The same store copied without its write-ahead log (as a backup of store.sqlite alone would be), on a
            // disk with no room for SQLite to create the log's shared-memory index.
            disk.empty()
            await pop.killEverything(keepHome: true)
            for file in ["store.sqlite-wal", "store.sqlite-shm"] {
                try? FileManager.default.removeItem(atPath: pop.home.path + "/" + file)
            }
            try disk.fill()
            #expect(!FileManager.default.fileExists(atPath: pop.home.path + "/store.sqlite-shm"))
            try await expectReadsWork(pop, agentRunning: false)
            let log = (try? FileManager.default.attributesOfItem(atPath: pop.home.path + "/store.sqlite-wal"))?[.size] as? Int
            #expect((log ?? 0) == 0, "reading wrote nothing into the log")
        }
    }

    /// Every read-only command, with the store's service in its output.
    func expectReadsWork(_ pop: PopRunner, agentRunning: Bool) async throws {
        let status = try await pop.ok("status")
        #expect(status.stdout.contains("web"), "\(status)")
        let json = try await pop.statusReport()
        #expect(json.services.map(\.service) == ["web"])
        let dump = try await pop.ok("dump")
        #expect(dump.stdout.contains("/pop/services/web"), "\(dump)")
        let dumpJSON = try await pop.ok("dump", "--json")
        #expect(dumpJSON.stdout.contains("/pop/services/web"), "\(dumpJSON)")
        let machines = try await pop.ok("machines")
        if agentRunning { #expect(machines.stdout.contains((pop.machine ?? "")), "\(machines)") }
        try await pop.ok("list")
        try await pop.ok("describe", "command")
        let logs = try await pop.ok("logs", "web")
        #expect(logs.stdout.contains("hello-from-web"), "\(logs)")
        for result in [status, dump, dumpJSON, machines, logs] {
            #expect(!result.stderr.contains("warning"), "\(result)")
        }
    }
}

/// A tmpfs of a few megabytes mounted as pop's home, filled and emptied on demand.
struct SmallDisk: Sendable {
    let path: String

    /// Fills the file system until a write fails with ENOSPC.
    func fill() throws {
        let fd = open(path + "/.filler", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0x2e, count: 64 * 1024)
        var size = chunk.count
        while size > 0 {
            let written = chunk.withUnsafeBytes { write(fd, $0.baseAddress, size) }
            if written < 0 {
                guard errno == ENOSPC else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
                size /= 2
            }
        }
        var info = statvfs()
        statvfs(path, &info)
        #expect(info.f_bavail == 0, "the file system is full")
    }

    /// Frees what ``fill()`` took.
    func empty() {
        unlink(path + "/.filler")
    }
}

/// Runs `body` with pop's home on a fresh 16 MB tmpfs; unmounts it afterwards, once the agent and its instances are
/// gone.
func withSmallDisk(_ body: (PopRunner, SmallDisk) async throws -> Void) async throws {
    let pop = try PopRunner(label: "disk", environment: ["POP_MACHINE_ID": "disk-" + UUID().uuidString.prefix(8).lowercased()])
    try FileManager.default.createDirectory(at: pop.home, withIntermediateDirectories: true)
    let mounted = try await runTool(["mount", "-t", "tmpfs", "-o", "size=16m,mode=700", "tmpfs", pop.home.path])
    try #require(mounted == 0, "mount a tmpfs at \(pop.home.path) (the tests run as root)")
    let disk = SmallDisk(path: pop.home.path)
    do {
        try await pop.ok("init")
        try await body(pop, disk)
    } catch {
        await pop.killEverything(keepHome: true)
        _ = try? await runTool(["umount", "-l", pop.home.path])
        throw error
    }
    await pop.killEverything(keepHome: true)
    _ = try await runTool(["umount", "-l", pop.home.path])
    pop.removeFolder()
}

/// Runs a system tool (argv, no shell) and returns its exit status.
func runTool(_ argv: [String]) async throws -> Int32 {
    try await CommandRunner.run(
        ["/usr/bin/env"] + argv, environment: ProcessInfo.processInfo.environment,
        scratch: FileManager.default.temporaryDirectory, timeout: .seconds(60)
    ).status
}
