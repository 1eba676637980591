import ArgumentParser
import Foundation
import PopState

/// The parts of pop's help that the argument parser does not lay out by itself.
enum HelpText {
    /// The width help is laid out for, as the argument parser finds it: COLUMNS, else the terminal's, else 80.
    static var width: Int {
        if let columns = CommandEnvironment.variables["COLUMNS"].flatMap(Int.init), columns > 0 { return columns }
        var size = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return 80
    }

    /// The synopsis of `arguments`' options, such as `[--host <hosts>] [--prefix <path>] [--json]`.
    static func synopsis(of arguments: any ParsableArguments.Type) -> String {
        let usage = arguments.helpMessage(columns: 10_000).split(separator: "\n").first { $0.hasPrefix("USAGE: ") } ?? ""
        return usage.dropFirst("USAGE: ".count).split(separator: " ", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
    }

    /// The option lines of `arguments`' help (without `--help`), laid out as the argument parser lays out a command's
    /// options at the current width, for a section of another command's help.
    static func optionLines(of arguments: any ParsableArguments.Type) -> String {
        let help = arguments.helpMessage()
        guard let start = help.range(of: "OPTIONS:\n") else { return "" }
        var lines: [Substring] = []
        for line in help[start.upperBound...].split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty { break }
            if line.trimmingCharacters(in: .whitespaces).hasPrefix("-h, --help") { continue }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    /// The exit codes, one line each.
    static var exitCodes: String {
        PopExitCode.allCases.map { "  \($0.rawValue)  \($0)" }.joined(separator: "\n")
    }

    /// `help` with a USAGE line longer than `width` broken between its elements, the rest indented under the first.
    ///
    /// The argument parser wraps every part of a help screen but the usage line.
    static func wrappingUsage(_ help: String, width: Int = HelpText.width) -> String {
        var lines = help.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let index = lines.firstIndex(where: { $0.hasPrefix("USAGE: ") }), lines[index].count > width else {
            return help
        }
        let elements = usageElements(lines[index].dropFirst("USAGE: ".count))
        guard elements.count > 2 else { return help }
        // `USAGE: pop init` stays together; the rest hangs under the first argument.
        let head = "USAGE: " + elements[0] + " " + elements[1]
        let indent = String(repeating: " ", count: head.count + 1)
        var wrapped: [String] = []
        var current = head
        for element in elements.dropFirst(2) {
            if current.count + 1 + element.count > width, current.count > indent.count {
                wrapped.append(current)
                current = indent + element
            } else {
                current += " " + element
            }
        }
        wrapped.append(current)
        lines.replaceSubrange(index...index, with: wrapped)
        return lines.joined(separator: "\n")
    }

    /// The elements of a synopsis, never splitting inside `[...]` or `<...>`.
    private static func usageElements(_ usage: Substring) -> [String] {
        var elements: [String] = []
        var current = ""
        var depth = 0
        for character in usage {
            switch character {
            case "[", "<": depth += 1
            case "]", ">": depth -= 1
            default: break
            }
            if character == " ", depth == 0 {
                if !current.isEmpty { elements.append(current) }
                current = ""
            } else {
                current.append(character)
            }
        }
        if !current.isEmpty { elements.append(current) }
        return elements
    }
}
