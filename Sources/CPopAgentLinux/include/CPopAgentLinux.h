// Linux system interfaces the process supervisor needs that Swift's Glibc module does not export:
// epoll, eventfd, inotify, pidfd, prctl, and an async-signal-safe SIGCHLD wake-up.
#ifndef C_POP_AGENT_LINUX_H
#define C_POP_AGENT_LINUX_H

#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/types.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>

/// pidfd_open(2): a file descriptor that becomes readable when the process exits. -1 with errno on failure.
int cpop_pidfd_open(pid_t pid);

/// Reaps the child behind `pidfd` without blocking. Returns 1 when reaped (with `code` as CLD_EXITED, CLD_KILLED
/// or CLD_DUMPED and `status` the exit status or signal), 0 when it is still running, -1 with errno (ECHILD when it
/// is not our child).
int cpop_reap_pidfd(int pidfd, int *code, int *status);

/// malloc_trim(0): returns the C allocator's free pages to the system. 1 when memory was released.
int cpop_release_free_memory(void);

/// mallopt(M_ARENA_MAX, count): at most `count` malloc arenas, whatever the number of threads. 1 on success.
int cpop_limit_malloc_arenas(int count);

/// prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants are reparented to this process instead of init.
int cpop_become_child_subreaper(void);

/// Installs a SIGCHLD handler that adds 1 to the eventfd `wake_fd` (and does nothing else).
int cpop_install_sigchld_wake(int wake_fd);

/// posix_spawn_file_actions_addchdir_np: the child changes to `path` before exec.
int cpop_spawn_add_chdir(posix_spawn_file_actions_t *actions, const char *path);

/// posix_spawn_file_actions_addclosefrom_np: the child closes every descriptor from `from` on before exec.
int cpop_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int from);

/// POSIX_SPAWN_SETSID: the child starts a new session (and process group), as setsid(2).
short cpop_spawn_setsid_flag(void);

/// The size of one epoll_event (12 bytes on x86_64, where it is packed; 16 elsewhere).
size_t cpop_epoll_event_size(void);

/// Fills `events[index]` with `mask` and `token`.
void cpop_epoll_event_set(void *events, int index, uint32_t mask, uint64_t token);

/// Reads `events[index]`.
void cpop_epoll_event_get(const void *events, int index, uint32_t *mask, uint64_t *token);

/// Registers, changes or removes `fd` in `epfd` with `mask` and `token` (op is EPOLL_CTL_ADD, _MOD or _DEL).
int cpop_epoll_ctl(int epfd, int op, int fd, uint32_t mask, uint64_t token);
#endif

#endif
