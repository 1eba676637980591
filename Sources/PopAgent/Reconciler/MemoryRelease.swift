import Synchronization

/// Gives the memory freed after a burst of work back to the system.
///
/// Starting or stopping hundreds of instances at once fills the C allocator with short-lived buffers (decoded
/// records, encoded JSON, SQL statements). The allocator keeps their pages once they are freed, so an idle agent would
/// go on holding megabytes it no longer uses; after each burst's worth of work it is asked to return them.
public final class MemoryRelease: Sendable {
    /// Units of work (instances reconciled, records written) after which freed memory is returned.
    static let burst = 100

    private let work = Atomic<Int>(0)

    /// Counts `units` of finished work and returns freed memory once a burst's worth has accumulated.
    func finished(_ units: Int) {
        guard units > 0 else { return }
        let total = work.wrappingAdd(units, ordering: .relaxed).newValue
        guard total >= Self.burst, work.compareExchange(expected: total, desired: 0, ordering: .relaxed).exchanged
        else { return }
        Self.releaseFreeMemory()
    }
}
