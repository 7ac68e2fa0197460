/* fuzz_scratch: scratch files a fuzz target rewrites per input, since the
 * readers under test take a path. Created once per process under
 * $IPMPI_FUZZ_TMPDIR, else /dev/shm, else /tmp; the target removes them at
 * exit. */
#ifndef IPMPI_FUZZ_SCRATCH_H
#define IPMPI_FUZZ_SCRATCH_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

typedef struct fuzz_scratch {
    char path[512];
    int fd;
} fuzz_scratch;

static inline void fuzz_scratch_open(fuzz_scratch *s)
{
    /* tmpfs by default: ext4 flushes a file truncated and rewritten when it
     * is closed, which made every input cost ~10 ms of waiting. */
    const char *dir = getenv("IPMPI_FUZZ_TMPDIR");
    if (!dir || !*dir)
        dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(s->path, sizeof s->path, "%s/ipmpi_fuzz_XXXXXX", dir);
    s->fd = mkstemp(s->path);
    if (s->fd < 0) {
        perror(s->path);
        abort();
    }
}

static const fuzz_scratch *fuzz_scratch_registered[4];

static inline void fuzz_scratch_remove_all(void)
{
    for (size_t i = 0; i < sizeof fuzz_scratch_registered / sizeof *fuzz_scratch_registered; i++)
        if (fuzz_scratch_registered[i])
            unlink(fuzz_scratch_registered[i]->path);
}

/* fuzz_scratch_open, and the file is removed when the process exits. */
static inline void fuzz_scratch_open_temporary(fuzz_scratch *s)
{
    static size_t n;
    fuzz_scratch_open(s);
    if (n == 0)
        atexit(fuzz_scratch_remove_all);
    if (n < sizeof fuzz_scratch_registered / sizeof *fuzz_scratch_registered)
        fuzz_scratch_registered[n++] = s;
}

/* A broken invariant: abort, so that libFuzzer keeps the input as a crash. */
static inline void fuzz_require(int ok, const char *what, const char *detail)
{
    if (!ok) {
        fprintf(stderr, "fuzz target: %s\n%s\n", what, detail ? detail : "");
        abort();
    }
}

/* Makes the file hold exactly bytes[0..size). */
static inline void fuzz_scratch_write(const fuzz_scratch *s, const void *bytes, size_t size)
{
    if (ftruncate(s->fd, 0) != 0 || (size && pwrite(s->fd, bytes, size, 0) != (ssize_t)size)) {
        perror(s->path);
        abort();
    }
}

#endif
