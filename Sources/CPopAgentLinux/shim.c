#ifdef __linux__
#define _GNU_SOURCE
#include "CPopAgentLinux.h"
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

int cpop_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int cpop_reap_pidfd(int pidfd, int *code, int *status) {
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED | WNOHANG) != 0) {
        return -1;
    }
    if (info.si_pid == 0) {
        return 0;
    }
    *code = info.si_code;
    *status = info.si_status;
    return 1;
}

int cpop_become_child_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

static volatile int sigchld_wake_fd = -1;
static struct sigaction previous_sigchld_action;

static void sigchld_wake(int signal, siginfo_t *info, void *context) {
    int saved = errno;
    uint64_t one = 1;
    ssize_t ignored = write(sigchld_wake_fd, &one, sizeof(one));
    (void)ignored;
    errno = saved;
    // Keep whatever handler was installed before ours working.
    if (previous_sigchld_action.sa_flags & SA_SIGINFO) {
        if (previous_sigchld_action.sa_sigaction != NULL) {
            previous_sigchld_action.sa_sigaction(signal, info, context);
        }
    } else if (previous_sigchld_action.sa_handler != SIG_DFL && previous_sigchld_action.sa_handler != SIG_IGN) {
        previous_sigchld_action.sa_handler(signal);
    }
}

int cpop_install_sigchld_wake(int wake_fd) {
    sigchld_wake_fd = wake_fd;
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_sigaction = sigchld_wake;
    action.sa_flags = SA_RESTART | SA_NOCLDSTOP | SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    return sigaction(SIGCHLD, &action, &previous_sigchld_action);
}

int cpop_spawn_add_chdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

int cpop_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

size_t cpop_epoll_event_size(void) {
    return sizeof(struct epoll_event);
}

void cpop_epoll_event_set(void *events, int index, uint32_t mask, uint64_t token) {
    struct epoll_event *event = ((struct epoll_event *)events) + index;
    event->events = mask;
    event->data.u64 = token;
}

void cpop_epoll_event_get(const void *events, int index, uint32_t *mask, uint64_t *token) {
    const struct epoll_event *event = ((const struct epoll_event *)events) + index;
    *mask = event->events;
    *token = event->data.u64;
}

int cpop_epoll_ctl(int epfd, int op, int fd, uint32_t mask, uint64_t token) {
    struct epoll_event event;
    memset(&event, 0, sizeof(event));
    event.events = mask;
    event.data.u64 = token;
    return epoll_ctl(epfd, op, fd, op == EPOLL_CTL_DEL ? NULL : &event);
}

// MARK: Gated spawn

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif
#ifndef FUTEX_WAIT
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#endif

// The gated child shares the caller's memory (and thread-local storage, errno included) until exec, so it must not
// call libc: it makes system calls directly (raw_syscall.h).
#include "raw_syscall.h"

struct gated_arguments {
    const struct cpop_spawn_image *image;
    int gate_read;
    int gate_write;
    int status_write;
    /// Where the child finds its descriptors (the image's, then the gate's read end and the status pipe's write end).
    int sources[6];
    /// Whether the child starts on the caller's descriptor table; it copies the descriptors below `unshare_below`.
    int shared;
    int unshare_below;
    /// Set (and woken) once the child has a table of its own; `unshare_error` is the errno if it could not.
    int unshared;
    int unshare_error;
};

/// Descriptor slots, low in the table, reserved for spawning: the caller dups a child's descriptors into them, the
/// child copies the table only up to them, and the caller points them back at /dev/null.
static struct {
    pthread_mutex_t lock;
    int ready;  // 1: usable, -1: could not be reserved (the child copies the whole table then)
    int null_fd;
    int slots[6];
    int below;
} spawn_slots = {PTHREAD_MUTEX_INITIALIZER, 0, -1, {-1, -1, -1, -1, -1, -1}, 0};

/// Reserves the slots once, under the lock.
static void spawn_slots_reserve(void) {
    if (spawn_slots.ready != 0) return;
    spawn_slots.ready = -1;
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0) return;
    int below = null_fd + 1;
    for (int index = 0; index < 6; index++) {
        int slot = fcntl(null_fd, F_DUPFD_CLOEXEC, 3);
        if (slot < 0) {
            for (int done = 0; done < index; done++) close(spawn_slots.slots[done]);
            close(null_fd);
            return;
        }
        spawn_slots.slots[index] = slot;
        if (slot + 1 > below) below = slot + 1;
    }
    spawn_slots.null_fd = null_fd;
    spawn_slots.below = below;
    spawn_slots.ready = 1;
}

enum { gated_stack_size = 64 * 1024 };

/// Reports `error` on the status pipe `fd` (where the child has it at that step) and exits without running anything.
static void gated_fail(int fd, long error) {
    int code = (int)(error < 0 ? -error : error);
    raw_syscall(SYS_write, fd, (long)&code, sizeof(code), 0);
    raw_syscall(SYS_exit_group, 127, 0, 0, 0);
}

