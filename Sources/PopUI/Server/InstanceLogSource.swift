import Foundation
import PopAgent
import PopState

/// Where an instance's log can be read from the dashboard's host.
///
/// Logs stay on the machine that ran the instance. The dashboard reads those in its own pop home: every instance on
/// the embedded store, and on ZooKeeper the instances of the machine it runs on. The agents' log endpoints, once they
/// exist, are the way to the others; until then the page says where the log is.
struct InstanceLogSource: Sendable {
    let home: PopHome?

    /// The instance's log files on this host, or an error saying why there are none.
    func files(_ service: ServiceName, _ machine: MachineID) throws -> [String] {
        guard let home else {
            throw DashboardError(.notFound, "This dashboard has no pop home to read logs from.")
        }
        let folder = home.instanceFolder(machine, service) + "/logs"
        let files = ["stdout", "stderr"].map { folder + "/\($0).log" }.filter { FileManager.default.fileExists(atPath: $0) }
        guard !files.isEmpty else {
            throw DashboardError(
                .notFound, "The log of \(service) on \(machine) is not on this host.",
                hint: "Logs stay on the machine that ran the instance: run `pop logs \(service)` on \(machine).")
        }
        return files
    }

    /// The last `lines` lines of each file.
    func tail(_ files: [String], lines: Int) -> [(path: String, text: String)] {
        files.map { path in (path, (try? InstanceLog.tail(path, lines: lines)) ?? "") }
    }
}
