/* checkpoint: replica state blobs (continuing from one is bitwise the same as
 * never stopping), the file format against a hand-built byte image, checksum
 * and truncation refusals, .prev rotation and fallback, config comparison,
 * atomicity when the write fails.
 * `test_checkpoint --corpus DIR` also writes the fuzz corpus into DIR. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipmpi/base/error.h"
#include "ipmpi/io/checkpoint.h"
#include "check.h"
#include "checkpoint_fixture.h"
#include "replica_util.h"

static char dir[256];

static const char *in_dir(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

static unsigned char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    unsigned char *d = malloc((size_t)n + 1);
    *size = fread(d, 1, (size_t)n, f);
    fclose(f);
    return d;
}

/* Rewrites in place rather than truncating to 0 first: ext4 flushes a file
 * truncated to 0 and rewritten when it is closed, which costs ~10 ms a call. */
static void write_all(const char *path, const unsigned char *d, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(size == 0 || pwrite(fd, d, size, 0) == (ssize_t)size);
    CHECK(ftruncate(fd, (off_t)size) == 0);
    close(fd);
}

static unsigned char *pack(const ipm_replica *rep, size_t *size)
{
    char err[IPM_ERRLEN];
    *size = ipm_replica_state_size(rep);
    unsigned char *b = malloc(*size);
    CHECK(ipm_replica_pack(rep, b, *size, err) == 0);
    return b;
}

/* ---- replica state ------------------------------------------------------ */

static int same_state(const ipm_replica *a, const ipm_replica *b)
{
    size_t n = a->net.n_params * sizeof(float);
    int same = memcmp(a->net.params, b->net.params, n) == 0 && a->opt.step == b->opt.step &&
               a->position == b->position && a->batch_rng.counter == b->batch_rng.counter &&
               a->batch_rng.used == b->batch_rng.used &&
               memcmp(a->order, b->order, (size_t)a->n_train * sizeof(int32_t)) == 0;
    if (a->opt.m)
        same = same && memcmp(a->opt.m, b->opt.m, n) == 0;
    if (a->opt.v)
        same = same && memcmp(a->opt.v, b->opt.v, n) == 0;
    return same;
}

/* Train k epochs, pack, unpack into a fresh replica, train both m more:
 * bitwise the same. A fresh replica trained m epochs is not (the check can fail). */
