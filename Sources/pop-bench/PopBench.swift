import ArgumentParser

/// `pop-bench`: pop's benchmarks, one subcommand each.
@main
struct PopBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pop-bench",
        abstract: "Measure pop's stores and commands (build with -c release).",
        subcommands: [StoreBenchmark.self, StatusBenchmark.self])
}
