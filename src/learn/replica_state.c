/* replica_state: a replica's training state as a portable blob
 * (base/bytes.h), for checkpoints. Little-endian, fixed width, in this
 * order (unchanged since "IRS2", so old checkpoints restart):
 *   u32 magic "IRS2", u32 index, u32 in_dim, u32 n_layers,
 *   u32 input height, width, channels (flat: 0, 0, in_dim),
 *   n_layers x (u32 in, out, activation, kind, kernel_h, kernel_w),
 *   u32 n_train, u32 optimizer, u64 n_params                     -- identity
 *   u64 step, f64 last_batch_loss, batch rng (u32 key[2], stream, purpose,
 *   u64 counter, u32 block[4], u32 used), u32 position           -- scalars
 *   f32 params[n_params], moments (f32 m[] unless SGD, f32 v[] for Adam),
 *   i32 order[n_train]                                           -- arrays */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/bytes.h"
#include "ipmpi/base/error.h"
#include "ipmpi/learn/replica.h"

#define STATE_MAGIC 0x32535249u /* "IRS2"; "IRS1" had dense layers only */
enum { LAYER_WORDS = 6 };

/* What identifies layer l's shape and function in a blob. */
static void layer_words(const ipm_layer *d, uint32_t word[LAYER_WORDS])
{
    word[0] = (uint32_t)d->in;
    word[1] = (uint32_t)d->out;
    word[2] = (uint32_t)d->activation;
    word[3] = (uint32_t)d->kind;
    word[4] = (uint32_t)d->kernel_h;
    word[5] = (uint32_t)d->kernel_w;
}

static void put_identity(ipm_bytes *c, const ipm_replica *rep)
{
    const ipm_net *net = &rep->net;
    ipm_put_le(c, STATE_MAGIC, 4);
    ipm_put_le(c, (uint32_t)rep->index, 4);
    ipm_put_le(c, (uint32_t)net->in_dim, 4);
    ipm_put_le(c, (uint32_t)net->n_layers, 4);
    ipm_put_le(c, (uint32_t)net->input.height, 4);
    ipm_put_le(c, (uint32_t)net->input.width, 4);
    ipm_put_le(c, (uint32_t)net->input.channels, 4);
    for (int l = 0; l < net->n_layers; l++) {
        uint32_t word[LAYER_WORDS];
        layer_words(&net->layer[l], word);
        for (int i = 0; i < LAYER_WORDS; i++)
            ipm_put_le(c, word[i], 4);
    }
    ipm_put_le(c, (uint32_t)rep->n_train, 4);
    ipm_put_le(c, (uint32_t)rep->opt.kind, 4);
    ipm_put_le(c, rep->net.n_params, 8);
}

static void put_scalars(ipm_bytes *c, const ipm_replica *rep)
{
    ipm_put_le(c, (uint64_t)rep->opt.step, 8);
    ipm_put_f64(c, rep->last_batch_loss);
    const ipm_rng *g = &rep->batch_rng;
    ipm_put_le(c, g->key[0], 4);
    ipm_put_le(c, g->key[1], 4);
    ipm_put_le(c, g->stream, 4);
    ipm_put_le(c, g->purpose, 4);
    ipm_put_le(c, g->counter, 8);
    for (int i = 0; i < 4; i++)
        ipm_put_le(c, g->block[i], 4);
    ipm_put_le(c, (uint32_t)g->used, 4);
    ipm_put_le(c, (uint32_t)rep->position, 4);
}

static void put_floats(ipm_bytes *c, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ipm_put_f32(c, v[i]);
}

/* Writes the blob, or with a counting cursor (out == NULL) only sizes it. */
static void put_state(ipm_bytes *c, const ipm_replica *rep)
{
    put_identity(c, rep);
    put_scalars(c, rep);
    put_floats(c, rep->net.params, rep->net.n_params);
    int moments = ipm_optimizer_moments(rep->opt.kind);
    if (moments >= 1)
        put_floats(c, rep->opt.m, rep->opt.n);
    if (moments == 2)
        put_floats(c, rep->opt.v, rep->opt.n);
    for (int i = 0; i < rep->n_train; i++)
        ipm_put_le(c, (uint32_t)rep->order[i], 4);
}

