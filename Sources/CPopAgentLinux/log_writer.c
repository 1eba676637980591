// pop-log: the per-instance log writer. It reads an instance's output from pipes and writes it to the instance's log
// files, each kept at most a set size at every moment, and indexes what it writes so that readers can resume at a
// line (docs/observability.md, The journal).
//
// It runs as a program of its own, pop-log, beside pop: the kernel starts it straight in cpop_log_writer_start,
// before (and without) any set-up of libc, which it never calls; it makes its system calls itself (raw_syscall.h).
// Each instance has one, so what it costs to start is paid per instance: about a tenth of a statically linked C
// program's (docs/benchmarks.md). When pop-log is not beside pop, the agent starts its own executable under that
// name instead: a constructor recognises the name before anything else in the program runs, writes the logs and
// exits.
#ifdef __linux__
#define _GNU_SOURCE
#include "CPopAgentLinux.h"
#include "raw_syscall.h"
// Constants and types only: nothing here calls libc but the constructor, which runs in pop's own executable.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

// The compiler must not turn a loop here into a call to libc's memchr, strlen or memset, which pop-log does not set
// up (their addresses are resolved by libc's start-up code). Nothing here initialises a large aggregate either, which
// the compiler would do with memset.
#pragma clang attribute push(__attribute__((no_builtin)), apply_to = function)

// MARK: System calls

static long sys_write(int fd, const void *data, size_t count) {
    return raw_syscall(SYS_write, fd, (long)data, (long)count, 0);
}

static long sys_read(int fd, void *data, size_t count) { return raw_syscall(SYS_read, fd, (long)data, (long)count, 0); }

static long sys_pread(int fd, void *data, size_t count, long long offset) {
    return raw_syscall(SYS_pread64, fd, (long)data, (long)count, (long)offset);
}

static long sys_ftruncate(int fd, long long size) { return raw_syscall(SYS_ftruncate, fd, (long)size, 0, 0); }

static long sys_fstat(int fd, struct stat *info) { return raw_syscall(SYS_fstat, fd, (long)info, 0, 0); }

static long sys_open(const char *path, int flags, int mode) {
    return raw_syscall(SYS_openat, AT_FDCWD, (long)path, flags, mode);
}

static long sys_close(int fd) { return raw_syscall(SYS_close, fd, 0, 0, 0); }

static long sys_unlink(const char *path) { return raw_syscall(SYS_unlinkat, AT_FDCWD, (long)path, 0, 0); }

static long sys_rename(const char *from, const char *to) {
    return raw_syscall6(SYS_renameat2, AT_FDCWD, (long)from, AT_FDCWD, (long)to, 0, 0);
}

static long sys_flock(int fd, int operation) { return raw_syscall(SYS_flock, fd, operation, 0, 0); }

static long sys_copy_file_range(int input, long long *offset, int output, size_t count) {
    return raw_syscall6(SYS_copy_file_range, input, (long)offset, output, 0, (long)count, 0);
}

static long sys_poll(struct pollfd *waits, unsigned long count) {
    return raw_syscall6(SYS_ppoll, (long)waits, (long)count, 0, 0, 8, 0);
}

// MARK: What libc would have done

static size_t lw_strlen(const char *text) {
    size_t length = 0;
    while (text[length] != 0) length++;
    return length;
}

