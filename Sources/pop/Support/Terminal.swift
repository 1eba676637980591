import Foundation
import PopState

/// Writes to standard output or standard error, with colour only on a terminal and never when NO_COLOR is set.
struct Terminal: Sendable {
    let fileDescriptor: Int32
    let colored: Bool

    static let standardOutput = Terminal(fileDescriptor: 1)
    static let standardError = Terminal(fileDescriptor: 2)

    init(fileDescriptor: Int32) {
        self.fileDescriptor = fileDescriptor
        let noColor = CommandEnvironment.variables["NO_COLOR"].map { !$0.isEmpty } ?? false
        let dumb = CommandEnvironment.variables["TERM"] == "dumb"
        self.colored = isatty(fileDescriptor) == 1 && !noColor && !dumb
    }

    /// Writes text as is; false when it could not all be written (the reader went away).
    @discardableResult
    func write(_ text: String) -> Bool {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { buffer in
                Foundation.write(fileDescriptor, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if written <= 0 {
                if written < 0 && errno == EINTR { continue }
                return false
            }
            offset += written
        }
        return true
    }

    /// Writes a line.
    func line(_ text: String = "") {
        write(text + "\n")
    }

    /// Writes a PopError as `pop: message` plus its hint.
    func writeError(_ error: PopError) {
        var text = paint("error:", .red) + " " + error.message + "\n"
        if let hint = error.hint {
            text += paint("hint:", .yellow) + " " + hint + "\n"
        }
        write(text)
    }

    /// ANSI colours used in tables.
    enum Color: String {
        case red = "31", green = "32", yellow = "33", blue = "34", magenta = "35", cyan = "36", dim = "2", bold = "1"
    }

    /// Wraps text in a colour when this terminal shows colour.
    func paint(_ text: String, _ color: Color?) -> String {
        guard colored, let color, !text.isEmpty else { return text }
        return "\u{1B}[\(color.rawValue)m\(text)\u{1B}[0m"
    }
}
