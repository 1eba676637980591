#if canImport(CPopAgentLinux)
import CPopAgentLinux
import Glibc

extension MemoryRelease {
    /// Returns the C allocator's free pages to the system (glibc's `malloc_trim`).
    static func releaseFreeMemory() {
        _ = cpop_release_free_memory()
    }

    /// Keeps the C allocator to one arena. glibc makes one per thread that meets contention (up to eight per core),
    /// and each keeps its own free pages and its own partly used ones; the agent's threads mostly wait, and each
    /// keeps a cache of small blocks of its own (glibc's tcache), so one arena costs no measurable time, and the
    /// freed pages gather in one place for ``releaseFreeMemory()``.
    /// `MALLOC_ARENA_MAX` in the environment, glibc's own setting, wins.
    public static func limitArenas() {
        guard getenv("MALLOC_ARENA_MAX") == nil else { return }
        _ = cpop_limit_malloc_arenas(1)
    }
}
#else
extension MemoryRelease {
    /// Nothing to do where the allocator returns freed memory by itself.
    static func releaseFreeMemory() {}

    /// Nothing to do.
    public static func limitArenas() {}
}
#endif
