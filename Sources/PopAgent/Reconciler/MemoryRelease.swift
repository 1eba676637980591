#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import PopState
import Synchronization

/// Gives the memory freed after a burst of work back to the system.
///
/// Starting or stopping hundreds of instances at once fills the C allocator with short-lived buffers (decoded
/// records, encoded JSON, SQL statements). The allocator keeps their pages once they are freed, so an idle agent would
/// go on holding megabytes it no longer uses; after each burst's worth of work it is asked to return them.
public final class MemoryRelease: Sendable {
    /// Units of work (instances reconciled, records written) after which freed memory is returned.
    static let burst = 100

    /// How long the agent has had nothing to do when it returns the memory its last work left behind.
    static let quietPeriod = Duration.seconds(1)

    private let work = Atomic<Int>(0)

    /// Counts `units` of finished work; once a burst's worth has accumulated, lets `store` free its caches and
    /// returns the freed memory to the system.
    func finished(_ units: Int, store: (any CoordinationStore)?) async {
        guard units > 0 else { return }
        let total = work.wrappingAdd(units, ordering: .relaxed).newValue
        guard total >= Self.burst, work.compareExchange(expected: total, desired: 0, ordering: .relaxed).exchanged
        else { return }
        await release(store)
    }

    /// The agent has been quiet for ``quietPeriod``: returns what the work since the last release left behind, if
    /// there was any.
    func quiet(store: (any CoordinationStore)?) async {
        guard work.exchange(0, ordering: .relaxed) > 0 else { return }
        await release(store)
    }

    /// Lets `store` free its caches, then returns the allocator's free pages to the system.
    private func release(_ store: (any CoordinationStore)?) async {
        await store?.releaseCaches()
        Self.releaseFreeMemory()
    }

    /// Sets up the agent's process before anything else runs in it: the C allocator kept to one arena
    /// (``limitArenas()``), and one event-loop thread for SwiftNIO's shared group (its endpoint and its ZooKeeper
    /// session), where the default is one per core. Each loop thread keeps its stack and a buffer of 4,096 tasks
    /// (about 200 KB); an agent's network work is a few connections, and its heavy work runs elsewhere.
    /// `NIO_SINGLETON_GROUP_LOOP_COUNT` in the environment, SwiftNIO's own setting, wins. Called once, at the start of
    /// `pop fg`.
    public static func prepareAgentProcess() {
        limitArenas()
        if getenv("NIO_SINGLETON_GROUP_LOOP_COUNT") == nil {
            NIOSingletons.groupLoopCountSuggestion = 1
        }
    }
}
