import Foundation
import PopState
import Testing

@testable import PopAgent

/// The log writer's index and the reader that resumes at a line, with the real `pop-log`.
@Suite struct LogJournalTests {
    /// Reads everything `reader` has now, in pieces of at most `maximumBytes`.
    func readAll(_ reader: LogStreamReader, maximumBytes: Int = 4 << 20) -> (lines: [JournalLine], gaps: [ClosedRange<UInt64>]) {
        var lines: [JournalLine] = []
        var gaps: [ClosedRange<UInt64>] = []
        while true {
            let batch = reader.read(maximumBytes: maximumBytes)
            lines += batch.lines
            if let gap = batch.gap { gaps.append(gap) }
            if batch.reachedEnd { return (lines, gaps) }
        }
    }

    func texts(_ lines: [JournalLine]) -> [String] { lines.map { String(decoding: $0.text, as: UTF8.self) } }

    @Test func linesAreNumberedAndDatedAcrossPiecesAndPartialLines() async throws {
        try await withTemporaryFolder { folder in
            let before = LogStreamReader.now()
            let writer = try LogWriterProcess(folder: folder, files: ["stdout.log"], maximumBytes: 1 << 20, keep: 2)
            writer.write("one\ntw")
            writer.write("o\nthree\n")
            writer.write("four (no newline yet)")
            writer.finish()
            let after = LogStreamReader.now()

            let reader = LogStreamReader(folder: folder, kind: .stdout, start: .beginning)
            let batch = reader.read()
            #expect(texts(batch.lines) == ["one", "two", "three"])
            #expect(batch.lines.map(\.seq) == [1, 2, 3])
            #expect(batch.lines.allSatisfy { $0.time >= before && $0.time <= after })
            #expect(batch.newStream != nil)
            // The unfinished line is not delivered, and the cursor stands after "three".
            #expect(reader.cursor?.position == 3)
            let partial = LogStreamReader(folder: folder, kind: .stdout, start: .beginning).read(includePartial: true)
            #expect(texts(partial.lines).last == "four (no newline yet)")
            // The batch is complete only up to before the unfinished line's time, which its end keeps: a merge of
            // several machines must not hand on later lines of other machines before it.
            let unfinished = try #require(partial.lines.last?.time)
            #expect(batch.time < unfinished, "\(batch.time) ≥ \(unfinished)")

            // Its end arrives through a later writer (the instance restarted): the line comes whole, numbered 4.
            let next = try LogWriterProcess(folder: folder, files: ["stdout.log"], maximumBytes: 1 << 20, keep: 2)
            next.write(" done\nfive\n")
            next.finish()
            let more = reader.read()
            #expect(texts(more.lines) == ["four (no newline yet) done", "five"])
            #expect(more.lines.first?.time == unfinished)
            #expect(more.lines.map(\.seq) == [4, 5])
            #expect(more.newStream == nil)
        }
    }

    @Test func tailSinceAndCursorStarts() async throws {
        try await withTemporaryFolder { folder in
            let writer = try LogWriterProcess(folder: folder, files: ["stdout.log"], maximumBytes: 1 << 20, keep: 2)
            writer.write((1...5).map { "early \($0)\n" }.joined())
            writer.finish()
            let middle = LogStreamReader.now()
            let later = try LogWriterProcess(folder: folder, files: ["stdout.log"], maximumBytes: 1 << 20, keep: 2)
            later.write((6...10).map { "late \($0)\n" }.joined())
            later.finish()

            #expect(texts(readAll(LogStreamReader(folder: folder, kind: .stdout, start: .tail(3))).lines) == ["late 8", "late 9", "late 10"])
            #expect(readAll(LogStreamReader(folder: folder, kind: .stdout, start: .tail(50))).lines.map(\.seq) == Array(1...10))
            #expect(texts(readAll(LogStreamReader(folder: folder, kind: .stdout, start: .since(middle))).lines).first == "late 6")
            #expect(readAll(LogStreamReader(folder: folder, kind: .stdout, start: .end)).lines.isEmpty)
            let stream = try #require(LogStreamReader(folder: folder, kind: .stdout, start: .beginning).read().newStream)
            let resumed = readAll(LogStreamReader(folder: folder, kind: .stdout, start: .after(JournalCursor(journal: stream, position: 7))))
            #expect(resumed.lines.map(\.seq) == [8, 9, 10])
            // A cursor of another stream (the files were made anew) starts at the beginning.
            let other = readAll(LogStreamReader(folder: folder, kind: .stdout, start: .after(JournalCursor(journal: stream &+ 1, position: 7))))
            #expect(other.lines.map(\.seq) == Array(1...10))
        }
    }

