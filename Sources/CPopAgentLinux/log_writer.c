// pop-log: the per-instance log writer. It reads an instance's output from pipes and writes it to the instance's log
// files, each kept at most a set size at every moment.
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
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static const char log_writer_name[] = "pop-log";
static const char log_writer_marker[] = "--pop-log-writer-1";

const char *cpop_log_writer_name(void) { return log_writer_name; }
const char *cpop_log_writer_marker(void) { return log_writer_marker; }

struct log_stream {
    int input;
    int file;
    char path[PATH_MAX];
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

/// Moves NAME.1 ... NAME.(keep-1) up by one (dropping NAME.keep), copies NAME to NAME.1 and empties NAME. The file
/// keeps its inode, so readers following it (`pop logs -f`) and another writer of it stay on it; the oldest copy
/// goes first, so the files never hold more than (keep + 1) times the limit.
static void rotate(struct log_stream *stream, const struct log_settings *settings) {
    char from[PATH_MAX + 16], to[PATH_MAX + 16];
    if (settings->keep > 0) {
        snprintf(to, sizeof(to), "%s.%d", stream->path, settings->keep);
        unlink(to);
        for (int index = settings->keep - 1; index >= 1; index--) {
            snprintf(from, sizeof(from), "%s.%d", stream->path, index);
            snprintf(to, sizeof(to), "%s.%d", stream->path, index + 1);
            rename(from, to);
        }
        snprintf(to, sizeof(to), "%s.1", stream->path);
        copy_file(stream->file, to);
    }
    while (ftruncate(stream->file, 0) != 0 && errno == EINTR) {}
}

/// Appends `count` bytes, rotating whenever the file reaches the limit, so that it never holds more. The lock makes
/// the size check, the write and the rotation one step against another writer of the same file (the logger of the
/// instance's previous process may still be draining its pipe).
static void append(struct log_stream *stream, const char *data, size_t count, const struct log_settings *settings) {
    while (flock(stream->file, LOCK_EX) != 0 && errno == EINTR) {}
    while (count > 0) {
        struct stat info;
        if (fstat(stream->file, &info) != 0) break;
        long long room = settings->maximum - (long long)info.st_size;
        if (room <= 0) {
            rotate(stream, settings);
            room = settings->maximum;
        }
        size_t chunk = count < (size_t)room ? count : (size_t)room;
        // A full disk loses this output; the pipe keeps being drained, so the instance never blocks on its logs.
        if (!write_all(stream->file, data, chunk)) break;
        data += chunk;
        count -= chunk;
    }
    flock(stream->file, LOCK_UN);
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
        stream->file = open(stream->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (stream->file < 0) {
            // The instance must not die of its logs (SIGPIPE): its output is drained and dropped instead.
            fprintf(stderr, "pop-log: cannot open %s: %s; dropping its output\n", stream->path, strerror(errno));
            stream->file = open("/dev/null", O_RDWR | O_CLOEXEC);
        }
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
