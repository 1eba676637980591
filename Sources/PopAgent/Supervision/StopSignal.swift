import PopState

/// The stop signal, declared once in PopState (the manifest parser and the stored spec use it too); named here as well
/// so the supervisor's clients need not import PopState for it.
public typealias StopSignal = PopState.StopSignal

extension StopSignal {
    /// Parses a signal name such as `TERM`, `SIGTERM` or `term`, throwing a supervisor error for anything else.
    public init(name: String) throws(SupervisorError) {
        guard let signal = StopSignal(parsing: name) else {
            throw SupervisorError(
                .invalidConfiguration, "The stop signal '\(name)' is not one pop can send.",
                hint: "Use one of \(StopSignal.names).")
        }
        self = signal
    }
}