static int lw_equal(const char *a, const char *b) {
    while (*a != 0 && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

static const char *lw_find(const char *data, char byte, size_t count) {
    for (size_t index = 0; index < count; index++) {
        if (data[index] == byte) return data + index;
    }
    return NULL;
}

static const char *lw_find_last(const char *data, char byte, size_t count) {
    for (size_t index = count; index > 0; index--) {
        if (data[index - 1] == byte) return data + index - 1;
    }
    return NULL;
}

/// The decimal number at the start of `text` (as atoll reads it: an optional sign, then digits).
static long long lw_number(const char *text) {
    int negative = *text == '-';
    if (*text == '-' || *text == '+') text++;
    long long value = 0;
    for (; *text >= '0' && *text <= '9'; text++) value = value * 10 + (*text - '0');
    return negative ? -value : value;
}

/// A path being put together in a buffer of PATH_MAX + 16 bytes; what does not fit is cut off, as snprintf would.
struct lw_path {
    char text[PATH_MAX + 16];
    size_t length;
};

static void path_add(struct lw_path *path, const char *text, size_t count) {
    for (size_t index = 0; index < count && path->length + 1 < sizeof(path->text); index++) {
        path->text[path->length++] = text[index];
    }
    path->text[path->length] = 0;
}

static void path_add_number(struct lw_path *path, long long value) {
    char digits[24];
    size_t count = 0;
    unsigned long long magnitude = value < 0 ? (unsigned long long)-value : (unsigned long long)value;
    do {
        digits[sizeof(digits) - 1 - count++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude > 0);
    if (value < 0) digits[sizeof(digits) - 1 - count++] = '-';
    path_add(path, digits + sizeof(digits) - count, count);
}

/// `text`, then `.NUMBER`.
static void path_numbered(struct lw_path *path, const char *text, long long number) {
    path->length = 0;
    path_add(path, text, lw_strlen(text));
    path_add(path, ".", 1);
    path_add_number(path, number);
}

/// Why a system call failed, in words, for the few reasons a log file cannot be opened.
static const char *failure_reason(long error) {
    switch (error) {
    case EACCES: return "permission denied";
    case ENOENT: return "no such file or directory";
    case ENOTDIR: return "a parent is not a directory";
    case EISDIR: return "is a directory";
    case ENOSPC: return "no space left on the device";
    case EDQUOT: return "disk quota exceeded";
    case EROFS: return "read-only file system";
    case EMFILE: case ENFILE: return "too many open files";
    case ENAMETOOLONG: return "file name too long";
    case ELOOP: return "too many levels of symbolic links";
    default: return NULL;
    }
}

/// Writes "pop-log: WHAT[PATH][: REASON]AFTER" to standard error (which the agent keeps).
static void say(const char *what, const char *path, long error, const char *after) {
    sys_write(2, "pop-log: ", 9);
    sys_write(2, what, lw_strlen(what));
    if (path != NULL) sys_write(2, path, lw_strlen(path));
    if (error != 0) {
        const char *reason = failure_reason(error);
        struct lw_path number;
        number.length = 0;
        if (reason == NULL) {
            path_add(&number, "error ", 6);
            path_add_number(&number, error);
            reason = number.text;
        }
        sys_write(2, ": ", 2);
        sys_write(2, reason, lw_strlen(reason));
    }
    sys_write(2, after, lw_strlen(after));
}

_Static_assert(sizeof(struct cpop_log_index_header) == CPOP_LOG_INDEX_ENTRY_SIZE, "index header size");
_Static_assert(sizeof(struct cpop_log_index_record) == CPOP_LOG_INDEX_ENTRY_SIZE, "index record size");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the index is written little-endian");

static const char log_writer_name[] = "pop-log";
static const char log_writer_marker[] = "--pop-log-writer-1";

const char *cpop_log_writer_name(void) { return log_writer_name; }
const char *cpop_log_writer_marker(void) { return log_writer_marker; }

struct log_stream {
    int input;
    int file;
    int index;
    struct lw_path path;
    struct lw_path index_path;
    // What this writer knows of the stream, valid while both files still have the sizes it left them at (another
    // writer of the same files, the previous process's, may have written meanwhile).
    long long file_size;
    long long index_size;
    unsigned long long stream;
    unsigned long long lines;
    int mid_line;
};

struct log_settings {
    long long maximum;
    int keep;
};

/// Writes all of `count` bytes, retrying short writes; false when the file system refuses (full disk).
static int write_all(int fd, const char *data, size_t count) {
    while (count > 0) {
        long written = sys_write(fd, data, count);
        if (written == -EINTR) continue;
        if (written <= 0) return 0;
        data += written;
        count -= (size_t)written;
    }
    return 1;
}

/// Reads exactly `count` bytes at `offset`; false on a short file or an error.
static int read_at(int fd, void *data, size_t count, long long offset) {
    char *bytes = data;
    while (count > 0) {
        long got = sys_pread(fd, bytes, count, offset);
        if (got == -EINTR) continue;
        if (got <= 0) return 0;
        bytes += got;
        count -= (size_t)got;
        offset += got;
    }
    return 1;
}

/// How many newlines `data` holds.
static unsigned long long count_lines(const char *data, size_t count) {
    unsigned long long lines = 0;
    const char *end = data + count;
    for (const char *at = data; at < end; at++) {
        at = lw_find(at, '\n', (size_t)(end - at));
        if (at == NULL) break;
        lines++;
    }
    return lines;
}

/// How many newlines the file holds between `from` and `to`.
static unsigned long long count_file_lines(int fd, long long from, long long to) {
    static char buffer[65536];
    unsigned long long lines = 0;
    while (from < to) {
        size_t want = to - from < (long long)sizeof(buffer) ? (size_t)(to - from) : sizeof(buffer);
        long got = sys_pread(fd, buffer, want, from);
        if (got == -EINTR) continue;
        if (got <= 0) break;
        lines += count_lines(buffer, (size_t)got);
        from += got;
    }
    return lines;
}

/// Whether the file's last byte before `size` is not a newline (a line is still open).
static int ends_mid_line(int fd, long long size) {
    char last = '\n';
    return size > 0 && read_at(fd, &last, 1, size - 1) && last != '\n';
}

static long long now_nanoseconds(void) {
    struct timespec now;
    if (raw_syscall(SYS_clock_gettime, CLOCK_REALTIME, (long)&now, 0, 0) != 0) return 0;
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

/// Appends an index record: the piece at `offset` of the log file begins after line `line`, read at `time`.
static int write_record(int index, long long offset, unsigned long long line, long long time, int mid_line) {
    struct cpop_log_index_record record;
    record.offset = (unsigned long long)offset;
    record.line = line;
    record.time = time;
    record.flags = mid_line ? CPOP_LOG_INDEX_CONTINUES : 0;
    record.reserved = 0;
    return write_all(index, (const char *)&record, sizeof(record));
}

/// Empties the index and writes its header: the stream's id, and where the log file starts in the stream.
static int write_header(struct log_stream *stream, unsigned long long base_line, int mid_line) {
    // Field by field: an initializer may be compiled into a call to libc's memset.
    struct cpop_log_index_header header;
    header.magic = CPOP_LOG_INDEX_MAGIC;
    header.stream = stream->stream;
    header.base_line = base_line;
    header.flags = mid_line ? CPOP_LOG_INDEX_CONTINUES : 0;
    header.reserved = 0;
    while (sys_ftruncate(stream->index, 0) == -EINTR) {}
    return write_all(stream->index, (const char *)&header, sizeof(header));
}

/// Starts a new stream over the log file as it is: a new id, its lines counted from 0, and what the file holds
/// already (written before there was an index) dated by the file's modification time.
static void start_stream(struct log_stream *stream, const struct stat *file_info) {
    unsigned long long id = 0;
    if (raw_syscall(SYS_getrandom, (long)&id, sizeof(id), 0, 0) != sizeof(id)) {
        id = (unsigned long long)now_nanoseconds() ^ ((unsigned long long)raw_syscall(SYS_getpid, 0, 0, 0, 0) << 40);
    }
    stream->stream = id;
    stream->lines = 0;
    stream->mid_line = 0;
    write_header(stream, 0, 0);
    if (file_info->st_size > 0) {
        write_record(stream->index, 0, 0, (long long)file_info->st_mtim.tv_sec * 1000000000LL + file_info->st_mtim.tv_nsec, 0);
        stream->lines = count_file_lines(stream->file, 0, file_info->st_size);
        stream->mid_line = ends_mid_line(stream->file, file_info->st_size);
    }
}

/// Learns where the stream stands from the files themselves: the index's last record, plus the newlines written
/// after it. Called when this writer has not written the files' current state itself.
static void load_state(struct log_stream *stream) {
    struct stat file_info, index_info;
    if (sys_fstat(stream->file, &file_info) != 0 || sys_fstat(stream->index, &index_info) != 0) return;
    struct cpop_log_index_header header;
    long long entries = index_info.st_size / CPOP_LOG_INDEX_ENTRY_SIZE;
    if (entries < 1 || !read_at(stream->index, &header, sizeof(header), 0) || header.magic != CPOP_LOG_INDEX_MAGIC) {
        start_stream(stream, &file_info);
    } else {
        // A record torn by a crash is dropped.
        if (index_info.st_size % CPOP_LOG_INDEX_ENTRY_SIZE != 0) {
            while (sys_ftruncate(stream->index, entries * CPOP_LOG_INDEX_ENTRY_SIZE) == -EINTR) {}
        }
        stream->stream = header.stream;
        unsigned long long offset = 0, line = header.base_line;
        int mid_line = (header.flags & CPOP_LOG_INDEX_CONTINUES) != 0;
        struct cpop_log_index_record record;
        if (entries > 1) {
            if (!read_at(stream->index, &record, sizeof(record), (entries - 1) * CPOP_LOG_INDEX_ENTRY_SIZE)) {
                start_stream(stream, &file_info);
                goto done;
            }
            offset = record.offset;
            line = record.line;
            mid_line = (record.flags & CPOP_LOG_INDEX_CONTINUES) != 0;
        }
        if ((long long)offset > file_info.st_size) {
            // The log is shorter than its index says (a crash in the middle of a rotation): a new stream.
            start_stream(stream, &file_info);
        } else {
            stream->lines = line + count_file_lines(stream->file, (long long)offset, file_info.st_size);
            stream->mid_line = (long long)offset == file_info.st_size ? mid_line : ends_mid_line(stream->file, file_info.st_size);
        }
    }
done:
    if (sys_fstat(stream->file, &file_info) == 0 && sys_fstat(stream->index, &index_info) == 0) {
        stream->file_size = file_info.st_size;
        stream->index_size = index_info.st_size;
    }
}

/// Copies `source` (from its start) into a new `destination`.
static int copy_file(int source, const char *destination) {
    int output = (int)sys_open(destination, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (output < 0) return 0;
    long long offset = 0;
    int ok = 1;
    for (;;) {
        long copied = sys_copy_file_range(source, &offset, output, 1 << 30);
        if (copied == -EINTR) continue;
        if (copied == 0) break;
        if (copied > 0) continue;
        // Not supported between these files: copy through a buffer.
        char buffer[65536];
        for (;;) {
            long count = sys_pread(source, buffer, sizeof(buffer), offset);
            if (count == -EINTR) continue;
            if (count <= 0) {
                ok = count == 0;
                break;
            }
            if (!write_all(output, buffer, (size_t)count)) {
                ok = 0;
                break;
            }
            offset += count;
        }
        break;
    }
    sys_close(output);
    return ok;
}

/// Moves PATH.1 ... PATH.(keep-1) up by one (dropping PATH.keep) and copies PATH to PATH.1.
static void shift_and_copy(int file, const char *path, int keep) {
    struct lw_path from, to;
    path_numbered(&to, path, keep);
    sys_unlink(to.text);
    for (int index = keep - 1; index >= 1; index--) {
        path_numbered(&from, path, index);
        path_numbered(&to, path, index + 1);
        sys_rename(from.text, to.text);
    }
    path_numbered(&to, path, 1);
    copy_file(file, to.text);
}

/// Rotates the log and its index together: NAME.1 ... move up one (the oldest goes first, so the files never hold
/// more than (keep + 1) times the limit), NAME is copied to NAME.1 and emptied, and the emptied index starts where
/// the copied one ended. The log keeps its inode, so readers following it and another writer of it stay on it.
static void rotate(struct log_stream *stream, const struct log_settings *settings) {
    if (settings->keep > 0) {
        shift_and_copy(stream->file, stream->path.text, settings->keep);
        shift_and_copy(stream->index, stream->index_path.text, settings->keep);
    }
    while (sys_ftruncate(stream->file, 0) == -EINTR) {}
    write_header(stream, stream->lines, stream->mid_line);
    stream->file_size = 0;
    stream->index_size = CPOP_LOG_INDEX_ENTRY_SIZE;
}

/// How much of `data` goes into a file with `room` bytes left: all of it when it fits, else up to its last newline
/// within the room; 0 (rotate first) when no line ends there, unless the file is empty (a line longer than a file).
static size_t fitting(const char *data, size_t count, long long room, long long file_size) {
    if ((long long)count <= room) return count;
    if (room <= 0) return 0;
    const char *newline = lw_find_last(data, '\n', (size_t)room);
    if (newline != NULL) return (size_t)(newline - data) + 1;
    return file_size == 0 ? (size_t)room : 0;
}

/// Appends `count` bytes with their index record, rotating whenever the log and its index reach the limit, so that
/// together they never hold more. The lock makes the size check, the writes and the rotation one step against
/// another writer of the same files (the writer of the instance's previous process may still be draining its pipe),
/// and against readers that take it shared to learn up to which time the files are complete.
static void append(struct log_stream *stream, const char *data, size_t count, const struct log_settings *settings) {
    while (sys_flock(stream->file, LOCK_EX) == -EINTR) {}
    struct stat file_info, index_info;
    if (sys_fstat(stream->file, &file_info) != 0 || sys_fstat(stream->index, &index_info) != 0) goto unlock;
    if (file_info.st_size != stream->file_size || index_info.st_size != stream->index_size) load_state(stream);
    long long time = now_nanoseconds();
    while (count > 0) {
        long long room = settings->maximum - stream->file_size - stream->index_size - CPOP_LOG_INDEX_ENTRY_SIZE;
        size_t chunk = fitting(data, count, room, stream->file_size);
        if (chunk == 0) {
            rotate(stream, settings);
            continue;
        }
        // The record first: a reader that sees these bytes finds their line numbers and time already there.
        if (!write_record(stream->index, stream->file_size, stream->lines, time, stream->mid_line)) break;
        // A full disk loses this output; the pipe keeps being drained, so the instance never blocks on its logs.
        if (!write_all(stream->file, data, chunk)) {
            while (sys_ftruncate(stream->index, stream->index_size) == -EINTR) {}
            while (sys_ftruncate(stream->file, stream->file_size) == -EINTR) {}
            break;
        }
        stream->lines += count_lines(data, chunk);
        stream->mid_line = data[chunk - 1] != '\n';
        stream->file_size += (long long)chunk;
        stream->index_size += CPOP_LOG_INDEX_ENTRY_SIZE;
        data += chunk;
        count -= chunk;
    }
unlock:
    sys_flock(stream->file, LOCK_UN);
}

/// Opens FOLDER/NAME for appending, or /dev/null when it cannot be opened (the instance must not die of its logs).
static int open_appending(const char *path) {
    long fd = sys_open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        say("cannot open ", path, -fd, "; dropping its output\n");
        fd = sys_open("/dev/null", O_RDWR | O_CLOEXEC, 0);
    }
    return (int)fd;
}

int cpop_log_writer_main(int argc, char **argv) {
    // pop-log MARKER FOLDER MAXIMUM-BYTES KEEP FD=FILE...
    if (argc < 6 || !lw_equal(argv[1], log_writer_marker)) {
        say("this program is started by pop's agent, not by hand", NULL, 0, "\n");
        return 2;
    }
    struct log_settings settings;
    settings.maximum = lw_number(argv[3]);
    settings.keep = (int)lw_number(argv[4]);
    if (settings.maximum < 4096) settings.maximum = 4096;
    if (settings.keep < 0) settings.keep = 0;
    struct kernel_sigaction ignore;
    ignore.handler = (void *)SIG_IGN;
    ignore.flags = 0;
    ignore.restorer = NULL;
    ignore.mask = 0;
    raw_syscall(SYS_rt_sigaction, SIGPIPE, (long)&ignore, 0, 8);
    int count = argc - 5;
    if (count > 8) count = 8;
    struct log_stream streams[8];
    struct pollfd waits[8];
    int open_streams = 0;
    for (int index = 0; index < count; index++) {
        const char *argument = argv[5 + index];
        const char *equals = lw_find(argument, '=', lw_strlen(argument));
        if (equals == NULL) return 2;
        struct log_stream *stream = &streams[open_streams];
        stream->input = (int)lw_number(argument);
        stream->path.length = 0;
        path_add(&stream->path, argv[2], lw_strlen(argv[2]));
        path_add(&stream->path, "/", 1);
        path_add(&stream->path, equals + 1, lw_strlen(equals + 1));
        // stdout.log is indexed in stdout.idx.
        size_t length = stream->path.length;
        if (length > 4 && lw_equal(stream->path.text + length - 4, ".log")) length -= 4;
        stream->index_path.length = 0;
        path_add(&stream->index_path, stream->path.text, length);
        path_add(&stream->index_path, ".idx", 4);
        stream->file = open_appending(stream->path.text);
        stream->index = open_appending(stream->index_path.text);
        stream->file_size = -1;
        stream->index_size = -1;
        waits[open_streams].fd = stream->input;
        waits[open_streams].events = POLLIN;
        open_streams++;
    }
    static char buffer[256 * 1024];
    int remaining = open_streams;
    while (remaining > 0) {
        long ready = sys_poll(waits, (unsigned long)open_streams);
        if (ready < 0) {
            if (ready == -EINTR) continue;
            return 1;
        }
        for (int index = 0; index < open_streams; index++) {
            if (waits[index].fd < 0 || waits[index].revents == 0) continue;
            long got = sys_read(waits[index].fd, buffer, sizeof(buffer));
            if (got == -EINTR || got == -EAGAIN) continue;
            if (got <= 0) {
                // Every writer (the instance's whole group) has closed its end.
                sys_close(waits[index].fd);
                waits[index].fd = -1;
                remaining--;
                continue;
            }
            append(&streams[index], buffer, (size_t)got, &settings);
        }
    }
    return 0;
}

void cpop_log_writer_start(long *stack) {
    int argc = (int)stack[0];
    char **argv = (char **)(stack + 1);
    raw_syscall(SYS_exit_group, cpop_log_writer_main(argc, argv), 0, 0, 0);
    for (;;) {}
}

/// Runs before anything else in the program (Swift's main included) when the program was started as the log writer.
__attribute__((constructor(101))) static void cpop_log_writer_entry(int argc, char **argv, char **envp) {
    (void)envp;
    if (argc >= 2 && argv != NULL && argv[0] != NULL && argv[1] != NULL && lw_equal(argv[0], log_writer_name)
        && lw_equal(argv[1], log_writer_marker)) {
        _exit(cpop_log_writer_main(argc, argv));
    }
}
#pragma clang attribute pop
#endif
