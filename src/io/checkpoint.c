/* checkpoint: atomic write, validated read, config comparison, fallback to
 * PATH.prev. The reader loads the whole file (its size is what the disk
 * holds, never a size the file claims), checks the checksum, then walks it
 * with a cursor that refuses every length running past the end. */
#include "ipmpi/io/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipmpi/base/bytes.h"
#include "ipmpi/io/config.h"

const char *const ipm_checkpoint_mutable_keys[] = {
    "training.epochs",      "run.output",       "run.checkpoint",
    "run.checkpoint_every", "run.threads",      "run.reduce",
    "run.replicas",         "output.gradients", NULL,
};

static const char MAGIC[8] = {'I', 'P', 'M', 'P', 'I', 'C', 'K', '1'};
enum { HEADER_BYTES = 8 + 4 + 4, CHECKSUM_BYTES = 8 };

/* ---- writing ------------------------------------------------------------ */

typedef struct writer {
    FILE *f;
    uint64_t hash;
    int failed;
} writer;

static void put_bytes(writer *w, const void *p, size_t n)
{
    if (w->failed || n == 0)
        return;
    w->hash = ipm_fnv1a(w->hash, p, n);
    if (fwrite(p, 1, n, w->f) != n)
        w->failed = 1;
}

static void put_uint(writer *w, uint64_t v, int bytes)
{
    unsigned char b[8];
    ipm_le_encode(b, v, bytes);
    put_bytes(w, b, (size_t)bytes);
}

static void put_blob(writer *w, const void *p, size_t n)
{
    put_uint(w, n, 8);
    put_bytes(w, p, n);
}

static void put_checkpoint(writer *w, const ipm_checkpoint *ck)
{
    put_bytes(w, MAGIC, sizeof MAGIC);
    put_uint(w, IPM_CHECKPOINT_VERSION, 4);
    put_uint(w, 0, 4);
    put_blob(w, ck->config_text, strlen(ck->config_text));
    put_uint(w, (uint64_t)ck->epoch, 4);
    put_uint(w, (uint64_t)ck->records, 8);
    put_uint(w, ck->run_id, 8);
    put_uint(w, (uint64_t)ck->n_replicas, 4);
    for (int r = 0; r < ck->n_replicas; r++)
        put_blob(w, ck->replica[r], ck->replica_size[r]);
    put_blob(w, ck->stop, ck->stop_size);
    unsigned char sum[8];
    ipm_le_encode(sum, w->hash, 8);
    put_bytes(w, sum, sizeof sum);
}

/* A new file at tmp, never through what is there: a symbolic link left at
 * that name would have the checkpoint written into the file it names (and
 * then renamed into place as a link to it). The name is the run's own
 * (app/paths.c keeps .tmp names apart), so what is there goes. */
static FILE *create_new(const char *tmp)
{
    if (unlink(tmp) != 0 && errno != ENOENT)
        return NULL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "wb");
    if (fd >= 0 && !f) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return f;
}

/* Writes, flushes and fsyncs the whole file at tmp. */
static int write_file(const char *tmp, const ipm_checkpoint *ck, char *err)
{
    writer w = {create_new(tmp), IPM_FNV_OFFSET, 0};
    if (!w.f)
        return ipm_fail_as(err, IPM_ERR_IO, "checkpoint: cannot create %s: %s", tmp,
                           strerror(errno));
    put_checkpoint(&w, ck);
    int ok = !w.failed && fflush(w.f) == 0 && fsync(fileno(w.f)) == 0;
    int saved = errno;
    if (fclose(w.f) != 0 && ok) {
        ok = 0;
        saved = errno;
    }
    if (!ok) {
        remove(tmp);
        return ipm_fail_as(err, IPM_ERR_IO, "checkpoint: cannot write %s: %s", tmp,
                           strerror(saved));
    }
    return 0;
}

/* Makes the renames durable. Some file systems cannot fsync a directory
 * (EINVAL); only a real I/O error is reported. */
