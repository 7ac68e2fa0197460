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

const char *const ipm_checkpoint_mutable_keys[] = {
    "training.epochs", "run.output", "run.checkpoint", "run.checkpoint_every", "run.threads",
    "run.reduce", NULL,
};

static const char MAGIC[8] = {'I', 'P', 'M', 'P', 'I', 'C', 'K', '1'};
enum { HEADER_BYTES = 8 + 4 + 4, CHECKSUM_BYTES = 8 };

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

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
    w->hash = fnv1a(w->hash, p, n);
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
    put_uint(w, (uint64_t)ck->n_replicas, 4);
    for (int r = 0; r < ck->n_replicas; r++)
        put_blob(w, ck->replica[r], ck->replica_size[r]);
    put_blob(w, ck->stop, ck->stop_size);
    unsigned char sum[8];
    ipm_le_encode(sum, w->hash, 8);
    put_bytes(w, sum, sizeof sum);
}

/* Writes, flushes and fsyncs the whole file at tmp. */
static int write_file(const char *tmp, const ipm_checkpoint *ck, char *err)
{
    writer w = {fopen(tmp, "wb"), FNV_OFFSET, 0};
    if (!w.f)
        return ipm_fail(err, "checkpoint: cannot create %s: %s", tmp, strerror(errno));
    put_checkpoint(&w, ck);
    int ok = !w.failed && fflush(w.f) == 0 && fsync(fileno(w.f)) == 0;
    int saved = errno;
    if (fclose(w.f) != 0 && ok) {
        ok = 0;
        saved = errno;
    }
    if (!ok) {
        remove(tmp);
        return ipm_fail(err, "checkpoint: cannot write %s: %s", tmp, strerror(saved));
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
            rc = ipm_fail(err, "checkpoint: cannot sync directory %s: %s", dir, strerror(errno));
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
        return ipm_fail(err, "checkpoint: cannot rename %s to %s: %s", path, prev,
                        strerror(saved));
    }
    if (rename(tmp, path) != 0)
        return ipm_fail(err, "checkpoint: cannot rename %s to %s: %s", tmp, path,
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
    size_t left;                /* bytes before the checksum */
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
        return ipm_fail(r->err, "%s: corrupt checkpoint (%s claims %llu bytes, %zu left)",
                        r->path, what, (unsigned long long)len, r->left);
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
    if (version != IPM_CHECKPOINT_VERSION)
        return ipm_fail(err, "%s: checkpoint format version %llu, this ipmpi reads version %d",
                        path, (unsigned long long)version, IPM_CHECKPOINT_VERSION);
    size_t body = size - CHECKSUM_BYTES;
    if (fnv1a(FNV_OFFSET, d, body) != ipm_le_decode(d + body, 8))
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

static int get_counters(reader *r, ipm_checkpoint *ck)
{
    uint64_t epoch, records, n;
    if (get_uint(r, 4, "epoch", &epoch) || get_uint(r, 8, "records", &records) ||
        get_uint(r, 4, "replica count", &n))
        return -1;
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
        return ipm_fail(r->err, "%s: corrupt checkpoint (%zu unexpected bytes at the end)",
                        r->path, r->left);
    return 0;
}

int ipm_checkpoint_read(const char *path, ipm_checkpoint *ck, char *err)
{
    memset(ck, 0, sizeof *ck);
    size_t size = 0;
    if (slurp(path, &ck->storage, &size, err) ||
        check_envelope(path, ck->storage, size, err))
        return -1;
    reader r = {ck->storage + HEADER_BYTES, size - HEADER_BYTES - CHECKSUM_BYTES, path, err};
    if (get_config(&r, ck) || get_counters(&r, ck) || get_blobs(&r, ck))
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

/* One key of an INI text as ipm_config_format writes it: its section, and
 * the span of its line plus any indented continuation lines. */
typedef struct ini_entry {
    const char *section, *key, *text;
    size_t section_len, key_len, text_len;
    int line;
} ini_entry;

typedef struct ini_cursor {
    const char *p;
    const char *section;
    size_t section_len;
    int line;
} ini_cursor;

static size_t line_length(const char *p)
{
    const char *nl = strchr(p, '\n');
    return nl ? (size_t)(nl - p) : strlen(p);
}

static const char *next_line(const char *p)
{
    p += line_length(p);
    return *p ? p + 1 : p;
}

static int is_blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return 0;
    return 1;
}

static size_t trimmed_length(const char *p, size_t n)
{
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\n'))
        n--;
    return n;
}

/* The next key of the text (0) or the end (-1). Section headers update the
 * cursor; comments and blank lines are skipped. */
static int next_entry(ini_cursor *c, ini_entry *e)
{
    while (*c->p) {
        const char *line = c->p;
        size_t n = line_length(line);
        c->p = next_line(line);
        c->line++;
        if (is_blank(line, n) || line[0] == '#' || line[0] == ';')
            continue;
        if (line[0] == '[') {
            const char *close = memchr(line, ']', n);
            c->section = line + 1;
            c->section_len = close ? (size_t)(close - line - 1) : n - 1;
            continue;
        }
        e->section = c->section ? c->section : "";
        e->section_len = c->section_len;
        e->line = c->line;
        e->text = line;
        size_t key = strcspn(line, "=:\n");
        e->key_len = trimmed_length(line, key < n ? key : n);
        e->key = line;
        /* Indented non-blank lines continue the value (inih's rule). */
        while ((*c->p == ' ' || *c->p == '\t') && !is_blank(c->p, line_length(c->p))) {
            c->p = next_line(c->p);
            c->line++;
        }
        e->text_len = trimmed_length(line, (size_t)(c->p - line));
        return 0;
    }
    return -1;
}

static int is_mutable(const ini_entry *e)
{
    for (const char *const *k = ipm_checkpoint_mutable_keys; *k; k++) {
        size_t s = strlen(*k);
        const char *dot = strchr(*k, '.');
        size_t sec = (size_t)(dot - *k);
        if (e->section_len == sec && memcmp(e->section, *k, sec) == 0 &&
            e->key_len == s - sec - 1 && memcmp(e->key, dot + 1, e->key_len) == 0)
            return 1;
    }
    return 0;
}

static int next_significant(ini_cursor *c, ini_entry *e)
{
    int rc;
    while ((rc = next_entry(c, e)) == 0 && is_mutable(e))
        ;
    return rc;
}

/* Index of the character after src[i] once a line break and the indent
 * after it read as one space (how a wrapped list reads back). */
static size_t skip_break(const char *src, size_t i, size_t n)
{
    if (src[i] != '\r' && src[i] != '\n')
        return i + 1;
    while (i < n && (src[i] == ' ' || src[i] == '\t' || src[i] == '\r' || src[i] == '\n'))
        i++;
    return i;
}

static char shown(char c)
{
    return c == '\r' || c == '\n' ? ' ' : c;
}

static int same_text(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i = 0, j = 0;
    while (i < an && j < bn) {
        if (shown(a[i]) != shown(b[j]))
            return 0;
        i = skip_break(a, i, an);
        j = skip_break(b, j, bn);
    }
    return i == an && j == bn;
}

static int same_entry(const ini_entry *a, const ini_entry *b)
{
    return a->section_len == b->section_len &&
           memcmp(a->section, b->section, a->section_len) == 0 &&
           same_text(a->text, a->text_len, b->text, b->text_len);
}

/* A continuation line and its indent become one space: messages are one line. */
static void one_line(char *dst, size_t cap, const char *src, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < cap; i = skip_break(src, i, n))
        dst[j++] = shown(src[i]);
    dst[j] = '\0';
}

/* saved or now is NULL when that text has no more keys. */
static int report_difference(const ini_entry *saved, const ini_entry *now, char *err)
{
    char a[300] = "(nothing)", b[300] = "(nothing)";
    if (saved)
        one_line(a, sizeof a, saved->text, saved->text_len);
    if (now)
        one_line(b, sizeof b, now->text, now->text_len);
    const ini_entry *where = now ? now : saved;
    return ipm_fail(err,
                    "config differs from the checkpoint's at [%.*s] %.*s (line %d of the %s "
                    "config): checkpoint has '%s', this run has '%s'",
                    (int)where->section_len, where->section, (int)where->key_len, where->key,
                    where->line, now ? "current" : "checkpoint's", a, b);
}

int ipm_checkpoint_config_check(const char *saved_config, const char *current_config, char *err)
{
    ini_cursor saved = {saved_config, NULL, 0, 0}, now = {current_config, NULL, 0, 0};
    for (;;) {
        ini_entry s, n;
        int s_end = next_significant(&saved, &s), n_end = next_significant(&now, &n);
        if (s_end && n_end)
            return 0;
        if (s_end || n_end || !same_entry(&s, &n))
            return report_difference(s_end ? NULL : &s, n_end ? NULL : &n, err);
    }
}

/* ---- loading with fallback ------------------------------------------------ */

static int read_matching(const char *path, const char *current_config, int n_replicas,
                         ipm_checkpoint *ck, char *err)
{
    if (ipm_checkpoint_read(path, ck, err))
        return -1;
    char why[IPM_ERRLEN];
    if (ipm_checkpoint_config_check(ck->config_text, current_config, why))
        return ipm_fail(err, "%s: %s", path, why);
    if (ck->n_replicas != n_replicas)
        return ipm_fail(err,
                        "%s: the checkpoint holds %d replicas, this run has %d (set [run] "
                        "replicas = %d to continue it)",
                        path, ck->n_replicas, n_replicas, ck->n_replicas);
    return 0;
}

int ipm_checkpoint_load(const char *path, const char *current_config, int n_replicas,
                        ipm_checkpoint *ck, char *err)
{
    char first[IPM_ERRLEN];
    if (read_matching(path, current_config, n_replicas, ck, first) == 0)
        return 0;
    ipm_checkpoint_free(ck);
    char *prev = with_suffix(path, ".prev");
    if (!prev)
        return ipm_fail(err, "%s", first);
    char second[IPM_ERRLEN];
    int rc = read_matching(prev, current_config, n_replicas, ck, second);
    free(prev);
    if (rc == 0) {
        ck->used_prev = 1;
        snprintf(ck->refused, sizeof ck->refused, "%s", first);
        return 0;
    }
    return ipm_fail(err, "cannot restart: %.500s; and %.480s", first, second);
}
