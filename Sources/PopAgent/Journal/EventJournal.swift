import Foundation
import PopState
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A bounded journal of lifecycle events in a file, one JSON object per line, numbered from 1 (docs/observability.md).
///
/// Each instance has one (`events.jsonl` in its `logs` folder) and so has the agent itself (`events.jsonl` in the
/// machine's folder). The file starts with a line `#journal ID`, the journal's identity; when it passes
/// ``maximumBytes`` it is renamed to `events.jsonl.1` (replacing the previous one) and a new file starts with the
/// same identity, so the journal never holds more than twice that. Numbers continue across rotations and agent
/// restarts: the writer reads the last number when it opens the journal. Only the agent writes it, one whole line per
/// `write`.
public final class EventJournal: Sendable {
    /// The journal's file.
    public let path: String
    /// The size past which the file is rotated.
    public let maximumBytes: Int
    private let state: Mutex<WriterState>

    private struct WriterState {
        var fd: Int32 = -1
        var size = 0
        var journal: UInt64 = 0
        var lastSeq: UInt64 = 0
        var opened = false
    }

    /// The name of an event journal's file.
    public static let fileName = "events.jsonl"
    /// The default bound of an instance's journal file (it keeps two).
    public static let instanceMaximumBytes = 64 << 10
    /// The default bound of the agent's own journal file.
    public static let agentMaximumBytes = 256 << 10

    /// A journal at `path`, opened (and created) at its first event.
    public init(path: String, maximumBytes: Int = EventJournal.instanceMaximumBytes) {
        self.path = path
        self.maximumBytes = max(maximumBytes, 4096)
        self.state = Mutex(WriterState())
    }

    deinit {
        state.withLock { if $0.fd >= 0 { Glibc.close($0.fd) } }
    }

    /// Appends `event`, giving it the next number and, when it has none, the current time; returns it as written.
    /// A journal that cannot be written (a full disk) loses the event, never the caller's work.
    @discardableResult
    public func append(_ event: LifecycleEvent) -> LifecycleEvent {
        var event = event
        if event.time == 0 { event.time = LogStreamReader.now() }
        state.withLock { state in
            if !state.opened { open(&state) }
            event.seq = state.lastSeq + 1
            guard state.fd >= 0 else { return }
            var line = event.canonicalJSON
            line.append(10)
            if state.size > 0 && state.size + line.count > maximumBytes { rotate(&state) }
            guard state.fd >= 0, Self.writeAll(state.fd, line) else { return }
            state.size += line.count
            state.lastSeq = event.seq
        }
        return event
    }

    /// Closes the file (the next event opens it again).
    public func close() {
        state.withLock { state in
            if state.fd >= 0 { Glibc.close(state.fd) }
            state = WriterState()
        }
    }

    private func open(_ state: inout WriterState) {
        state.opened = true
        let folder = (path as NSString).deletingLastPathComponent
        try? ProcessSpawner.makeDirectory(folder)
        let existing = EventJournalReader.readFile(path) ?? EventJournalReader.readFile(path + ".1")
        state.fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard state.fd >= 0 else { return }
        state.size = LogStreamReader.size(state.fd)
        if let existing, let journal = existing.journal {
            state.journal = journal
            state.lastSeq = existing.events.last?.seq ?? existing.lastSeqBeforeFile
            if state.size == 0 { _ = Self.writeAll(state.fd, Self.header(journal, lastSeq: state.lastSeq)) }
        } else {
            var random = SystemRandomNumberGenerator()
            let id = random.next() as UInt64
            state.journal = id
            state.lastSeq = 0
            if state.size > 0 { _ = ftruncate(state.fd, 0) }
            _ = Self.writeAll(state.fd, Self.header(id, lastSeq: 0))
        }
        state.size = LogStreamReader.size(state.fd)
    }

