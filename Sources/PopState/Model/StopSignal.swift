import Glibc

/// A signal that asks an instance's process group to stop, named as templates name it (`TERM`, `INT`, ...).
///
/// The one list of stop signals: the manifest parser accepts exactly these, the stored spec holds one of them, and the
/// agent sends it.
public enum StopSignal: String, Hashable, Sendable, Codable, CaseIterable {
    /// SIGTERM, the default: please terminate.
    case term = "TERM"
    /// SIGINT, as from Ctrl-C.
    case int = "INT"
    /// SIGQUIT.
    case quit = "QUIT"
    /// SIGHUP.
    case hup = "HUP"
    /// SIGKILL, which cannot be caught (no grace at all).
    case kill = "KILL"
    /// SIGUSR1.
    case usr1 = "USR1"
    /// SIGUSR2.
    case usr2 = "USR2"
    /// SIGWINCH, Apache httpd's graceful stop.
    case winch = "WINCH"

    /// Parses a signal name such as `TERM`, `SIGTERM` or `term`; nil for a signal pop does not send.
    public init?(parsing name: String) {
        var upper = name.uppercased()
        if upper.hasPrefix("SIG") { upper.removeFirst(3) }
        self.init(rawValue: upper)
    }

    /// Every name, for messages: `TERM, INT, ...`.
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// The platform's signal number.
    public var number: Int32 {
        switch self {
        case .term: SIGTERM
        case .int: SIGINT
        case .quit: SIGQUIT
        case .hup: SIGHUP
        case .kill: SIGKILL
        case .usr1: SIGUSR1
        case .usr2: SIGUSR2
        case .winch: SIGWINCH
        }
    }
}
