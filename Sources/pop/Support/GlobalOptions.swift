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
    /// `commands`. Leading global options followed by no command are dropped, so that `pop --host h --help` shows the
    /// help, and `pop --host h` alone asks for a command. Anything else is left as it is, for the parser to accept or
    /// refuse with its usual message.
    static func placedAfterCommand(_ arguments: [String], commands: [any ParsableCommand.Type]) -> [String] {
        let names = Set(commands.map { $0._commandName })
        for index in arguments.indices where names.contains(arguments[index]) {
            let leading = Array(arguments[..<index])
            if leading.isEmpty { return arguments }
            // A value such as `--prefix status` does not parse here; the next occurrence of the name is tried.
            if (try? GlobalOptions.parse(leading)) != nil {
                return [arguments[index]] + leading + arguments[(index + 1)...]
            }
        }
        for end in stride(from: arguments.count, through: 1, by: -1)
        where (try? GlobalOptions.parse(Array(arguments[..<end]))) != nil {
            return Array(arguments[end...])
        }
        return arguments
    }
}
