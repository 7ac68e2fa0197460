/* reduce: every rank builds deterministic tables (keys shared by all ranks,
 * keys of its own, a table larger than one message chunk, empty tables);
 * after the tree merge rank 0 rebuilds every rank's tables, merges them
 * serially in another order and compares key by key and sum c log2 c bit
 * for bit. Run under mpirun with any number of ranks. */
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipmpi/base/error.h"
#include "ipmpi/info/table.h"
#include "ipmpi/parallel/comm.h"
#include "ipmpi/parallel/reduce.h"
#include "check.h"
#include "table_util.h"

#define N_TABLES 5

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void add(ipm_table *t, uint32_t group, uint64_t lo, uint64_t hi, uint64_t count)
{
    char err[IPM_ERRLEN];
    CHECK(ipm_table_add(t, group, (ipm_pattern){lo, hi}, count, err) == 0);
}

/* Table k of rank r:
 *   0: 300 keys common to all ranks (rank-dependent counts) + 50 + 13 r own keys
 *   1: 20000 + 1000 r own keys, more than one 16384-entry chunk
 *   2: empty on every rank
 *   3: common keys on even ranks only, empty on odd ranks
 *   4: 64 common keys inserted in a rank-dependent order, with 128-bit patterns */
static void build(ipm_table *t, int r, int k)
{
    uint64_t rr = (uint64_t)r;
    switch (k) {
    case 0:
        for (uint64_t j = 0; j < 300; j++)
            add(t, (uint32_t)(j % 5), j * 977, j % 3 ? 0 : j, 1 + (rr * 7 + j) % 13);
        for (uint64_t j = 0; j < 50 + 13 * rr; j++)
            add(t, 100 + (uint32_t)r, mix(rr << 32 | j), 0, 1 + j % 4);
        break;
    case 1:
        for (uint64_t j = 0; j < 20000 + 1000 * rr; j++)
            add(t, (uint32_t)(j % 2), mix(rr << 40 | j), mix(j), 1 + (j + rr) % 3);
        break;
    case 3:
        if (r % 2 == 0)
            for (uint64_t j = 0; j < 40; j++)
                add(t, 7, j, 0, 70000 + rr); /* counts beyond the dense histogram */
        break;
    case 4:
        for (uint64_t j = 0; j < 64; j++) {
            uint64_t key = (j * 13 + rr * 5) % 64;
            add(t, 1, mix(key), mix(key + 1), 1 + key % 6);
        }
        break;
    default:
        break;
    }
}

static void check_same(const ipm_table *got, const ipm_table *want, int k)
{
    CHECK(got->len == want->len);
    CHECK(got->total == want->total);
    if (got->len != want->len) {
        fprintf(stderr, "table %d: %zu keys, expected %zu\n", k, got->len, want->len);
        return;
    }
    ipm_count *a = sorted_export(got), *b = sorted_export(want);
    CHECK(memcmp(a, b, sizeof *a * got->len) == 0);
    CHECK(ipm_table_sum_clog2c(got) == ipm_table_sum_clog2c(want));
    CHECK(ipm_table_entropy(got) == ipm_table_entropy(want));
    free(a);
    free(b);
}

/* The serial merge of every rank's table k, ranks in decreasing order. */
static void expected_table(ipm_table *want, int k, int size)
{
    char err[IPM_ERRLEN];
    CHECK(ipm_table_init(want, 16, err) == 0);
    for (int r = size - 1; r >= 0; r--) {
        ipm_table part;
        CHECK(ipm_table_init(&part, 16, err) == 0);
        build(&part, r, k);
        ipm_count *e = malloc(sizeof *e * (part.len ? part.len : 1));
        size_t n = ipm_table_export(&part, e);
        CHECK(ipm_table_merge(want, e, n, err) == 0);
        free(e);
        ipm_table_free(&part);
    }
}

static void round_trip(int rank, int size)
{
    char err[IPM_ERRLEN];
    ipm_table tab[N_TABLES];
    ipm_table *list[N_TABLES];
    for (int k = 0; k < N_TABLES; k++) {
        CHECK(ipm_table_init(&tab[k], 64, err) == 0);
        list[k] = &tab[k];
    }
    /* Twice on the same tables: the second merge starts from cleared ones. */
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < N_TABLES; k++) {
            ipm_table_clear(&tab[k]);
            build(&tab[k], rank, k);
        }
        int rc = ipm_reduce_tables(list, N_TABLES, MPI_COMM_WORLD, NULL, err);
        CHECK(rc == 0);
        if (rc)
            fprintf(stderr, "rank %d: %s\n", rank, err);
        for (int k = 0; k < N_TABLES; k++) {
            if (rank != 0) {
                CHECK(tab[k].len == 0 && tab[k].total == 0);
                continue;
            }
            ipm_table want;
            expected_table(&want, k, size);
            check_same(&tab[k], &want, k);
            ipm_table_free(&want);
        }
    }
    for (int k = 0; k < N_TABLES; k++)
        ipm_table_free(&tab[k]);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    round_trip(rank, size);
    CHECK(ipm_all_ok(1, MPI_COMM_WORLD) == 1);
    CHECK(ipm_all_ok(rank != size - 1, MPI_COMM_WORLD) == 0);
    CHECK(ipm_all_ok(7, MPI_COMM_WORLD) == 1);
    /* Zero tables is a valid, empty merge. */
    char err[IPM_ERRLEN];
    CHECK(ipm_reduce_tables(NULL, 0, MPI_COMM_WORLD, NULL, err) == 0);
    int rc = check_report("test_reduce");
    MPI_Finalize();
    return rc;
}
