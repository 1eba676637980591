// pop-log: an instance's log writer as a program of its own (Sources/CPopAgentLinux/log_writer.c). pop's agent uses it
// when it lies beside pop's executable, and otherwise starts its own executable under this name, which costs more to
// start.
//
// The kernel starts it at pop_log_entry (the linker's `-e`, Package.swift), not at libc's start-up code: that code
// would resolve every libc function's address for this CPU (on a virtual machine, by asking the hypervisor many
// times), set up threads, locale and standard streams and run every constructor, all for a program that needs none
// of it. It accounted for most of the CPU that each instance's log writer took to start. `main` is what runs when the
// program is linked without that entry point.
#ifdef __linux__
#include "CPopAgentLinux.h"

#if defined(__x86_64__)
__asm__(".text\n"
        ".global pop_log_entry\n"
        ".type pop_log_entry, @function\n"
        "pop_log_entry:\n"
        "    xor %ebp, %ebp\n"
        "    mov %rsp, %rdi\n"
        "    and $-16, %rsp\n"
        "    call cpop_log_writer_start@PLT\n"
        "    hlt\n");
#elif defined(__aarch64__)
__asm__(".text\n"
        ".global pop_log_entry\n"
        ".type pop_log_entry, %function\n"
        "pop_log_entry:\n"
        "    mov x29, #0\n"
        "    mov x30, #0\n"
        "    mov x0, sp\n"
        "    and x1, x0, #-16\n"
        "    mov sp, x1\n"
        "    bl cpop_log_writer_start\n"
        "    brk #0\n");
#endif

int main(int argc, char **argv) {
    return cpop_log_writer_main(argc, argv);
}
#else
#include <stdio.h>

int main(void) {
    fprintf(stderr, "pop-log: not supported on this platform\n");
    return 2;
}
#endif
