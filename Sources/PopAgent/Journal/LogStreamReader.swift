#if canImport(Glibc)
import Glibc
#endif
import PopState

/// Reads one stream of an instance's log (`stdout`, `stderr` or `setup`) by line number, across its rotated files,
/// from where its reader stands to what was written last.
///
/// The stream is the live file (`stdout.log`, with `stdout.idx`) plus the rotated copies (`stdout.log.1` ...) the log
/// writer keeps; their indexes give every line its number and time (``LogIndex``). Each ``read(maximumBytes:includePartial:)``
/// takes the live file's lock shared, as the writer takes it exclusively for each write and rotation: the files are
/// seen in one consistent state, and every line read before ``LogBatch/time`` was taken is complete (the writer dates a
/// piece under the lock). So a follower that reads again resumes at the exact line, whatever rotated meanwhile.
final class LogStreamReader {
    /// Where to begin.
    enum Start: Hashable, Sendable {
        /// The last `count` complete lines.
        case tail(Int)
        /// The first line read at or after this time (nanoseconds since the epoch).
        case since(Int64)
        /// The line after `position` of the journal `journal`; the first line when the stream is another one now.
        case after(JournalCursor)
        /// The first line the files still hold.
        case beginning
        /// What is written from now on.
        case end
    }

    /// What one read found.
    struct Batch {
        /// The complete lines, in order.
        var lines: [JournalLine] = []
        /// Lines the reader should have had but that were rotated away (or whose files were removed).
        var gap: ClosedRange<UInt64>?
        /// The stream's id, when it differs from the one of the previous read (the first read included).
        var newStream: UInt64?
        /// Whether it read up to the end of what is written.
        var reachedEnd = true
        /// The number of the stream's last complete line when it was read.
        var lastLine: UInt64 = 0
        /// When the files were looked at: every line read before this time has been read (when ``reachedEnd``).
        var time: Int64 = 0
    }

    let folder: String
    let kind: LogStreamKind
    /// The stream's id, once read.
    private(set) var stream: UInt64?
    /// The next line to read (its number).
    private(set) var nextLine: UInt64 = 1
    private var pendingStart: Start?
    /// Where ``nextLine`` begins: in the file whose header has this base line, at this offset.
    private var hint: (baseLine: UInt64, offset: Int)?
    private var live: LiveFile?

    /// The live file, open for as long as the reader lives (the writer keeps its inode across rotations).
    private struct LiveFile {
        var log: Int32
        var index: Int32
        var device: UInt64
        var inode: UInt64
        /// The live index as read so far, and how many of its bytes that was.
        var cached: LogIndex?
        var cachedBytes = 0
    }

    /// The files of the stream as seen under the lock: the live one, and the rotated ones once needed.
    private final class SegmentSet {
        private(set) var segments: [Segment]
        private var older: (() -> [Segment])?

        init(live: Segment, older: @escaping () -> [Segment]) {
            self.segments = [live]
            self.older = older
        }

        var live: Segment { segments[segments.count - 1] }

        /// Opens the rotated files (once).
        func loadOlder() {
            guard let older else { return }
            self.older = nil
            segments.insert(contentsOf: older(), at: 0)
        }

        func close() {
            for segment in segments where !segment.isLive { Glibc.close(segment.fd) }
        }
    }

    /// One file of the stream, as seen under the lock.
    private struct Segment {
        var fd: Int32
        var index: LogIndex
        var size: Int
        var isLive: Bool
        /// The first line that begins in this file.
        var firstLine: UInt64 { index.baseLine + (index.continues ? 2 : 1) }
    }

    init(folder: String, kind: LogStreamKind, start: Start) {
        self.folder = folder
        self.kind = kind
        self.pendingStart = start
    }

    deinit {
        closeLive()
    }

    /// The cursor of the last line read, once the stream is known.
    var cursor: JournalCursor? {
        stream.map { JournalCursor(journal: $0, position: nextLine - 1) }
    }

    private var logPath: String { folder + "/" + kind.fileName }
    private var indexPath: String { folder + "/" + kind.indexName }

