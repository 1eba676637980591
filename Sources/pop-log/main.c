// pop-log: an instance's log writer as a program of its own, about the size of a small C program. pop's agent uses it
// when it lies beside pop's executable, and otherwise starts its own executable under this name (the same code, in
// CPopAgentLinux), which costs more to start.
#ifdef __linux__
#include "CPopAgentLinux.h"

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
