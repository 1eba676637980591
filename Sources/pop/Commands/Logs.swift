import ArgumentParser
import Foundation
import PopAgent
import PopState

/// `pop logs NAME`: an instance's output on this machine.
struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print an instance's log on this machine (stdout and stderr; --setup for setup output).")

    /// Which log file.
    enum Stream: String, ExpressibleByArgument, CaseIterable {
        case stdout, stderr, setup, all
    }

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Argument(help: "The service.")
    var name: String

    @Option(name: .long, help: "The machine whose instance to show (its logs must be on this host); default: this machine.")
    var machine: String?

    @Option(name: .long, help: "Which log: stdout, stderr, setup or all.")
    var stream: Stream = .all

    @Flag(name: .customLong("setup"), help: "Show the setup log (pip, setup steps); same as --stream setup.")
    var setup = false

    @Option(name: [.customShort("n"), .long], help: "How many lines to print from the end of each log.")
    var lines: Int = 50

    @Flag(name: .shortAndLong, help: "Keep printing new output as it is written.")
    var follow = false

    func validate() throws {
        if lines < 0 { throw ValidationError("-n must not be negative.") }
    }

    func run() async throws {
        let service = try ServiceName(name)
        let environment = ProcessInfo.processInfo.environment
        let home = try PopHome(environment: environment)
        let machineID = try machine.map { try MachineID($0) } ?? MachineIdentity.current(environment: environment)
        let folder = home.instanceFolder(machineID, service) + "/logs"
        guard FileManager.default.fileExists(atPath: folder) else {
            throw PopError(
                .notFound, "No logs of \(service) for machine \(machineID) on this host (\(folder)).",
                hint: "Logs stay on the machine that ran the instance: run `pop logs \(service)` there. `pop status \(service)` shows where it runs.")
        }
        let chosen: [Stream] = setup ? [.setup] : (stream == .all ? [.stdout, .stderr] : [stream])
        let paths = chosen.map { folder + "/\($0.rawValue).log" }.filter { FileManager.default.fileExists(atPath: $0) }
        guard !paths.isEmpty else {
            throw PopError(.notFound, "\(service) has written no \(chosen.map(\.rawValue).joined(separator: " or ")) log yet (\(folder)).")
        }
        let out = Terminal.standardOutput
        for path in paths {
            if paths.count > 1 { out.line(out.paint("==> \(path) <==", .dim)) }
            out.write(try InstanceLog.tail(path, lines: lines))
        }
        guard follow else { return }
        // The follower's thread ends with this command: when standard output goes away, or when the command is
        // interrupted (the process then ends with it).
        let follower = try InstanceLog.follow(paths)
        for try await chunk in follower.chunks {
            let text =
                paths.count > 1
                ? chunk.text.split(separator: "\n", omittingEmptySubsequences: false)
                    .dropLast(chunk.text.hasSuffix("\n") ? 1 : 0)
                    .map { out.paint(chunk.path.hasSuffix("stderr.log") ? "err| " : "out| ", .dim) + $0 + "\n" }.joined()
                : chunk.text
            if !out.write(text) { break }
        }
        follower.stop()
        await follower.finished()
    }
}
