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

/// What a gated child runs: prepared by the caller, and left untouched until the gate is released or aborted.
struct cpop_spawn_image {
    /// The executable's path (already resolved) and its argv and envp, each ending with NULL.
    const char *path;
    char *const *argv;
    char *const *envp;
    /// The folder the child changes to before exec.
    const char *directory;
    /// Descriptors that become the child's 0, 1, 2 and, with four, 3 (`fd_count` of them, 3 or 4); every other
    /// descriptor is closed.
    int fds[4];
    int fd_count;
    /// The open-files limit the program gets (soft, hard), when the caller raised its own; -1 leaves it.
    long long nofile_soft;
    long long nofile_hard;
};

/// A child that exists but has not exec'd yet: it waits at a gate until released.
struct cpop_gated_child {
    pid_t pid;
    /// A pidfd for the child, opened atomically with it (CLONE_PIDFD).
    int pidfd;
    int gate_fd;
    int status_fd;
    void *stack;
    void *arguments;
};

/// Starts a child that leads a new session, has default signal handling and only the image's descriptors,
/// and then waits at a gate before exec. The gate is a pipe whose write end only the caller holds: if the caller
/// dies, the child sees end-of-file and exits without ever running the program. So the caller can record the pid
/// (durably) before the program runs, and no program runs unrecorded whatever instant the caller dies at. The child
/// shares the caller's memory until exec (CLONE_VM, as posix_spawn) and makes only raw system calls.
///
/// It also starts with the caller's descriptor table shared (CLONE_FILES), and takes a private copy of only its few
/// lowest descriptors (close_range with CLOSE_RANGE_UNSHARE), where the caller has put what the child needs. A child
/// that copied the whole table would hold, and then close one by one, every descriptor of a supervisor with
/// thousands of instances: that cost grew with every instance, on every start.
/// Returns 0, or an errno when no child was created.
int cpop_gated_spawn(const struct cpop_spawn_image *image, struct cpop_gated_child *child);

/// Opens the gate: the child execs. Waits until it has; returns 0, or the errno of the step that failed (the child
/// has then exited, and must be reaped). Frees what the spawn held except the pidfd.
int cpop_gated_release(struct cpop_gated_child *child);

/// Closes the gate without opening it: the child exits (status 127) without running the program. Waits until it
/// has exited; it must be reaped. Frees what the spawn held except the pidfd.
void cpop_gated_abort(struct cpop_gated_child *child);

/// Whether this process has a child that has exited and is not reaped yet (waitid with WNOWAIT: nothing is reaped).
/// 1 when there is one, 0 when there is none (or no child at all).
int cpop_has_exited_child(void);

/// Raises this process's soft open-files limit to its hard limit. Returns 1 and the limits it had when it raised
/// them, 0 when they were already equal or could not be changed.
int cpop_raise_file_limit(long long *soft, long long *hard);

/// pipe2(fds, O_CLOEXEC): a pipe whose ends no spawned program inherits unless given them on purpose.
int cpop_pipe_cloexec(int fds[2]);

/// The name (argv[0]) the log writer is started under: the agent's own executable, recognised by a constructor that
/// runs before the rest of the program, writes the logs and exits.
const char *cpop_log_writer_name(void);

/// The marker argument (argv[1]) that follows the name, so that nothing else is ever taken for the log writer.
const char *cpop_log_writer_marker(void);

/// The log writer: `pop-log MARKER FOLDER MAXIMUM-BYTES KEEP FD=FILE...` reads each descriptor FD until every writer
/// has closed it and appends what it reads to FOLDER/FILE, indexing each piece in FOLDER/NAME.idx (FILE without its
/// `.log`), and rotating both (copy to FILE.1 ..., then truncate) so that a file and its index never hold more than
/// MAXIMUM-BYTES together. Returns the exit status.
int cpop_log_writer_main(int argc, char **argv);

/// pop-log's start (its entry point, Sources/pop-log): the log writer run with the arguments the kernel left on the
/// process's initial stack (`stack`: argc, then argv), exiting with its status. It neither needs nor sets up libc.
__attribute__((noreturn)) void cpop_log_writer_start(long *stack);

/// The size of an index file's header and of each of its records.
#define CPOP_LOG_INDEX_ENTRY_SIZE 32
/// "POPIDX01", the header's first eight bytes (little-endian).
#define CPOP_LOG_INDEX_MAGIC 0x3130584449504f50ULL
/// Set in a header or record whose log bytes continue a line begun before them.
#define CPOP_LOG_INDEX_CONTINUES 1u

/// The first entry of an index file (`stdout.idx`): which stream the log belongs to and where the log file starts in it.
struct cpop_log_index_header {
    /// ``CPOP_LOG_INDEX_MAGIC``.
    uint64_t magic;
    /// A random id, the same across rotations, new when the log starts afresh (its files were removed).
    uint64_t stream;
    /// How many lines the stream had completed before the log file's first byte.
    uint64_t base_line;
    /// ``CPOP_LOG_INDEX_CONTINUES`` when the file's first byte continues a line of the previous file.
    uint32_t flags;
    uint32_t reserved;
};

/// Every later entry: one piece of output, as the writer read it from the pipe.
struct cpop_log_index_record {
    /// Where the piece starts in the log file.
    uint64_t offset;
    /// How many lines the stream had completed before the piece; its first byte belongs to line `line + 1`.
    uint64_t line;
    /// When the writer read it: nanoseconds since the epoch (CLOCK_REALTIME), taken under the file's lock.
    int64_t time;
    /// ``CPOP_LOG_INDEX_CONTINUES`` when the piece's first byte continues a line.
    uint32_t flags;
    uint32_t reserved;
};

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
