/// One of an instance's output streams, each kept in its own log file and indexed on its own.
public enum LogStreamKind: String, Hashable, Sendable, Codable, CaseIterable, Comparable {
    /// The command's standard output (`stdout.log`).
    case stdout
    /// The command's standard error (`stderr.log`).
    case stderr
    /// The setup steps' output (`setup.log`).
    case setup

    /// The log file's name in the instance's `logs` folder.
    public var fileName: String { rawValue + ".log" }
    /// The index file's name beside it.
    public var indexName: String { rawValue + ".idx" }
    /// The short label pop prints before a line: `out`, `err`, `setup`.
    public var label: String {
        switch self {
        case .stdout: "out"
        case .stderr: "err"
        case .setup: "setup"
        }
    }
    /// The one letter that names it on the wire.
    var letter: UInt8 {
        switch self {
        case .stdout: UInt8(ascii: "o")
        case .stderr: UInt8(ascii: "e")
        case .setup: UInt8(ascii: "s")
        }
    }

    init?(letter: UInt8) {
        switch letter {
        case UInt8(ascii: "o"): self = .stdout
        case UInt8(ascii: "e"): self = .stderr
        case UInt8(ascii: "s"): self = .setup
        default: return nil
        }
    }

    public static func < (left: LogStreamKind, right: LogStreamKind) -> Bool {
        allCases.firstIndex(of: left)! < allCases.firstIndex(of: right)!
    }
}
