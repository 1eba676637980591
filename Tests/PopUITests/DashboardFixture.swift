import BrowserTestSupport
import Foundation
import PopState
import PopTestSupport
import TestProcesses

/// Where the dashboard tests keep their screenshots: `.build/test-artifacts/ui/` in the package.
enum TestArtifacts {
    static func folder(_ file: String = #filePath) throws -> URL {
        let package = URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let folder = package.appendingPathComponent(".build/test-artifacts/ui")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }
}

/// JavaScript that reads the grid as the page shows it: per service row, per machine column, the cell's state and
/// PID as text.
enum GridReader {
    static let script = """
        (() => {
          const table = document.getElementById("grid");
          const machines = Array.from(table.tHead.rows[0].cells).slice(1).map((th) => th.dataset.machine);
          const rows = {};
          for (const row of table.tBodies[0].rows) {
            const cells = {};
            Array.from(row.cells).slice(1).forEach((cell, index) => {
              const state = cell.querySelector(".state");
              if (state) cells[machines[index]] = { state: state.textContent, pid: cell.querySelector(".pid").textContent,
                old: cell.querySelector(".old-mark") !== null };
            });
            rows[row.dataset.service] = cells;
          }
          return { machines, rows,
            caption: table.caption ? table.caption.textContent : null,
            columnHeaders: table.querySelectorAll("thead th[scope=col]").length,
            rowHeaders: table.querySelectorAll("tbody th[scope=row]").length };
        })()
        """

    struct Cell: Equatable, CustomStringConvertible {
        var state: String
        var pid: String
        var description: String { "\(state) pid \(pid)" }
    }

    /// The grid's cells by service, then machine.
    static func cells(_ value: Any?) -> [String: [String: Cell]] {
        let rows = ((value as? [String: Any])?["rows"] as? [String: [String: [String: Any]]]) ?? [:]
        return rows.mapValues { cells in
            cells.mapValues { Cell(state: $0["state"] as? String ?? "?", pid: $0["pid"] as? String ?? "?") }
        }
    }

    /// What `pop status --json` says, in the same shape.
    static func cells(_ report: StatusReport) -> [String: [String: Cell]] {
        Dictionary(
            uniqueKeysWithValues: report.services.map { service in
                (
                    service.service,
                    Dictionary(
                        uniqueKeysWithValues: service.instances.map {
                            ($0.machine, Cell(state: $0.state, pid: $0.pid.map(String.init) ?? "—"))
                        })
                )
            })
    }
}