    @Test func aFollowerResumesExactlyAcrossRotations() async throws {
        try await withTemporaryFolder { folder in
            let maximum = 4096
            let reader = LogStreamReader(folder: folder, kind: .stdout, start: .beginning)
            var seen: [JournalLine] = []
            var next = 1
            // Writers come and go (each a process of the instance), reading in between: about 60 rotations.
            for round in 0..<40 {
                let writer = try LogWriterProcess(folder: folder, files: ["stdout.log"], maximumBytes: maximum, keep: 3)
                for _ in 0..<(round % 3 + 1) {
                    writer.write((next..<(next + 40)).map { "counter \($0) \(String(repeating: "x", count: $0 % 50))\n" }.joined())
                    next += 40
                }
                writer.finish()
                let (lines, gaps) = readAll(reader, maximumBytes: 1000)
                #expect(gaps.isEmpty)
                seen += lines
                // No file and its index ever hold more than the limit together.
                for suffix in ["", ".1", ".2", ".3"] {
                    let log = (try? FileManager.default.attributesOfItem(atPath: folder + "/stdout.log" + suffix)[.size] as? Int) ?? 0
                    let index = (try? FileManager.default.attributesOfItem(atPath: folder + "/stdout.idx" + suffix)[.size] as? Int) ?? 0
                    #expect(log + index <= maximum)
                }
            }
            #expect(FileManager.default.fileExists(atPath: folder + "/stdout.log.3"))
            #expect(!FileManager.default.fileExists(atPath: folder + "/stdout.log.4"))
            #expect(seen.map(\.seq) == (1..<UInt64(next)).map { $0 })
            #expect(texts(seen) == (1..<next).map { "counter \($0) \(String(repeating: "x", count: $0 % 50))" })
        }
    }

    @Test func linesRotatedAwayAreReportedAsAGap() async throws {
        try await withTemporaryFolder { folder in
            let writer = try LogWriterProcess(folder: folder, files: ["stdout.log"], maximumBytes: 4096, keep: 1)
            writer.write((1...2000).map { "line \($0)\n" }.joined())
            writer.finish()
            let (lines, gaps) = readAll(LogStreamReader(folder: folder, kind: .stdout, start: .beginning))
            let first = try #require(lines.first?.seq)
            #expect(first > 1)
            #expect(lines.map(\.seq) == Array(first...2000))
            #expect(texts(lines).last == "line 2000")
            #expect(gaps.isEmpty)  // nothing was asked for before the first line still there
            let stream = try #require(LogStreamReader(folder: folder, kind: .stdout, start: .beginning).read().newStream)
            let late = readAll(LogStreamReader(folder: folder, kind: .stdout, start: .after(JournalCursor(journal: stream, position: 10))))
            #expect(late.gaps == [11...(first - 1)])
            #expect(late.lines.first?.seq == first)
        }
    }

    @Test func twoWritersOfOneFileKeepOneNumbering() async throws {
        try await withTemporaryFolder { folder in
            // The previous process's writer drains its pipe while the next one's writes: whole lines, one numbering.
            let old = try LogWriterProcess(folder: folder, files: ["stdout.log"], maximumBytes: 8192, keep: 5)
            let new = try LogWriterProcess(folder: folder, files: ["stdout.log"], maximumBytes: 8192, keep: 5)
            for index in 0..<200 {
                (index % 2 == 0 ? old : new).write("writer \(index % 2) line \(index)\n")
            }
            old.finish()
            new.finish()
            let (lines, _) = readAll(LogStreamReader(folder: folder, kind: .stdout, start: .beginning))
            #expect(lines.map(\.seq) == (1...UInt64(lines.count)).map { $0 })
            #expect(Set(texts(lines)).count == lines.count)
            #expect(lines.last?.seq == 200 || FileManager.default.fileExists(atPath: folder + "/stdout.log.1"))
            #expect(texts(lines).contains("writer 1 line 199"))
        }
    }

    @Test func aLogWithoutIndexIsReadAsOnePiece() async throws {
        try await withTemporaryFolder { folder in
            // Written by an earlier release's log writer: no index at all.
            try "old one\nold two\n".write(toFile: folder + "/stdout.log", atomically: false, encoding: .utf8)
            let (lines, _) = readAll(LogStreamReader(folder: folder, kind: .stdout, start: .beginning))
            #expect(texts(lines) == ["old one", "old two"])
            // The next writer indexes what is there and goes on numbering after it.
            let writer = try LogWriterProcess(folder: folder, files: ["stdout.log"], maximumBytes: 1 << 20, keep: 1)
            writer.write("new three\n")
            writer.finish()
            let after = readAll(LogStreamReader(folder: folder, kind: .stdout, start: .beginning)).lines
            #expect(texts(after) == ["old one", "old two", "new three"])
            #expect(after.map(\.seq) == [1, 2, 3])
        }
    }

    @Test func aLineLongerThanAFileIsSplitAcrossFilesAndReadWhole() async throws {
        try await withTemporaryFolder { folder in
            let long = String(repeating: "y", count: 10_000)
            let writer = try LogWriterProcess(folder: folder, files: ["stdout.log"], maximumBytes: 4096, keep: 5)
            writer.write("before\n" + long + "\nafter\n")
            writer.finish()
            let (lines, _) = readAll(LogStreamReader(folder: folder, kind: .stdout, start: .beginning))
            #expect(texts(lines) == ["before", long, "after"])
            #expect(lines.map(\.seq) == [1, 2, 3])
        }
    }
}
