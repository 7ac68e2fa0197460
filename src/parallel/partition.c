/* partition (parallel): the all-to-all exchange of the partitioned reduce
 * and the tree that sums its histograms onto rank 0. */
#include "ipmpi/parallel/partition.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/assert.h"
#include "ipmpi/base/error.h"

/* Word counts and offsets of one exchange, per rank, in the partition's
 * arrays (made with it, so an exchange allocates nothing it could fail to
 * have before the first collective). */
typedef struct layout {
    long long *send_n, *recv_n; /* what each says it sends; -1: it failed */
    int *send_count, *send_at, *recv_count, *recv_at;
    uint64_t *send, *recv; /* the partition's buffers */
} layout;

static layout layout_of(ipm_partition *p)
{
    size_t n = (size_t)p->n_parts;
    return (layout){p->sizes,           p->sizes + n,       p->offsets, p->offsets + n,
                    p->offsets + 2 * n, p->offsets + 3 * n, NULL,       NULL};
}

/* counts and offsets as MPI's ints (the words of one exchange must stay
 * below 2^31 on every rank, 16 GiB), and room for them in buf, but for
 * part roomless's (-1: none), whose words are put elsewhere. */
static int to_ints(const long long *n, int *count, int *at, int size, int roomless, ipm_words *buf,
                   const char *what, char *err)
{
    long long total = 0;
    for (int q = 0; q < size; q++) {
        at[q] = (int)total;
        count[q] = (int)n[q];
        total += q == roomless ? 0 : n[q];
        if (total > INT_MAX)
            return ipm_fail(err,
                            "partitioned reduce: more than %d words %s on one rank; "
                            "use more ranks or fewer replicas per rank",
                            INT_MAX, what);
    }
    return ipm_words_reserve(buf, (size_t)total + 1, what, err);
}

/* A rank's words to itself take no room in the send buffer (pack_all). */
static int plan_sends(ipm_partition *p, const ipm_binned *b, layout *l, int size, char *err)
{
    for (int q = 0; q < size; q++)
        l->send_n[q] = (long long)ipm_partition_words_to(p, b, q);
    int rc = to_ints(l->send_n, l->send_count, l->send_at, size, p->part, &p->send, "to send", err);
    l->send = p->send.w;
    return rc;
}

/* What a rank sends itself is packed straight where it receives it: the
 * all-to-all then moves only the other ranks' words (at 2 ranks, half of
 * them would otherwise be copied once more within the rank). */
static void pack_all(const ipm_partition *p, const ipm_binned *b, layout *l, int size, int rank)
{
    for (int q = 0; q < size; q++) {
        uint64_t *at = q == rank ? l->recv + l->recv_at[q] : l->send + l->send_at[q];
        uint64_t *end = ipm_partition_pack(p, b, q, at);
        IPM_ASSERT(end == at + l->send_count[q] &&
                   (q != rank || l->send_count[q] == l->recv_count[q]));
        (void)end;
    }
}

/* The all-to-all of the packed words, but for this rank's own (in place). */
static int exchange_words(layout *l, int rank, MPI_Comm comm, char *err)
{
    int own = l->send_count[rank];
    l->send_count[rank] = l->recv_count[rank] = 0;
    int rc = ipm_mpi_check(MPI_Alltoallv(l->send, l->send_count, l->send_at, MPI_UINT64_T, l->recv,
                                         l->recv_count, l->recv_at, MPI_UINT64_T, comm),
                           "MPI_Alltoallv of the partitioned reduce", err);
    l->send_count[rank] = l->recv_count[rank] = own;
    return rc;
}

static void count_traffic(const layout *l, int rank, int size, ipm_traffic *t)
{
    if (!t)
        return;
    for (int q = 0; q < size; q++)
        if (q != rank) {
            t->sent += (uint64_t)l->send_count[q] * 8 + sizeof(long long);
            t->received += (uint64_t)l->recv_count[q] * 8 + sizeof(long long);
        }
}

