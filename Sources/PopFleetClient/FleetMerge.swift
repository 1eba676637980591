import PopState

/// Merges what several machines send into one stream in time order: a pure state machine.
///
/// Each machine sends its lines and events in time order, with watermarks (every item up to that time has been
/// sent). An item is handed on once every other machine that counts has either an item waiting (a later one, since
/// the handed one is the earliest) or a watermark at or past the item's time. A machine that cannot be reached stops
/// counting (with a marker) until it is back (another marker); what it sends then is handed on as it comes, the other
/// machines being past it. A machine not heard from yet counts, so that the first lines are in order too: the reader
/// marks it unreachable when it cannot connect.
public struct FleetMerge: Sendable {
    /// What can be printed now.
    public enum Output: Sendable {
        case item(machine: String, JournalItem)
        case marker(machine: String, Marker)
    }

    /// Something that happened to a machine's stream, printed where it happened.
    public enum Marker: Sendable, Hashable {
        /// The machine starts running the service (or registers): its journals join.
        case joined
        /// The machine no longer runs the service: its journals leave.
        case left
        /// It cannot be reached: its lines will come when it is back.
        case unreachable(String)
        /// It is reachable again; its lines resume where they stopped.
        case back
        /// Lines (or events) of a journal were rotated away before they could be read.
        case gap(JournalKey, ClosedRange<UInt64>)
    }

    private enum Phase: Equatable {
        /// Not heard from yet: it holds the others back.
        case waiting
        /// Connected, sending.
        case live
        /// Unreachable: it does not hold the others back.
        case away
        /// Done (not following): everything it had has come.
        case ended
    }

    private struct Source {
        var phase: Phase = .waiting
        var queue: [JournalItem] = []
        var head = 0
        /// Every item up to this time has arrived.
        var watermark: Int64 = .min

        var isEmpty: Bool { head == queue.count }
        var first: JournalItem? { isEmpty ? nil : queue[head] }

        mutating func pop() -> JournalItem {
            let item = queue[head]
            head += 1
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            }
            return item
        }
    }

    /// The machines' sources; a removed machine's slot is nil.
    private var slots: [Source?] = []
    private var names: [String] = []
    private var index: [String: Int] = [:]
    /// Slots in the order their machines joined (ties in time go to the earlier one).
    private var order: [Int] = []

    /// An empty merge.
    public init() {}

    /// The machines being merged.
    public var machines: [String] { order.map { names[$0] } }

    /// Adds a machine whose journals will come; it holds the others back until it is heard from or marked away.
    public mutating func add(_ machine: String, announce: Bool = false) -> [Output] {
        guard index[machine] == nil else { return [] }
        index[machine] = slots.count
        order.append(slots.count)
        slots.append(Source())
        names.append(machine)
        return announce ? [.marker(machine: machine, .joined)] : []
    }

    /// The machine's journals leave: what it sent is handed on, and it no longer holds the others back.
    public mutating func remove(_ machine: String) -> [Output] {
        guard let slot = index[machine] else { return [] }
        slots[slot]?.phase = .ended
        slots[slot]?.watermark = .max
        var output = release()
        while let item = slots[slot]?.first {
            _ = item
            output.append(.item(machine: machine, slots[slot]!.pop()))
        }
        slots[slot] = nil
        index[machine] = nil
        order.removeAll { $0 == slot }
        output.append(.marker(machine: machine, .left))
        return output + release()
    }

    /// The machine answered (again).
    public mutating func connected(_ machine: String) -> [Output] {
        guard let slot = index[machine], let phase = slots[slot]?.phase else { return [] }
        slots[slot]?.phase = .live
        return phase == .away ? [.marker(machine: machine, .back)] : []
    }

    /// The machine cannot be reached: a marker (once per outage), and the others go on without it.
    public mutating func unreachable(_ machine: String, reason: String) -> [Output] {
        guard let slot = index[machine], let phase = slots[slot]?.phase, phase != .away, phase != .ended else { return [] }
        slots[slot]?.phase = .away
        return [.marker(machine: machine, .unreachable(reason))] + release()
    }

    /// Everything the machine had has come (a request that does not follow).
    public mutating func ended(_ machine: String) -> [Output] {
        guard let slot = index[machine] else { return [] }
        slots[slot]?.phase = .ended
        slots[slot]?.watermark = .max
        return release()
    }

    /// Frames from the machine.
    public mutating func receive(_ machine: String, _ frames: [JournalFrame]) -> [Output] {
        guard let slot = index[machine], var source = slots[slot] else { return [] }
        slots[slot] = nil  // no second reference while the queue grows
        var markers: [Output] = []
        for frame in frames {
            switch frame {
            case .line(let line):
                source.queue.append(.line(line))
            case .event(let event):
                source.queue.append(.event(event))
            case .watermark(let time):
                source.watermark = max(source.watermark, time)
            case .gap(let key, let range):
                markers.append(.marker(machine: machine, .gap(key, range)))
            case .end:
                source.phase = .ended
                source.watermark = .max
            case .identity, .failure:
                break
            }
        }
        slots[slot] = source
        return markers + release()
    }

    /// Hands on everything still waiting, in time order (the reader is done).
    public mutating func drain() -> [Output] {
        for slot in order { slots[slot]?.watermark = .max }
        return release()
    }

    /// Hands on every item no machine that counts can still precede.
    private mutating func release() -> [Output] {
        var output: [Output] = []
        while true {
            var best = -1
            var bestTime = Int64.max
            for slot in order {
                if let item = slots[slot]!.first, best < 0 || item.time < bestTime {
                    best = slot
                    bestTime = item.time
                }
            }
            guard best >= 0 else { return output }
            for slot in order where slot != best {
                let source = slots[slot]!
                switch source.phase {
                case .away, .ended: continue
                case .waiting, .live:
                    if !source.isEmpty || source.watermark >= bestTime { continue }
                    return output
                }
            }
            output.append(.item(machine: names[best], slots[best]!.pop()))
        }
    }
}
