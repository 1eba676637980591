#if canImport(Glibc)
import Glibc
#endif
import Foundation
import PopAgent
import PopState
import Testing

/// The pid file, readiness pipe, background start and stop that `pop start`, `pop fg` and `pop stop` use.
@Suite(.serialized) struct AgentDaemonTests {
    let machine = try! MachineID("m1")

    func temporaryFolder() throws -> String {
        let path = NSTemporaryDirectory() + "pop-daemon-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func aPidFileAdmitsOneAgent() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/machines/m1/agent.pid"
        let first = try AgentPidFile.acquire(path: path, machine: machine)
        #expect(try AgentPidFile.runningAgent(path: path) == getpid())
        #expect(throws: PopError.self) { try AgentPidFile.acquire(path: path, machine: self.machine) }
        do {
            _ = try AgentPidFile.acquire(path: path, machine: machine)
        } catch {
            #expect(error.code == .conflict)
            #expect(error.message.contains("already running (pid \(getpid()))"))
        }
        first.release()
        #expect(try AgentPidFile.runningAgent(path: path) == nil)
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func aStalePidFileIsTakenOver() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/agent.pid"
        try Data("999999\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect(try AgentPidFile.runningAgent(path: path) == nil, "an unlocked pid file names no running agent")
        let pidFile = try AgentPidFile.acquire(path: path, machine: machine)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "\(getpid())\n")
        pidFile.release()
    }

    /// A stand-in agent: holds the pid file's lock and reports ready on the inherited descriptor, as `pop fg` does.
    static let fakeAgent = """
        import fcntl, os, sys, time
        pid_file, mode = sys.argv[1], sys.argv[2]
        if mode == "fail":
            os.write(3, b"error Could not reach the store at 127.0.0.1:1.\\n")
            sys.exit(1)
        if mode == "die":
            print("something went wrong early", flush=True)
            sys.exit(1)
        f = open(pid_file, "a+")
        fcntl.flock(f, fcntl.LOCK_EX)
        f.truncate(0); f.write("%d\\n" % os.getpid()); f.flush()
        os.write(3, b"ready %d\\n" % os.getpid())
        os.close(3)
        time.sleep(60)
        """

    func start(_ folder: String, mode: String) throws -> AgentDaemon.StartOutcome {
        try AgentDaemon.start(
            executable: "/usr/bin/python3", arguments: ["-c", Self.fakeAgent, folder + "/agent.pid", mode],
            environment: ["PATH": "/usr/bin:/bin"], pidFile: folder + "/agent.pid", logFile: folder + "/logs/agent.log",
            timeout: .seconds(20))
    }

    @Test func startWaitsForReadinessAndStopWaitsForExit() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        guard case .ready(let pid) = try start(folder, mode: "run") else {
            Issue.record("the agent did not report ready")
            return
        }
        defer { kill(pid, SIGKILL) }
        #expect(kill(pid, 0) == 0)
        #expect(getsid(pid) == pid, "the agent leads its own session, detached from the terminal")
        #expect(try start(folder, mode: "run") == .alreadyRunning(pid: pid))
        #expect(try AgentDaemon.stop(pidFile: folder + "/agent.pid") == .stopped(pid: pid))
        #expect(kill(pid, 0) != 0 || AgentFixture.members(ofGroup: pid).isEmpty)
        #expect(try AgentDaemon.stop(pidFile: folder + "/agent.pid") == .notRunning)
    }

    @Test func startReportsTheAgentsError() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect {
            try start(folder, mode: "fail")
        } throws: { error in
            (error as? PopError)?.message == "Could not reach the store at 127.0.0.1:1."
        }
        #expect {
            try start(folder, mode: "die")
        } throws: { error in
            (error as? PopError)?.message.contains("something went wrong early") == true
        }
    }

    @Test func readinessIsSentOnce() throws {
        var ends: [Int32] = [-1, -1]
        #expect(pipe(&ends) == 0)
        let readiness = AgentReadiness(fd: ends[1])
        readiness.ready()
        readiness.failed("ignored: readiness was already reported")
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = read(ends[0], &buffer, buffer.count)
        close(ends[0])
        #expect(String(decoding: buffer[..<max(0, count)], as: UTF8.self) == "ready \(getpid())\n")
    }
}