size_t ipm_replica_state_size(const ipm_replica *rep)
{
    ipm_bytes count = ipm_bytes_writer(NULL);
    put_state(&count, rep);
    return count.pos;
}

int ipm_replica_pack(const ipm_replica *rep, unsigned char *buf, size_t size, char *err)
{
    if (size != ipm_replica_state_size(rep))
        return ipm_fail(err, "replica %d: state buffer of %zu bytes, needs %zu", rep->index, size,
                        ipm_replica_state_size(rep));
    ipm_bytes c = ipm_bytes_writer(buf);
    put_state(&c, rep);
    return 0;
}

/* The blob's identity part alone, to check a blob's length before reading it. */
static size_t identity_bytes(const ipm_replica *rep)
{
    ipm_bytes count = ipm_bytes_writer(NULL);
    put_identity(&count, rep);
    return count.pos;
}

static int check_layers(ipm_bytes *c, const ipm_replica *rep, char *err)
{
    const ipm_net *net = &rep->net;
    uint64_t in_dim = ipm_get_le(c, 4), n_layers = ipm_get_le(c, 4);
    if (in_dim != (uint64_t)net->in_dim || n_layers != (uint64_t)net->n_layers)
        return ipm_fail(err,
                        "replica %d: saved state is of a net with %llu inputs and %llu layers, "
                        "this one has %d and %d",
                        rep->index, (unsigned long long)in_dim, (unsigned long long)n_layers,
                        net->in_dim, net->n_layers);
    uint64_t h = ipm_get_le(c, 4), w = ipm_get_le(c, 4), ch = ipm_get_le(c, 4);
    if (h != (uint64_t)net->input.height || w != (uint64_t)net->input.width ||
        ch != (uint64_t)net->input.channels)
        return ipm_fail(err,
                        "replica %d: saved state is of a net with %llux%llux%llu input, this "
                        "one has %dx%dx%d",
                        rep->index, (unsigned long long)h, (unsigned long long)w,
                        (unsigned long long)ch, net->input.height, net->input.width,
                        net->input.channels);
    for (int l = 0; l < net->n_layers; l++) {
        uint32_t own[LAYER_WORDS];
        layer_words(&net->layer[l], own);
        int same = 1;
        for (int i = 0; i < LAYER_WORDS; i++)
            same &= ipm_get_le(c, 4) == own[i];
        if (!same)
            return ipm_fail(err, "replica %d: saved state's layer %d differs from this net's",
                            rep->index, l + 1);
    }
    return 0;
}

static int check_identity(ipm_bytes *c, const ipm_replica *rep, char *err)
{
    if (c->size < identity_bytes(rep))
        return ipm_fail(err, "replica %d: saved state is truncated (%zu bytes)", rep->index,
                        c->size);
    if (ipm_get_le(c, 4) != STATE_MAGIC)
        return ipm_fail(err, "replica %d: not a replica state (bad magic)", rep->index);
    uint64_t index = ipm_get_le(c, 4);
    if (index != (uint64_t)rep->index)
        return ipm_fail(err, "replica %d: saved state belongs to replica %llu", rep->index,
                        (unsigned long long)index);
    if (check_layers(c, rep, err))
        return -1;
    uint64_t n_train = ipm_get_le(c, 4), kind = ipm_get_le(c, 4), n_params = ipm_get_le(c, 8);
    if (c->short_read)
        return ipm_fail(err, "replica %d: saved state is truncated", rep->index);
    if (n_train != (uint64_t)rep->n_train || kind != (uint64_t)rep->opt.kind ||
        n_params != rep->net.n_params)
        return ipm_fail(err,
                        "replica %d: saved state has %llu training samples, optimizer %llu, %llu "
                        "params; this replica %d, %d, %zu",
                        rep->index, (unsigned long long)n_train, (unsigned long long)kind,
                        (unsigned long long)n_params, rep->n_train, (int)rep->opt.kind,
                        rep->net.n_params);
    if (c->size != ipm_replica_state_size(rep))
        return ipm_fail(err, "replica %d: saved state has %zu bytes, expected %zu", rep->index,
                        c->size, ipm_replica_state_size(rep));
    return 0;
}