    /// Reads the lines written since the last read, at most about `maximumBytes` of them (a longer line comes whole).
    /// With `includePartial`, a last line without its newline yet is returned too (for a reader that stops here).
    func read(maximumBytes: Int = 4 << 20, includePartial: Bool = false) -> Batch {
        var batch = Batch()
        guard let live = openLive() else {
            // Nothing written yet: whatever is written later is new to this reader, so it starts at the first line.
            if stream == nil && pendingStart != nil { pendingStart = .beginning }
            batch.time = Self.now()
            return batch
        }
        while flock(live.log, LOCK_SH) != 0 && errno == EINTR {}
        defer { flock(live.log, LOCK_UN) }
        batch.time = Self.now()
        let liveSize = Self.size(live.log)
        let liveIndex = loadLiveIndex(size: liveSize)
        let files = SegmentSet(live: Segment(fd: live.log, index: liveIndex, size: liveSize, isLive: true)) {
            self.loadRotated(stream: liveIndex.stream)
        }
        defer { files.close() }

        // Where to begin.
        if stream != liveIndex.stream {
            let previous = stream
            stream = liveIndex.stream
            batch.newStream = liveIndex.stream
            hint = nil
            var start = pendingStart ?? .beginning
            pendingStart = nil
            if previous != nil { start = .beginning }
            nextLine = resolve(start, files)
        }
        // Find the file and offset where nextLine begins.
        var position: (segment: Int, offset: Int, skip: UInt64)?
        var segments = files.segments
        if let hint, let index = segments.lastIndex(where: { $0.index.baseLine == hint.baseLine }),
            hint.offset <= segments[index].size
        {
            position = (index, hint.offset, 0)
        }
        let newest = segments.count - 1
        if position == nil, nextLine >= segments[newest].firstLine, let seek = segments[newest].index.seek(line: nextLine) {
            position = (newest, seek.offset, seek.skip)
        }
        if position == nil {
            files.loadOlder()
            segments = files.segments
            for index in segments.indices.reversed() where nextLine >= segments[index].firstLine {
                if let seek = segments[index].index.seek(line: nextLine) {
                    position = (index, seek.offset, seek.skip)
                    break
                }
            }
            if position == nil {
                // nextLine was rotated away: resume at the first line still there.
                let first = segments.first?.firstLine ?? nextLine
                if first > nextLine { batch.gap = nextLine...(first - 1) }
                nextLine = max(first, nextLine)
                position = segments.first.flatMap { segment in segment.index.seek(line: nextLine).map { (0, $0.offset, $0.skip) } }
            }
        }
        guard var position else {
            batch.lastLine = nextLine - 1
            return batch
        }
        scan(from: &position, segments: segments, into: &batch, maximumBytes: maximumBytes, includePartial: includePartial)
        batch.lastLine = batch.reachedEnd ? nextLine - 1 : completedLines(files.live)
        return batch
    }

    /// The first line to read for `start`.
    private func resolve(_ start: Start, _ files: SegmentSet) -> UInt64 {
        let live = files.live
        switch start {
        case .end:
            return completedLines(live) + 1
        case .tail(let count):
            let end = completedLines(live)
            let wanted = end >= UInt64(count) ? end - UInt64(count) + 1 : 1
            if wanted < live.firstLine {
                files.loadOlder()
                return max(wanted, files.segments.first?.firstLine ?? live.firstLine)
            }
            return wanted
        case .after(let cursor):
            if cursor.journal == live.index.stream { return cursor.position + 1 }
            files.loadOlder()
            return files.segments.first?.firstLine ?? 1
        case .beginning:
            files.loadOlder()
            return files.segments.first?.firstLine ?? 1
        case .since(let time):
            // From the newest file back: the first piece read at or after `time`.
            var found: UInt64 = completedLines(live) + 1
            if let first = live.index.records.first, first.time < time {
                if let index = live.index.firstRecord(atOrAfter: time) { found = Self.firstLineStarting(in: live.index.records[index]) }
                return found
            }
            if let first = live.index.records.first { found = Self.firstLineStarting(in: first) }
            files.loadOlder()
            for segment in files.segments.dropLast().reversed() {
                guard let index = segment.index.firstRecord(atOrAfter: time) else { break }
                found = Self.firstLineStarting(in: segment.index.records[index])
                if index > 0 { break }
            }
            return found
        }
    }

