import ArgumentParser

/// `pop-bench`: the benchmarks whose figures docs/benchmarks.md records.
@main
struct PopBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pop-bench",
        abstract: "Benchmarks whose figures docs/benchmarks.md records.",
        subcommands: [StoreBenchmark.self, ClusterBenchmark.self])
}
