import ArgumentParser

/// Benchmarks whose figures are recorded in docs/benchmarks.md; one subcommand per subject.
@main
struct PopBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pop-bench",
        abstract: "Benchmarks of pop's parts, each against servers it starts itself (build with -c release).",
        subcommands: [
            ZooKeeperBenchmark.self, StoreBenchmark.self, StatusBenchmark.self, ClusterBenchmark.self, AgentBenchmark.self,
            UIBenchmark.self, LogsBenchmark.self,
        ]
    )
}