static int sync_directory(const char *path, char *err)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return ipm_fail(err, "checkpoint: out of memory");
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    int rc = 0;
    if (fd >= 0) {
        if (fsync(fd) != 0 && errno == EIO)
            rc = ipm_fail_as(err, IPM_ERR_IO, "checkpoint: cannot sync directory %s: %s", dir,
                             strerror(errno));
        close(fd);
    }
    free(dir);
    return rc;
}

static char *with_suffix(const char *path, const char *suffix)
{
    size_t n = strlen(path), m = strlen(suffix);
    char *s = malloc(n + m + 1);
    if (s) {
        memcpy(s, path, n);
        memcpy(s + n, suffix, m + 1);
    }
    return s;
}

static int check_writable(const ipm_checkpoint *ck, char *err)
{
    if (!ck->config_text || ck->epoch < 0 || ck->records < 0 || ck->n_replicas < 1 ||
        !ck->replica || !ck->replica_size)
        return ipm_fail(err, "checkpoint: nothing valid to write (no config, no replicas, or a "
                             "negative count)");
    for (int r = 0; r < ck->n_replicas; r++)
        if (!ck->replica[r] && ck->replica_size[r])
            return ipm_fail(err, "checkpoint: replica %d's state is missing", r);
    if (!ck->stop && ck->stop_size)
        return ipm_fail(err, "checkpoint: the stopping state is missing");
    return 0;
}

/* A failed first rename leaves everything as it was, so the tmp goes; after
 * it, the tmp is the only copy of the new checkpoint and stays. */
static int install(const char *path, const char *tmp, const char *prev, char *err)
{
    if (rename(path, prev) != 0 && errno != ENOENT) {
        int saved = errno;
        remove(tmp);
        return ipm_fail_as(err, IPM_ERR_IO, "checkpoint: cannot rename %s to %s: %s", path, prev,
                           strerror(saved));
    }
    if (rename(tmp, path) != 0)
        return ipm_fail_as(err, IPM_ERR_IO, "checkpoint: cannot rename %s to %s: %s", tmp, path,
                           strerror(errno));
    return sync_directory(path, err);
}

int ipm_checkpoint_write(const char *path, const ipm_checkpoint *ck, char *err)
{
    if (check_writable(ck, err))
        return -1;
    char *tmp = with_suffix(path, ".tmp"), *prev = with_suffix(path, ".prev");
    int rc = tmp && prev ? 0 : ipm_fail(err, "checkpoint: out of memory");
    if (rc == 0)
        rc = write_file(tmp, ck, err);
    if (rc == 0)
        rc = install(path, tmp, prev, err);
    free(tmp);
    free(prev);
    return rc;
}

/* ---- reading ------------------------------------------------------------ */

typedef struct reader {
    const unsigned char *p;
    size_t left; /* bytes before the checksum */
    const char *path;
    char *err;
} reader;

static int take(reader *r, size_t n, const char *what, const unsigned char **out)
{
    if (n > r->left)
        return ipm_fail(r->err,
                        "%s: truncated or corrupt checkpoint (%s needs %zu bytes, %zu left)",
                        r->path, what, n, r->left);
    *out = r->p;
    r->p += n;
    r->left -= n;
    return 0;
}

static int get_uint(reader *r, int bytes, const char *what, uint64_t *v)
{
    const unsigned char *p = NULL;
    if (take(r, (size_t)bytes, what, &p))
        return -1;
    *v = ipm_le_decode(p, bytes);
    return 0;
}

static int get_blob(reader *r, const char *what, const unsigned char **p, size_t *n)
{
    uint64_t len;
    if (get_uint(r, 8, what, &len))
        return -1;
    if (len > r->left)
        return ipm_fail(r->err, "%s: corrupt checkpoint (%s claims %llu bytes, %zu left)", r->path,
                        what, (unsigned long long)len, r->left);
    *n = (size_t)len;
    return take(r, *n, what, p);
}

