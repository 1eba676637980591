/// Deadlines waiting to fire, earliest first: a binary min-heap of (deadline, token).
struct TimerHeap: Sendable {
    private var entries: [(deadline: ContinuousClock.Instant, token: UInt64)] = []

    /// Whether no timer is waiting.
    var isEmpty: Bool { entries.isEmpty }

    /// How many timers are waiting.
    var count: Int { entries.count }

    /// The earliest deadline, if any.
    var nextDeadline: ContinuousClock.Instant? { entries.first?.deadline }

    /// Adds a timer.
    mutating func insert(deadline: ContinuousClock.Instant, token: UInt64) {
        entries.append((deadline, token))
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].deadline < entries[parent].deadline else { break }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and returns the tokens of every timer whose deadline is at or before `now`, earliest first.
    mutating func popExpired(now: ContinuousClock.Instant) -> [UInt64] {
        var expired: [UInt64] = []
        while let first = entries.first, first.deadline <= now {
            expired.append(first.token)
            removeFirst()
        }
        return expired
    }

    private mutating func removeFirst() {
        let last = entries.removeLast()
        guard !entries.isEmpty else { return }
        entries[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < entries.count && entries[left].deadline < entries[smallest].deadline { smallest = left }
            if right < entries.count && entries[right].deadline < entries[smallest].deadline { smallest = right }
            if smallest == parent { return }
            entries.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
