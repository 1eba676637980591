import Foundation
import PopState
import Synchronization

/// Reads one machine's journals for a ``JournalRequest`` and hands them on as ``JournalFrame``s, in time order: first
/// what is there (the last lines, or since a time, or after the reader's cursors), then, when following, what is
/// written from now on, woken by inotify.
///
/// The agent's endpoint sends the frames over HTTP; `pop logs` on the embedded store reads the same way in its own
/// process. Every batch of lines ends with a watermark: the time up to which every journal read was complete
/// (``LogStreamReader``), which lets a reader merging several machines print lines in time order.
public final class JournalFeed {
    private let home: PopHome
    private let machine: MachineID
    private let request: JournalRequest
    private let regex: Regex<AnyRegexOutput>?
    private var sources: [Source] = []
    /// Services whose event journals are read (all of them when the request names none).
    private var knownServices: Set<ServiceName> = []

    /// One journal being read.
    private enum Reader {
        case log(LogStreamReader)
        case events(EventJournalReader)
    }

    private struct Source {
        var key: JournalKey
        var reader: Reader
    }

    /// Ends a follow from another task (the agent shutting down).
    public let stopper = Stopper()

    /// Ends a feed's follow: its loop returns after what it is sending.
    public final class Stopper: Sendable {
        private let state = Mutex<(stopped: Bool, wakes: AsyncStream<Void>.Continuation?)>((false, nil))

        /// Ends the follow (now, or as soon as it starts).
        public func stop() {
            let wakes = state.withLock { state in
                state.stopped = true
                return state.wakes
            }
            wakes?.finish()
        }

        func attach(_ wakes: AsyncStream<Void>.Continuation) {
            let stopped = state.withLock { state in
                state.wakes = wakes
                return state.stopped
            }
            if stopped { wakes.finish() }
        }
    }

    /// How many bytes of lines one read of a journal takes at most before the feed hands them on.
    static let readBudget = 1 << 20

    /// A feed of `machine`'s journals under `home`, for `request`. A `grep` that is not a valid regular expression is
    /// refused here (`.invalidInput`).
    public init(home: PopHome, machine: MachineID, request: JournalRequest) throws(PopError) {
        self.home = home
        self.machine = machine
        self.request = request
        regex = try request.grep.map { (pattern) throws(PopError) in try Self.compile(pattern) }
        if let service = request.service {
            knownServices.insert(service)
            for stream in request.streams { addSource(JournalKey(stream: stream, service: service), start: nil) }
            if request.events { addSource(JournalKey(stream: nil, service: service), start: nil) }
        } else if request.events {
            addSource(JournalKey(stream: nil, service: nil), start: nil)
            for service in instanceServices() {
                knownServices.insert(service)
                addSource(JournalKey(stream: nil, service: service), start: nil)
            }
        }
    }

    /// Compiles a `--grep` pattern, or says what is wrong with it.
    public static func compile(_ pattern: String) throws(PopError) -> Regex<AnyRegexOutput> {
        do {
            return try Regex(pattern)
        } catch {
            throw PopError(
                .invalidInput, "The regular expression \(PopError.quoted(pattern)) is not valid: \(error).",
                hint: "Use Swift regex syntax, e.g. --grep 'error|warn' or --grep '^GET /api'.")
        }
    }

    /// The folders the feed reads in: what a follower watches.
    var folders: [String] {
        var folders: [String] = []
        if request.service == nil { folders += [home.machineFolder(machine), home.instancesFolder(machine)] }
        folders += knownServices.sorted { $0.rawValue < $1.rawValue }.map { logsFolder($0) }
        return folders
    }

