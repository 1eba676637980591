import Foundation
import Glibc
import PopTestSupport
import Testing

@testable import PopAgent

/// The process table's liveness check, with a real zombie.
@Suite("Process table")
struct ProcessTableTests {
    /// A zombie is not alive: a parent that never reaps keeps its exited child a zombie, as a PID 1 that reaps late
    /// keeps a killed agent one.
    @Test func aZombieIsNotAlive() async throws {
        try await withNonReapingParent { parent, zombie in
            #expect(ProcessTable.stat(zombie)?.isZombie == true, "the child has exited and is not reaped")
            #expect(kill(zombie, 0) == 0, "kill(pid, 0) still succeeds for it, so it cannot tell")
            #expect(!ProcessTable.isAlive(zombie))
            #expect(ProcessTable.isAlive(parent))
        }
        #expect(ProcessTable.isAlive(getpid()))
        #expect(!ProcessTable.isAlive(0))
        #expect(!ProcessTable.isAlive(-1))
    }

    /// The agent's pid file says no agent runs once its holder is a zombie (it would otherwise wait on its lock
    /// forever); its lock is gone with the holder's descriptors.
    @Test func aPidFileHeldByAZombieNamesNoAgent() async throws {
        let folder = NSTemporaryDirectory() + "pop-process-table-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/agent.pid"
        try await withNonReapingParent(lockingFirst: path) { _, zombie throws in
            let written = try String(contentsOfFile: path, encoding: .utf8)
            #expect(written == "\(zombie)\n")
            let running = try AgentPidFile.runningAgent(path: path)
            #expect(running == nil)
        }
    }
}

/// Runs `body` with a python parent (alive) and its exited, unreaped child (a zombie). The child first takes an
/// exclusive lock on `lockingFirst` and writes its pid there, as an agent does with its pid file.
func withNonReapingParent(
    lockingFirst lockPath: String? = nil, _ body: (_ parent: Int32, _ zombie: Int32) async throws -> Void
) async throws {
    let script = """
        import fcntl, os, sys, time
        pid = os.fork()
        if pid == 0:
            if len(sys.argv) > 1:
                f = open(sys.argv[1], "w")
                fcntl.flock(f, fcntl.LOCK_EX)
                f.write("%d\\n" % os.getpid()); f.flush()
            os._exit(0)
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # exited, left unreaped
        print(pid, flush=True)
        time.sleep(600)
        """
    var ends: [Int32] = [-1, -1]
    try #require(pipe(&ends) == 0)
    defer { close(ends[0]) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, ends[1], 1)
    posix_spawn_file_actions_addclose(&actions, ends[0])
    let arguments = ["python3", "-c", script] + (lockPath.map { [$0] } ?? [])
    let argv = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var parent: pid_t = 0
    let spawned = posix_spawnp(&parent, "python3", &actions, nil, argv, environ)
    close(ends[1])
    try #require(spawned == 0, "python3 could not be started")
    // The parent prints the zombie's pid once the child is one.
    let line = await Waiting.line(from: ends[0], within: .seconds(20))
    let zombie = line.flatMap { Int32($0) }
    defer {
        kill(parent, SIGKILL)
        var status: Int32 = 0
        waitpid(parent, &status, 0)
        // This process may be a child subreaper (a supervisor makes it one): then the orphaned zombie is now its
        // child, in its session, which no sweep reaps.
        if let zombie { waitpid(zombie, &status, WNOHANG) }
    }
    try await body(parent, try #require(zombie, "no zombie within 20 s (read \(String(describing: line)))"))
}