static void continuation(enum ipm_optimizer kind, int batches_per_epoch)
{
    char err[IPM_ERRLEN];
    ipm_config cfg;
    fixture_config(&cfg);
    cfg.optimizer = kind;
    cfg.batch_size = 8;
    cfg.batches_per_epoch = batches_per_epoch;
    ipm_dataset data;
    fixture_data(&data, 50, 3);
    ipm_replica a, b, fresh;
    CHECK(ipm_replica_for_config(&a, &cfg, &data, 2, err) == 0);
    CHECK(ipm_replica_for_config(&b, &cfg, &data, 2, err) == 0);
    CHECK(ipm_replica_for_config(&fresh, &cfg, &data, 2, err) == 0);
    for (int e = 0; e < 3; e++)
        train_on(&a, &data);
    size_t size;
    unsigned char *blob = pack(&a, &size);
    CHECK(ipm_replica_unpack(&b, blob, size, err) == 0);
    CHECK(same_state(&a, &b));
    CHECK(memcmp(&a.last_batch_loss, &b.last_batch_loss, sizeof(double)) == 0);
    for (int e = 0; e < 4; e++) {
        train_on(&a, &data);
        train_on(&b, &data);
        train_on(&fresh, &data);
    }
    CHECK(same_state(&a, &b));
    CHECK(!same_state(&a, &fresh));
    CHECK(a.opt.step == 7L * (batches_per_epoch ? batches_per_epoch : 7));
    size_t size_a, size_b;
    unsigned char *pa = pack(&a, &size_a), *pb = pack(&b, &size_b);
    CHECK(size_a == size_b && memcmp(pa, pb, size_a) == 0);
    free(pa);
    free(pb);
    free(blob);
    ipm_replica_free(&a);
    ipm_replica_free(&b);
    ipm_replica_free(&fresh);
    fixture_data_free(&data);
    ipm_config_free(&cfg);
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The documented layout: sizes and a few fields at their offsets. */
static void blob_layout(void)
{
    char err[IPM_ERRLEN];
    ipm_config cfg;
    fixture_config(&cfg);
    ipm_dataset data;
    fixture_data(&data, FIXTURE_SAMPLES, FIXTURE_DATA_SEED);
    ipm_replica rep;
    CHECK(ipm_replica_for_config(&rep, &cfg, &data, 1, err) == 0);
    train_on(&rep, &data);
    /* 2*4+4 + 4*2+2 = 22 params; Adam: 3 arrays; identity 4*4 + 3*4 + 2*24 + 16 = 92;
     * scalars 64. */
    size_t size;
    unsigned char *b = pack(&rep, &size);
    CHECK(rep.net.n_params == 22);
    CHECK(size == 92 + 64 + 4 * 22 * 3 + 4 * FIXTURE_SAMPLES);
    CHECK(memcmp(b, "IRS2", 4) == 0);
    CHECK(le32(b + 4) == 1);                                            /* index */
    CHECK(le32(b + 8) == 2 && le32(b + 12) == 2);                       /* in_dim, layers */
    CHECK(le32(b + 16) == 0 && le32(b + 20) == 0 && le32(b + 24) == 2); /* flat input of 2 */
    /* layer 1: in, out, activation, kind, kernel_h, kernel_w */
    CHECK(le32(b + 28) == 2 && le32(b + 32) == 4 && le32(b + 36) == IPM_ACT_TANH);
    CHECK(le32(b + 40) == IPM_LAYER_DENSE && le32(b + 44) == 0 && le32(b + 48) == 0);
    CHECK(le32(b + 76) == FIXTURE_SAMPLES && le32(b + 80) == IPM_OPT_ADAM);
    CHECK(le32(b + 92) == 3);       /* step after 3 batches */
    CHECK(le32(b + 92 + 60) == 10); /* position: batches of 4, 4, 2 */
    float p0;
    uint32_t bits = le32(b + 156);
    memcpy(&p0, &bits, sizeof p0);
    CHECK(memcmp(&p0, &rep.net.params[0], sizeof p0) == 0);
    CHECK((int32_t)le32(b + size - 4) == rep.order[FIXTURE_SAMPLES - 1]);
    CHECK(ipm_replica_pack(&rep, b, size - 1, err) == -1);
    free(b);
    ipm_replica_free(&rep);
    fixture_data_free(&data);
    ipm_config_free(&cfg);
}

static void expect_refused(ipm_replica *rep, const unsigned char *b, size_t size,
                           const char *needle)
{
    char err[IPM_ERRLEN] = "";
    size_t before_size;
    unsigned char *before = pack(rep, &before_size);
    CHECK(ipm_replica_unpack(rep, b, size, err) == -1);
    if (!strstr(err, needle)) {
        fprintf(stderr, "expected '%s' in: %s\n", needle, err);
        CHECK(0);
    }
    size_t after_size;
    unsigned char *after = pack(rep, &after_size);
    CHECK(memcmp(before, after, before_size) == 0); /* untouched */
    free(before);
    free(after);
}

static void unpack_refusals(void)
{
    char err[IPM_ERRLEN];
    ipm_config cfg, wide;
    fixture_config(&cfg);
    fixture_config(&wide);
    wide.layers[0].units = 5;
    ipm_dataset data;
    fixture_data(&data, FIXTURE_SAMPLES, FIXTURE_DATA_SEED);
    ipm_replica r0, r1, w0;
    CHECK(ipm_replica_for_config(&r0, &cfg, &data, 0, err) == 0);
    CHECK(ipm_replica_for_config(&r1, &cfg, &data, 1, err) == 0);
    CHECK(ipm_replica_for_config(&w0, &wide, &data, 0, err) == 0);
    train_on(&r1, &data);
    size_t size;
    unsigned char *b1 = pack(&r1, &size), *b0 = pack(&r0, &size);

    expect_refused(&r0, b1, size, "belongs to replica 1");
    expect_refused(&w0, b0, size, "layer 1 differs");
    expect_refused(&r0, b0, size - 1, "expected");
    expect_refused(&r0, b0, 20, "truncated");

    unsigned char *bad = malloc(size);
    size_t order_at = size - 4 * FIXTURE_SAMPLES;
    memcpy(bad, b0, size);
    memcpy(bad + order_at, bad + order_at + 4, 4); /* a duplicate entry */
    expect_refused(&r0, bad, size, "batch order");
    memcpy(bad, b0, size);
    bad[order_at + 3] = 0x80; /* negative entry */
    expect_refused(&r0, bad, size, "batch order");
    memcpy(bad, b0, size);
    bad[92 + 60] = FIXTURE_SAMPLES + 1; /* position past the end */
    expect_refused(&r0, bad, size, "corrupt");
    memcpy(bad, b0, size);
    bad[92 + 56] = 5; /* rng words used */
    expect_refused(&r0, bad, size, "corrupt");
    memcpy(bad, b0, size);
    bad[92 + 16] ^= 1; /* seed */
    expect_refused(&r0, bad, size, "batch stream");
    /* Moving the state of replica 1 to a replica 1 elsewhere works. */
    ipm_replica other;
    CHECK(ipm_replica_for_config(&other, &cfg, &data, 1, err) == 0);
    CHECK(ipm_replica_unpack(&other, b1, size, err) == 0);
    CHECK(same_state(&other, &r1));

    free(bad);
    free(b0);
    free(b1);
    ipm_replica_free(&r0);
    ipm_replica_free(&r1);
    ipm_replica_free(&w0);
    ipm_replica_free(&other);
    fixture_data_free(&data);
    ipm_config_free(&cfg);
    ipm_config_free(&wide);
}

/* ---- checkpoint files --------------------------------------------------- */

/* An ensemble of three fixture replicas trained `epochs` epochs, packed. */
typedef struct ensemble {
    char *config_text;
    unsigned char *blob[3];
    size_t size[3];
    ipm_checkpoint ck;
} ensemble;

static void ensemble_make(ensemble *e, int epochs, const char *stop)
{
    char err[IPM_ERRLEN];
    ipm_config cfg;
    fixture_config(&cfg);
    ipm_dataset data;
    fixture_data(&data, FIXTURE_SAMPLES, FIXTURE_DATA_SEED);
    memset(e, 0, sizeof *e);
    e->config_text = ipm_config_format(&cfg);
    for (int r = 0; r < 3; r++) {
        ipm_replica rep;
        CHECK(ipm_replica_for_config(&rep, &cfg, &data, r, err) == 0);
        for (int k = 0; k < epochs; k++)
            train_on(&rep, &data);
        e->blob[r] = pack(&rep, &e->size[r]);
        ipm_replica_free(&rep);
    }
    e->ck.config_text = e->config_text;
    e->ck.epoch = epochs;
    e->ck.records = epochs / 2;
    e->ck.n_replicas = 3;
    e->ck.replica = (const unsigned char **)e->blob;
    e->ck.replica_size = e->size;
    e->ck.stop = (const unsigned char *)stop;
    e->ck.stop_size = stop ? strlen(stop) : 0;
    fixture_data_free(&data);
    ipm_config_free(&cfg);
}

static void ensemble_free(ensemble *e)
{
    free(e->config_text);
    for (int r = 0; r < 3; r++)
        free(e->blob[r]);
}

static void check_same(const ipm_checkpoint *a, const ipm_checkpoint *b)
{
    CHECK(strcmp(a->config_text, b->config_text) == 0);
    CHECK(a->epoch == b->epoch && a->records == b->records && a->n_replicas == b->n_replicas);
    CHECK(a->run_id == b->run_id);
    for (int r = 0; r < a->n_replicas && r < b->n_replicas; r++)
        CHECK(a->replica_size[r] == b->replica_size[r] &&
              memcmp(a->replica[r], b->replica[r], a->replica_size[r]) == 0);
    CHECK(a->stop_size == b->stop_size);
    CHECK(a->stop_size == 0 || memcmp(a->stop, b->stop, a->stop_size) == 0);
}

static uint64_t fnv1a_reference(const unsigned char *p, size_t n)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* The format byte by byte, against an image built here by hand. */
static void file_layout(void)
{
    char err[IPM_ERRLEN], path[512];
    const unsigned char blob[2] = {'x', 'y'};
    const unsigned char *blobs[1] = {blob};
    size_t sizes[1] = {2};
    ipm_checkpoint ck = {.config_text = "a=1",
                         .epoch = 7,
                         .records = 3,
                         .run_id = 0x0807060504030201ULL,
                         .n_replicas = 1,
                         .replica = blobs,
                         .replica_size = sizes,
                         .stop = (const unsigned char *)"S",
                         .stop_size = 1};
    CHECK(ipm_checkpoint_write(in_dir(path, sizeof path, "layout.ck"), &ck, err) == 0);
    unsigned char want[] = {'I', 'P', 'M', 'P', 'I', 'C', 'K', '1', 2,   0,   0, 0, 0, 0, 0, 0, 3,
                            0,   0,   0,   0,   0,   0,   0,   'a', '=', '1', 7, 0, 0, 0, 3, 0, 0,
                            0,   0,   0,   0,   0,   1,   2,   3,   4,   5,   6, 7, 8, 1, 0, 0, 0,
                            2,   0,   0,   0,   0,   0,   0,   0,   'x', 'y', 1, 0, 0, 0, 0, 0, 0,
                            0,   'S', 0,   0,   0,   0,   0,   0,   0,   0};
    uint64_t sum = fnv1a_reference(want, sizeof want - 8);
    for (int i = 0; i < 8; i++)
        want[sizeof want - 8 + (size_t)i] = (unsigned char)(sum >> (8 * i));
    size_t size;
    unsigned char *got = read_all(path, &size);
    CHECK(got && size == sizeof want && memcmp(got, want, size) == 0);
    free(got);
    ipm_checkpoint back;
    CHECK(ipm_checkpoint_read(path, &back, err) == 0);
    check_same(&ck, &back);
    ipm_checkpoint_free(&back);
    int n = 0;
    CHECK(ipm_checkpoint_replicas(path, &n, err) == 0 && n == 1);

    /* Version 1, written before run ids: the same without them, read with id 0. */
    unsigned char v1[sizeof want - 8];
    size_t at = 0;
    for (size_t i = 0; i < sizeof want; i++)
        if (i < 39 || i >= 47) /* the run id's 8 bytes go */
            v1[at++] = want[i];
    v1[8] = 1;
    sum = fnv1a_reference(v1, sizeof v1 - 8);
    for (int i = 0; i < 8; i++)
        v1[sizeof v1 - 8 + (size_t)i] = (unsigned char)(sum >> (8 * i));
    write_all(path, v1, sizeof v1);
    ck.run_id = 0;
    CHECK(ipm_checkpoint_read(path, &back, err) == 0);
    check_same(&ck, &back);
    ipm_checkpoint_free(&back);
    CHECK(ipm_checkpoint_replicas(path, &n, err) == 0 && n == 1);
}

static void round_trip(void)
{
    char err[IPM_ERRLEN], path[512];
    ensemble e;
    ensemble_make(&e, 2, "stop-state");
    in_dir(path, sizeof path, "round.ck");
    CHECK(ipm_checkpoint_write(path, &e.ck, err) == 0);
    ipm_checkpoint back;
    CHECK(ipm_checkpoint_read(path, &back, err) == 0);
    check_same(&e.ck, &back);
    ipm_checkpoint_free(&back);
    e.ck.stop = NULL; /* an empty stopping state */
    e.ck.stop_size = 0;
    CHECK(ipm_checkpoint_write(path, &e.ck, err) == 0);
    CHECK(ipm_checkpoint_read(path, &back, err) == 0);
    check_same(&e.ck, &back);
    ipm_checkpoint_free(&back);
    ensemble_free(&e);
}

/* The config that text (a config file called now.ini) reads as. */
static ipm_config config_of(const char *text)
{
    ipm_config cfg;
    char err[IPM_ERRLEN] = "";
    if (ipm_config_load_text(&cfg, text, "now.ini", err) != 0) {
        fprintf(stderr, "config does not load: %s\n", err);
        CHECK(0);
    }
    return cfg;
}

static int load_with(const char *path, const char *config, int replicas, ipm_checkpoint *ck,
                     char *err)
{
    ipm_config cfg = config_of(config);
    int rc = ipm_checkpoint_load(path, &cfg, replicas, ck, err);
    ipm_config_free(&cfg);
    return rc;
}

static int load_epoch(const char *path, const char *config, int *used_prev, char *err)
{
    ipm_checkpoint ck;
    int rc = load_with(path, config, 3, &ck, err);
    int epoch = rc == 0 ? ck.epoch : -1;
    *used_prev = ck.used_prev;
    ipm_checkpoint_free(&ck);
    return epoch;
}

/* Write epochs 1 then 2 (rotating 1 into .prev); every single flipped byte and
 * every truncation of the newest is refused, and load falls back to epoch 1. */
static void corruption(void)
{
    char err[IPM_ERRLEN], path[512], copy[600];
    ensemble e1, e2;
    ensemble_make(&e1, 1, NULL);
    ensemble_make(&e2, 2, "stop");
    in_dir(path, sizeof path, "corrupt.ck");
    CHECK(ipm_checkpoint_write(path, &e1.ck, err) == 0);
    CHECK(ipm_checkpoint_write(path, &e2.ck, err) == 0);
    size_t size;
    unsigned char *good = read_all(path, &size), *bad = malloc(size);
    int refused = 0, fell_back = 0, used_prev = 0;
    ipm_checkpoint ck;
    for (size_t i = 0; i < size; i++) {
        memcpy(bad, good, size);
        bad[i] ^= (unsigned char)(1u << (i % 8));
        write_all(path, bad, size);
        refused += ipm_checkpoint_read(path, &ck, err) == -1;
        ipm_checkpoint_free(&ck);
        fell_back += load_epoch(path, e2.config_text, &used_prev, err) == 1 && used_prev;
    }
    CHECK(refused == (int)size);
    CHECK(fell_back == (int)size);
    memcpy(bad, good, size);
    bad[size / 2] ^= 0x40;
    write_all(path, bad, size);
    CHECK(ipm_checkpoint_read(path, &ck, err) == -1);
    CHECK(strstr(err, "checksum") != NULL && strstr(err, path) != NULL);
    ipm_checkpoint_free(&ck);
    CHECK(load_with(path, e2.config_text, 3, &ck, err) == 0);
    CHECK(ck.used_prev == 1 && strstr(ck.refused, "checksum") != NULL);
    ipm_checkpoint_free(&ck);

    int truncations_refused = 0;
    for (size_t n = 0; n < size; n++) {
        write_all(path, good, n);
        truncations_refused += ipm_checkpoint_read(path, &ck, err) == -1;
        ipm_checkpoint_free(&ck);
    }
    CHECK(truncations_refused == (int)size);
    write_all(path, good, size);
    CHECK(load_epoch(path, e2.config_text, &used_prev, err) == 2 && !used_prev);

    /* Both bad: the error gives both reasons. */
    snprintf(copy, sizeof copy, "%s.prev", path);
    write_all(copy, good, 20);
    write_all(path, bad, size);
    CHECK(load_epoch(path, e2.config_text, &used_prev, err) == -1);
    CHECK(strstr(err, "checksum") != NULL && strstr(err, "truncated") != NULL);
    CHECK(strstr(err, copy) != NULL);
    free(good);
    free(bad);
    ensemble_free(&e1);
    ensemble_free(&e2);
}

/* Replaces the line starting with `key =` in [section] by `line`. */
static char *edit_config(const char *text, const char *section, const char *key, const char *line)
{
    char *out = malloc(strlen(text) + strlen(line) + 1);
    const char *sec = strstr(text, section);
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\n%s =", key);
    const char *at = sec ? strstr(sec, pattern) : NULL;
    if (!at) {
        strcpy(out, text);
        CHECK(0);
        return out;
    }
    at++;
    const char *end = strchr(at, '\n');
    size_t head = (size_t)(at - text);
    memcpy(out, text, head);
    strcpy(out + head, line);
    strcat(out, end);
    return out;
}

static void expect_config(const char *saved, const char *now, int ok, const char *needle)
{
    char err[IPM_ERRLEN] = "";
    ipm_config cfg = config_of(now);
    int rc = ipm_checkpoint_config_check(saved, &cfg, err);
    ipm_config_free(&cfg);
    CHECK(rc == (ok ? 0 : -1));
    if (!ok && !strstr(err, needle)) {
        fprintf(stderr, "expected '%s' in: %s\n", needle, err);
        CHECK(0);
    }
    CHECK(strchr(err, '\n') == NULL);
}

static void config_match(void)
{
    char err[IPM_ERRLEN], path[512];
    ensemble e;
    ensemble_make(&e, 1, NULL);
    const char *t = e.config_text;
    char *lr = edit_config(t, "[training]", "learning_rate", "learning_rate = 0.01");
    char *epochs = edit_config(t, "[training]", "epochs", "epochs = 5000");
    char *info = edit_config(t, "[information]", "epochs", "epochs = every:3");
    char *out = edit_config(t, "[run]", "output", "output = elsewhere.nc");
    char *threads = edit_config(t, "[run]", "threads", "threads = 2");
    /* The same list wrapped onto a continuation line, and a changed one. */
    const char *wrapped = "layers = dense:4:tanh,\n    dense:2:softmax";
    char *layers2 = edit_config(t, "[network]", "layers", wrapped);
    char *layers =
        edit_config(t, "[network]", "layers", "layers = dense:4:tanh,\n  dense:3:softmax");
    expect_config(t, t, 1, NULL);
    /* The key is named where this run's config set it: FILE:LINE. */
    expect_config(t, lr, 0, "now.ini:");
    expect_config(t, lr, 0, "[training] learning_rate = 0.01 differs from the checkpoint's 0.05");
    expect_config(t, epochs, 1, NULL);
    expect_config(t, out, 1, NULL);
    expect_config(t, threads, 1, NULL);
    expect_config(t, info, 0, "[information] epochs = every:3");
    expect_config(t, layers, 0, "[network] layers = dense:4:tanh, dense:3:softmax differs");
    expect_config(t, layers2, 1, NULL);
    expect_config(layers2, t, 1, NULL);
    expect_config(layers2, layers, 0, "the checkpoint's dense:4:tanh, dense:2:softmax");
    /* Values, not their spelling, are compared; comments and layout do not count. */
    char *spelled = edit_config(t, "[training]", "learning_rate", "learning_rate = 5e-2 ; lr");
    char *commented = malloc(strlen(t) + 32);
    snprintf(commented, strlen(t) + 32, "# a note\n\n%s\n; the end\n", t);
    expect_config(t, spelled, 1, NULL);
    expect_config(commented, t, 1, NULL);
    expect_config(t, commented, 1, NULL);
    /* A checkpoint whose config does not read is refused, saying so. */
    expect_config("[training]\nepochs = many\n", t, 0, "its config does not load");
    free(spelled);
    free(commented);

    /* load refuses a mismatch in both files, naming the key. */
    in_dir(path, sizeof path, "config.ck");
    CHECK(ipm_checkpoint_write(path, &e.ck, err) == 0);
    int used_prev;
    CHECK(load_epoch(path, lr, &used_prev, err) == -1);
    CHECK(strstr(err, "[training] learning_rate") != NULL);
    CHECK(load_epoch(path, epochs, &used_prev, err) == 1 && !used_prev);
    ipm_checkpoint ck;
    CHECK(load_with(path, t, 4, &ck, err) == -1 && strstr(err, "3 replicas") != NULL);
    ipm_checkpoint_free(&ck);
    free(lr);
    free(epochs);
    free(info);
    free(out);
    free(threads);
    free(layers);
    free(layers2);
    ensemble_free(&e);
}

static int file_epoch(const char *path)
{
    char err[IPM_ERRLEN];
    ipm_checkpoint ck;
    int epoch = ipm_checkpoint_read(path, &ck, err) == 0 ? ck.epoch : -1;
    ipm_checkpoint_free(&ck);
    return epoch;
}

static void rotation_and_failures(void)
{
    char err[IPM_ERRLEN], path[512], prev[600], tmp[600];
    in_dir(path, sizeof path, "rot.ck");
    snprintf(prev, sizeof prev, "%s.prev", path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ensemble e[4];
    for (int k = 1; k <= 3; k++) {
        ensemble_make(&e[k], k, NULL);
        CHECK(ipm_checkpoint_write(path, &e[k].ck, err) == 0);
        CHECK(file_epoch(path) == k);
        CHECK(file_epoch(prev) == (k == 1 ? -1 : k - 1));
        CHECK(access(tmp, F_OK) != 0);
    }
    size_t size_before;
    unsigned char *before = read_all(path, &size_before);
    /* Root ignores permissions, so failures are staged: the tmp cannot be
     * created (a directory is in the way)... */
    CHECK(mkdir(tmp, 0700) == 0);
    CHECK(ipm_checkpoint_write(path, &e[1].ck, err) == -1 && strstr(err, tmp) != NULL);
    CHECK(file_epoch(path) == 3 && file_epoch(prev) == 2);
    CHECK(rmdir(tmp) == 0);
    /* ...writing fails midway (a file size limit: EFBIG, as a full disk
     * gives ENOSPC; a link to /dev/full at the tmp is replaced, not
     * followed)... */
    struct rlimit was;
    CHECK(getrlimit(RLIMIT_FSIZE, &was) == 0);
    struct rlimit small = {100, was.rlim_max};
    void (*xfsz)(int) = signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
    CHECK(ipm_checkpoint_write(path, &e[1].ck, err) == -1 && strstr(err, "too large") != NULL);
    CHECK(setrlimit(RLIMIT_FSIZE, &was) == 0);
    signal(SIGXFSZ, xfsz);
    CHECK(file_epoch(path) == 3 && file_epoch(prev) == 2 && access(tmp, F_OK) != 0);
    CHECK(symlink("/dev/full", tmp) == 0);
    CHECK(ipm_checkpoint_write(path, &e[1].ck, err) == 0 && file_epoch(path) == 1);
    CHECK(file_epoch(prev) == 3 && access(tmp, F_OK) != 0);
    CHECK(remove(path) == 0 && rename(prev, path) == 0); /* epoch 3 back in place */
    write_all(prev, before, size_before);
    CHECK(file_epoch(path) == 3);
    /* ...or the rotation to .prev fails (a non-empty directory is in the way). */
    char inside[700];
    CHECK(remove(prev) == 0 && mkdir(prev, 0700) == 0);
    snprintf(inside, sizeof inside, "%s/x", prev);
    write_all(inside, (const unsigned char *)"x", 1);
    CHECK(ipm_checkpoint_write(path, &e[1].ck, err) == -1 && strstr(err, prev) != NULL);
    CHECK(file_epoch(path) == 3 && access(tmp, F_OK) != 0);
    size_t size_after;
    unsigned char *after = read_all(path, &size_after);
    CHECK(size_after == size_before && memcmp(before, after, size_before) == 0);
    CHECK(remove(inside) == 0 && rmdir(prev) == 0);
    /* Nothing there at all: the checkpoint is named, not the .prev that
     * was never there to fall back on. */
    int used_prev;
    char missing[512];
    in_dir(missing, sizeof missing, "missing.ck");
    CHECK(load_epoch(missing, e[1].config_text, &used_prev, err) == -1);
    CHECK(strstr(err, "missing.ck:") != NULL && strstr(err, "missing.ck.prev") == NULL);
    free(before);
    free(after);
    for (int k = 1; k <= 3; k++)
        ensemble_free(&e[k]);
}

/* ---- fuzz corpus -------------------------------------------------------- */

static void write_corpus(const char *out)
{
    char err[IPM_ERRLEN], path[1024];
    ensemble e;
    ensemble_make(&e, 2, "stop-state");
    snprintf(path, sizeof path, "%s/valid3.ck", out);
    CHECK(ipm_checkpoint_write(path, &e.ck, err) == 0);
    e.ck.n_replicas = 1;
    e.ck.stop_size = 0;
    snprintf(path, sizeof path, "%s/valid1.ck", out);
    CHECK(ipm_checkpoint_write(path, &e.ck, err) == 0);
    /* Checksum-valid files with bad replica states, for the unpack checks. */
    e.ck.n_replicas = 3;
    unsigned char *swapped = e.blob[0];
    e.blob[0] = e.blob[1];
    e.blob[1] = swapped;
    snprintf(path, sizeof path, "%s/swapped.ck", out);
    CHECK(ipm_checkpoint_write(path, &e.ck, err) == 0);
    size_t n = e.size[2];
    memcpy(e.blob[2] + n - 4, e.blob[2] + n - 8, 4);
    snprintf(path, sizeof path, "%s/dup_order.ck", out);
    CHECK(ipm_checkpoint_write(path, &e.ck, err) == 0);
    size_t size;
    snprintf(path, sizeof path, "%s/valid3.ck", out);
    unsigned char *good = read_all(path, &size);
    snprintf(path, sizeof path, "%s/truncated.ck", out);
    write_all(path, good, size / 2);
    good[size / 3] ^= 4;
    snprintf(path, sizeof path, "%s/flipped.ck", out);
    write_all(path, good, size);
    free(good);
    /* remove the .prev files the rotation left */
    const char *names[] = {"valid3.ck.prev", "valid1.ck.prev", "swapped.ck.prev",
                           "dup_order.ck.prev"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", out, names[i]);
        remove(path);
    }
    ensemble_free(&e);
}

static void remove_dir(void)
{
    const char *names[] = {"layout.ck",     "round.ck",      "corrupt.ck",  "corrupt.ck.prev",
                           "config.ck",     "rot.ck",        "rot.ck.prev", "layout.ck.prev",
                           "round.ck.prev", "config.ck.prev"};
    char path[512];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        remove(in_dir(path, sizeof path, names[i]));
    CHECK(rmdir(dir) == 0);
}

int main(int argc, char **argv)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/ipmpi_ck_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror(dir);
        return 1;
    }
    if (argc == 3 && strcmp(argv[1], "--corpus") == 0)
        write_corpus(argv[2]);
    continuation(IPM_OPT_SGD, 0);
    continuation(IPM_OPT_MOMENTUM, 3);
    continuation(IPM_OPT_ADAM, 0);
    continuation(IPM_OPT_ADAM, 5);
    blob_layout();
    unpack_refusals();
    file_layout();
    round_trip();
    corruption();
    config_match();
    rotation_and_failures();
    remove_dir();
    return check_report("checkpoint");
}
