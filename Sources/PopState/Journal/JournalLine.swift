/// One line of an instance's output, with its place in its stream.
public struct JournalLine: Hashable, Sendable {
    /// Which stream it was written to.
    public var stream: LogStreamKind
    /// Its number in the stream, from 1, never reused while the stream's files exist (it continues across rotations,
    /// restarts of the instance and of the agent).
    public var seq: UInt64
    /// When the log writer read it, in nanoseconds since the epoch.
    public var time: Int64
    /// Its bytes, without the newline.
    public var text: ArraySlice<UInt8>

    /// Creates a line.
    public init(stream: LogStreamKind, seq: UInt64, time: Int64, text: ArraySlice<UInt8>) {
        self.stream = stream
        self.seq = seq
        self.time = time
        self.text = text
    }
}

/// Where a reader stands in one journal (a log stream, or an event journal): the journal's identity and the last
/// line or event it has received. A reader that comes back with it gets what follows, with nothing lost or repeated.
public struct JournalCursor: Hashable, Sendable {
    /// The journal's id; a journal whose files were removed and written again has another id.
    public var journal: UInt64
    /// The last line (or event) number received.
    public var position: UInt64

    /// Creates a cursor.
    public init(journal: UInt64, position: UInt64) {
        self.journal = journal
        self.position = position
    }
}
