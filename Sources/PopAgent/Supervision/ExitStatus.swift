/// How a process ended, as far as the supervisor can know.
public enum ExitStatus: Hashable, Sendable, Codable, CustomStringConvertible {
    /// It called exit with this status.
    case exited(Int32)
    /// A signal killed it.
    case signaled(Int32)
    /// It was adopted from an earlier agent, so it is not our child and its status cannot be known.
    case unknown

    /// Whether the process exited with status 0.
    public var isSuccess: Bool { self == .exited(0) }

    public var description: String {
        switch self {
        case .exited(let status): "exited with status \(status)"
        case .signaled(let signal):
            if let name = StopSignal.allCases.first(where: { $0.number == signal }) {
                "killed by signal \(signal) (SIG\(name.rawValue))"
            } else {
                "killed by signal \(signal)"
            }
        case .unknown: "exited (status unknown, adopted)"
        }
    }
}
