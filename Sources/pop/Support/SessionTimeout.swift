import ArgumentParser

/// The agent's store session timeout, `pop fg --session-timeout` and `pop start --session-timeout`.
///
/// The store ends a session it has not heard from for this long: the machine's registration goes, and after a
/// service's reschedule-after its instances placed by count move. The agent's client sends a heartbeat three times
/// per timeout when it has nothing else to send, so an ensemble serving N idle agents answers 3N / timeout
/// heartbeats a second (docs/multi-machine.md). ZooKeeper grants a timeout between 2 and 20 of its ticks (4 to 40 s
/// with its default tickTime of 2 s, unless minSessionTimeout and maxSessionTimeout say otherwise).
enum SessionTimeout {
    /// Seconds, unless the operator says otherwise.
    static let standard = 10
    /// The seconds accepted.
    static let range = 4...120

    static func validate(_ seconds: Int) throws {
        guard range.contains(seconds) else {
            throw ValidationError(
                "--session-timeout \(seconds) is outside \(range.lowerBound)...\(range.upperBound) seconds; 10 is the default.")
        }
    }
}