    /// The first line that begins within the piece of `record` (or after it).
    private static func firstLineStarting(in record: LogIndex.Record) -> UInt64 {
        record.line + (record.continues ? 2 : 1)
    }

    /// How many lines the stream has completed: the live index's last record plus the newlines written after it.
    private func completedLines(_ live: Segment) -> UInt64 {
        let last = live.index.records.last ?? live.index.start
        var lines = last.line
        var offset = last.offset
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while offset < live.size {
            let got = buffer.withUnsafeMutableBytes { pread(live.fd, $0.baseAddress, min($0.count, live.size - offset), off_t(offset)) }
            if got <= 0 { break }
            lines += UInt64(buffer[..<got].reduce(0) { $0 + ($1 == 10 ? 1 : 0) })
            offset += got
        }
        return lines
    }

    /// Reads lines from `position` on, through the newer files up to the live one.
    private func scan(
        from position: inout (segment: Int, offset: Int, skip: UInt64), segments: [Segment], into batch: inout Batch,
        maximumBytes: Int, includePartial: Bool
    ) {
        // The bytes of a line not finished yet (begun in an earlier chunk or file), and that line's time.
        var carried: [UInt8] = []
        var carriedTime: Int64 = 0
        var skip = position.skip
        var budget = maximumBytes
        // Where the next line to read begins (nil while newlines are still being skipped).
        var lineBegin: (baseLine: UInt64, offset: Int)? =
            skip == 0 ? (segments[position.segment].index.baseLine, position.offset) : nil
        for segmentIndex in position.segment..<segments.count {
            let segment = segments[segmentIndex]
            var offset = segmentIndex == position.segment ? position.offset : 0
            while offset < segment.size {
                let chunk = Self.readBytes(segment.fd, from: offset, count: min(segment.size - offset, max(budget, 1 << 16)))
                if chunk.isEmpty { break }
                var lineStart = 0
                while let newline = chunk[lineStart...].firstIndex(of: 10) {
                    if skip > 0 {
                        skip -= 1
                        carried.removeAll()
                    } else {
                        let time = carried.isEmpty ? segment.index.record(covering: offset + lineStart).time : carriedTime
                        let text: ArraySlice<UInt8>
                        if carried.isEmpty {
                            text = chunk[lineStart..<newline]
                        } else {
                            carried.append(contentsOf: chunk[lineStart..<newline])
                            text = carried[...]
                            carried = []
                        }
                        batch.lines.append(JournalLine(stream: kind, seq: nextLine, time: time, text: text))
                        nextLine += 1
                        budget -= text.count + 1
                    }
                    lineStart = newline + 1
                    if skip == 0 { lineBegin = (segment.index.baseLine, offset + lineStart) }
                    if budget <= 0, let lineBegin {
                        hint = lineBegin
                        batch.reachedEnd = segmentIndex == segments.count - 1 && offset + lineStart == segment.size
                        return
                    }
                }
                if lineStart < chunk.count && skip == 0 {
                    if carried.isEmpty { carriedTime = segment.index.record(covering: offset + lineStart).time }
                    carried.append(contentsOf: chunk[lineStart...])
                }
                offset += chunk.count
            }
        }
        hint = lineBegin
        if !carried.isEmpty && skip == 0 {
            if includePartial {
                batch.lines.append(JournalLine(stream: kind, seq: nextLine, time: carriedTime, text: carried[...]))
            } else if batch.time - carriedTime < Self.unfinishedLineHold {
                // The unfinished line will come, dated when it began: the batch is complete only up to just before.
                // Not for long: a line that stays unfinished (a prompt) must not hold a merge of machines back.
                batch.time = min(batch.time, carriedTime - 1)
            }
        }
    }

    // MARK: Files

