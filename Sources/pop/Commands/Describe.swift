import ArgumentParser
import PopState
import PopTemplates

/// `pop describe TEMPLATE`: a template's description, options and tasks.
struct Describe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe",
        _superCommandName: "pop",
        abstract: "Show a template's description, options and tasks.")

    @OptionGroup(title: "Global options") var global: GlobalOptions

    @Argument(help: "The template's name (see `pop list`).")
    var template: String

    func run() async throws {
        let catalog = TemplateCatalog.discover()
        let resolved = try catalog.resolve(named: template)
        let out = Terminal.standardOutput
        if global.json {
            let encoder = PopJSON.outputEncoder()
            var copy = resolved
            copy.files = copy.files.map { TemplateFile(path: $0.path, contents: "", executable: $0.executable) }
            out.line(String(decoding: try encoder.encode(copy), as: UTF8.self))
            return
        }
        out.line(out.paint(resolved.name, .bold) + out.paint("  (plugin \(resolved.plugin))", .dim))
        if !resolved.bases.isEmpty {
            out.line("based on: " + resolved.bases.joined(separator: " → "))
        }
        if !resolved.description.isEmpty {
            out.line()
            out.line(resolved.description.trimmingTrailingWhitespace())
        }
        out.line()
        if resolved.options.isEmpty {
            out.line("Options: none")
        } else {
            var table = Table("OPTION", "TYPE", "DEFAULT", "HELP")
            for option in resolved.options {
                table.append([
                    Table.Cell("--" + option.name, .cyan),
                    Table.Cell(Describe.typeText(option)),
                    Table.Cell(option.defaultValue.map { String(describing: $0) } ?? (option.required ? "(required)" : "-")),
                    Table.Cell(option.help),
                ])
            }
            out.write(table.render(for: out))
        }
        if let provides = resolved.provides {
            out.line()
            out.line("Provides: " + provides.joined(separator: ", "))
        }
        if let requires = resolved.requires {
            out.line()
            var table = Table("REQUIRES", "INTERFACE", "CONDITION", "POLICY", "DEBOUNCE")
            for slot in requires.keys.sorted() {
                let requirement = requires[slot]!
                table.append([
                    Table.Cell(slot, .cyan), Table.Cell(requirement.interface ?? "any"),
                    Table.Cell(requirement.condition.rawValue), Table.Cell(requirement.policy.rawValue),
                    Table.Cell("\(Double(requirement.debounceMilliseconds) / 1000) s"),
                ])
            }
            out.write(table.render(for: out))
        }
        if !resolved.tasks.isEmpty {
            out.line()
            var table = Table("TASK", "DESCRIPTION")
            for task in resolved.tasks {
                table.append([Table.Cell(task.name, .cyan), Table.Cell(task.description)])
            }
            out.write(table.render(for: out))
        }
    }

    static func typeText(_ option: TemplateOption) -> String {
        switch option.type {
        case .enum: return "enum(" + (option.choices ?? []).joined(separator: "|") + ")"
        case .int:
            if let minimum = option.minimum, let maximum = option.maximum { return "int \(minimum)-\(maximum)" }
            return "int"
        default: return option.type.rawValue
        }
    }
}

extension String {
    func trimmingTrailingWhitespace() -> String {
        var copy = self
        while let last = copy.last, last.isWhitespace { copy.removeLast() }
        return copy
    }
}
