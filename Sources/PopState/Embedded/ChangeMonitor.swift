/// Wakes a thread when a file in a folder is written, without polling.
///
/// The embedded store's writers touch a commit file after every commit; each store handle's dispatcher thread waits
/// on a monitor of that file, then reads the new change-log rows. The platform's mechanism (inotify on Linux) lives
/// in `ChangeMonitor+<Platform>.swift`.
package protocol ChangeMonitor: Sendable {
    /// Starts watching for commits (idempotent); until then ``wait(timeoutMilliseconds:)`` wakes only on
    /// interrupts and timeouts. Call it before reading the state a watch starts from.
    func activate() throws(PopError)

    /// Blocks until the watched file is written (`.changed`), ``interrupt()`` is called, or the timeout (if any)
    /// passes.
    func wait(timeoutMilliseconds: Int?) -> ChangeMonitorWake

    /// Makes a blocked or the next ``wait(timeoutMilliseconds:)`` return `.interrupted`.
    func interrupt()

    /// Releases the monitor's resources; it must not be used afterwards.
    func close()
}

/// Why ``ChangeMonitor/wait(timeoutMilliseconds:)`` returned.
package enum ChangeMonitorWake: Sendable {
    /// The watched file was written.
    case changed
    /// Something else in the folder changed; nothing to read.
    case unrelated
    /// ``ChangeMonitor/interrupt()`` was called.
    case interrupted
    /// The timeout passed.
    case timeout
}