/* Loads the whole file; its size bounds every allocation. */
static int slurp(const char *path, unsigned char **data, size_t *size, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ipm_fail(err, "%s: cannot open checkpoint: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
        rc = ipm_fail(err, "%s: not a regular file", path);
    else if ((uintmax_t)st.st_size > SIZE_MAX - 1)
        rc = ipm_fail(err, "%s: checkpoint too large", path);
    if (rc == 0) {
        *size = (size_t)st.st_size;
        *data = malloc(*size ? *size : 1);
        if (!*data)
            rc = ipm_fail(err, "%s: out of memory for a %zu-byte checkpoint", path, *size);
        else if (fread(*data, 1, *size, f) != *size)
            rc = ipm_fail(err, "%s: cannot read checkpoint: %s", path,
                          ferror(f) ? strerror(errno) : "file shrank while reading");
    }
    fclose(f);
    return rc;
}

static int check_envelope(const char *path, const unsigned char *d, size_t size, char *err)
{
    if (size < sizeof MAGIC || memcmp(d, MAGIC, sizeof MAGIC) != 0)
        return ipm_fail(err, "%s: not an ipmpi checkpoint (no IPMPICK1 magic)", path);
    if (size < HEADER_BYTES + CHECKSUM_BYTES)
        return ipm_fail(err, "%s: truncated checkpoint (%zu bytes)", path, size);
    uint64_t version = ipm_le_decode(d + 8, 4);
    if (version < 1 || version > IPM_CHECKPOINT_VERSION)
        return ipm_fail(err,
                        "%s: checkpoint format version %llu, this ipmpi reads versions "
                        "1 to %d",
                        path, (unsigned long long)version, IPM_CHECKPOINT_VERSION);
    size_t body = size - CHECKSUM_BYTES;
    if (ipm_fnv1a(IPM_FNV_OFFSET, d, body) != ipm_le_decode(d + body, 8))
        return ipm_fail(err, "%s: checksum mismatch: the checkpoint is truncated or corrupt", path);
    if (ipm_le_decode(d + 12, 4) != 0)
        return ipm_fail(err, "%s: unknown checkpoint flags", path);
    return 0;
}

static int get_config(reader *r, ipm_checkpoint *ck)
{
    const unsigned char *text;
    size_t len;
    if (get_blob(r, "config text", &text, &len))
        return -1;
    if (memchr(text, 0, len))
        return ipm_fail(r->err, "%s: corrupt checkpoint (NUL in the config text)", r->path);
    ck->config_text = malloc(len + 1);
    if (!ck->config_text)
        return ipm_fail(r->err, "%s: out of memory", r->path);
    memcpy(ck->config_text, text, len);
    ck->config_text[len] = '\0';
    return 0;
}

/* Version 1 has no run id (0: unknown). */
static int get_counters(reader *r, int version, ipm_checkpoint *ck)
{
    uint64_t epoch, records, n, run_id = 0;
    if (get_uint(r, 4, "epoch", &epoch) || get_uint(r, 8, "records", &records) ||
        (version >= 2 && get_uint(r, 8, "run id", &run_id)) || get_uint(r, 4, "replica count", &n))
        return -1;
    ck->run_id = run_id;
    if (epoch > INT_MAX || records > LONG_MAX)
        return ipm_fail(r->err, "%s: corrupt checkpoint (epoch %llu, records %llu)", r->path,
                        (unsigned long long)epoch, (unsigned long long)records);
    /* Every replica takes at least its 8-byte length. */
    if (n == 0 || n > INT_MAX || n > r->left / 8)
        return ipm_fail(r->err, "%s: corrupt checkpoint (%llu replicas in %zu bytes)", r->path,
                        (unsigned long long)n, r->left);
    ck->epoch = (int)epoch;
    ck->records = (long)records;
    ck->n_replicas = (int)n;
    return 0;
}

static int get_blobs(reader *r, ipm_checkpoint *ck)
{
    size_t n = (size_t)ck->n_replicas;
    ck->replica = malloc(n * sizeof *ck->replica);
    ck->replica_size = malloc(n * sizeof *ck->replica_size);
    if (!ck->replica || !ck->replica_size)
        return ipm_fail(r->err, "%s: out of memory for %zu replicas", r->path, n);
    for (size_t i = 0; i < n; i++)
        if (get_blob(r, "replica state", &ck->replica[i], &ck->replica_size[i]))
            return -1;
    if (get_blob(r, "stopping state", &ck->stop, &ck->stop_size))
        return -1;
    if (r->left != 0)
        return ipm_fail(r->err, "%s: corrupt checkpoint (%zu unexpected bytes at the end)", r->path,
                        r->left);
    return 0;
}

int ipm_checkpoint_read(const char *path, ipm_checkpoint *ck, char *err)
{
    memset(ck, 0, sizeof *ck);
    size_t size = 0;
    if (slurp(path, &ck->storage, &size, err) || check_envelope(path, ck->storage, size, err))
        return -1;
    reader r = {ck->storage + HEADER_BYTES, size - HEADER_BYTES - CHECKSUM_BYTES, path, err};
    int version = (int)ipm_le_decode(ck->storage + 8, 4);
    if (get_config(&r, ck) || get_counters(&r, version, ck) || get_blobs(&r, ck))
        return -1;
    return 0;
}

void ipm_checkpoint_free(ipm_checkpoint *ck)
{
    free(ck->config_text);
    free(ck->replica);
    free(ck->replica_size);
    free(ck->storage);
    memset(ck, 0, sizeof *ck);
}

/* ---- config comparison ---------------------------------------------------- */

/* The epochs whose activations the output stores are a fixed dimension of
 * it (activation_epoch): a restart whose [training] epochs changes them
 * (activations = all, every:K, log:N) could not write them. */
static int check_activation_epochs(const ipm_config *saved, const ipm_config *current, char *err)
{
    if (saved->epochs == current->epochs)
        return 0;
    int *was = NULL, *now = NULL, n_was = 0, n_now = 0, rc = 0;
    char why[IPM_ERRLEN];
    if (ipm_epochs_expand(&saved->activation_epochs, saved->epochs, &was, &n_was, why) == 0 &&
        ipm_epochs_expand(&current->activation_epochs, current->epochs, &now, &n_now, why) == 0 &&
        (n_was != n_now || memcmp(was, now, (size_t)n_now * sizeof *now) != 0)) {
        ipm_config_fail(current, "training", "epochs", err,
                        " = %d changes the epochs whose activations [output] activations stores "
                        "(%d in the output, %d with this value), and the output's "
                        "activation_epoch dimension is fixed: restart with epochs = %d, or start "
                        "afresh with --overwrite",
                        current->epochs, n_was, n_now, saved->epochs);
        rc = -1;
    }
    free(was);
    free(now);
    return rc;
}

/* Both configs as the config parser reads them (one INI reader for the
 * whole program), compared key by key on their formatted values. */
int ipm_checkpoint_config_check(const char *saved_config, const ipm_config *current, char *err)
{
    ipm_config saved;
    char why[IPM_ERRLEN];
    if (ipm_config_load_text(&saved, saved_config, "the checkpoint's config", why)) {
        ipm_config_free(&saved);
        return ipm_fail(err, "its config does not load: %s", why);
    }
    ipm_config_difference d;
    int rc = ipm_config_first_difference(&saved, current, ipm_checkpoint_mutable_keys, &d);
    if (rc == 0 && check_activation_epochs(&saved, current, err)) {
        ipm_config_free(&saved);
        return -1;
    }
    ipm_config_free(&saved);
    if (rc < 0)
        return ipm_fail(err, "out of memory comparing configs");
    if (rc == 0)
        return 0;
    ipm_config_fail(
        current, d.section, d.name, err,
        " = %.200s differs from the checkpoint's %.200s (a restart may change only "
        "[training] epochs, [run] output, checkpoint, checkpoint_every, threads, reduce, "
        "[output] gradients)",
        d.b, d.a);
    ipm_config_difference_free(&d);
    return -1;
}

/* ---- loading with fallback ------------------------------------------------ */

static int read_matching(const char *path, const ipm_config *current, int n_replicas,
                         ipm_checkpoint *ck, char *err)
{
    if (ipm_checkpoint_read(path, ck, err))
        return -1;
    char why[IPM_ERRLEN];
    if (ipm_checkpoint_config_check(ck->config_text, current, why))
        return ipm_fail(err, "%s: %s", path, why);
    if (ck->n_replicas != n_replicas)
        return ipm_fail(err,
                        "%s: the checkpoint holds %d replicas, this run has %d (set [run] "
                        "replicas = %d, or 0 to take the checkpoint's count, to continue it)",
                        path, ck->n_replicas, n_replicas, ck->n_replicas);
    return 0;
}

/* Whether there is no file at path at all (so nothing to fall back on). */
static int absent(const char *path)
{
    struct stat st;
    return stat(path, &st) != 0 && errno == ENOENT;
}

/* The error when a checkpoint failed for `first` and its .prev for
 * `second`, or was not there (second NULL): then the first reason alone,
 * with its kind. */
static int neither(char *err, const char *first, const char *second)
{
    if (!second)
        return ipm_fail_wrap(err, first, "cannot restart: %.1000s", first);
    return ipm_fail(err, "cannot restart: %.500s; and %.480s", first, second);
}

int ipm_checkpoint_load(const char *path, const ipm_config *current, int n_replicas,
                        ipm_checkpoint *ck, char *err)
{
    char first[IPM_ERRLEN];
    if (read_matching(path, current, n_replicas, ck, first) == 0)
        return 0;
    ipm_checkpoint_free(ck);
    char *prev = with_suffix(path, ".prev");
    if (!prev)
        return ipm_fail(err, "%s", first);
    char second[IPM_ERRLEN];
    int no_prev = absent(prev);
    int rc = no_prev ? -1 : read_matching(prev, current, n_replicas, ck, second);
    free(prev);
    if (rc == 0) {
        ck->used_prev = 1;
        snprintf(ck->refused, sizeof ck->refused, "%s", first);
        return 0;
    }
    return neither(err, first, no_prev ? NULL : second);
}

/* ---- the replica count alone ---------------------------------------------- */

/* The header up to the replica count, read in place (the config text is
 * skipped, the replica states not read); 0 with *n, or -1. */
static int peek_replicas(const char *path, int *n, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ipm_fail(err, "%s: cannot open checkpoint: %s", path, strerror(errno));
    unsigned char head[HEADER_BYTES + 8], counters[4 + 8 + 8 + 4];
    int rc = fread(head, 1, sizeof head, f) == sizeof head && memcmp(head, MAGIC, 8) == 0 ? 0 : -1;
    uint64_t version = rc == 0 ? ipm_le_decode(head + 8, 4) : 0;
    size_t counter_bytes = version >= 2 ? 24 : 16;
    uint64_t text = ipm_le_decode(head + HEADER_BYTES, 8);
    if (rc == 0 && (version < 1 || version > IPM_CHECKPOINT_VERSION || text > INT64_MAX ||
                    fseeko(f, (off_t)text, SEEK_CUR) != 0 ||
                    fread(counters, 1, counter_bytes, f) != counter_bytes))
        rc = -1;
    uint64_t count = rc == 0 ? ipm_le_decode(counters + counter_bytes - 4, 4) : 0;
    fclose(f);
    if (rc || count < 1 || count > INT_MAX)
        return ipm_fail(err, "%s: not a readable ipmpi checkpoint", path);
    *n = (int)count;
    return 0;
}

int ipm_checkpoint_replicas(const char *path, int *n, char *err)
{
    char first[IPM_ERRLEN];
    if (peek_replicas(path, n, first) == 0)
        return 0;
    char *prev = with_suffix(path, ".prev");
    char second[IPM_ERRLEN];
    int no_prev = prev && absent(prev);
    int rc = !prev     ? ipm_fail(second, "out of memory")
             : no_prev ? -1
                       : peek_replicas(prev, n, second);
    free(prev);
    if (rc == 0)
        return 0;
    return neither(err, first, no_prev ? NULL : second);
}
