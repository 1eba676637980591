import ArgumentParser

/// Options every command takes: which store, which namespace, and how to print.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "ZooKeeper hosts, e.g. localhost or h1:2181,h2:2181/chroot (default: POP_HOST, else the embedded store).",
            valueName: "hosts"))
    var host: String?

    @Option(name: .long, help: ArgumentHelp("The namespace root in the store.", valueName: "path"))
    var prefix: String = "/pop"

    @Flag(name: .long, help: "Print machine-readable JSON instead of a table.")
    var json = false
}