/* Step 3's input: every source's words, layer after layer. */
static int read_all(ipm_partition *p, const ipm_binned *b, const layout *l, int size,
                    ipm_hist *hist, char *err)
{
    const uint64_t **at = malloc((size_t)size * sizeof *at);
    if (!at)
        return ipm_fail(err, "out of memory reading the exchange");
    for (int s = 0; s < size; s++)
        at[s] = l->recv + l->recv_at[s];
    int rc = 0;
    for (int layer = 0; layer < p->n_layers && rc == 0; layer++) {
        if (!p->words[layer])
            continue;
        for (int s = 0; s < size && rc == 0; s++)
            rc = ipm_partition_read(p, layer, s, &at[s], l->recv + l->recv_at[s] + l->recv_count[s],
                                    b->choice, err);
        if (rc == 0)
            rc = ipm_partition_hists(p, layer, b->choice,
                                     hist + (size_t)layer * IPM_HISTS_PER_LAYER, err);
    }
    for (int s = 0; s < size && rc == 0; s++)
        if (at[s] != l->recv + l->recv_at[s] + l->recv_count[s])
            rc = ipm_fail(err, "partitioned reduce: rank %d sent more words than it described", s);
    free(at);
    return rc;
}

/* Who sends how much: the first point where ranks meet, so the time is
 * mostly waiting for the slowest. A rank that failed (or cannot pack)
 * sends negative counts; then the ranks agree, once, on the outcome and
 * on the first failing rank's message (a rank may also fail to make room
 * for what it is about to receive). */
static int exchange_counts(ipm_partition *p, const ipm_binned *b, int failed, layout *l,
                           double *waited, MPI_Comm comm, char *err)
{
    int size = p->n_parts;
    int rc = failed ? -1 : plan_sends(p, b, l, size, err);
    for (int q = 0; q < size && rc; q++)
        l->send_n[q] = -1;
    double t0 = MPI_Wtime();
    int mpi = MPI_Alltoall(l->send_n, 1, MPI_LONG_LONG, l->recv_n, 1, MPI_LONG_LONG, comm);
    *waited += MPI_Wtime() - t0;
    if (rc == 0)
        rc = ipm_mpi_check(mpi, "MPI_Alltoall of the partitioned reduce's sizes", err);
    int any_failed = 0;
    for (int q = 0; q < size; q++)
        any_failed |= l->recv_n[q] < 0;
    if (rc == 0 && !any_failed)
        rc = to_ints(l->recv_n, l->recv_count, l->recv_at, size, -1, &p->recv, "to receive", err);
    l->recv = p->recv.w;
    return ipm_agree(rc, err, comm);
}

/* Merges two filters (info/partition.h), pair by pair: a slot is marked
 * twice if either was, or if both marked it once. */
static void merge_marks(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type;
    const uint64_t *a = in;
    uint64_t *m = inout;
    for (int k = 0; k < *len; k++) {
        m[2 * k + 1] |= a[2 * k + 1] | (a[2 * k] & m[2 * k]);
        m[2 * k] |= a[2 * k];
    }
}

/* The pair of words and the operation the filters are merged with. */
typedef struct filter_merge {
    MPI_Datatype pair;
    MPI_Op op;
} filter_merge;

static int make_merge(filter_merge *m, const ipm_filter *f, char *err)
{
    if (f->n_words / 2 > INT_MAX)
        return ipm_fail(err, "partitioned reduce: a filter of %zu words is too large for MPI",
                        f->n_words);
    int rc =
        ipm_mpi_check(MPI_Type_contiguous(2, MPI_UINT64_T, &m->pair), "MPI_Type_contiguous", err);
    if (rc == 0)
        rc = ipm_mpi_check(MPI_Type_commit(&m->pair), "MPI_Type_commit", err);
    if (rc == 0)
        rc = ipm_mpi_check(MPI_Op_create(merge_marks, 1, &m->op), "MPI_Op_create", err);
    return rc;
}

/* Frees what make_merge made; a failure is reported only if rc was 0. */
static int free_merge(filter_merge *m, int rc, char *err)
{
    int freed = m->op == MPI_OP_NULL ? MPI_SUCCESS : MPI_Op_free(&m->op);
    if (rc == 0)
        rc = ipm_mpi_check(freed, "MPI_Op_free", err);
    freed = m->pair == MPI_DATATYPE_NULL ? MPI_SUCCESS : MPI_Type_free(&m->pair);
    return rc == 0 ? ipm_mpi_check(freed, "MPI_Type_free", err) : rc;
}

/* Every rank's filter merged into every rank's (an allreduce by pairs of
 * words, so no algorithm ever splits a pair). */
static int merge_filters(const filter_merge *m, ipm_filter *f, ipm_traffic *t, MPI_Comm comm,
                         char *err)
{
    int rc = ipm_mpi_check(
        MPI_Allreduce(MPI_IN_PLACE, f->word, (int)(f->n_words / 2), m->pair, m->op, comm),
        "MPI_Allreduce of the partitioned reduce's filter", err);
    if (rc == 0 && t) { /* the least an allreduce moves: the filter once each way */
        t->sent += f->n_words * 8;
        t->received += f->n_words * 8;
    }
    return rc;
}

