#if canImport(Glibc)
import Glibc
#endif
#if canImport(CPopAgentLinux)
import CPopAgentLinux
#endif

/// One log file's index (`stdout.idx` beside `stdout.log`), as the log writer writes it: a header saying which stream
/// the file belongs to and where it starts in it, then one record per piece of output the writer read
/// (docs/observability.md, The journal).
struct LogIndex: Hashable, Sendable {
    /// One piece of output: where it starts in the log file, the line its first byte belongs to, and when it was read.
    struct Record: Hashable, Sendable {
        /// Where the piece starts in the log file.
        var offset: Int
        /// Lines the stream had completed before the piece (its first byte belongs to line `line + 1`).
        var line: UInt64
        /// When the writer read it, in nanoseconds since the epoch.
        var time: Int64
        /// Whether its first byte continues a line begun before it.
        var continues: Bool
    }

    /// The stream's id, the same across rotations.
    var stream: UInt64
    /// Lines the stream had completed before the log file's first byte.
    var baseLine: UInt64
    /// Whether the file's first byte continues a line of the previous file.
    var continues: Bool
    /// The records, in the order written (offsets ascending).
    var records: [Record]

    static let entrySize = 32
    static let magic: UInt64 = 0x3130_5844_4950_4f50  // "POPIDX01"
    static let continuesFlag: UInt32 = 1

    /// The header as a record at the file's start, so that every byte of the file has a record before it.
    var start: Record { Record(offset: 0, line: baseLine, time: records.first?.time ?? 0, continues: continues) }

    /// Parses an index; nil when it has no valid header (not written yet, or damaged).
    init?(bytes: [UInt8]) {
        guard bytes.count >= Self.entrySize, Self.load(UInt64.self, bytes, 0) == Self.magic else { return nil }
        stream = Self.load(UInt64.self, bytes, 8)
        baseLine = Self.load(UInt64.self, bytes, 16)
        continues = Self.load(UInt32.self, bytes, 24) & Self.continuesFlag != 0
        records = []
        records.reserveCapacity(bytes.count / Self.entrySize - 1)
        appendRecords(bytes, from: Self.entrySize)
    }

    /// Appends the whole records in `bytes` from `start` on (a record still being written is left for later).
    mutating func appendRecords(_ bytes: [UInt8], from start: Int) {
        var at = start
        while at + Self.entrySize <= bytes.count {
            records.append(
                Record(
                    offset: Int(Self.load(UInt64.self, bytes, at)), line: Self.load(UInt64.self, bytes, at + 8),
                    time: Self.load(Int64.self, bytes, at + 16),
                    continues: Self.load(UInt32.self, bytes, at + 24) & Self.continuesFlag != 0))
            at += Self.entrySize
        }
    }

    /// The record covering the byte at `offset`: the last one starting at or before it (the header when none does).
    func record(covering offset: Int) -> Record {
        var low = 0
        var high = records.count
        while low < high {
            let middle = (low + high) / 2
            if records[middle].offset <= offset { low = middle + 1 } else { high = middle }
        }
        return low == 0 ? start : records[low - 1]
    }

    /// The index of the first record whose time is at least `time`, or nil when none is.
    func firstRecord(atOrAfter time: Int64) -> Int? {
        // Times ascend, except where the clock was set back: the search lands on one of the candidates.
        var low = 0
        var high = records.count
        while low < high {
            let middle = (low + high) / 2
            if records[middle].time < time { low = middle + 1 } else { high = middle }
        }
        return low < records.count ? low : nil
    }

    /// Where to start reading to find the beginning of line `line`: a record at or before it, and how many
    /// newlines to skip from there. Nil when the line begins before this file.
    func seek(line: UInt64) -> (offset: Int, skip: UInt64)? {
        // Candidates are the header (as a record at offset 0) and then every record.
        func candidate(_ index: Int) -> Record { index == 0 ? start : records[index - 1] }
        // The last candidate whose first byte belongs to a line before `line`, or that starts `line` itself.
        var low = 0
        var high = records.count + 1
        while low < high {
            let middle = (low + high) / 2
            if candidate(middle).line < line { low = middle + 1 } else { high = middle }
        }
        var index = low - 1
        // A piece that continues line `line` (its line is line - 1) does not start it: step back to one that does.
        while index >= 0, candidate(index).line == line - 1, candidate(index).continues { index -= 1 }
        guard index >= 0 else { return nil }
        let record = candidate(index)
        return (record.offset, line - 1 - record.line)
    }

    private static func load<T: FixedWidthInteger>(_ type: T.Type, _ bytes: [UInt8], _ offset: Int) -> T {
        bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }
}
