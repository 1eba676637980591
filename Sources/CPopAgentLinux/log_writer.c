// pop-log: the per-instance log writer. It reads an instance's output from pipes and writes it to the instance's log
// files, each kept at most a set size at every moment, and indexes what it writes so that readers can resume at a
// line (docs/observability.md, The journal).
//
// It is the agent's own executable started again under another name: a constructor recognises the name before
// anything else in the program runs, writes the logs and exits. So no second binary needs installing, and in pop's
// static release build it costs about as little as a small C program (no Swift code runs in it).
#ifdef __linux__
#define _GNU_SOURCE
#include "CPopAgentLinux.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

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
    char path[PATH_MAX];
    char index_path[PATH_MAX];
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
        ssize_t written = write(fd, data, count);
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) return 0;
        data += written;
        count -= (size_t)written;
    }
    return 1;
}

/// Reads exactly `count` bytes at `offset`; false on a short file or an error.
static int read_at(int fd, void *data, size_t count, off_t offset) {
    char *bytes = data;
    while (count > 0) {
        ssize_t got = pread(fd, bytes, count, offset);
        if (got < 0 && errno == EINTR) continue;
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
        at = memchr(at, '\n', (size_t)(end - at));
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
        ssize_t got = pread(fd, buffer, want, from);
        if (got < 0 && errno == EINTR) continue;
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
    clock_gettime(CLOCK_REALTIME, &now);
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

/// Empties the index and writes its header: the stream's id, and where the log file starts in the stream.
static int write_header(struct log_stream *stream, unsigned long long base_line, int mid_line) {
    struct cpop_log_index_header header = {
        .magic = CPOP_LOG_INDEX_MAGIC, .stream = stream->stream, .base_line = base_line,
        .flags = mid_line ? CPOP_LOG_INDEX_CONTINUES : 0, .reserved = 0};
    while (ftruncate(stream->index, 0) != 0 && errno == EINTR) {}
    return write_all(stream->index, (const char *)&header, sizeof(header));
}

/// Starts a new stream over the log file as it is: a new id, its lines counted from 0, and what the file holds
/// already (written before there was an index) dated by the file's modification time.
static void start_stream(struct log_stream *stream, const struct stat *file_info) {
    unsigned long long id = 0;
    if (getrandom(&id, sizeof(id), 0) != sizeof(id)) id = (unsigned long long)now_nanoseconds() ^ ((unsigned long long)getpid() << 40);
    stream->stream = id;
    stream->lines = 0;
    stream->mid_line = 0;
    write_header(stream, 0, 0);
    if (file_info->st_size > 0) {
        struct cpop_log_index_record record = {
            .offset = 0, .line = 0,
            .time = (long long)file_info->st_mtim.tv_sec * 1000000000LL + file_info->st_mtim.tv_nsec, .flags = 0};
        write_all(stream->index, (const char *)&record, sizeof(record));
        stream->lines = count_file_lines(stream->file, 0, file_info->st_size);
        stream->mid_line = ends_mid_line(stream->file, file_info->st_size);
    }
}

/// Learns where the stream stands from the files themselves: the index's last record, plus the newlines written
/// after it. Called when this writer has not written the files' current state itself.
static void load_state(struct log_stream *stream) {
    struct stat file_info, index_info;
    if (fstat(stream->file, &file_info) != 0 || fstat(stream->index, &index_info) != 0) return;
    struct cpop_log_index_header header;
    long long entries = index_info.st_size / CPOP_LOG_INDEX_ENTRY_SIZE;
    if (entries < 1 || !read_at(stream->index, &header, sizeof(header), 0) || header.magic != CPOP_LOG_INDEX_MAGIC) {
        start_stream(stream, &file_info);
    } else {
        // A record torn by a crash is dropped.
        if (index_info.st_size % CPOP_LOG_INDEX_ENTRY_SIZE != 0) {
            while (ftruncate(stream->index, entries * CPOP_LOG_INDEX_ENTRY_SIZE) != 0 && errno == EINTR) {}
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
    if (fstat(stream->file, &file_info) == 0 && fstat(stream->index, &index_info) == 0) {
        stream->file_size = file_info.st_size;
        stream->index_size = index_info.st_size;
    }
}

/// Copies `source` (from its start) into a new `destination`.
static int copy_file(int source, const char *destination) {
    int output = open(destination, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (output < 0) return 0;
    loff_t offset = 0;
    int ok = 1;
    for (;;) {
        ssize_t copied = copy_file_range(source, &offset, output, NULL, 1 << 30, 0);
        if (copied < 0 && errno == EINTR) continue;
        if (copied == 0) break;
        if (copied > 0) continue;
        // Not supported between these files: copy through a buffer.
        char buffer[65536];
        for (;;) {
            ssize_t count = pread(source, buffer, sizeof(buffer), offset);
            if (count < 0 && errno == EINTR) continue;
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
    close(output);
    return ok;
}

/// Moves PATH.1 ... PATH.(keep-1) up by one (dropping PATH.keep) and copies PATH to PATH.1.
static void shift_and_copy(int file, const char *path, int keep) {
    char from[PATH_MAX + 16], to[PATH_MAX + 16];
    snprintf(to, sizeof(to), "%s.%d", path, keep);
    unlink(to);
    for (int index = keep - 1; index >= 1; index--) {
        snprintf(from, sizeof(from), "%s.%d", path, index);
        snprintf(to, sizeof(to), "%s.%d", path, index + 1);
        rename(from, to);
    }
    snprintf(to, sizeof(to), "%s.1", path);
    copy_file(file, to);
}

/// Rotates the log and its index together: NAME.1 ... move up one (the oldest goes first, so the files never hold
/// more than (keep + 1) times the limit), NAME is copied to NAME.1 and emptied, and the emptied index starts where
/// the copied one ended. The log keeps its inode, so readers following it and another writer of it stay on it.
static void rotate(struct log_stream *stream, const struct log_settings *settings) {
    if (settings->keep > 0) {
        shift_and_copy(stream->file, stream->path, settings->keep);
        shift_and_copy(stream->index, stream->index_path, settings->keep);
    }
    while (ftruncate(stream->file, 0) != 0 && errno == EINTR) {}
    write_header(stream, stream->lines, stream->mid_line);
    stream->file_size = 0;
    stream->index_size = CPOP_LOG_INDEX_ENTRY_SIZE;
}

/// How much of `data` goes into a file with `room` bytes left: all of it when it fits, else up to its last newline
/// within the room; 0 (rotate first) when no line ends there, unless the file is empty (a line longer than a file).
static size_t fitting(const char *data, size_t count, long long room, long long file_size) {
    if ((long long)count <= room) return count;
    if (room <= 0) return 0;
    const char *newline = memrchr(data, '\n', (size_t)room);
    if (newline != NULL) return (size_t)(newline - data) + 1;
    return file_size == 0 ? (size_t)room : 0;
}

/// Appends `count` bytes with their index record, rotating whenever the log and its index reach the limit, so that
/// together they never hold more. The lock makes the size check, the writes and the rotation one step against
/// another writer of the same files (the writer of the instance's previous process may still be draining its pipe),
/// and against readers that take it shared to learn up to which time the files are complete.
static void append(struct log_stream *stream, const char *data, size_t count, const struct log_settings *settings) {
    while (flock(stream->file, LOCK_EX) != 0 && errno == EINTR) {}
    struct stat file_info, index_info;
    if (fstat(stream->file, &file_info) != 0 || fstat(stream->index, &index_info) != 0) goto unlock;
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
        struct cpop_log_index_record record = {
            .offset = (unsigned long long)stream->file_size, .line = stream->lines, .time = time,
            .flags = stream->mid_line ? CPOP_LOG_INDEX_CONTINUES : 0};
        if (!write_all(stream->index, (const char *)&record, sizeof(record))) break;
        // A full disk loses this output; the pipe keeps being drained, so the instance never blocks on its logs.
        if (!write_all(stream->file, data, chunk)) {
            while (ftruncate(stream->index, stream->index_size) != 0 && errno == EINTR) {}
            while (ftruncate(stream->file, stream->file_size) != 0 && errno == EINTR) {}
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
    flock(stream->file, LOCK_UN);
}

/// Opens FOLDER/NAME for appending, or /dev/null when it cannot be opened (the instance must not die of its logs).
static int open_appending(const char *path) {
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "pop-log: cannot open %s: %s; dropping its output\n", path, strerror(errno));
        fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    }
    return fd;
}

int cpop_log_writer_main(int argc, char **argv) {
    // pop-log MARKER FOLDER MAXIMUM-BYTES KEEP FD=FILE...
    if (argc < 6 || strcmp(argv[1], log_writer_marker) != 0) {
        fprintf(stderr, "pop-log: this program is started by pop's agent, not by hand\n");
        return 2;
    }
    struct log_settings settings = {atoll(argv[3]), atoi(argv[4])};
    if (settings.maximum < 4096) settings.maximum = 4096;
    if (settings.keep < 0) settings.keep = 0;
    signal(SIGPIPE, SIG_IGN);
    int count = argc - 5;
    if (count > 8) count = 8;
    struct log_stream streams[8];
    struct pollfd waits[8];
    int open_streams = 0;
    for (int index = 0; index < count; index++) {
        const char *argument = argv[5 + index];
        const char *equals = strchr(argument, '=');
        if (equals == NULL) return 2;
        struct log_stream *stream = &streams[open_streams];
        stream->input = atoi(argument);
        snprintf(stream->path, sizeof(stream->path), "%s/%s", argv[2], equals + 1);
        // stdout.log is indexed in stdout.idx.
        size_t length = strlen(stream->path);
        if (length > 4 && strcmp(stream->path + length - 4, ".log") == 0) length -= 4;
        snprintf(stream->index_path, sizeof(stream->index_path), "%.*s.idx", (int)length, stream->path);
        stream->file = open_appending(stream->path);
        stream->index = open_appending(stream->index_path);
        stream->file_size = -1;
        stream->index_size = -1;
        waits[open_streams].fd = stream->input;
        waits[open_streams].events = POLLIN;
        open_streams++;
    }
    static char buffer[256 * 1024];
    int remaining = open_streams;
    while (remaining > 0) {
        int ready = poll(waits, (nfds_t)open_streams, -1);
        if (ready < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        for (int index = 0; index < open_streams; index++) {
            if (waits[index].fd < 0 || waits[index].revents == 0) continue;
            ssize_t got = read(waits[index].fd, buffer, sizeof(buffer));
            if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            if (got <= 0) {
                // Every writer (the instance's whole group) has closed its end.
                close(waits[index].fd);
                waits[index].fd = -1;
                remaining--;
                continue;
            }
            append(&streams[index], buffer, (size_t)got, &settings);
        }
    }
    return 0;
}

/// Runs before anything else in the program (Swift's main included) when the program was started as the log writer.
__attribute__((constructor(101))) static void cpop_log_writer_entry(int argc, char **argv, char **envp) {
    (void)envp;
    if (argc >= 2 && argv != NULL && argv[0] != NULL && argv[1] != NULL && strcmp(argv[0], log_writer_name) == 0
        && strcmp(argv[1], log_writer_marker) == 0) {
        _exit(cpop_log_writer_main(argc, argv));
    }
}
#endif
