import PopFleetClient
import PopState
import Testing

/// The merge of several machines' journals: time order by watermarks, machines away, joining and leaving.
@Suite struct FleetMergeTests {
    func line(_ seq: UInt64, at time: Int64, _ stream: LogStreamKind = .stdout) -> JournalFrame {
        .line(JournalLine(stream: stream, seq: seq, time: time, text: Array("line \(seq)".utf8)[...]))
    }

    /// What was handed on: `machine:seq` for lines, `machine!marker` for markers.
    func summary(_ outputs: [FleetMerge.Output]) -> [String] {
        outputs.map { output in
            switch output {
            case .item(let machine, .line(let line)): "\(machine):\(line.seq)"
            case .item(let machine, .event(let event)): "\(machine)#\(event.kind.rawValue)"
            case .marker(let machine, let marker): "\(machine)!\(FleetPrinter.describe(marker).0)"
            }
        }
    }

    /// Tables cut a long hexadecimal machine id to 12 digits and show a chosen name whole.
    @Test func machineIdsAreShortenedOnlyWhenHexadecimal() {
        #expect(FleetPrinter.short("3d1219c7c4c5404aaa1f6d2a48adfda4") == "3d1219c7c4c5")
        #expect(FleetPrinter.short("4C4C4544-0042-3510-8052-B4C04F4E3732") == "4C4C4544-004")
        #expect(FleetPrinter.short("3d1219c7c4c5") == "3d1219c7c4c5")
        #expect(FleetPrinter.short("web-1") == "web-1")
        #expect(FleetPrinter.short("machine-in-rack-7") == "machine-in-rack-7")
        #expect(FleetPrinter.short("abcdef0123456789g") == "abcdef0123456789g")
        #expect(FleetPrinter.short("abcdef0123456789é") == "abcdef0123456789é")
    }

    @Test func linesWaitUntilEveryMachineIsPastThem() {
        var merge = FleetMerge()
        _ = merge.add("a")
        _ = merge.add("b")
        // a's lines cannot go before b has said how far it is.
        #expect(summary(merge.receive("a", [line(1, at: 10), line(2, at: 30), .watermark(30)])).isEmpty)
        #expect(summary(merge.receive("b", [line(1, at: 20), .watermark(25)])) == ["a:1", "b:1"])
        // b is complete up to 25 only: a's line at 30 waits.
        #expect(summary(merge.receive("b", [.watermark(40)])) == ["a:2"])
        #expect(summary(merge.receive("b", [line(2, at: 35), .watermark(50)])).isEmpty)
        #expect(summary(merge.receive("a", [.watermark(60)])) == ["b:2"])
    }

    @Test func aMachineAwayHoldsNobodyBackAndComesBackWithMarkers() {
        var merge = FleetMerge()
        _ = merge.add("a")
        _ = merge.add("b")
        _ = merge.connected("a")
        _ = merge.connected("b")
        #expect(summary(merge.receive("a", [line(1, at: 10), .watermark(10)])).isEmpty)
        #expect(summary(merge.unreachable("b", reason: "connection refused")) == ["b!unreachable", "a:1"])
        // Once per outage.
        #expect(summary(merge.unreachable("b", reason: "again")).isEmpty)
        #expect(summary(merge.receive("a", [line(2, at: 20), .watermark(20)])) == ["a:2"])
        #expect(summary(merge.connected("b")) == ["b!back"])
        // What b wrote while away is older than a's last line: it comes now, in its own order.
        #expect(summary(merge.receive("b", [line(1, at: 15), line(2, at: 25), .watermark(25)])) == ["b:1"])
        #expect(summary(merge.receive("a", [.watermark(30)])) == ["b:2"])
    }

    @Test func machinesJoinAndLeave() {
        var merge = FleetMerge()
        _ = merge.add("a")
        #expect(summary(merge.receive("a", [line(1, at: 10), .watermark(10)])) == ["a:1"])
        #expect(summary(merge.add("c", announce: true)) == ["c!joined"])
        #expect(summary(merge.receive("a", [line(2, at: 20), .watermark(20)])).isEmpty)
        #expect(summary(merge.receive("c", [line(1, at: 15), .watermark(30)])) == ["c:1", "a:2"])
        #expect(summary(merge.remove("a")) == ["a!left"])
        #expect(merge.machines == ["c"])
    }

    @Test func endedMachinesAndDrain() {
        var merge = FleetMerge()
        _ = merge.add("a")
        _ = merge.add("b")
        #expect(summary(merge.receive("a", [line(1, at: 10), line(2, at: 20), .end])).isEmpty)
        #expect(summary(merge.receive("b", [line(1, at: 15), .end])) == ["a:1", "b:1", "a:2"])
        _ = merge.add("c")
        _ = merge.add("d")
        // d, never heard from, holds c back until the reader is done.
        #expect(summary(merge.receive("c", [line(1, at: 5)])).isEmpty)
        #expect(summary(merge.drain()) == ["c:1"])
    }

    @Test func gapsAreMarkedAtOnce() {
        var merge = FleetMerge()
        _ = merge.add("a")
        let key = JournalKey(stream: .stdout, service: try! ServiceName("web"))
        #expect(summary(merge.receive("a", [.gap(key, 3...9), line(10, at: 5), .watermark(5)])) == ["a!gap", "a:10"])
    }

    @Test func theCursorBookResumesAfterWhatArrived() throws {
        let web = try ServiceName("web")
        var book = CursorBook(service: web)
        let initial = JournalRequest(service: web, start: .tail(10), follow: true)
        #expect(book.resuming(initial) == initial)
        book.note([
            .identity(JournalKey(stream: .stdout, service: web), 0xabc), line(41, at: 100), line(42, at: 110),
            .watermark(120),
        ])
        let resumed = book.resuming(initial)
        #expect(resumed.cursors == [JournalKey(stream: .stdout, service: web): JournalCursor(journal: 0xabc, position: 42)])
        #expect(resumed.start == .since(120))
        // The request survives its query form.
        var query: [String: String] = [:]
        for (key, value) in resumed.queryItems { query[key] = value }
        #expect(try JournalRequest(query: query) == resumed)
    }
}
