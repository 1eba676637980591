import Foundation
import PopTestExpectations
import PopTestSupport
import TestProcesses
import Testing
import ZooKeeperTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A hung ZooKeeper leader: the 3-member ensemble's leader frozen with SIGSTOP (its connections stay open, nothing is
/// answered) while an agent runs on the ensemble.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct ZooKeeperLeaderTests {
    @Test func aHungLeaderLeavesInstancesRunningAndTheAgentReconverges() async throws {
        try await withZooKeeperEnsemble { ensemble in
            try await withFaultMachine(zooKeeper: ensemble.connectString) { pop in
                for name in ["alpha", "beta"] {
                    try await pop.ok("add", name, "--template", "command", "--command", "sleep 100000")
                    try await pop.ok("deploy", name)
                }
                try await pop.ok("start")
                let before = try await pop.waitUntilRunning()
                let pids = before.services.compactMap { $0.instances.first?.pid }
                #expect(pids.count == 2)

                let leader = try await ensemble.leader()
                leader.pause()
                do {
                    // While the others elect a new leader, every command either fails as an unreachable store
                    // (exit 5, once its 5 s connect timeout has passed), or succeeds against the new leader.
                    for arguments in [["status"], ["machines"], ["add", "gamma", "--template", "command", "--command", "sleep 100000"]] {
                        let result = try await pop.run(arguments)
                        #expect(result.status == 0 || result.status == 5, "\(result)")
                        #expect(result.elapsed < .seconds(15), "pop \(arguments.joined(separator: " ")) took \(result.elapsed)")
                        if arguments.first == "add", result.status != 0 {
                            // Not written: add it once the ensemble answers again.
                            try await retryUntilWritten(pop, arguments)
                        }
                    }
                    for pid in pids {
                        #expect(Processes.isAlive(pid), "instance \(pid) runs on while the leader hangs")
                    }
                    // The agent reconverges on the new leader: a service deployed now starts, nothing else restarts.
                    try await retryUntilWritten(pop, ["deploy", "gamma"])
                    let after = try await pop.waitUntilRunning(within: 120)
                    #expect(after.services.count == 3)
                    for service in after.services {
                        #expect(service.instances.count == 1, "\(service.service): \(service.instances)")
                    }
                    let again = after.services.filter { $0.service != "gamma" }.compactMap { $0.instances.first?.pid }
                    #expect(Set(again) == Set(pids), "the first instances were not restarted")
                    #expect(try await ensemble.leader().memberID != leader.memberID, "another member leads")
                } catch {
                    leader.resume()
                    throw error
                }
                leader.resume()
            }
        }
    }

    /// Runs `arguments` until it exits 0 (a refused write is retried while the ensemble elects a leader), for at most
    /// a minute; `pop add` that already went through counts.
    func retryUntilWritten(_ pop: PopRunner, _ arguments: [String]) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            let result = try await pop.run(arguments)
            if result.status == 0 || (arguments.first == "add" && result.status == 4) { return }
            #expect(result.status == 5, "\(result)")
            guard ContinuousClock.now < deadline else { throw TestFailure("\(result)") }
            // A client cannot be told when the ensemble has a leader again: try again shortly.
            try await Task.sleep(for: .milliseconds(250))
        }
    }
}
