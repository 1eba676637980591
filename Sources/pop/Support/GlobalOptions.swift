import ArgumentParser

/// Options every command takes: which store, which namespace, and how to print.
///
/// They may come before the command's name (`pop --host h1:2181 status`) or after it (`pop status --host h1:2181`):
/// ``placedAfterCommand(_:commands:)`` moves the leading ones behind the name, where the command parses them.
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

    /// `arguments` with the global options given before the command's name moved to just after it.
    ///
    /// The leading arguments are moved only when they parse as global options and are followed by the name of one of
    /// `commands`; anything else is left as it is, for the parser to accept or refuse with its usual message.
    static func placedAfterCommand(_ arguments: [String], commands: [any ParsableCommand.Type]) -> [String] {
        let names = Set(commands.map { $0._commandName })
        for (index, argument) in arguments.enumerated() where index > 0 && names.contains(argument) {
            let leading = Array(arguments[..<index])
            // Every leading argument must be an option (a value such as `--prefix status` is tried at a later index).
            guard (try? GlobalOptions.parse(leading)) != nil else { continue }
            return [argument] + leading + arguments[(index + 1)...]
        }
        return arguments
    }

    /// The global options as the root command's help lists them, one line each, generated from the declarations.
    static var helpLines: [String] {
        let usage = GlobalOptions.helpMessage(columns: 10_000)
        guard let start = usage.range(of: "OPTIONS:\n") else { return [] }
        return usage[start.upperBound...].split(separator: "\n")
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("-h, --help") }
    }
}
