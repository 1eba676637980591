// Preloaded into pop while scripts/text-order.sh collects the functions pop runs: it registers pop's own code with
// userfaultfd in write-protect mode, which nothing ever triggers on code, but which makes the kernel map each page of
// that code on its own first touch instead of the 64 KB around it ("fault-around"). Every page pop's code touches
// then faults once, so the faults name the functions that run. Only the program named by POP_TEXT_ORDER_EXE is
// affected; any other program the preload reaches (an instance's command) is left alone.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

__attribute__((constructor)) static void withoutFaultAround(void) {
    char exe[4096];
    ssize_t length = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const char *wanted = getenv("POP_TEXT_ORDER_EXE");
    if (length <= 0 || wanted == NULL) return;
    exe[length] = 0;
    if (strcmp(exe, wanted) != 0) return;
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) { perror("no-fault-around: userfaultfd"); return; }
    // Kept open for the process's life, high enough not to collide with the descriptors pop hands to its children.
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 900);
    if (high >= 0) { close(fd); fd = high; }
    struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_HUGETLBFS_SHMEM };
    if (ioctl(fd, UFFDIO_API, &api) != 0) { perror("no-fault-around: UFFDIO_API"); return; }
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[8192];
    while (maps != NULL && fgets(line, sizeof line, maps) != NULL) {
        unsigned long start, end;
        char permissions[8];
        if (sscanf(line, "%lx-%lx %7s", &start, &end, permissions) != 3 || permissions[2] != 'x') continue;
        if (strstr(line, exe) == NULL) continue;
        struct uffdio_register range = { .range = { start, end - start }, .mode = UFFDIO_REGISTER_MODE_WP };
        if (ioctl(fd, UFFDIO_REGISTER, &range) != 0) perror("no-fault-around: UFFDIO_REGISTER");
    }
    if (maps != NULL) fclose(maps);
}