    /// Sends what is there, then (when following) what is written, until `send` throws or the task is cancelled.
    public func run(_ send: ([JournalFrame]) async throws -> Void) async throws {
        try await catchUp(send)
        guard request.follow else {
            try await send([.end])
            return
        }
        let watch = try FolderWatch(folders: folders)
        let heartbeat = Duration.milliseconds(request.heartbeatMilliseconds ?? 5000)
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                // Wakes the loop at least once per heartbeat, so that an idle journal still says how far it is complete.
                let (ticks, ticker) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
                stopper.attach(ticker)
                group.addTask {
                    await withTaskGroup(of: Void.self) { wakes in
                        wakes.addTask {
                            for await _ in watch.wakes { ticker.yield() }
                            ticker.finish()
                        }
                        wakes.addTask {
                            while (try? await Task.sleep(for: heartbeat)) != nil { ticker.yield() }
                        }
                        await wakes.next()
                        wakes.cancelAll()
                    }
                    ticker.finish()
                }
                var lastSent = ContinuousClock.now
                for await _ in ticks {
                    try Task.checkCancellation()
                    var frames = follow()
                    if !newFolders.isEmpty {
                        watch.add(folders: newFolders)
                        newFolders = []
                    }
                    let onlyWatermark = frames.count == 1
                    // A watermark alone goes out once per heartbeat; the ticker's own tick, a heartbeat after the last
                    // tick, comes a little less than that after the last send, which must not postpone it by another.
                    if onlyWatermark && ContinuousClock.now - lastSent < heartbeat / 2 { continue }
                    if onlyWatermark, let previous = lastWatermarkSent, case .watermark(let time) = frames[0], time <= previous {
                        frames = [.watermark(previous)]
                    }
                    try await send(frames)
                    lastSent = ContinuousClock.now
                }
                group.cancelAll()
            }
        } catch {
            watch.stop()
            await watch.finished()
            throw error
        }
        watch.stop()
        await watch.finished()
    }

    private var lastWatermarkSent: Int64?
    /// Folders of instances found while following, for the watch to add.
    private var newFolders: [String] = []

    // MARK: Reading

    /// Sends what the journals hold from their starts to now, in time order, in pieces.
    ///
    /// Each journal is read a piece at a time and the pieces are merged as they come (a journal's next piece is read
    /// once its last one is used up), so that much (since a time, or a long tail) costs little memory. A tail keeps
    /// the last lines of the instance, its streams merged: each stream starts at its own last N lines, and as many of
    /// the merged lines as there are beyond N are left out from the start (each stream's first read says how many
    /// lines it will deliver).
    func catchUp(_ send: ([JournalFrame]) async throws -> Void) async throws {
        var queues = [[JournalItem]](repeating: [], count: sources.count)
        var heads = [Int](repeating: 0, count: sources.count)
        var done = [Bool](repeating: false, count: sources.count)
        var watermark = Int64.max
        var frames: [JournalFrame] = []
        var skip = 0
        var first = true
        while true {
            var delivered = 0
            for index in sources.indices where !done[index] && heads[index] == queues[index].count {
                let piece = readPiece(index, into: &frames)
                queues[index] = piece.items
                heads[index] = 0
                done[index] = piece.reachedEnd
                if piece.reachedEnd { watermark = min(watermark, piece.time) }
                if first, let firstLine = piece.firstLine { delivered += Int(piece.lastLine + 1 - firstLine) }
            }
            if first, case .tail(let count) = request.start, regex == nil { skip = max(0, delivered - count) }
            first = false
            // Hand on items while every journal that may have more has an item waiting to compare with.
            while sources.indices.allSatisfy({ done[$0] || heads[$0] < queues[$0].count }) {
                var best = -1
                for index in sources.indices where heads[index] < queues[index].count {
                    if best < 0 || queues[index][heads[index]].time < queues[best][heads[best]].time { best = index }
                }
                if best < 0 { break }
                let item = queues[best][heads[best]]
                heads[best] += 1
                if skip > 0, case .line = item {
                    skip -= 1
                    continue
                }
                frames.append(Self.frame(item))
            }
            if done.allSatisfy({ $0 }) && sources.indices.allSatisfy({ heads[$0] == queues[$0].count }) { break }
            if frames.count >= 4096 {
                try await send(frames)
                frames = []
            }
        }
        try await send(frames + [watermarkFrame(watermark)])
    }

    private func watermarkFrame(_ time: Int64) -> JournalFrame {
        let time = time == .max ? LogStreamReader.now() : time
        let watermark = max(time, lastWatermarkSent ?? time)
        lastWatermarkSent = watermark
        return .watermark(watermark)
    }

    /// One piece of journal `index`: at most ``readBudget`` bytes of lines, or every event.
    private func readPiece(_ index: Int, into frames: inout [JournalFrame]) -> (
        items: [JournalItem], reachedEnd: Bool, time: Int64, firstLine: UInt64?, lastLine: UInt64
    ) {
        let key = sources[index].key
        switch sources[index].reader {
        case .log(let reader):
            let batch = reader.read(maximumBytes: Self.readBudget)
            if let stream = batch.newStream { frames.append(.identity(key, stream)) }
            if let gap = batch.gap { frames.append(.gap(key, gap)) }
            return (matching(batch.lines).map(JournalItem.line), batch.reachedEnd, batch.time, batch.lines.first?.seq, batch.lastLine)
        case .events(let reader):
            let batch = reader.read()
            if let journal = batch.newJournal { frames.append(.identity(key, journal)) }
            if let gap = batch.gap { frames.append(.gap(key, gap)) }
            return (batch.events.map(JournalItem.event), true, LogStreamReader.now(), nil, 0)
        }
    }

    /// The lines that match the request's pattern (all of them without one).
    private func matching(_ lines: [JournalLine]) -> [JournalLine] {
        guard let regex else { return lines }
        return lines.filter { line in (try? regex.firstMatch(in: String(decoding: line.text, as: UTF8.self))) != nil }
    }

    /// What was written since the last read, ending with a watermark.
    func follow() -> [JournalFrame] {
        if request.service == nil && request.events { discoverServices() }
        var frames: [JournalFrame] = []
        var watermark = Int64.max
        var lines: [[JournalLine]] = []
        var events: [LifecycleEvent] = []
        for index in sources.indices {
            let read = readAll(index, into: &frames)
            watermark = min(watermark, read.time)
            lines.append(read.lines)
            events += read.events
        }
        var items = Self.merge(lines).map(JournalItem.line) + events.map(JournalItem.event)
        if !events.isEmpty { items.sort { $0.time < $1.time } }
        frames += items.map(Self.frame)
        frames.append(watermarkFrame(watermark))
        return frames
    }

    /// Reads journal `index` to its end: its lines (matching the pattern) or events, its identity and gaps as frames.
    private func readAll(_ index: Int, into frames: inout [JournalFrame]) -> (lines: [JournalLine], events: [LifecycleEvent], time: Int64) {
        let key = sources[index].key
        switch sources[index].reader {
        case .log(let reader):
            var lines: [JournalLine] = []
            var time = Int64.max
            while true {
                let batch = reader.read(maximumBytes: Self.readBudget)
                if let stream = batch.newStream { frames.append(.identity(key, stream)) }
                if let gap = batch.gap { frames.append(.gap(key, gap)) }
                time = min(time, batch.time)
                lines += matching(batch.lines)
                if batch.reachedEnd { return (lines, [], time) }
            }
        case .events(let reader):
            let batch = reader.read()
            if let journal = batch.newJournal { frames.append(.identity(key, journal)) }
            if let gap = batch.gap { frames.append(.gap(key, gap)) }
            return ([], batch.events, LogStreamReader.now())
        }
    }

    /// Merges streams of lines, each in time order, into one in time order (ties keep the streams' order).
    static func merge(_ streams: [[JournalLine]]) -> [JournalLine] {
        let nonEmpty = streams.filter { !$0.isEmpty }
        if nonEmpty.count <= 1 { return nonEmpty.first ?? [] }
        var merged: [JournalLine] = []
        merged.reserveCapacity(nonEmpty.reduce(0) { $0 + $1.count })
        var heads = [Int](repeating: 0, count: nonEmpty.count)
        while true {
            var best = -1
            for stream in nonEmpty.indices where heads[stream] < nonEmpty[stream].count {
                if best < 0 || nonEmpty[stream][heads[stream]].time < nonEmpty[best][heads[best]].time { best = stream }
            }
            if best < 0 { return merged }
            merged.append(nonEmpty[best][heads[best]])
            heads[best] += 1
        }
    }

    private static func frame(_ item: JournalItem) -> JournalFrame {
        switch item {
        case .line(let line): .line(line)
        case .event(let event): .event(event)
        }
    }

    // MARK: Sources

    private func logsFolder(_ service: ServiceName) -> String { home.instanceFolder(machine, service) + "/logs" }

    private func addSource(_ key: JournalKey, start fixed: LogStreamReader.Start?) {
        let start: LogStreamReader.Start
        if let fixed {
            start = fixed
        } else if let cursor = request.cursors[key] {
            start = .after(cursor)
        } else {
            switch request.start {
            case .tail(let count): start = .tail(count)
            case .since(let time): start = .since(time)
            case .beginning: start = .beginning
            }
        }
        let reader: Reader
        switch (key.stream, key.service) {
        case (let stream?, let service?):
            reader = .log(LogStreamReader(folder: logsFolder(service), kind: stream, start: start))
        case (nil, let service?):
            reader = .events(EventJournalReader(path: logsFolder(service) + "/" + EventJournal.fileName, start: start))
        case (nil, nil), (_?, nil):
            reader = .events(EventJournalReader(path: home.machineFolder(machine) + "/" + EventJournal.fileName, start: start))
        }
        sources.append(Source(key: key, reader: reader))
    }

    /// The services with an instance folder on this machine.
    private func instanceServices() -> [ServiceName] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: home.instancesFolder(machine))) ?? []
        return names.sorted().compactMap { try? ServiceName($0) }
    }

    /// Starts reading the event journals of instances that appeared since (from their beginning).
    private func discoverServices() {
        for service in instanceServices() where !knownServices.contains(service) {
            knownServices.insert(service)
            addSource(JournalKey(stream: nil, service: service), start: .beginning)
            newFolders.append(logsFolder(service))
        }
    }
}