    private func rotate(_ state: inout WriterState) {
        Glibc.close(state.fd)
        rename(path, path + ".1")
        state.fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC, 0o644)
        guard state.fd >= 0 else { return }
        let header = Self.header(state.journal, lastSeq: state.lastSeq)
        _ = Self.writeAll(state.fd, header)
        state.size = header.count
    }

    /// `#journal ID SEQ`: the journal's identity, and the number of the last event before this file.
    static func header(_ journal: UInt64, lastSeq: UInt64) -> [UInt8] {
        Array("#journal \(String(journal, radix: 16)) \(lastSeq)\n".utf8)
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return false }
            done += written
        }
        return true
    }
}

/// Reads an event journal: its events after a cursor, since a time, or the last few; again as it grows.
final class EventJournalReader {
    let path: String
    /// The journal's id, once read.
    private(set) var journal: UInt64?
    /// The last event number delivered.
    private(set) var lastSeq: UInt64 = 0
    private var pendingStart: LogStreamReader.Start?

    init(path: String, start: LogStreamReader.Start) {
        self.path = path
        self.pendingStart = start
    }

    /// The cursor of the last event read, once the journal is known.
    var cursor: JournalCursor? { journal.map { JournalCursor(journal: $0, position: lastSeq) } }

    /// What one read found.
    struct Batch {
        var events: [LifecycleEvent] = []
        var newJournal: UInt64?
        var gap: ClosedRange<UInt64>?
    }

    /// One file's content: its header and its whole lines.
    struct FileContent {
        var journal: UInt64?
        var lastSeqBeforeFile: UInt64 = 0
        var events: [LifecycleEvent] = []
    }

    /// The events written since the last read. The files are small (two of at most a few hundred KB), so each read
    /// parses them again from their start and keeps what is new.
    func read() -> Batch {
        var batch = Batch()
        let older = Self.readFile(path + ".1")
        guard let current = Self.readFile(path), let id = current.journal else {
            // Nothing written yet: whatever is written later is new to this reader.
            if journal == nil && pendingStart != nil { pendingStart = .beginning }
            return batch
        }
        var events = current.events
        if let older, older.journal == id { events = older.events + events }
        if journal != id {
            let start = journal == nil ? (pendingStart ?? .beginning) : .beginning
            pendingStart = nil
            journal = id
            batch.newJournal = id
            let last = events.last?.seq ?? current.lastSeqBeforeFile
            switch start {
            case .beginning: lastSeq = (events.first?.seq ?? 1) - 1
            case .end: lastSeq = last
            case .tail(let count): lastSeq = last >= UInt64(count) ? last - UInt64(count) : 0
            case .after(let cursor): lastSeq = cursor.journal == id ? cursor.position : 0
            case .since(let time): lastSeq = (events.first { $0.time >= time }?.seq ?? last + 1) - 1
            }
        }
        // A journal whose numbers went back was written anew: start again from its first event.
        if let last = events.last, last.seq < lastSeq { lastSeq = 0 }
        if let first = events.first, first.seq > lastSeq + 1 { batch.gap = (lastSeq + 1)...(first.seq - 1) }
        batch.events = events.filter { $0.seq > lastSeq }
        if let last = batch.events.last { lastSeq = last.seq }
        return batch
    }

    /// Parses one file of a journal; nil when it does not exist.
    static func readFile(_ path: String) -> FileContent? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let bytes = LogStreamReader.readBytes(fd, from: 0, count: LogStreamReader.size(fd))
        var content = FileContent()
        let decoder = JSONDecoder()
        var start = 0
        while let newline = bytes[start...].firstIndex(of: 10) {
            let line = bytes[start..<newline]
            start = newline + 1
            if line.first == UInt8(ascii: "#") {
                let fields = String(decoding: line, as: UTF8.self).split(separator: " ")
                if fields.count >= 2, fields[0] == "#journal" {
                    content.journal = UInt64(fields[1], radix: 16)
                    if fields.count >= 3 { content.lastSeqBeforeFile = UInt64(fields[2]) ?? 0 }
                }
                continue
            }
            if let event = try? decoder.decode(LifecycleEvent.self, from: Data(line)) { content.events.append(event) }
        }
        return content
    }
}
