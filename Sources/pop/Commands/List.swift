import ArgumentParser
import PopState
import PopTemplates

/// `pop list`: the available templates and the plugin each comes from.
struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        _superCommandName: "pop",
        abstract: "List the available templates and their plugins.")

    @OptionGroup(title: "Global options") var global: GlobalOptions

    func run() async throws {
        let catalog = TemplateCatalog.discover()
        let out = Terminal.standardOutput
        if global.json {
            struct Row: Encodable { var template, plugin, description, source: String }
            let rows = catalog.entries.map {
                Row(template: $0.name, plugin: $0.plugin, description: $0.description, source: $0.source)
            }
            let encoder = PopJSON.outputEncoder()
            out.line(String(decoding: try encoder.encode(rows), as: UTF8.self))
        } else {
            var table = Table("TEMPLATE", "PLUGIN", "DESCRIPTION")
            for entry in catalog.entries {
                table.append([Table.Cell(entry.name, .cyan), Table.Cell(entry.plugin), Table.Cell(List.firstLine(entry.description))])
            }
            out.write(table.render(for: out))
        }
        for problem in catalog.problems {
            Terminal.standardError.line(
                Terminal.standardError.paint("warning:", .yellow) + " \(problem.source): \(problem.message)")
        }
    }

    static func firstLine(_ text: String) -> String {
        let line = text.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? ""
        return line.count > 70 ? String(line.prefix(67)) + "..." : line
    }
}