typedef struct saved_scalars {
    long step;
    double last_batch_loss;
    ipm_rng batch_rng;
    int position;
} saved_scalars;

static int get_scalars(ipm_bytes *c, const ipm_replica *rep, saved_scalars *s, char *err)
{
    uint64_t step = ipm_get_le(c, 8);
    double last_batch_loss = ipm_get_f64(c);
    ipm_rng g;
    g.key[0] = (uint32_t)ipm_get_le(c, 4);
    g.key[1] = (uint32_t)ipm_get_le(c, 4);
    g.stream = (uint32_t)ipm_get_le(c, 4);
    g.purpose = (uint32_t)ipm_get_le(c, 4);
    g.counter = ipm_get_le(c, 8);
    for (int i = 0; i < 4; i++)
        g.block[i] = (uint32_t)ipm_get_le(c, 4);
    uint64_t used = ipm_get_le(c, 4), position = ipm_get_le(c, 4);
    const ipm_rng *own = &rep->batch_rng;
    if (g.key[0] != own->key[0] || g.key[1] != own->key[1] || g.stream != own->stream ||
        g.purpose != own->purpose)
        return ipm_fail(err, "replica %d: saved batch stream has another seed or replica",
                        rep->index);
    if (used > 4 || position > (uint64_t)rep->n_train || step > (uint64_t)LONG_MAX)
        return ipm_fail(err, "replica %d: corrupt saved state (rng words used %llu, position %llu)",
                        rep->index, (unsigned long long)used, (unsigned long long)position);
    g.used = (int)used;
    s->batch_rng = g;
    s->position = (int)position;
    s->step = (long)step;
    s->last_batch_loss = last_batch_loss;
    return 0;
}

/* The saved order must be a permutation of 0..n-1: batches index the data with it. */
static int check_order(ipm_bytes c, const ipm_replica *rep, char *err)
{
    int n = rep->n_train;
    unsigned char *seen = calloc((size_t)n, 1);
    if (!seen)
        return ipm_fail(err, "replica %d: out of memory", rep->index);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        uint64_t s = ipm_get_le(&c, 4);
        if (s >= (uint64_t)n || seen[s]++)
            rc = ipm_fail(err, "replica %d: corrupt saved batch order (entry %d)", rep->index, i);
    }
    free(seen);
    return rc;
}

static void get_floats(ipm_bytes *c, float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = ipm_get_f32(c);
}

int ipm_replica_unpack(ipm_replica *rep, const unsigned char *buf, size_t size, char *err)
{
    ipm_bytes c = ipm_bytes_reader(buf, size);
    saved_scalars scalars = {0};
    if (check_identity(&c, rep, err) || get_scalars(&c, rep, &scalars, err))
        return -1;
    size_t n = rep->net.n_params;
    int moments = ipm_optimizer_moments(rep->opt.kind);
    ipm_bytes order_at = c;
    order_at.pos += 4 * n * (size_t)(1 + moments);
    if (check_order(order_at, rep, err))
        return -1;
    rep->batch_rng = scalars.batch_rng;
    rep->position = scalars.position;
    rep->opt.step = scalars.step;
    rep->last_batch_loss = scalars.last_batch_loss;
    get_floats(&c, rep->net.params, n);
    if (moments >= 1)
        get_floats(&c, rep->opt.m, n);
    if (moments == 2)
        get_floats(&c, rep->opt.v, n);
    for (int i = 0; i < rep->n_train; i++)
        rep->order[i] = (int32_t)ipm_get_le(&c, 4);
    return 0;
}