static int gated_child(void *raw) {
    struct gated_arguments *arguments = raw;
    const struct cpop_spawn_image *image = arguments->image;
    long result;
    if (arguments->shared) {
        // Nothing may change in the shared table: take a copy of its lowest descriptors (the slots), or else all.
        result = raw_syscall(SYS_close_range, arguments->unshare_below, ~0UL, CLOSE_RANGE_UNSHARE, 0);
        if (result < 0) result = raw_syscall(SYS_unshare, CLONE_FILES, 0, 0, 0);
        arguments->unshare_error = result < 0 ? (int)-result : 0;
        __atomic_store_n(&arguments->unshared, 1, __ATOMIC_RELEASE);
        raw_syscall(SYS_futex, (long)&arguments->unshared, FUTEX_WAKE, 1, 0);
        if (result < 0) raw_syscall(SYS_exit_group, 127, 0, 0, 0);
    }
    const int count = image->fd_count < 3 ? 3 : (image->fd_count > 4 ? 4 : image->fd_count);
    // The status pipe until the descriptors are in place (a slot when the table was shared).
    const int early_status = arguments->sources[count + 1];
    // Only the caller may hold the gate's write end, so that its death is this child's end-of-file.
    raw_syscall(SYS_close, arguments->gate_write, 0, 0, 0);
    if ((result = raw_syscall(SYS_setsid, 0, 0, 0, 0)) < 0) gated_fail(early_status, result);
    struct kernel_sigaction defaults = {(void *)SIG_DFL, 0, 0, 0};
    for (int signal = 1; signal < 65; signal++) {
        if (signal == SIGKILL || signal == SIGSTOP) continue;
        raw_syscall(SYS_rt_sigaction, signal, (long)&defaults, 0, 8);
    }
    // Copies above the targets first (a source may be one of them), then into place: the image's descriptors, then
    // the gate at `count` and the status pipe at `count + 1`.
    const int gate = count, status = count + 1, total = count + 2;
    int copies[6];
    for (int index = 0; index < total; index++) {
        result = raw_syscall(SYS_fcntl, arguments->sources[index], F_DUPFD_CLOEXEC, 16, 0);
        if (result < 0) gated_fail(early_status, result);
        copies[index] = (int)result;
    }
    for (int index = 0; index < total; index++) {
        result = raw_syscall(SYS_dup3, copies[index], index, index >= count ? O_CLOEXEC : 0, 0);
        if (result < 0) gated_fail(early_status, result);
    }
    if (raw_syscall(SYS_close_range, total, ~0UL, 0, 0) < 0) {
        for (int fd = total; fd < 65536; fd++) raw_syscall(SYS_close, fd, 0, 0, 0);
    }
    if ((result = raw_syscall(SYS_chdir, (long)image->directory, 0, 0, 0)) < 0) gated_fail(status, result);
    char go = 0;
    do {
        result = raw_syscall(SYS_read, gate, (long)&go, 1, 0);
    } while (result == -EINTR);
    if (result != 1) raw_syscall(SYS_exit_group, 127, 0, 0, 0);  // The gate closed unopened.
    raw_syscall(SYS_close, gate, 0, 0, 0);
    if (image->nofile_soft >= 0) {
        unsigned long long limits[2] = {(unsigned long long)image->nofile_soft, (unsigned long long)image->nofile_hard};
        raw_syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, (long)limits, 0);
    }
    unsigned long empty = 0;
    raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, (long)&empty, 0, 8);
    result = raw_syscall(SYS_execve, (long)image->path, (long)image->argv, (long)image->envp, 0);
    gated_fail(status, result);
    return 127;
}

/// Waits until a child started on the shared table has a table of its own (or has died); returns its errno.
static int gated_wait_unshared(struct gated_arguments *arguments, int pidfd) {
    while (__atomic_load_n(&arguments->unshared, __ATOMIC_ACQUIRE) == 0) {
        struct timespec bound = {0, 100 * 1000 * 1000};
        syscall(SYS_futex, &arguments->unshared, FUTEX_WAIT, 0, &bound, NULL, 0);
        if (__atomic_load_n(&arguments->unshared, __ATOMIC_ACQUIRE) != 0) break;
        // Only SIGKILL can end it before then (it blocks every other signal): then it shares nothing any more.
        siginfo_t info;
        memset(&info, 0, sizeof(info));
        if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid != 0) {
            return 0;
        }
    }
    return arguments->unshare_error;
}

