/* reduce: binomial-tree merge of count tables onto rank 0.
 * Along each tree edge the child sends one header (status, n_tables, the
 * tables' lengths) and, when its status is good, the entries of all tables
 * in order as chunks of at most CHUNK_ENTRIES. Chunks bound every message
 * (no 2^31-byte limit) and let a parent merge as it receives and drain a
 * child's data into its preallocated buffer even after it has failed itself,
 * so no rank is ever left blocked in a send. */
#include "ipmpi/parallel/reduce.h"

#include <stdint.h>
#include <stdlib.h>

#include "ipmpi/base/error.h"
#include "ipmpi/parallel/comm.h"

#define CHUNK_ENTRIES 16384 /* 512 KiB messages */

typedef struct link_buffers {
    uint64_t *header; /* status, n_tables, len[n_tables] */
    ipm_count *chunk; /* CHUNK_ENTRIES */
} link_buffers;

enum { STATUS_OK = 0, STATUS_FAILED = 1 };

static int send_chunk(const ipm_count *chunk, size_t n, int to, MPI_Comm comm, ipm_traffic *traffic)
{
    if (traffic)
        traffic->sent += n * sizeof *chunk;
    return MPI_Send(chunk, (int)(n * sizeof *chunk), MPI_BYTE, to, IPM_TAG_TABLE_CHUNK, comm);
}

/* Sends the header, then (status good) every table's entries in chunks. */
static int send_tables(ipm_table *const *tables, int n_tables, int failed, link_buffers *buf,
                       int to, MPI_Comm comm, ipm_traffic *traffic)
{
    buf->header[0] = failed ? STATUS_FAILED : STATUS_OK;
    buf->header[1] = (uint64_t)n_tables;
    for (int k = 0; k < n_tables; k++)
        buf->header[2 + k] = tables[k]->len;
    int rc = MPI_Send(buf->header, n_tables + 2, MPI_UINT64_T, to, IPM_TAG_TABLE_HEADER, comm);
    if (traffic)
        traffic->sent += ((size_t)n_tables + 2) * sizeof *buf->header;
    if (rc != MPI_SUCCESS || failed)
        return rc;
    size_t used = 0;
    for (int k = 0; k < n_tables; k++) {
        const ipm_table *t = tables[k];
        for (size_t e = 0; e < t->len; e++) {
            buf->chunk[used] = t->slot[t->filled[e]];
            buf->chunk[used].used = 1;
            if (++used == CHUNK_ENTRIES) {
                if ((rc = send_chunk(buf->chunk, used, to, comm, traffic)) != MPI_SUCCESS)
                    return rc;
                used = 0;
            }
        }
    }
    return used ? send_chunk(buf->chunk, used, to, comm, traffic) : MPI_SUCCESS;
}

/* Merges chunk entries [0, n) into the tables, walking the per-table
 * lengths of the header; *table and *left track the position. */
static int merge_chunk(ipm_table *const *tables, const uint64_t *len, int n_tables,
                       const ipm_count *chunk, size_t n, int *table, uint64_t *left, char *err)
{
    size_t at = 0;
    while (at < n) {
        while (*left == 0 && *table + 1 < n_tables)
            *left = len[++*table];
        size_t take = n - at < *left ? n - at : (size_t)*left;
        if (take == 0)
            return ipm_fail(err, "count tables: a child sent more entries than it announced");
        if (ipm_table_merge(tables[*table], chunk + at, take, err))
            return -1;
        at += take;
        *left -= take;
    }
    return 0;
}

/* Receives one child's header and chunks, merging them unless this rank
 * has already failed (then the chunks are only drained). Sets *failed on a
 * local error (message in err) and *child_failed when the child's subtree
 * reported one. */
static void receive_tables(ipm_table *const *tables, int n_tables, link_buffers *buf, int from,
                           MPI_Comm comm, ipm_traffic *traffic, int *failed, int *child_failed,
                           char *err)
{
    MPI_Status status;
    int words = 0;
    if (MPI_Recv(buf->header, n_tables + 2, MPI_UINT64_T, from, IPM_TAG_TABLE_HEADER, comm,
                 &status) != MPI_SUCCESS ||
        MPI_Get_count(&status, MPI_UINT64_T, &words) != MPI_SUCCESS || words < 2) {
        *failed = 1;
        ipm_fail(err, "count tables: receiving the header from rank %d failed", from);
        return;
    }
    if (traffic)
        traffic->received += (size_t)words * sizeof *buf->header;
    if (buf->header[0] != STATUS_OK) {
        *child_failed = 1;
        return;
    }
    /* A sender with fewer tables is a caller bug; drain what it announced. */
    if (words != n_tables + 2 && !*failed) {
        *failed = 1;
        ipm_fail(err, "count tables: rank %d sent %d tables, expected %d", from, words - 2,
                 n_tables);
    }
    const uint64_t *len = buf->header + 2;
    uint64_t total = 0, left = words > 2 ? len[0] : 0;
    for (int k = 0; k < words - 2; k++)
        total += len[k];
    int table = 0;
    while (total > 0) {
        size_t n = total < CHUNK_ENTRIES ? (size_t)total : CHUNK_ENTRIES;
        if (MPI_Recv(buf->chunk, (int)(n * sizeof *buf->chunk), MPI_BYTE, from, IPM_TAG_TABLE_CHUNK,
                     comm, MPI_STATUS_IGNORE) != MPI_SUCCESS &&
            !*failed) {
            *failed = 1;
            ipm_fail(err, "count tables: receiving entries from rank %d failed", from);
        }
        if (!*failed && merge_chunk(tables, len, n_tables, buf->chunk, n, &table, &left, err))
            *failed = 1;
        total -= n;
        if (traffic)
            traffic->received += n * sizeof *buf->chunk;
    }
}

static int alloc_buffers(link_buffers *buf, int n_tables)
{
    buf->header = malloc(((size_t)n_tables + 2) * sizeof *buf->header);
    buf->chunk = malloc(CHUNK_ENTRIES * sizeof *buf->chunk);
    return buf->header && buf->chunk;
}

int ipm_reduce_tables(ipm_table *const *tables, int n_tables, MPI_Comm comm, ipm_traffic *traffic,
                      char *err)
{
    int rank, size;
    if (ipm_comm_rank_size(comm, &rank, &size, err))
        return -1;
    link_buffers buf;
    int failed = !alloc_buffers(&buf, n_tables), child_failed = 0;
    if (!ipm_all_ok(!failed, comm)) {
        free(buf.header);
        free(buf.chunk);
        return ipm_fail(err, "count tables: out of memory for the merge buffers on some rank");
    }
    for (int mask = 1; mask < size; mask <<= 1) {
        if (rank & mask) {
            if (send_tables(tables, n_tables, failed || child_failed, &buf, rank - mask, comm,
                            traffic) != MPI_SUCCESS &&
                !failed) {
                failed = 1;
                ipm_fail(err, "count tables: sending to rank %d failed", rank - mask);
            }
            for (int k = 0; k < n_tables; k++)
                ipm_table_clear(tables[k]);
            break;
        }
        if (rank + mask < size)
            receive_tables(tables, n_tables, &buf, rank + mask, comm, traffic, &failed,
                           &child_failed, err);
    }
    free(buf.header);
    free(buf.chunk);
    int first = ipm_first_failure(failed, comm);
    if (first == size)
        return 0;
    if (!failed)
        ipm_fail(err, "count tables: the merge failed on rank %d", first);
    return -1;
}
