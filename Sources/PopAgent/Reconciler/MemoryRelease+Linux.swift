#if canImport(CPopAgentLinux)
import CPopAgentLinux

extension MemoryRelease {
    /// Returns the C allocator's free pages to the system (glibc's `malloc_trim`).
    static func releaseFreeMemory() {
        _ = cpop_release_free_memory()
    }
}
#else
extension MemoryRelease {
    /// Nothing to do where the allocator returns freed memory by itself.
    static func releaseFreeMemory() {}
}
#endif
