// pop runs on Linux only for now: the embedded store is woken by inotify, the agent follows its processes through
// pidfd and /proc, and the tests give each machine a network namespace. A port to another platform starts by
// providing those pieces (each lives in a `+Linux.swift` file); until then, say so at once instead of failing with
// a missing symbol deep in the build.
#if !os(Linux)
#error("pop is not supported on this platform yet: it runs on Linux (see README.md).")
#endif
