import Foundation
import PopTestSupport
import Testing

/// `pop --help` and every subcommand's help read cleanly at 80 columns: no line is longer, and no paragraph is broken
/// early (text wrapped by hand and then wrapped again leaves lines such as `4` / `conflict,`).
@Suite("help text at 80 columns")
struct HelpTextTests {
    static let width = 80

    @Test("pop and every subcommand, the hidden dump included")
    func everyHelpScreen() async throws {
        try await PopRunner.with { pop in
            let commands = try await GlobalOptionsTests.commandNames(pop)
            #expect(commands.count >= 17, "\(commands)")
            for arguments in [["--help"]] + commands.sorted().map({ [$0, "--help"] }) {
                let result = try await pop.run(arguments, extraEnvironment: ["COLUMNS": String(Self.width), "LINES": "50"])
                #expect(result.status == 0, "\(result)")
                for problem in Self.problems(result.stdout) {
                    Issue.record("pop \(arguments.joined(separator: " ")): \(problem)\n\(result.stdout)")
                }
            }
        }
    }

    /// Lines longer than the width, and lines of running text that end before the next line's first word would have
    /// had to wrap.
    static func problems(_ text: String) -> [String] {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var problems: [String] = []
        for (index, line) in lines.enumerated() {
            if line.count > width {
                problems.append("line \(index + 1) has \(line.count) columns: \(line)")
            }
            // Running text starts at the margin; tables, option lists and wrapped usage lines are indented.
            guard index + 1 < lines.count, !line.isEmpty, !line.hasPrefix(" ") else { continue }
            let next = lines[index + 1]
            guard !next.isEmpty, !next.hasPrefix(" "), let word = next.split(separator: " ").first else { continue }
            // The argument parser leaves the last column empty, as a terminal wraps a line that fills it.
            if line.count + 1 + word.count < width {
                problems.append("line \(index + 1) ends early (\"\(word)\" fits after it): \(line)")
            }
        }
        return problems
    }

    @Test("the check finds what it is for")
    func theCheckFindsEarlyBreaks() {
        let rewrapped = "Exit codes: 0 success, 1 failure, 2 usage or invalid input, 3 not found, 4\nconflict,\n5 store unreachable"
        #expect(Self.problems(rewrapped).count == 1, "conflict, then 5 on a line of its own")
        #expect(Self.problems(String(repeating: "x", count: 81)).count == 1)
        #expect(Self.problems("A paragraph that wraps only where the next word would not fit on the line any\nmore.").isEmpty)
    }
}