/* With a filter: the ranks first agree that every one counted and can
 * merge (the first point where they meet, so the time is mostly waiting
 * for the slowest), then merge their filters. Every rank then keeps the
 * cells of patterns it alone holds and groups the rest by owner. Returns
 * -2 when every rank knows of a failure, -1 when only this one does. */
static int route(ipm_partition *p, const ipm_binned *b, int failed, ipm_traffic *traffic,
                 double *waited, MPI_Comm comm, char *err)
{
    if (!p->filter.n_words)
        return failed ? -1 : ipm_partition_route(p, b, 0, err);
    filter_merge m = {MPI_DATATYPE_NULL, MPI_OP_NULL};
    int rc = failed ? -1 : make_merge(&m, &p->filter, err);
    double t0 = MPI_Wtime();
    rc = ipm_agree(rc, err, comm);
    *waited += MPI_Wtime() - t0;
    if (rc == 0)
        rc = merge_filters(&m, &p->filter, traffic, comm, err);
    else
        rc = -2;
    rc = free_merge(&m, rc, err);
    return rc ? rc : ipm_partition_route(p, b, 1, err);
}

int ipm_partition_exchange(ipm_partition *p, const ipm_binned *b, int failed, ipm_hist *hist,
                           double *sums, int n_sums, ipm_traffic *traffic, double *waited,
                           MPI_Comm comm, char *err)
{
    layout l = layout_of(p);
    int rank = 0;
    if (ipm_comm_rank_size(comm, &rank, NULL, err))
        return -1;
    IPM_ASSERT(p->part == rank);
    int routed = route(p, b, failed, traffic, waited, comm, err);
    if (routed == -2 || exchange_counts(p, b, routed != 0, &l, waited, comm, err))
        return -1;
    pack_all(p, b, &l, p->n_parts, rank);
    int rc = exchange_words(&l, rank, comm, err);
    count_traffic(&l, rank, p->n_parts, traffic);
    if (rc == 0)
        rc = read_all(p, b, &l, p->n_parts, hist, err);
    return ipm_hists_sum_to_root(hist, p->n_layers * IPM_HISTS_PER_LAYER, sums, n_sums, rc != 0,
                                 traffic, comm, err);
}

/* ---- the histograms onto rank 0 ------------------------------------------- */

enum { HISTS_OK = 0, HISTS_FAILED = 1 };

/* What travels up the tree: the histograms and the sums beside them. */
typedef struct tree_load {
    ipm_hist *hist;
    int n;
    double *sums;
    int n_sums;
} tree_load;

/* [status, n, len_0 .. len_{n-1}, the bins of each as count, keys, the
 * sums' bits]; a failed rank sends its status alone. */
static uint64_t *pack_hists(const tree_load *t, int failed, size_t *words)
{
    size_t total = 2 + (size_t)t->n + (size_t)t->n_sums;
    for (int k = 0; k < t->n && !failed; k++)
        total += 2 * t->hist[k].len;
    if (failed)
        total = 2;
    uint64_t *w = malloc(total * sizeof *w);
    if (!w)
        return NULL;
    w[0] = failed ? HISTS_FAILED : HISTS_OK;
    w[1] = (uint64_t)t->n;
    if (failed) {
        *words = total;
        return w;
    }
    uint64_t *bins = w + 2 + t->n;
    for (int k = 0; k < t->n; k++) {
        w[2 + k] = t->hist[k].len;
        for (size_t j = 0; j < t->hist[k].len; j++) {
            *bins++ = t->hist[k].bin[j].count;
            *bins++ = t->hist[k].bin[j].keys;
        }
    }
    if (t->n_sums > 0) /* sums may be NULL then */
        memcpy(bins, t->sums, (size_t)t->n_sums * sizeof *t->sums);
    *words = total;
    return w;
}

