// System calls made directly, for code that must not call libc: the gated child (it shares the caller's memory and
// thread-local storage until exec) and the log writer (which runs in pop-log before libc is set up, if ever). Each
// returns the call's result, or -errno on failure.
#ifndef CPOP_RAW_SYSCALL_H
#define CPOP_RAW_SYSCALL_H

#if defined(__x86_64__)
static inline long raw_syscall6(long n, long a, long b, long c, long d, long e, long f) {
    long result;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(result)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return result;
}
#elif defined(__aarch64__)
static inline long raw_syscall6(long n, long a, long b, long c, long d, long e, long f) {
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
    return x0;
}
#else
#error "pop's agent makes raw system calls, which this architecture does not have here"
#endif

static inline long raw_syscall(long n, long a, long b, long c, long d) { return raw_syscall6(n, a, b, c, d, 0, 0); }

/// The kernel's struct sigaction (the same layout on x86_64 and arm64).
struct kernel_sigaction {
    void *handler;
    unsigned long flags;
    void *restorer;
    unsigned long mask;
};

#endif
