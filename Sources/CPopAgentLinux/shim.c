#ifdef __linux__
#define _GNU_SOURCE
#include "CPopAgentLinux.h"
#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <sys/prctl.h>
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

short cpop_spawn_setsid_flag(void) {
    return POSIX_SPAWN_SETSID;
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

int cpop_release_free_memory(void) {
    return malloc_trim(0);
}

int cpop_limit_malloc_arenas(int count) {
    return mallopt(M_ARENA_MAX, count);
}
#endif