/* Adds a child's packed histograms and sums to the load. */
static int add_packed(const tree_load *t, const uint64_t *w, size_t words, char *err)
{
    if (words < 2 + (size_t)t->n || w[1] != (uint64_t)t->n)
        return ipm_fail(err, "count histograms: a child sent %zu words for %d histograms", words,
                        t->n);
    const uint64_t *bins = w + 2 + t->n, *end = w + words;
    for (int k = 0; k < t->n; k++) {
        if ((uint64_t)(end - bins) < 2 * w[2 + k])
            return ipm_fail(err, "count histograms: a child's message is truncated");
        if (ipm_hist_add(&t->hist[k], (const ipm_hist_bin *)bins, w[2 + k], err))
            return -1;
        bins += 2 * w[2 + k];
    }
    if ((uint64_t)(end - bins) != (uint64_t)t->n_sums)
        return ipm_fail(err, "count histograms: a child sent %td sums, expected %d", end - bins,
                        t->n_sums);
    for (int k = 0; k < t->n_sums; k++) {
        double v;
        memcpy(&v, bins + k, sizeof v);
        t->sums[k] += v;
    }
    return 0;
}

/* Receives one child's message; sets *child_failed when its subtree failed.
 * t NULL: drain the message only. */
static int receive_hists(const tree_load *t, int from, MPI_Comm comm, ipm_traffic *traffic,
                         int *child_failed, char *err)
{
    MPI_Status status;
    int words = 0;
    if (ipm_mpi_check(MPI_Probe(from, IPM_TAG_HISTS, comm, &status), "MPI_Probe (histograms)",
                      err) ||
        ipm_mpi_check(MPI_Get_count(&status, MPI_UINT64_T, &words), "MPI_Get_count", err))
        return -1;
    uint64_t *w = malloc(((size_t)words + 1) * sizeof *w);
    int rc = w ? 0 : ipm_fail(err, "out of memory for %d words of histograms", words);
    /* Received even after a failure here, so the child is never left blocked. */
    int mpi = MPI_Recv(w ? w : (uint64_t[2]){0}, w ? words : 0, MPI_UINT64_T, from, IPM_TAG_HISTS,
                       comm, MPI_STATUS_IGNORE);
    if (rc == 0)
        rc = ipm_mpi_check(mpi, "MPI_Recv (histograms)", err);
    if (traffic)
        traffic->received += (uint64_t)words * 8;
    if (rc == 0 && words >= 1 && w[0] != HISTS_OK)
        *child_failed = 1;
    else if (rc == 0 && t)
        rc = add_packed(t, w, (size_t)words, err);
    free(w);
    return rc;
}

static int send_hists(const tree_load *t, int failed, int to, MPI_Comm comm, ipm_traffic *traffic,
                      char *err)
{
    size_t words = 0;
    uint64_t *w = pack_hists(t, failed, &words);
    uint64_t flag[2] = {HISTS_FAILED, (uint64_t)t->n};
    if (!w || words > INT_MAX) {
        words = 2; /* the parent must hear something: that this subtree failed */
        free(w);
        w = NULL;
    }
    int rc =
        ipm_mpi_check(MPI_Send(w ? w : flag, (int)words, MPI_UINT64_T, to, IPM_TAG_HISTS, comm),
                      "MPI_Send (histograms)", err);
    if (traffic)
        traffic->sent += (uint64_t)words * 8;
    int sent_whole = w != NULL;
    free(w);
    if (rc == 0 && !sent_whole && !failed)
        rc = ipm_fail(err, "out of memory packing %d histograms", t->n);
    return rc;
}

int ipm_hists_sum_to_root(ipm_hist *hist, int n, double *sums, int n_sums, int failed,
                          ipm_traffic *traffic, MPI_Comm comm, char *err)
{
    int rank, size, child_failed = 0;
    if (ipm_comm_rank_size(comm, &rank, &size, err))
        return -1;
    tree_load t = {hist, n, sums, sums ? n_sums : 0};
    for (int mask = 1; mask < size; mask <<= 1) {
        if (rank & mask) {
            if (send_hists(&t, failed || child_failed, rank - mask, comm, traffic, err))
                failed = 1;
            for (int k = 0; k < n; k++)
                ipm_hist_clear(&hist[k]);
            break;
        }
        if (rank + mask < size && !failed &&
            receive_hists(&t, rank + mask, comm, traffic, &child_failed, err))
            failed = 1;
        else if (rank + mask < size && failed) {
            int ignored = 0;
            char drained[IPM_ERRLEN];
            receive_hists(NULL, rank + mask, comm, NULL, &ignored, drained);
        }
    }
    int first = ipm_first_failure(failed, comm);
    if (first >= size)
        return 0;
    if (!failed)
        ipm_fail(err, "count histograms: the reduce failed on rank %d", first);
    return -1;
}
