import Foundation
import PopState
import PopTestExpectations
import PopTestSupport
import TestProcesses
import Testing
import ZooKeeperNIO
import ZooKeeperTestSupport

#if canImport(Glibc)
import Glibc
#endif
#if canImport(CPopAgentLinux)
import CPopAgentLinux
#endif

/// One machine for a fault-injection test: a private POP_HOME and machine id, on the embedded store unless a
/// ZooKeeper connect string is given. Its agent and every instance are killed afterwards, and the teardown is awaited.
func withFaultMachine(
    zooKeeper connectString: String? = nil, environment extra: [String: String] = [:],
    _ body: (PopRunner) async throws -> Void
) async throws {
    var environment = ["POP_MACHINE_ID": "fault-" + UUID().uuidString.prefix(8).lowercased()]
    if let connectString {
        let chroot = "/pop-fault-" + UUID().uuidString
        let client = try await ZooKeeperClient.connect(ZooKeeperConfiguration(connectString: connectString))
        _ = try await client.create(chroot, data: [])
        await client.close()
        environment["POP_HOST"] = connectString + chroot
    }
    for (key, value) in extra { environment[key] = value }
    let pop = try PopRunner(label: "fault", environment: environment)
    do {
        try await pop.ok("init")
        try await body(pop)
    } catch {
        await pop.killEverything()
        throw error
    }
    await pop.killEverything()
}

extension PopRunner {
    /// This machine's instance folder for `service`.
    func instanceFolder(_ service: String) -> String {
        home.path + "/machines/\(machine ?? "")/instances/\(service)"
    }

    /// Kills this home's agent and every process of its instances (found by their environment and working folder,
    /// never by a recorded pid, which another test's process may have by now), waits until they are gone, and removes
    /// the home unless `keepHome`.
    func killEverything(keepHome: Bool = false) async {
        let agents = ProcessScan.processes(withEnvironment: "POP_HOME", home.path)
        let instances =
            Processes.withEnvironment(startingWith: ["POP_INSTANCE_DIR=\(home.path)/"])
            + ProcessScan.processes(inFolderUnder: home.path + "/machines/")
        for pid in agents { kill(pid, SIGKILL) }
        for pid in instances {
            // An instance leads its own process group: take its background children with it.
            if getpgid(pid) == pid { kill(-pid, SIGKILL) } else { kill(pid, SIGKILL) }
        }
        _ = await Processes.waitForExit(agents + instances, timeout: .seconds(10))
        if !keepHome { removeFolder() }
    }

    /// Waits (on the store's watches, in `pop status --wait`) until every instance shown runs its service's current
    /// signature, then returns the status.
    @discardableResult
    func waitUntilRunning(_ services: [String] = [], within seconds: Int = 60, sourceLocation: SourceLocation = #_sourceLocation) async throws -> StatusReport {
        let result = try await run(["status"] + services + ["--wait", "running", "--timeout", String(seconds)])
        #expect(result.status == 0, "not running within \(seconds) s:\n\(result)", sourceLocation: sourceLocation)
        return try await statusReport()
    }
}

/// A python process that makes itself the reaper of its orphaned descendants and never reaps them, as PID 1 does in a
/// container without an init. It runs one `pop` command and prints its exit status, then waits to be killed.
struct NonReapingParent: Sendable {
    let pid: Int32
    let output: Int32

    static let script = """
        import ctypes, subprocess, sys, time
        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        result = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        print(result.returncode, flush=True)
        time.sleep(3600)
        """

    /// Starts it running `pop ARGS` with the runner's environment.
    static func start(_ pop: PopRunner, _ arguments: [String]) throws -> NonReapingParent {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw POSIXError(.EMFILE) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, ends[1], 1)
        cpop_spawn_add_closefrom(&actions, 3)
        let argv = (["python3", "-c", script, try PopRunner.binary()] + arguments).map { strdup($0) } + [nil]
        let envp = pop.processEnvironment().map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let status = posix_spawnp(&pid, "python3", &actions, nil, argv, envp)
        close(ends[1])
        guard status == 0 else {
            close(ends[0])
            throw POSIXError(POSIXErrorCode(rawValue: status) ?? .EINVAL)
        }
        return NonReapingParent(pid: pid, output: ends[0])
    }

    /// The exit status of the command it ran, once it has finished.
    func commandStatus(within limit: Duration = .seconds(60)) async -> Int32? {
        await Waiting.line(from: output, within: limit).flatMap { Int32($0) }
    }

    /// Kills it and reaps it; its unreaped orphans go to the next reaper up.
    func stop() {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        close(output)
    }
}
