#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PopState

/// A signal that asks an instance's process group to stop, named as templates name it (`TERM`, `INT`, ...).
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

    /// Parses a signal name such as `TERM`, `SIGTERM` or `term`, throwing a clear error for anything else.
    public init(name: String) throws(SupervisorError) {
        var upper = name.uppercased()
        if upper.hasPrefix("SIG") { upper.removeFirst(3) }
        guard let signal = StopSignal(rawValue: upper) else {
            throw SupervisorError(
                .invalidConfiguration,
                "The stop signal '\(name)' is not one pop can send.",
                hint: "Use one of \(StopSignal.allCases.map(\.rawValue).joined(separator: ", ")).")
        }
        self = signal
    }

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
        }
    }
}
