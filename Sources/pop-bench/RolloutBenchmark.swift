import ArgumentParser
import Foundation
import PopTestSupport

/// `pop-bench cluster rollout`: how long a configuration change takes to reach every machine one at a time, and an
/// automatic revert after a failed canary, on agents in network namespaces and a 3-member ensemble.
struct ClusterRolloutBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollout",
        abstract: "The time from `pop config` until N machines run the new signature (--max-parallel 1, canary 1, healthy-time 0), and of an automatic revert.")

    @Option(help: "Machines, each with its own agent.")
    var machines = 10

    @Option(
        name: .customLong("baseline-pop"),
        help: "Also measure this pop binary's rolling restart (--max-parallel 1, no canary), in a cluster of its own, for comparison.")
    var baselinePop: String?

    func run() async throws {
        print("cluster rollout: \(machines) machines, a service of `sleep` on each; host: \(ProcessInfo.processInfo.activeProcessorCount) cores")
        let ours = try await Self.measure(machines: machines, pop: nil, canary: true)
        print("this pop, --canary 1 --max-parallel 1 --healthy-time 0 --auto-revert:")
        print("  config until all \(machines) run the new signature: \(ClusterScaleBenchmark.seconds(ours.rollout))")
        if let revert = ours.revert {
            print("  config of a crashing command until the revert is written and all \(machines) run the old signature: \(ClusterScaleBenchmark.seconds(revert))")
        }
        if let baselinePop {
            let theirs = try await Self.measure(machines: machines, pop: baselinePop, canary: false)
            print("baseline pop (\(baselinePop)), --max-parallel 1:")
            print("  config until all \(machines) run the new signature: \(ClusterScaleBenchmark.seconds(theirs.rollout))")
            print(
                String(
                    format: "ratio (this / baseline): %.2f", ClusterScaleBenchmark.secondsValue(ours.rollout)
                        / ClusterScaleBenchmark.secondsValue(theirs.rollout)))
        }
    }

    static func measure(machines: Int, pop: String?, canary: Bool) async throws -> (rollout: Duration, revert: Duration?) {
        var options = Cluster.Options()
        options.machines = machines
        options.machinesPerHost = machines
        options.popBinary = pop
        return try await withCluster(options) { cluster in
            try await cluster.startAgents()
            let ids = cluster.machines.map(\.id)
            try await cluster.popOK(["add", "web", "--template", "command", "--command", "sleep 100000"])
            try await cluster.popOK(["deploy", "web"] + ids)
            try await cluster.popOK(["status", "web", "--wait", "running", "--timeout", "300"])
            try await cluster.popOK(
                ["config", "web", "--max-parallel", "1"]
                    + (canary ? ["--canary", "1", "--healthy-time", "0", "--healthy-deadline", "60s", "--auto-revert"] : []))
            let start = ContinuousClock.now
            try await cluster.popOK(["config", "web", "--command", "sleep 100001"])
            try await cluster.popOK(["status", "web", "--wait", "running", "--timeout", "300"], timeout: .seconds(330))
            let rollout = ContinuousClock.now - start
            guard canary else { return (rollout, nil) }
            let revertStart = ContinuousClock.now
            let failed = try await cluster.pop(["config", "web", "--command", "false", "--wait", "--timeout", "300"], timeout: .seconds(330))
            guard failed.status == 1, failed.stderr.contains("reverted") else {
                throw ValidationError("the crashing configuration was not reverted:\n\(failed)")
            }
            try await cluster.popOK(["status", "web", "--wait", "running", "--timeout", "300"], timeout: .seconds(330))
            return (rollout, ContinuousClock.now - revertStart)
        }
    }
}