    private func openLive() -> LiveFile? {
        var info = stat()
        guard stat(logPath, &info) == 0 else {
            closeLive()
            return nil
        }
        if let live, live.device == UInt64(info.st_dev), live.inode == UInt64(info.st_ino) { return live }
        // The files were made anew (the instance's folder removed and written again): a new stream.
        closeLive()
        let log = open(logPath, O_RDONLY | O_CLOEXEC)
        guard log >= 0 else { return nil }
        let index = open(indexPath, O_RDONLY | O_CLOEXEC)
        live = LiveFile(log: log, index: index, device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
        return live
    }

    private func closeLive() {
        if let live {
            close(live.log)
            if live.index >= 0 { close(live.index) }
        }
        live = nil
    }

    /// The live file's index, read incrementally: only what was appended since the last read, unless the file was
    /// rotated (its header changed) or replaced.
    private func loadLiveIndex(size logSize: Int) -> LogIndex {
        guard var file = live else { return Self.unindexed(size: logSize, fd: -1) }
        if file.index < 0 {
            file.index = open(indexPath, O_RDONLY | O_CLOEXEC)
            live = file
        }
        guard file.index >= 0 else { return Self.unindexed(size: logSize, fd: file.log) }
        let indexSize = Self.size(file.index)
        let header = Self.readBytes(file.index, from: 0, count: min(indexSize, LogIndex.entrySize))
        if var cached = file.cached, header.count == LogIndex.entrySize, LogIndex(bytes: header).map({
            $0.stream == cached.stream && $0.baseLine == cached.baseLine && $0.continues == cached.continues
        }) == true, file.cachedBytes <= indexSize {
            let whole = (indexSize / LogIndex.entrySize) * LogIndex.entrySize
            if whole > file.cachedBytes {
                cached.appendRecords(Self.readBytes(file.index, from: file.cachedBytes, count: whole - file.cachedBytes), from: 0)
                file.cachedBytes = whole
                file.cached = cached
                live = file
            }
            return cached
        }
        let bytes = Self.readBytes(file.index, from: 0, count: indexSize)
        guard let index = LogIndex(bytes: bytes) else { return Self.unindexed(size: logSize, fd: file.log) }
        file.cached = index
        file.cachedBytes = (bytes.count / LogIndex.entrySize) * LogIndex.entrySize
        live = file
        return index
    }

    /// The rotated files of `stream`, oldest first, each with its index.
    private func loadRotated(stream: UInt64) -> [Segment] {
        var segments: [Segment] = []
        var generation = 1
        while generation <= 1000 {
            let log = open(logPath + ".\(generation)", O_RDONLY | O_CLOEXEC)
            guard log >= 0 else { break }
            let indexFD = open(indexPath + ".\(generation)", O_RDONLY | O_CLOEXEC)
            let size = Self.size(log)
            var index: LogIndex?
            if indexFD >= 0 {
                index = LogIndex(bytes: Self.readBytes(indexFD, from: 0, count: Self.size(indexFD)))
                close(indexFD)
            }
            // A file of another stream (an earlier life of these logs) ends the history.
            guard let index, index.stream == stream else {
                close(log)
                break
            }
            segments.insert(Segment(fd: log, index: index, size: size, isLive: false), at: 0)
            generation += 1
        }
        return segments
    }

    /// A log written without an index (by a log writer of an earlier release): one piece dated by the file's change.
    private static func unindexed(size: Int, fd: Int32) -> LogIndex {
        var info = stat()
        let time = fd >= 0 && fstat(fd, &info) == 0 ? Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec) : now()
        var index = LogIndex(bytes: headerBytes())!
        index.records = size > 0 ? [LogIndex.Record(offset: 0, line: 0, time: time, continues: false)] : []
        return index
    }

    private static func headerBytes() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: LogIndex.entrySize)
        withUnsafeBytes(of: LogIndex.magic.littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
        return bytes
    }

    static func size(_ fd: Int32) -> Int {
        var info = stat()
        return fstat(fd, &info) == 0 ? Int(info.st_size) : 0
    }

    static func readBytes(_ fd: Int32, from offset: Int, count: Int) -> [UInt8] {
        guard count > 0 else { return [] }
        // Not zeroed first: the file's bytes fill it.
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var done = 0
            while done < count {
                let got = pread(fd, buffer.baseAddress! + done, count - done, off_t(offset + done))
                if got < 0 && errno == EINTR { continue }
                if got <= 0 { break }
                done += got
            }
            initialized = done
        }
    }

    /// How long an unfinished line holds the watermark back (nanoseconds).
    static let unfinishedLineHold: Int64 = 5_000_000_000

    static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}