int cpop_gated_spawn(const struct cpop_spawn_image *image, struct cpop_gated_child *child) {
    int gate[2], status[2];
    if (pipe2(gate, O_CLOEXEC) != 0) return errno;
    if (pipe2(status, O_CLOEXEC) != 0) {
        int error = errno;
        close(gate[0]);
        close(gate[1]);
        return error;
    }
    struct gated_arguments *arguments = malloc(sizeof(*arguments));
    void *stack = mmap(NULL, gated_stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (arguments == NULL || stack == MAP_FAILED) {
        int error = arguments == NULL ? ENOMEM : errno;
        free(arguments);
        if (stack != MAP_FAILED) munmap(stack, gated_stack_size);
        close(gate[0]);
        close(gate[1]);
        close(status[0]);
        close(status[1]);
        return error;
    }
    memset(arguments, 0, sizeof(*arguments));
    arguments->image = image;
    arguments->gate_read = gate[0];
    arguments->gate_write = gate[1];
    arguments->status_write = status[1];
    const int count = image->fd_count < 3 ? 3 : (image->fd_count > 4 ? 4 : image->fd_count);
    int wanted[6];
    for (int index = 0; index < count; index++) wanted[index] = image->fds[index];
    wanted[count] = gate[0];
    wanted[count + 1] = status[1];
    pthread_mutex_lock(&spawn_slots.lock);
    spawn_slots_reserve();
    int shared = spawn_slots.ready == 1;
    for (int index = 0; index < count + 2; index++) {
        arguments->sources[index] = wanted[index];
        if (shared && dup3(wanted[index], spawn_slots.slots[index], O_CLOEXEC) < 0) shared = 0;
        else if (shared) arguments->sources[index] = spawn_slots.slots[index];
    }
    if (!shared) {
        for (int index = 0; index < count + 2; index++) arguments->sources[index] = wanted[index];
    }
    arguments->shared = shared;
    arguments->unshare_below = spawn_slots.below;
    // No signal handler of the caller may run in the child (it shares the caller's memory): block every signal
    // around the clone; the child resets every handler to the default before it unblocks them.
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    int pidfd = -1;
    int flags = CLONE_VM | CLONE_PIDFD | SIGCHLD | (shared ? CLONE_FILES : 0);
    pid_t pid = clone(gated_child, (char *)stack + gated_stack_size, flags, arguments, &pidfd);
    int error = errno;
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    int unshare_error = pid > 0 && shared ? gated_wait_unshared(arguments, pidfd) : 0;
    if (spawn_slots.ready == 1) {
        // The slots point at /dev/null again, so that they hold no end of the child's pipes.
        for (int index = 0; index < 6; index++) dup3(spawn_slots.null_fd, spawn_slots.slots[index], O_CLOEXEC);
    }
    pthread_mutex_unlock(&spawn_slots.lock);
    close(gate[0]);
    close(status[1]);
    if (pid > 0 && unshare_error != 0) {
        // It exits without a table of its own: reap it here (it is still in the caller's session).
        siginfo_t info;
        while (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED) != 0 && errno == EINTR) {}
        close(pidfd);
        close(gate[1]);
        close(status[0]);
        munmap(stack, gated_stack_size);
        free(arguments);
        return unshare_error;
    }
    if (pid < 0) {
        close(gate[1]);
        close(status[0]);
        munmap(stack, gated_stack_size);
        free(arguments);
        return error;
    }
    child->pid = pid;
    child->pidfd = pidfd;
    child->gate_fd = gate[1];
    child->status_fd = status[0];
    child->stack = stack;
    child->arguments = arguments;
    return 0;
}

/// Waits until the child execs (the status pipe closes) or reports an errno; then frees the spawn's memory.
static int gated_finish(struct cpop_gated_child *child) {
    int code = 0;
    size_t received = 0;
    while (received < sizeof(code)) {
        ssize_t count = read(child->status_fd, (char *)&code + received, sizeof(code) - received);
        if (count < 0 && errno == EINTR) continue;
        if (count <= 0) break;
        received += (size_t)count;
    }
    close(child->status_fd);
    // The status pipe closes at exec or exit: the child no longer runs on this stack.
    munmap(child->stack, gated_stack_size);
    free(child->arguments);
    child->status_fd = -1;
    child->stack = NULL;
    child->arguments = NULL;
    return received == sizeof(code) ? (code == 0 ? EIO : code) : 0;
}

int cpop_gated_release(struct cpop_gated_child *child) {
    char go = 1;
    ssize_t written;
    do {
        written = write(child->gate_fd, &go, 1);
    } while (written < 0 && errno == EINTR);
    close(child->gate_fd);
    child->gate_fd = -1;
    int error = gated_finish(child);
    return error != 0 ? error : (written == 1 ? 0 : EPIPE);
}

void cpop_gated_abort(struct cpop_gated_child *child) {
    close(child->gate_fd);
    child->gate_fd = -1;
    gated_finish(child);
}

int cpop_has_exited_child(void) {
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return 0;
    return info.si_pid != 0;
}

int cpop_raise_file_limit(long long *soft, long long *hard) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return 0;
    struct rlimit raised = {limit.rlim_max, limit.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) != 0) return 0;
    *soft = (long long)limit.rlim_cur;
    *hard = (long long)limit.rlim_max;
    return 1;
}

int cpop_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int cpop_release_free_memory(void) {
    return malloc_trim(0);
}

int cpop_limit_malloc_arenas(int count) {
    return mallopt(M_ARENA_MAX, count);
}
#endif
