import Foundation

/// One line of `pop logs --json` and `pop events --json`: a log line, a lifecycle event, or a marker about a machine.
///
/// The one declaration of that output, used by the command line and by the tests that read it. Every object has
/// `time` (RFC 3339, UTC, nanoseconds) and `machine`; a log line has `service`, `stream`, `seq` and `line`; an event
/// has `kind`, `seq`, `summary` and its own fields (`service` unless it is the agent's); a marker has `marker`
/// (`unreachable`, `back`, `joined`, `left`, `gap`) and `detail`.
public struct JournalOutput: Codable, Hashable, Sendable {
    public var time: String
    public var machine: String
    public var service: String?
    /// A log line's stream: `stdout`, `stderr` or `setup`.
    public var stream: String?
    /// A log line's or an event's number in its journal.
    public var seq: UInt64?
    /// A log line's text (invalid UTF-8 replaced).
    public var line: String?
    /// An event's kind (``LifecycleEvent/Kind``).
    public var kind: String?
    /// An event's one-line description.
    public var summary: String?
    public var pid: Int32?
    public var signature: String?
    public var exitCode: Int32?
    public var signal: Int32?
    public var reason: String?
    public var healthy: Bool?
    public var task: String?
    public var taskID: String?
    public var succeeded: Bool?
    /// A marker: `unreachable`, `back`, `joined`, `left`, `gap`.
    public var marker: String?
    /// A marker's or an event's detail.
    public var detail: String?

    /// A log line of `service` on `machine`.
    public init(line: JournalLine, machine: String, service: String?) {
        time = JournalTime.rfc3339(line.time)
        self.machine = machine
        self.service = service
        stream = line.stream.rawValue
        seq = line.seq
        self.line = String(decoding: line.text, as: UTF8.self)
    }

    /// A lifecycle event on `machine`.
    public init(event: LifecycleEvent, machine: String) {
        time = JournalTime.rfc3339(event.time)
        self.machine = machine
        service = event.service
        seq = event.seq
        kind = event.kind.rawValue
        summary = event.summary
        pid = event.pid
        signature = event.signature
        exitCode = event.exitCode
        signal = event.signal
        reason = event.reason?.rawValue
        healthy = event.healthy
        task = event.task
        taskID = event.taskID
        succeeded = event.succeeded
        detail = event.detail
    }

    /// A marker about `machine`, at `time` (nanoseconds since the epoch).
    public init(marker: String, detail: String?, machine: String, time: Int64) {
        self.time = JournalTime.rfc3339(time)
        self.machine = machine
        self.marker = marker
        self.detail = detail
    }

    /// The time in nanoseconds since the epoch.
    public var nanoseconds: Int64? { JournalTime.parseRFC3339(time) }

    /// Reads one line of the output.
    public static func decode(_ line: String) throws -> JournalOutput {
        try JSONDecoder().decode(JournalOutput.self, from: Data(line.utf8))
    }
}
