/// What a reader asks of one machine's journals: the lines of one service's instance, its lifecycle events, or the
/// events of every instance and of the agent; from where; and whether to follow.
///
/// The one declaration of the endpoint's `/logs` and `/events` query (``queryItems`` and ``init(query:)``), used by
/// the agent, the command line and the tests.
public struct JournalRequest: Hashable, Sendable {
    /// Where to begin in a journal the reader has no cursor for.
    public enum Start: Hashable, Sendable {
        /// The last `count` lines (per instance) and events.
        case tail(Int)
        /// What was written at or after this time, in nanoseconds since the epoch.
        case since(Int64)
        /// Everything the files still hold.
        case beginning
    }

    /// The service whose instance's journals to read; nil for the events of every instance and of the agent.
    public var service: ServiceName?
    /// The log streams to read (none: events only).
    public var streams: [LogStreamKind]
    /// Whether to read lifecycle events too.
    public var events: Bool
    /// Where to begin in a journal without a cursor.
    public var start: Start
    /// Where the reader stands in each journal it has read before, by ``JournalKey``.
    public var cursors: [JournalKey: JournalCursor]
    /// Whether to keep sending what is written from now on.
    public var follow: Bool
    /// While following and idle, how often to say how far the journals are complete (a watermark), so that a reader
    /// merging several machines can print another machine's lines without waiting; nil for rarely (every 5 s).
    public var heartbeatMilliseconds: Int?
    /// A regular expression lines must match (evaluated by the agent); events are not filtered.
    public var grep: String?

    /// Creates a request.
    public init(
        service: ServiceName?, streams: [LogStreamKind] = [.stdout, .stderr], events: Bool = false,
        start: Start = .tail(10), cursors: [JournalKey: JournalCursor] = [:], follow: Bool = false,
        heartbeatMilliseconds: Int? = nil, grep: String? = nil
    ) {
        self.service = service
        self.streams = streams
        self.events = events
        self.start = start
        self.cursors = cursors
        self.follow = follow
        self.heartbeatMilliseconds = heartbeatMilliseconds
        self.grep = grep
    }

    /// The request as query items, in a fixed order (so that a signature over the query is reproducible).
    public var queryItems: [(String, String)] {
        var items: [(String, String)] = []
        if let service { items.append(("service", service.rawValue)) }
        items.append(("streams", streams.map(\.rawValue).joined(separator: ",")))
        if events { items.append(("events", "1")) }
        switch start {
        case .tail(let count): items.append(("tail", String(count)))
        case .since(let time): items.append(("since", String(time)))
        case .beginning: items.append(("from", "beginning"))
        }
        if !cursors.isEmpty {
            let text = cursors.sorted { $0.key.rawValue < $1.key.rawValue }.map {
                "\($0.key.rawValue)~\(String($0.value.journal, radix: 16))~\($0.value.position)"
            }
            items.append(("cursor", text.joined(separator: ",")))
        }
        if follow { items.append(("follow", "1")) }
        if let heartbeatMilliseconds { items.append(("heartbeat", String(heartbeatMilliseconds))) }
        if let grep { items.append(("grep", grep)) }
        return items
    }

    /// Parses a request from its query items; the error says which item is wrong.
    public init(query: [String: String]) throws(PopError) {
        func bad(_ message: String) -> PopError { PopError(.invalidInput, message) }
        if let name = query["service"] { service = try ServiceName(name) } else { service = nil }
        var streams: [LogStreamKind] = []
        for name in (query["streams"] ?? "").split(separator: ",") {
            guard let stream = LogStreamKind(rawValue: String(name)) else { throw bad("Unknown stream '\(name)'.") }
            streams.append(stream)
        }
        if service == nil && !streams.isEmpty { throw bad("Log lines need a service.") }
        self.streams = streams
        events = query["events"] == "1"
        if let tail = query["tail"] {
            guard let count = Int(tail), count >= 0 else { throw bad("tail must be a count of lines.") }
            start = .tail(count)
        } else if let since = query["since"] {
            guard let time = Int64(since) else { throw bad("since must be a time in nanoseconds since the epoch.") }
            start = .since(time)
        } else {
            start = .beginning
        }
        var cursors: [JournalKey: JournalCursor] = [:]
        for entry in (query["cursor"] ?? "").split(separator: ",") {
            let parts = entry.split(separator: "~", omittingEmptySubsequences: false)
            guard parts.count == 3, let journal = UInt64(parts[1], radix: 16), let position = UInt64(parts[2]),
                let key = JournalKey(rawValue: String(parts[0]))
            else { throw bad("Malformed cursor '\(entry)'.") }
            cursors[key] = JournalCursor(journal: journal, position: position)
        }
        self.cursors = cursors
        follow = query["follow"] == "1"
        if let heartbeat = query["heartbeat"] {
            guard let milliseconds = Int(heartbeat), milliseconds >= 1 else { throw bad("heartbeat must be milliseconds.") }
            heartbeatMilliseconds = milliseconds
        } else {
            heartbeatMilliseconds = nil
        }
        grep = query["grep"]
    }
}

/// Names one journal on a machine: a log stream or the event journal of a service's instance, or the agent's own
/// event journal. As text: `stdout:web`, `events:web`, `events:` (the agent).
public struct JournalKey: Hashable, Sendable, CustomStringConvertible {
    /// A log stream, or nil for an event journal.
    public var stream: LogStreamKind?
    /// The service, or nil for the agent's journal.
    public var service: ServiceName?

    /// The journal of `stream` (nil: events) of `service` (nil: the agent).
    public init(stream: LogStreamKind?, service: ServiceName?) {
        self.stream = stream
        self.service = service
    }

    /// Parses `stdout:web`, `events:web` or `events:`.
    public init?(rawValue: String) {
        guard let colon = rawValue.firstIndex(of: ":") else { return nil }
        let kind = rawValue[..<colon]
        let name = rawValue[rawValue.index(after: colon)...]
        if kind == "events" {
            stream = nil
        } else if let stream = LogStreamKind(rawValue: String(kind)) {
            self.stream = stream
        } else {
            return nil
        }
        if name.isEmpty {
            guard stream == nil else { return nil }
            service = nil
        } else {
            guard let service = try? ServiceName(String(name)) else { return nil }
            self.service = service
        }
    }

    /// The text form.
    public var rawValue: String { (stream?.rawValue ?? "events") + ":" + (service?.rawValue ?? "") }
    public var description: String { rawValue }
}
