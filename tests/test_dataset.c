/* dataset: the 12-bit task's rule and symmetry, generated sets, dedup,
 * label mapping, split, NetCDF reading and its errors, the IDX source's
 * preprocessing (on tiny files written here, and Fashion-MNIST when installed).
 * Usage: test_dataset [path/to/var_u.nc] (default ../shared/data/var_u.nc);
 * returns 77 (skip) when every other check passed but var_u.nc is absent. */
#include "ipmpi/io/dataset.h"

#include <errno.h>
#include <math.h>
#include <netcdf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipmpi/base/error.h"
#include "ipmpi/base/rng.h"
#include "check.h"
#include "idx_writer.h"

static ipm_config make_config(enum ipm_data_source source, int samples, double fraction,
                              uint64_t seed)
{
    ipm_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.source = source;
    cfg.samples = samples;
    cfg.train_fraction = fraction;
    cfg.seed = seed;
    return cfg;
}

static unsigned row_pattern(const float *row)
{
    unsigned p = 0;
    for (int j = 0; j < 12; j++)
        p |= (unsigned)(row[j] != 0.0f) << j;
    return p;
}

/* ---- the 12-bit task, checked against geometry ---------------------------- */

/* Unit vectors of the icosahedron in the layout dataset.h's rule states. */
static void ico_coordinates(double v[12][3])
{
    const double pi = 3.14159265358979323846;
    double z = 1 / sqrt(5.0), r = 2 / sqrt(5.0);
    v[0][0] = 0, v[0][1] = 0, v[0][2] = 1;
    v[11][0] = 0, v[11][1] = 0, v[11][2] = -1;
    for (int k = 0; k < 5; k++) {
        double up = 2 * pi * k / 5, down = up + pi / 5;
        v[1 + k][0] = r * cos(up), v[1 + k][1] = r * sin(up), v[1 + k][2] = z;
        v[6 + k][0] = r * cos(down), v[6 + k][1] = r * sin(down), v[6 + k][2] = -z;
    }
}

/* Rotation of the vertices by angle about vertex `axis` (Rodrigues), as a
 * vertex permutation; -1 entries if a rotated point misses every vertex. */
static void rotation_permutation(double v[12][3], int axis, double angle, int perm[12])
{
    const double *a = v[axis];
    double c = cos(angle), s = sin(angle);
    for (int i = 0; i < 12; i++) {
        const double *p = v[i];
        double dot = a[0] * p[0] + a[1] * p[1] + a[2] * p[2];
        double cross[3] = {a[1] * p[2] - a[2] * p[1], a[2] * p[0] - a[0] * p[2],
                           a[0] * p[1] - a[1] * p[0]};
        double q[3];
        for (int d = 0; d < 3; d++)
            q[d] = p[d] * c + cross[d] * s + a[d] * dot * (1 - c);
        perm[i] = -1;
        for (int j = 0; j < 12; j++) {
            double dx = q[0] - v[j][0], dy = q[1] - v[j][1], dz = q[2] - v[j][2];
            if (dx * dx + dy * dy + dz * dz < 1e-12)
                perm[i] = j;
        }
    }
}

static unsigned permute_pattern(unsigned p, const int perm[12])
{
    unsigned q = 0;
    for (int j = 0; j < 12; j++)
        if (p >> j & 1u)
            q |= 1u << perm[j];
    return q;
}

static void check_rotation_invariance(const ipm_dataset *d, const int perm[12])
{
    int is_permutation = 1, seen = 0;
    for (int j = 0; j < 12; j++) {
        is_permutation &= perm[j] >= 0;
        if (perm[j] >= 0)
            seen |= 1 << perm[j];
    }
    CHECK(is_permutation && seen == 0xfff);
    if (!is_permutation || seen != 0xfff)
        return;
    int changed = 0;
    for (unsigned p = 0; p < 4096; p++)
        changed += d->y[p] != d->y[permute_pattern(p, perm)];
    CHECK(changed == 0);
}

static void check_tishby12(void)
{
    char err[IPM_ERRLEN];
    ipm_dataset d;
    CHECK(ipm_dataset_tishby12(&d, err) == 0);
    CHECK(d.n == 4096 && d.dim == 12 && d.n_x == 4096 && d.n_classes == 2);

    int bits_ok = 1, ids_ok = 1, ones = 0;
    int by_k[13][2] = {{0}};
    for (int i = 0; i < 4096; i++) {
        bits_ok &= row_pattern(d.x + 12 * i) == (unsigned)i;
        for (int j = 0; j < 12; j++)
            bits_ok &= d.x[12 * i + j] == (float)((i >> j) & 1);
        ids_ok &= d.x_id[i] == i;
        ones += d.y[i];
        int k = 0;
        for (int j = 0; j < 12; j++)
            k += (i >> j) & 1;
        by_k[k][d.y[i] != 0]++;
    }
    CHECK(bits_ok);
    CHECK(ids_ok); /* all distinct, ids in order of first appearance */
    CHECK(ones >= 0.45 * 4096 && ones <= 0.55 * 4096);
    for (int k = 0; k <= 4; k++)
        CHECK(by_k[k][1] == 0);
    for (int k = 8; k <= 12; k++)
        CHECK(by_k[k][0] == 0);
    for (int k = 5; k <= 7; k++)
        CHECK(by_k[k][0] > 0 && by_k[k][1] > 0);
    /* The rule's stated counts (the original data's per-k counts). */
    CHECK(by_k[5][1] == 60 && by_k[6][1] == 532 && by_k[7][1] == 732 && ones == 2118);

    /* The rule from coordinates: y = [k + |sum of the ones' unit vectors| > 7.625]. */
    double v[12][3];
    ico_coordinates(v);
    int agree = 0;
    for (int i = 0; i < 4096; i++) {
        double s[3] = {0, 0, 0};
        int k = 0;
        for (int j = 0; j < 12; j++)
            if ((i >> j) & 1)
                k++, s[0] += v[j][0], s[1] += v[j][1], s[2] += v[j][2];
        double f = k + sqrt(s[0] * s[0] + s[1] * s[1] + s[2] * s[2]);
        agree += (f > 7.625) == (d.y[i] != 0);
    }
    CHECK(agree == 4096);

    /* Two 5-fold rotations about different vertices generate the whole
     * rotation group (order 60): one computed as a ring shift, one from
     * the geometry. */
    int about_pole[12] = {0, 2, 3, 4, 5, 1, 7, 8, 9, 10, 6, 11};
    check_rotation_invariance(&d, about_pole);
    int about_vertex1[12];
    rotation_permutation(v, 1, 2 * 3.14159265358979323846 / 5, about_vertex1);
    CHECK(about_vertex1[1] == 1 && about_vertex1[0] != 0);
    check_rotation_invariance(&d, about_vertex1);
    /* A reflection is no rotation, but f uses distances only: still invariant. */
    int mirror[12] = {0, 1, 5, 4, 3, 2, 10, 9, 8, 7, 6, 11}; /* y -> -y */
    check_rotation_invariance(&d, mirror);

    const char *rule = ipm_tishby12_rule();
    CHECK(rule && strstr(rule, "7.625") && strstr(rule, "icosahedron"));
    ipm_dataset_free(&d);
    CHECK(d.x == NULL && d.n == 0);
}

/* ---- dedup ---------------------------------------------------------------- */

static void check_dedup(void)
{
    char err[IPM_ERRLEN];
    float rows[6][2] = {{1, 2}, {3, 4}, {1, 2}, {0.0f, 1}, {3, 4}, {-0.0f, 1}};
    ipm_dataset d = {0};
    d.n = 6, d.dim = 2;
    d.x = malloc(sizeof rows);
    memcpy(d.x, rows, sizeof rows);
    CHECK(ipm_dataset_dedup(&d, err) == 0);
    /* -0 and +0 are one x, as float32 values and for np.unique(X, axis=0) */
    int32_t expect[6] = {0, 1, 0, 2, 1, 2};
    CHECK(d.n_x == 3);
    for (int i = 0; i < 6; i++)
        CHECK(d.x_id[i] == expect[i]);
    ipm_dataset_free(&d);

    /* Many duplicates, against a quadratic scan. */
    enum { N = 3000, DIM = 3 };
    ipm_rng rng;
    ipm_rng_init(&rng, 11, 0, IPM_RNG_DATA);
    d.n = N, d.dim = DIM;
    d.x = malloc(sizeof(float) * N * DIM);
    for (int i = 0; i < N * DIM; i++)
        d.x[i] = (float)ipm_rng_below(&rng, 6) * 0.5f;
    CHECK(ipm_dataset_dedup(&d, err) == 0);
    int32_t *first = malloc(sizeof(int32_t) * N);
    int n_x = 0, agree = 1;
    for (int i = 0; i < N; i++) {
        int j = 0;
        while (j < i && memcmp(d.x + j * DIM, d.x + i * DIM, sizeof(float) * DIM) != 0)
            j++;
        first[i] = j == i ? n_x++ : first[j];
        agree &= d.x_id[i] == first[i];
    }
    CHECK(agree);
    CHECK(d.n_x == n_x && n_x == 216);
    free(first);
    ipm_dataset_free(&d);
}

/* ---- generated sets ------------------------------------------------------- */

static int same_dataset(const ipm_dataset *a, const ipm_dataset *b)
{
    return a->n == b->n && a->dim == b->dim &&
           memcmp(a->x, b->x, sizeof(float) * a->n * a->dim) == 0 &&
           memcmp(a->y, b->y, sizeof(int32_t) * a->n) == 0;
}

static void check_generated(enum ipm_data_source source)
{
    char err[IPM_ERRLEN];
    const int n = 4000;
    ipm_config cfg = make_config(source, n, 1.0, 17);
    ipm_dataset a, b, test, other;
    CHECK(ipm_dataset_load(&cfg, &a, &test, err) == 0);
    CHECK(test.n == 0 && test.x == NULL);
    CHECK(ipm_dataset_load(&cfg, &b, &test, err) == 0);
    CHECK(a.n == n && a.dim == 12 && a.n_classes == 2);
    CHECK(same_dataset(&a, &b));
    cfg.seed = 18;
    CHECK(ipm_dataset_load(&cfg, &other, &test, err) == 0);
    CHECK(memcmp(a.x, other.x, sizeof(float) * 12) != 0);

    /* Features come first in each sample's draws: sample 0 is the stream's
     * first 12 below(5) draws, minus one. */
    ipm_rng rng;
    ipm_rng_init(&rng, 17, 0, IPM_RNG_DATA);
    for (int j = 0; j < 12; j++)
        CHECK(a.x[j] == (float)ipm_rng_below(&rng, 5) - 1.0f);

    int count[5] = {0}, in_set = 1;
    for (int i = 0; i < n * 12; i++) {
        float v = a.x[i];
        in_set &= v == -1 || v == 0 || v == 1 || v == 2 || v == 3;
        if (v >= -1 && v <= 3)
            count[(int)v + 1]++;
    }
    CHECK(in_set);
    for (int v = 0; v < 5; v++)
        CHECK_NEAR(count[v], n * 12 / 5.0, 400); /* sd ~ 98 */
    CHECK(a.n_x > n - 5);                        /* 5^12 patterns: duplicates are rare */

    /* Noise-free labels agree with the stored ones most of the time. */
    double *score = malloc(sizeof(double) * n), mean = 0;
    for (int i = 0; i < n; i++) {
        const float *x = a.x + 12 * i;
        double s = 0;
        if (source == IPM_DATA_SIMPLE) {
            for (int j = 0; j < 12; j++)
                s += x[j] / 12.0;
        } else {
            s = x[2] * x[3] + x[4] * x[5] + x[6] * x[7] + x[8] * x[9] + x[10] * x[11] - x[0] * x[0];
        }
        score[i] = s;
        mean += s / n;
    }
    double threshold = source == IPM_DATA_SIMPLE ? 0.7 : mean;
    int agree = 0, ones = 0;
    for (int i = 0; i < n; i++) {
        agree += (score[i] > threshold) == (a.y[i] == 1);
        ones += a.y[i];
    }
    CHECK(agree > 0.8 * n);
    CHECK(agree < n); /* the noise does flip some labels */
    if (source == IPM_DATA_SIMPLE)
        CHECK(ones > 0.65 * n && ones < 0.85 * n); /* P(mean + noise > 0.7) ~ 0.76 */
    else
        CHECK(ones > 0.35 * n && ones < 0.65 * n);
    free(score);
    ipm_dataset_free(&a);
    ipm_dataset_free(&b);
    ipm_dataset_free(&other);
}

/* ---- split ------------------------------------------------------------------ */

static void check_split(void)
{
    char err[IPM_ERRLEN];
    ipm_dataset all, train, test;
    CHECK(ipm_dataset_tishby12(&all, err) == 0);
    ipm_config cfg = make_config(IPM_DATA_TISHBY12, 0, 0.75, 99);
    CHECK(ipm_dataset_load(&cfg, &train, &test, err) == 0);
    CHECK(train.n == 3072 && test.n == 1024);
    CHECK(train.n_x == 3072 && test.n_x == 1024);
    CHECK(train.n_classes == 2 && test.n_classes == 2);

    /* train then test is the SPLIT permutation of the source. */
    int32_t order[4096];
    for (int i = 0; i < 4096; i++)
        order[i] = i;
    ipm_rng rng;
    ipm_rng_init(&rng, 99, 0, IPM_RNG_SPLIT);
    ipm_rng_shuffle(&rng, order, 4096);
    int seen[4096] = {0}, in_order = 1, labels_ok = 1, ids_ok = 1;
    for (int i = 0; i < 4096; i++) {
        const ipm_dataset *part = i < 3072 ? &train : &test;
        int row = i < 3072 ? i : i - 3072;
        unsigned p = row_pattern(part->x + 12 * row);
        seen[p]++;
        in_order &= p == (unsigned)order[i];
        labels_ok &= part->y[row] == all.y[p];
        ids_ok &= part->x_id[row] == row;
    }
    int union_ok = 1;
    for (int p = 0; p < 4096; p++)
        union_ok &= seen[p] == 1;
    CHECK(union_ok);
    CHECK(in_order);
    CHECK(labels_ok);
    CHECK(ids_ok);
    ipm_dataset_free(&train);
    ipm_dataset_free(&test);

    /* Whole set: the source's order, empty test. */
    cfg.train_fraction = 1.0;
    CHECK(ipm_dataset_load(&cfg, &train, &test, err) == 0);
    CHECK(same_dataset(&train, &all) && test.n == 0 && test.n_classes == 2);
    ipm_dataset_free(&train);

    /* A split that leaves a side empty names the key. */
    double bad[] = {0.0001, 0.9999, 0.0, 1.5};
    for (int i = 0; i < 4; i++) {
        cfg.train_fraction = bad[i];
        err[0] = 0;
        CHECK(ipm_dataset_load(&cfg, &train, &test, err) == -1);
        CHECK(strstr(err, "[data] train_fraction") != NULL);
        CHECK(train.x == NULL && test.x == NULL);
    }
    /* Generated sets split the same way: round(0.3 * 10) = 3. */
    cfg = make_config(IPM_DATA_SIMPLE, 10, 0.3, 1);
    CHECK(ipm_dataset_load(&cfg, &train, &test, err) == 0);
    CHECK(train.n == 3 && test.n == 7);
    ipm_dataset_free(&train);
    ipm_dataset_free(&test);
    ipm_dataset_free(&all);
}

/* ---- NetCDF ------------------------------------------------------------------ */

enum y_kind { Y_NONE, Y_INT64, Y_FLOAT };

/* X double (n_x, 2, 3) with rows 0 and 2 equal; y (n_y) or none. */
static int write_file(const char *path, int n_x, int n_y, enum y_kind y_kind)
{
    int nc, dims[3], ydim, xv, yv;
    if (nc_create(path, NC_CLOBBER | NC_NETCDF4, &nc) != NC_NOERR)
        return -1;
    nc_def_dim(nc, "sample", (size_t)n_x, &dims[0]);
    nc_def_dim(nc, "a", 2, &dims[1]);
    nc_def_dim(nc, "b", 3, &dims[2]);
    nc_def_var(nc, "X", NC_DOUBLE, 3, dims, &xv);
    ydim = dims[0];
    if (n_y != n_x)
        nc_def_dim(nc, "label_sample", (size_t)n_y, &ydim);
    if (y_kind != Y_NONE)
        nc_def_var(nc, "y", y_kind == Y_INT64 ? NC_INT64 : NC_FLOAT, 1, &ydim, &yv);
    nc_enddef(nc);
    double x[8 * 6];
    for (int i = 0; i < n_x * 6; i++)
        x[i] = (i / 6 == 2) ? x[i - 12] : 0.25 * i;
    nc_put_var_double(nc, xv, x);
    long long labels[8] = {7, -3, 7, 100, 7, 7, 7, 7};
    float flabels[8] = {0, 1, 0, 1, 0, 1, 0, 1};
    if (y_kind == Y_INT64)
        nc_put_var_longlong(nc, yv, labels);
    if (y_kind == Y_FLOAT)
        nc_put_var_float(nc, yv, flabels);
    return nc_close(nc) == NC_NOERR ? 0 : -1;
}

static void expect_error(const char *path, const char *part1, const char *part2)
{
    char err[IPM_ERRLEN] = "";
    ipm_config cfg = make_config(IPM_DATA_NETCDF, 0, 1.0, 0);
    snprintf(cfg.data_path, sizeof cfg.data_path, "%s", path);
    ipm_dataset train, test;
    CHECK(ipm_dataset_load(&cfg, &train, &test, err) == -1);
    if (!strstr(err, path) || !strstr(err, part1) || !strstr(err, part2))
        fprintf(stderr, "expected '%s' and '%s' in: %s\n", part1, part2, err);
    CHECK(strstr(err, path) != NULL);
    CHECK(strstr(err, part1) != NULL);
    CHECK(strstr(err, part2) != NULL);
    CHECK(train.x == NULL && test.x == NULL);
}

/* A classic (64-bit offset) file of X float (64, 4) and y int (64), cut
 * short by `cut` bytes: libnetcdf reads the missing values as zeros. */
static int write_cut_classic(const char *path, off_t cut)
{
    int nc, dims[2], xv, yv;
    if (nc_create(path, NC_CLOBBER | NC_64BIT_OFFSET, &nc) != NC_NOERR)
        return -1;
    nc_def_dim(nc, "sample", 64, &dims[0]);
    nc_def_dim(nc, "feature", 4, &dims[1]);
    nc_def_var(nc, "y", NC_INT, 1, dims, &yv);
    nc_def_var(nc, "X", NC_FLOAT, 2, dims, &xv);
    nc_enddef(nc);
    float x[64 * 4];
    int y[64];
    for (int i = 0; i < 64 * 4; i++)
        x[i] = (float)(1 + i % 3);
    for (int i = 0; i < 64; i++)
        y[i] = i % 2;
    nc_put_var_float(nc, xv, x);
    nc_put_var_int(nc, yv, y);
    struct stat st;
    if (nc_close(nc) != NC_NOERR || stat(path, &st) != 0)
        return -1;
    return truncate(path, st.st_size - cut);
}

/* A scratch folder (dir: a mkdtemp template) and path = dir/name in it. */
static void scratch_file(char *dir, const char *name, char path[256])
{
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, 256, "%s/%s", dir, name);
}

/* The NetCDF file path loaded as [data] source = netcdf into d: 0 when it
 * loads (err empty). */
static int load_netcdf(const char *path, ipm_dataset *d, char *err)
{
    ipm_config cfg = make_config(IPM_DATA_NETCDF, 0, 1.0, 0);
    snprintf(cfg.data_path, sizeof cfg.data_path, "%s", path);
    ipm_dataset test;
    return ipm_dataset_load(&cfg, d, &test, err);
}

static void check_cut_classic(void)
{
    char dir[] = "/tmp/ipm_test_cut_XXXXXX", path[256], err[IPM_ERRLEN] = "";
    scratch_file(dir, "cut.nc", path);
    CHECK(write_cut_classic(path, 0) == 0); /* whole: reads */
    ipm_dataset d;
    CHECK(load_netcdf(path, &d, err) == 0);
    if (!err[0]) {
        CHECK(d.n == 64 && d.x[64 * 4 - 1] == (float)(1 + 255 % 3));
        ipm_dataset_free(&d);
    }
    CHECK(write_cut_classic(path, 160) == 0); /* 10 rows of X, the last variable */
    expect_error(path, "variable X's data end at byte", "truncated or corrupt");
    CHECK(write_cut_classic(path, 64 * 4 * 4 + 40) == 0); /* all of X and 10 labels */
    expect_error(path, "variable y's data end at byte", "truncated or corrupt");
    unlink(path);
    CHECK(rmdir(dir) == 0);
}

/* X short (4, 2) packed with scale_factor 0.5 and add_offset -1 (CF), y
 * int (4), itself packed when y_packed. */
static int write_packed(const char *path, int y_packed)
{
    int nc, dims[2], xv, yv;
    if (nc_create(path, NC_CLOBBER | NC_NETCDF4, &nc) != NC_NOERR)
        return -1;
    nc_def_dim(nc, "sample", 4, &dims[0]);
    nc_def_dim(nc, "feature", 2, &dims[1]);
    nc_def_var(nc, "X", NC_SHORT, 2, dims, &xv);
    nc_def_var(nc, "y", NC_INT, 1, dims, &yv);
    double scale = 0.5, offset = -1;
    nc_put_att_double(nc, xv, "scale_factor", NC_DOUBLE, 1, &scale);
    nc_put_att_double(nc, xv, "add_offset", NC_DOUBLE, 1, &offset);
    if (y_packed)
        nc_put_att_double(nc, yv, "scale_factor", NC_DOUBLE, 1, &scale);
    nc_enddef(nc);
    short x[8] = {0, 2, 4, 1, 0, 2, 3, 4};
    int y[4] = {0, 1, 0, 1};
    nc_put_var_short(nc, xv, x);
    nc_put_var_int(nc, yv, y);
    return nc_close(nc) == NC_NOERR ? 0 : -1;
}

static void check_packed(void)
{
    char dir[] = "/tmp/ipm_test_packed_XXXXXX", path[256], err[IPM_ERRLEN] = "";
    scratch_file(dir, "packed.nc", path);
    CHECK(write_packed(path, 0) == 0);
    ipm_dataset d;
    CHECK(load_netcdf(path, &d, err) == 0);
    if (!err[0]) {
        const float want[8] = {-1, 0, 1, -0.5f, -1, 0, 0.5f, 1};
        for (int i = 0; i < 8; i++)
            CHECK(d.x[i] == want[i]);
        CHECK(d.n_x == 3); /* rows 0 and 2 are equal once unpacked */
        ipm_dataset_free(&d);
    }
    CHECK(write_packed(path, 1) == 0);
    expect_error(path, "variable y has scale_factor", "plain integers");
    unlink(path);
    CHECK(rmdir(dir) == 0);
}

static void check_netcdf_files(void)
{
    char dir[] = "/tmp/ipm_test_dataset_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char good[256], no_y[256], mismatch[256], float_y[256], missing[256];
    snprintf(good, sizeof good, "%s/good.nc", dir);
    snprintf(no_y, sizeof no_y, "%s/no_y.nc", dir);
    snprintf(mismatch, sizeof mismatch, "%s/mismatch.nc", dir);
    snprintf(float_y, sizeof float_y, "%s/float_y.nc", dir);
    snprintf(missing, sizeof missing, "%s/missing.nc", dir);
    CHECK(write_file(good, 4, 4, Y_INT64) == 0);
    CHECK(write_file(no_y, 4, 4, Y_NONE) == 0);
    CHECK(write_file(mismatch, 4, 5, Y_INT64) == 0);
    CHECK(write_file(float_y, 4, 4, Y_FLOAT) == 0);

    char err[IPM_ERRLEN] = "";
    ipm_config cfg = make_config(IPM_DATA_NETCDF, 0, 1.0, 0);
    snprintf(cfg.data_path, sizeof cfg.data_path, "%s", good);
    ipm_dataset d, test;
    int rc = ipm_dataset_load(&cfg, &d, &test, err);
    CHECK(rc == 0);
    if (rc == 0) {
        CHECK(d.n == 4 && d.dim == 6 && d.n_x == 3 && d.n_classes == 3);
        CHECK(d.x[7] == 1.75f && d.x[23] == 5.75f && d.x[12] == 0.0f);
        int32_t ids[4] = {0, 1, 0, 2}, labels[4] = {1, 0, 1, 2}; /* -3 < 7 < 100 */
        for (int i = 0; i < 4; i++)
            CHECK(d.x_id[i] == ids[i] && d.y[i] == labels[i]);
        ipm_dataset_free(&d);
    }

    expect_error(no_y, "variable y", nc_strerror(NC_ENOTVAR));
    expect_error(mismatch, "variable y", "samples");
    expect_error(float_y, "variable y", "integer type");
    expect_error(missing, "cannot open", nc_strerror(ENOENT));

    unlink(good), unlink(no_y), unlink(mismatch), unlink(float_y);
    CHECK(rmdir(dir) == 0);
}

/* Hand-built 64-bit-offset (CDF2) headers for the hostile-file checks,
 * found by fuzz_netcdf. Big-endian, names padded to 4 bytes. */
typedef struct bytes {
    unsigned char b[256];
    size_t n;
} bytes;

static void put_u32(bytes *o, uint32_t v)
{
    for (int i = 3; i >= 0; i--)
        o->b[o->n++] = (unsigned char)(v >> (8 * i));
}

static void put_name(bytes *o, const char *name)
{
    size_t len = strlen(name);
    put_u32(o, (uint32_t)len);
    memcpy(o->b + o->n, name, len);
    o->n += (len + 3) / 4 * 4;
}

/* X byte (samples, features), y int (samples), no data; x_ndims overrides
 * X's dimension count in the header (the dimension ids stay two). */
static int write_header(const char *path, uint32_t samples, uint32_t features, uint32_t x_ndims)
{
    bytes o = {{0}, 0};
    memcpy(o.b, "CDF\002", 4);
    o.n = 4;
    put_u32(&o, 0); /* numrecs */
    put_u32(&o, 0x0A), put_u32(&o, 2);
    put_name(&o, "sample"), put_u32(&o, samples);
    put_name(&o, "f"), put_u32(&o, features);
    put_u32(&o, 0), put_u32(&o, 0); /* no global attributes */
    put_u32(&o, 0x0B), put_u32(&o, 2);
    put_name(&o, "X"), put_u32(&o, x_ndims), put_u32(&o, 0), put_u32(&o, 1);
    put_u32(&o, 0), put_u32(&o, 0), put_u32(&o, NC_BYTE);
    put_u32(&o, samples * features), put_u32(&o, 0), put_u32(&o, 200);
    put_name(&o, "y"), put_u32(&o, 1), put_u32(&o, 0);
    put_u32(&o, 0), put_u32(&o, 0), put_u32(&o, NC_INT);
    uint64_t y_begin = 200 + (uint64_t)samples * features; /* after X, or nc_open refuses */
    put_u32(&o, 4 * samples), put_u32(&o, (uint32_t)(y_begin >> 32)),
        put_u32(&o, (uint32_t)y_begin);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(o.b, 1, o.n, f) == o.n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static void check_hostile_netcdf(void)
{
    char dir[] = "/tmp/ipm_test_hostile_XXXXXX", path[256];
    scratch_file(dir, "h.nc", path);
    /* 3e9 values (header only): cut short. */
    CHECK(write_header(path, 100000, 30000, 2) == 0);
    expect_error(path, "variable X's data end at byte 3000000197", "truncated or corrupt");
    /* 1e8 values in a ~150-byte file: truncated, refused before allocating. */
    CHECK(write_header(path, 100000, 1000, 2) == 0);
    expect_error(path, "variable X's data end at byte 100000197", "truncated or corrupt");
    /* 2^30 dimension ids: libnetcdf 4.9.0 itself crashes on such counts
     * when their allocation fails; the header pre-check refuses them. */
    CHECK(write_header(path, 4, 2, 1u << 30) == 0);
    expect_error(path, "malformed NetCDF header", "bytes hold");
    unlink(path);
    CHECK(rmdir(dir) == 0);
}

/* A netCDF-4 file with X float (n, d) and y int (n); x (n * d values) and y
 * are written when not NULL, x_rows of x's rows only (the rest never
 * written); deflate > 0 compresses X in chunks; y_fill sets y's _FillValue. */
static int write_netcdf4(const char *path, int n, int d, const float *x, int x_rows, const int *y,
                         int deflate, const int *y_fill)
{
    int nc, dims[2], xv, yv;
    if (nc_create(path, NC_CLOBBER | NC_NETCDF4, &nc) != NC_NOERR)
        return -1;
    nc_def_dim(nc, "sample", (size_t)n, &dims[0]);
    nc_def_dim(nc, "feature", (size_t)d, &dims[1]);
    nc_def_var(nc, "X", NC_FLOAT, 2, dims, &xv);
    if (deflate)
        nc_def_var_deflate(nc, xv, 1, 1, deflate);
    nc_def_var(nc, "y", NC_INT, 1, dims, &yv);
    if (y_fill)
        nc_def_var_fill(nc, yv, 0, y_fill);
    nc_enddef(nc);
    size_t start[2] = {0, 0}, count[2] = {(size_t)x_rows, (size_t)d};
    if (x)
        nc_put_vara_float(nc, xv, start, count, x);
    if (y)
        nc_put_var_int(nc, yv, y);
    return nc_close(nc) == NC_NOERR ? 0 : -1;
}

/* Data that would poison training or was never written is refused at
 * load, naming the variable and the first bad index; sizes a netCDF-4 file
 * cannot hold are refused before anything is allocated. */
static void check_bad_values(void)
{
    char dir[] = "/tmp/ipm_test_values_XXXXXX", path[256];
    scratch_file(dir, "v.nc", path);
    enum { N = 6, D = 4 };
    float x[N * D];
    int y[N];
    for (int i = 0; i < N * D; i++)
        x[i] = (float)(i % 7) - 3;
    for (int i = 0; i < N; i++)
        y[i] = i % 2;

    /* 3e9 values declared, none written: refused by the documented bound. */
    CHECK(write_netcdf4(path, 100000, 30000, NULL, 0, NULL, 0, NULL) == 0);
    expect_error(path, "variable X", "more than the 2147483647");
    x[2 * D + 1] = NAN;
    CHECK(write_netcdf4(path, N, D, x, N, y, 0, NULL) == 0);
    expect_error(path, "variable X holds NaN at sample 2, feature 1", "must be finite");
    x[2 * D + 1] = 0;
    x[5 * D + 3] = -INFINITY;
    CHECK(write_netcdf4(path, N, D, x, N, y, 0, NULL) == 0);
    expect_error(path, "variable X holds Inf at sample 5, feature 3", "must be finite");
    x[5 * D + 3] = 0;
    /* Rows 4 and 5 never written: NetCDF's fill value there. */
    CHECK(write_netcdf4(path, N, D, x, 4, y, 0, NULL) == 0);
    expect_error(path, "variable X holds its fill value", "at sample 4, feature 0");
    int fill = -1;
    CHECK(write_netcdf4(path, N, D, x, N, NULL, 0, &fill) == 0);
    expect_error(path, "variable y holds its fill value -1 at sample 0", "never written");
    /* The same data whole loads. */
    CHECK(write_netcdf4(path, N, D, x, N, y, 0, NULL) == 0);
    char err[IPM_ERRLEN] = "";
    ipm_config cfg = make_config(IPM_DATA_NETCDF, 0, 1.0, 0);
    snprintf(cfg.data_path, sizeof cfg.data_path, "%s", path);
    ipm_dataset train, test;
    CHECK(ipm_dataset_load(&cfg, &train, &test, err) == 0 && train.n == N);
    ipm_dataset_free(&train);
    ipm_dataset_free(&test);

    /* X(20000, 20000) declared and never written: an 8 KB file that would
     * take 1.6 GB; refused from its size alone. */
    CHECK(write_netcdf4(path, 20000, 20000, NULL, 0, NULL, 0, NULL) == 0);
    expect_error(path, "variable X declares 400000000 values", "never written");
    /* Zeros compress about 1000-fold with deflate: a legitimate file far
     * smaller than its data still loads. */
    enum { ZN = 4000, ZD = 100 };
    float *zeros = calloc((size_t)ZN * ZD, sizeof *zeros);
    int *zy = calloc(ZN, sizeof *zy);
    CHECK(write_netcdf4(path, ZN, ZD, zeros, ZN, zy, 9, NULL) == 0);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size < (off_t)ZN * ZD * 4 / 20);
    CHECK(ipm_dataset_load(&cfg, &train, &test, err) == 0 && train.n == ZN && train.n_x == 1);
    ipm_dataset_free(&train);
    ipm_dataset_free(&test);
    free(zeros);
    free(zy);
    unlink(path);
    CHECK(rmdir(dir) == 0);
}

/* The original labels follow ipm_tishby12_rule on an icosahedron of their
 * own bit order: recover the graph from how often two bits are both set in
 * the 60 positive five-ones patterns (14 times for nearest neighbours, 6
 * for second neighbours, never for antipodes), then apply the rule. */
static void check_var_u_rule(const ipm_dataset *d)
{
    int co[12][12] = {{0}};
    for (int i = 0; i < d->n; i++) {
        const float *x = d->x + 12 * i;
        int k = 0;
        for (int j = 0; j < 12; j++)
            k += x[j] != 0;
        for (int a = 0; k == 5 && d->y[i] == 1 && a < 12; a++)
            for (int b = 0; b < 12; b++)
                co[a][b] += x[a] != 0 && x[b] != 0;
    }
    double cosine[12][12];
    int graph_ok = 1;
    for (int a = 0; a < 12; a++) {
        int near = 0, second = 0, antipodal = 0;
        for (int b = 0; b < 12; b++) {
            if (a == b) {
                cosine[a][b] = 1;
                continue;
            }
            near += co[a][b] == 14, second += co[a][b] == 6, antipodal += co[a][b] == 0;
            cosine[a][b] = co[a][b] == 14 ? 1 / sqrt(5.0) : co[a][b] == 6 ? -1 / sqrt(5.0) : -1;
        }
        graph_ok &= near == 5 && second == 5 && antipodal == 1;
    }
    CHECK(graph_ok);
    int agree = 0;
    for (int i = 0; i < d->n; i++) {
        const float *x = d->x + 12 * i;
        double k = 0, r2 = 0;
        for (int a = 0; a < 12; a++) {
            k += x[a] != 0;
            for (int b = 0; b < 12; b++)
                r2 += (x[a] != 0 && x[b] != 0) ? cosine[a][b] : 0;
        }
        agree += (k + sqrt(r2 > 0 ? r2 : 0) > 7.625) == (d->y[i] == 1);
    }
    CHECK(agree == d->n);
}

/* ---- IDX source ---------------------------------------------------------------- */

#define FASHION_IMAGES "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
#define FASHION_LABELS "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"

static void idx_bytes_file(idx_bytes *f, int ndims, const uint32_t *dims, const unsigned char *v,
                           size_t count)
{
    idx_header(f, 0x08, ndims, dims);
    memcpy(f->b + f->len, v, count);
    f->len += count;
}

/* Writes f to dir/name, gzip-compressed when gz; returns the path. */
static const char *write_idx(const char *dir, const char *name, const idx_bytes *f, int gz,
                             char path[512])
{
    snprintf(path, 512, "%s/%s", dir, name);
    return idx_write(path, f->b, f->len, gz);
}

static ipm_config idx_config(const char *images, const char *labels, int pool, int quantize,
                             int scale)
{
    ipm_config cfg = make_config(IPM_DATA_IDX, 0, 1.0, 3);
    snprintf(cfg.images, sizeof cfg.images, "%s", images);
    snprintf(cfg.labels, sizeof cfg.labels, "%s", labels);
    cfg.pool = pool;
    cfg.quantize = quantize;
    cfg.scale = scale;
    return cfg;
}

/* Four 4 x 5 images: 0 has pixel (r, c) = 10 r + c; 1 is all 255; 2 is 0
 * with pixel (0,0) = 1; 3 is 0 with column 4 (dropped by 2 x 2 pooling) = 200.
 * Labels 7, 2, 7, 9. */
typedef struct small_set {
    char images[512], labels[512], images_gz[512], labels_gz[512];
} small_set;

static void write_small_set(const char *dir, small_set *s)
{
    unsigned char px[4][4][5];
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 5; c++) {
            px[0][r][c] = (unsigned char)(10 * r + c);
            px[1][r][c] = 255;
            px[2][r][c] = (unsigned char)(10 * r + c + (r == 0 && c == 0));
            px[3][r][c] = (unsigned char)(c == 4 ? 200 : 10 * r + c);
        }
    const uint32_t dims[3] = {4, 4, 5}, label_dims[1] = {4};
    const unsigned char labels[4] = {7, 2, 7, 9};
    idx_bytes f;
    idx_bytes_file(&f, 3, dims, &px[0][0][0], sizeof px);
    write_idx(dir, "small-images", &f, 0, s->images);
    write_idx(dir, "small-images.gz", &f, 1, s->images_gz);
    idx_bytes_file(&f, 1, label_dims, labels, 4);
    write_idx(dir, "small-labels", &f, 0, s->labels);
    write_idx(dir, "small-labels.gz", &f, 1, s->labels_gz);
}

static int load_ok(const ipm_config *cfg, ipm_dataset *train, ipm_dataset *test)
{
    char err[IPM_ERRLEN] = "";
    int rc = ipm_dataset_load(cfg, train, test, err);
    if (rc)
        fprintf(stderr, "unexpected: %s\n", err);
    return rc == 0;
}

static void check_idx_preprocessing(const small_set *s)
{
    ipm_dataset d, test;
    /* pool 2, quantize 3: the 2 x 2 block sums of image 0 are 0+1+10+11 = 22,
     * 2+3+12+13 = 30, 20+21+30+31 = 102, 22+23+32+33 = 110 -> 7, 10, 34, 36;
     * image 1: 1020 / 3 = 340; image 2's 23 / 3 is 7 too, image 3 differs
     * only in the dropped column. */
    ipm_config cfg = idx_config(s->images, s->labels, 2, 3, 0);
    if (!load_ok(&cfg, &d, &test))
        return;
    CHECK(d.n == 4 && d.dim == 4 && d.height == 2 && d.width == 2 && d.channels == 1);
    CHECK(test.n == 0 && test.dim == 4 && test.height == 2 && test.n_classes == 3);
    const float expect[4][4] = {
        {7, 10, 34, 36}, {340, 340, 340, 340}, {7, 10, 34, 36}, {7, 10, 34, 36}};
    CHECK(memcmp(d.x, expect, sizeof expect) == 0);
    const int32_t ids[4] = {0, 1, 0, 0}, classes[4] = {1, 0, 1, 2}; /* 2 < 7 < 9 */
    for (int i = 0; i < 4; i++)
        CHECK(d.x_id[i] == ids[i] && d.y[i] == classes[i]);
    CHECK(d.n_x == 2 && d.n_classes == 3);
    ipm_dataset_free(&d);

    /* quantize 1 keeps the sums: image 2 now differs (23), image 3 does not. */
    cfg.quantize = 1;
    if (load_ok(&cfg, &d, &test)) {
        CHECK(d.x[0] == 22 && d.x[3] == 110 && d.x[8] == 23 && d.x[4] == 1020);
        CHECK(d.n_x == 3 && d.x_id[2] == 2 && d.x_id[3] == 0);
        ipm_dataset_free(&d);
    }

    /* scale: divided by floor(255 * 4 / 3) = 340, the all-255 image gives 1. */
    cfg.quantize = 3, cfg.scale = 1;
    if (load_ok(&cfg, &d, &test)) {
        CHECK(d.x[0] == 7.0f / 340.0f && d.x[3] == 36.0f / 340.0f);
        for (int j = 4; j < 8; j++)
            CHECK(d.x[j] == 1.0f);
        ipm_dataset_free(&d);
    }

    /* pool 3 on 4 x 5: one output, the top-left 3 x 3 block: 3 (0 + 10 + 20) + 3 (0 + 1 + 2). */
    cfg = idx_config(s->images, s->labels, 3, 1, 0);
    if (load_ok(&cfg, &d, &test)) {
        CHECK(d.dim == 1 && d.height == 1 && d.width == 1 && d.x[0] == 99 && d.x[1] == 2295);
        ipm_dataset_free(&d);
    }

    /* pool 1, quantize 1: the raw bytes, all four images distinct. */
    cfg = idx_config(s->images, s->labels, 1, 1, 0);
    if (load_ok(&cfg, &d, &test)) {
        CHECK(d.dim == 20 && d.height == 4 && d.width == 5 && d.n_x == 4);
        CHECK(d.x[7] == 12 && d.x[20 * 3 + 4] == 200);
        ipm_dataset_free(&d);
    }

    /* gzip files give the same set. */
    ipm_dataset plain, gz;
    cfg = idx_config(s->images, s->labels, 2, 3, 0);
    ipm_config cfg_gz = idx_config(s->images_gz, s->labels_gz, 2, 3, 0);
    if (load_ok(&cfg, &plain, &test) && load_ok(&cfg_gz, &gz, &test)) {
        CHECK(same_dataset(&plain, &gz) && gz.n_x == plain.n_x);
        ipm_dataset_free(&plain);
        ipm_dataset_free(&gz);
    }

    /* train_fraction splits as for other sources; both parts keep the shape. */
    cfg.train_fraction = 0.5;
    if (load_ok(&cfg, &d, &test)) {
        CHECK(d.n == 2 && test.n == 2 && d.height == 2 && test.height == 2 && test.width == 2 &&
              test.channels == 1 && test.n_classes == 3);
        ipm_dataset_free(&d);
        ipm_dataset_free(&test);
    }
}

/* Channels are pooled separately and stored HWC. */
static void check_idx_channels(const char *dir)
{
    /* one 2 x 2 x 2 image: channel 0 = 1, 2, 3, 4; channel 1 = 100 everywhere. */
    const unsigned char px[8] = {1, 100, 2, 100, 3, 100, 4, 100}, label[1] = {5};
    const uint32_t dims[4] = {1, 2, 2, 2}, label_dims[1] = {1};
    idx_bytes f;
    char images[512], labels[512];
    idx_bytes_file(&f, 4, dims, px, 8);
    write_idx(dir, "rgb-images", &f, 0, images);
    idx_bytes_file(&f, 1, label_dims, label, 1);
    write_idx(dir, "rgb-labels", &f, 0, labels);
    ipm_dataset d, test;
    ipm_config cfg = idx_config(images, labels, 2, 1, 0);
    if (load_ok(&cfg, &d, &test)) {
        CHECK(d.n == 1 && d.dim == 2 && d.height == 1 && d.width == 1 && d.channels == 2);
        CHECK(d.x[0] == 10 && d.x[1] == 400 && d.n_classes == 1 && d.y[0] == 0);
        ipm_dataset_free(&d);
    }
    cfg.pool = 1; /* the file's own HWC order */
    if (load_ok(&cfg, &d, &test)) {
        CHECK(d.dim == 8 && d.channels == 2 && d.x[2] == 2 && d.x[3] == 100);
        ipm_dataset_free(&d);
    }
}

/* N = 50 images of 2 x 2 whose pixel 0 is their index; labels 1 + i % 4. */
static void write_numbered_set(const char *dir, int n, char images[512], char labels[512])
{
    unsigned char px[50 * 4] = {0}, lab[50];
    for (int i = 0; i < n; i++)
        px[4 * i] = (unsigned char)i, lab[i] = (unsigned char)(1 + i % 4);
    const uint32_t dims[3] = {(uint32_t)n, 2, 2}, label_dims[1] = {(uint32_t)n};
    idx_bytes f;
    idx_bytes_file(&f, 3, dims, px, 4 * (size_t)n);
    write_idx(dir, "numbered-images", &f, 0, images);
    idx_bytes_file(&f, 1, label_dims, lab, (size_t)n);
    write_idx(dir, "numbered-labels", &f, 0, labels);
}

static void check_idx_subset(const char *dir)
{
    enum { N = 50, SUBSET = 20, SEEDS = 200 };
    char images[512], labels[512];
    write_numbered_set(dir, N, images, labels);
    ipm_config cfg = idx_config(images, labels, 1, 1, 0);
    cfg.subset = SUBSET;
    ipm_dataset a, b, other, test;
    if (!load_ok(&cfg, &a, &test))
        return;
    CHECK(a.n == SUBSET && test.n == 0 && a.n_x == SUBSET);
    int sorted = 1, labels_follow = 1;
    for (int i = 0; i < a.n; i++) {
        int index = (int)a.x[4 * i];
        sorted &= i == 0 || index > (int)a.x[4 * (i - 1)];
        labels_follow &= a.y[i] == index % 4; /* labels 1..4 -> 0..3 (all four occur) */
    }
    CHECK(sorted);
    CHECK(a.n_classes == 4);
    CHECK(labels_follow);
    CHECK(load_ok(&cfg, &b, &test));
    CHECK(same_dataset(&a, &b));
    cfg.seed = 4;
    CHECK(load_ok(&cfg, &other, &test));
    CHECK(other.n == SUBSET && !same_dataset(&a, &other));
    ipm_dataset_free(&a), ipm_dataset_free(&b), ipm_dataset_free(&other);

    /* Uniform: over many seeds each image is kept with probability 20/50
     * (expected 80 of 200, sd 6.9), and only 20-subsets occur. */
    int kept[N] = {0}, sizes_ok = 1;
    for (int seed = 0; seed < SEEDS; seed++) {
        cfg.seed = (uint64_t)seed + 1000;
        if (!load_ok(&cfg, &a, &test))
            return;
        sizes_ok &= a.n == SUBSET;
        for (int i = 0; i < a.n; i++)
            kept[(int)a.x[4 * i]]++;
        ipm_dataset_free(&a);
    }
    CHECK(sizes_ok);
    for (int i = 0; i < N; i++)
        CHECK_NEAR(kept[i], SEEDS * (double)SUBSET / N, 30);

    /* subset = N keeps every image in the file's order. */
    cfg.subset = N;
    if (load_ok(&cfg, &a, &test)) {
        int all = a.n == N;
        for (int i = 0; all && i < N; i++)
            all &= a.x[4 * i] == (float)i;
        CHECK(all);
        ipm_dataset_free(&a);
    }
}

/* test_images: the held-out set, every image, labels mapped over the union. */
static void check_idx_test_files(const char *dir, const small_set *s)
{
    unsigned char px[2][4][5];
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 5; c++)
            px[0][r][c] = 255, px[1][r][c] = (unsigned char)(10 * r + c);
    const uint32_t dims[3] = {2, 4, 5}, label_dims[1] = {2};
    const unsigned char test_labels[2] = {9, 4};
    idx_bytes f;
    char images[512], labels[512];
    idx_bytes_file(&f, 3, dims, &px[0][0][0], sizeof px);
    write_idx(dir, "test-images.gz", &f, 1, images);
    idx_bytes_file(&f, 1, label_dims, test_labels, 2);
    write_idx(dir, "test-labels", &f, 0, labels);

    ipm_config cfg = idx_config(s->images, s->labels, 2, 3, 0);
    snprintf(cfg.test_images, sizeof cfg.test_images, "%s", images);
    snprintf(cfg.test_labels, sizeof cfg.test_labels, "%s", labels);
    ipm_dataset train, test;
    if (load_ok(&cfg, &train, &test)) {
        /* union {2, 4, 7, 9}: train 7, 2, 7, 9 -> 2, 0, 2, 3; test 9, 4 -> 3, 1 */
        CHECK(train.n == 4 && test.n == 2 && train.n_classes == 4 && test.n_classes == 4);
        CHECK(train.y[0] == 2 && train.y[1] == 0 && train.y[3] == 3);
        CHECK(test.y[0] == 3 && test.y[1] == 1);
        CHECK(test.dim == 4 && test.height == 2 && test.width == 2 && test.channels == 1);
        CHECK(test.x[0] == 340 && test.x[4] == 7 && test.x[7] == 36);
        CHECK(test.n_x == 2 && train.n_x == 2 && test.x_id[1] == 1);
        ipm_dataset_free(&train);
        ipm_dataset_free(&test);
    }
    /* subset draws from the training file only. */
    cfg.subset = 3;
    if (load_ok(&cfg, &train, &test)) {
        CHECK(train.n == 3 && test.n == 2);
        ipm_dataset_free(&train);
        ipm_dataset_free(&test);
    }
}

static void expect_idx_error(const ipm_config *cfg, const char *part1, const char *part2)
{
    char err[IPM_ERRLEN] = "";
    ipm_dataset train, test;
    CHECK(ipm_dataset_load(cfg, &train, &test, err) == -1);
    int ok = strstr(err, part1) != NULL && strstr(err, part2) != NULL;
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  message was: %s\n", err);
    CHECK(train.x == NULL && test.x == NULL);
}

static void check_idx_errors(const char *dir, const small_set *s)
{
    char missing[512], flat[512], floats[512], three[512];
    snprintf(missing, sizeof missing, "%s/missing-images", dir);
    ipm_config cfg = idx_config(missing, s->labels, 1, 1, 0);
    expect_idx_error(&cfg, "[data] images: ", missing);
    expect_idx_error(&cfg, missing, "cannot open");

    idx_bytes f;
    const unsigned char bytes[80] = {0};
    const uint32_t flat_dims[2] = {4, 20};
    idx_bytes_file(&f, 2, flat_dims, bytes, 80);
    cfg = idx_config(write_idx(dir, "flat-images", &f, 0, flat), s->labels, 1, 1, 0);
    expect_idx_error(&cfg, flat, "unsigned bytes n x h x w");

    const uint32_t float_dims[3] = {4, 1, 1};
    idx_header(&f, 0x0D, 3, float_dims);
    memset(f.b + f.len, 0, 16), f.len += 16;
    cfg = idx_config(write_idx(dir, "float-images", &f, 0, floats), s->labels, 1, 1, 0);
    expect_idx_error(&cfg, floats, "values are float, not unsigned bytes");

    const uint32_t three_dims[1] = {3};
    idx_bytes_file(&f, 1, three_dims, bytes, 3);
    cfg = idx_config(s->images, write_idx(dir, "three-labels", &f, 0, three), 1, 1, 0);
    expect_idx_error(&cfg, "count mismatch", three);

    cfg = idx_config(s->images, s->labels, 5, 1, 0);
    expect_idx_error(&cfg, "[data] pool = 5", s->images);
    cfg = idx_config(s->images, s->labels, 2, 1021, 0);
    expect_idx_error(&cfg, "[data] quantize = 1021", "255 * 2 * 2");
    cfg = idx_config(s->images, s->labels, 1, 1, 0);
    cfg.subset = 5;
    expect_idx_error(&cfg, "[data] subset = 5", s->images);
    cfg = idx_config("", s->labels, 1, 1, 0);
    expect_idx_error(&cfg, "[data] images: ", "needs both");
    cfg = idx_config(s->images, s->labels, 1, 1, 0);
    snprintf(cfg.test_images, sizeof cfg.test_images, "%s", s->images);
    snprintf(cfg.test_labels, sizeof cfg.test_labels, "%s", missing);
    expect_idx_error(&cfg, "[data] test_labels: ", missing);
    cfg.train_fraction = 0.5;
    expect_idx_error(&cfg, "[data] train_fraction", "test_images");
    /* test images that pool to another shape */
    snprintf(cfg.test_images, sizeof cfg.test_images, "%s", flat);
    snprintf(cfg.test_labels, sizeof cfg.test_labels, "%s", s->labels);
    cfg.train_fraction = 1;
    expect_idx_error(&cfg, flat, "unsigned bytes");
    /* test images of another size: 2 x 2 against 4 x 5 */
    snprintf(cfg.test_images, sizeof cfg.test_images, "%s/numbered-images", dir);
    snprintf(cfg.test_labels, sizeof cfg.test_labels, "%s/numbered-labels", dir);
    expect_idx_error(&cfg, "[data] test_images", "gives 2 x 2 x 1 images");

    unlink(missing), unlink(flat), unlink(floats), unlink(three);
}

static void check_fashion_mnist(void)
{
    if (access(FASHION_IMAGES, R_OK) != 0 || access(FASHION_LABELS, R_OK) != 0) {
        printf("test_dataset: %s absent: Fashion-MNIST check skipped\n", FASHION_IMAGES);
        return;
    }
    ipm_config cfg = idx_config(FASHION_IMAGES, FASHION_LABELS, 2, 20, 0);
    cfg.subset = 2000;
    ipm_dataset d, test;
    if (!load_ok(&cfg, &d, &test))
        return;
    CHECK(d.n == 2000 && d.dim == 196 && d.height == 14 && d.width == 14 && d.channels == 1);
    CHECK(d.n_classes == 10 && test.n == 0);
    int integral = 1;
    float top = 0;
    for (size_t i = 0; i < (size_t)d.n * 196; i++) {
        integral &= d.x[i] >= 0 && d.x[i] <= 51 && d.x[i] == floorf(d.x[i]);
        top = d.x[i] > top ? d.x[i] : top;
    }
    CHECK(integral);
    CHECK(top >= 45); /* 2 x 2 blocks of near-white pixels exist */
    CHECK(d.n_x > 1900 && d.n_x <= 2000);
    ipm_dataset_free(&d);
}

static void check_idx(void)
{
    char dir[] = "/tmp/ipm_test_idx_source_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    small_set s;
    write_small_set(dir, &s);
    check_idx_preprocessing(&s);
    check_idx_channels(dir);
    check_idx_subset(dir);
    check_idx_test_files(dir, &s);
    check_idx_errors(dir, &s); /* uses the numbered files of check_idx_subset */
    const char *names[] = {
        "small-images", "small-images.gz", "small-labels",    "small-labels.gz", "rgb-images",
        "rgb-labels",   "numbered-images", "numbered-labels", "test-images.gz",  "test-labels"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        CHECK(unlink(path) == 0);
    }
    CHECK(rmdir(dir) == 0);
    check_fashion_mnist();
}

/* Returns 0 when checked, 1 when the file is absent. */
static int check_var_u(const char *path)
{
    if (access(path, R_OK) != 0)
        return 1;
    char err[IPM_ERRLEN] = "";
    ipm_config cfg = make_config(IPM_DATA_NETCDF, 0, 1.0, 0);
    snprintf(cfg.data_path, sizeof cfg.data_path, "%s", path);
    ipm_dataset d, test;
    int rc = ipm_dataset_load(&cfg, &d, &test, err);
    CHECK(rc == 0);
    if (rc != 0) {
        fprintf(stderr, "%s\n", err);
        return 0;
    }
    CHECK(d.n == 4096 && d.dim == 12 && d.n_x == 4096 && d.n_classes == 2);
    int ones = 0;
    for (int i = 0; i < d.n; i++)
        ones += d.y[i];
    CHECK(ones == 2118); /* H(Y) = 0.99916 bits */
    check_var_u_rule(&d);
    ipm_dataset_free(&d);
    return 0;
}

/* usage: test_dataset           everything but the original data
 *        test_dataset VAR_U.nc  only the checks on the original data (77 = absent) */
int main(int argc, char **argv)
{
    if (argc > 1) {
        int absent = check_var_u(argv[1]);
        int rc = check_report("test_dataset");
        if (rc == 0 && absent) {
            printf("test_dataset: %s absent: skipped\n", argv[1]);
            return 77;
        }
        return rc;
    }
    check_tishby12();
    check_dedup();
    check_generated(IPM_DATA_SIMPLE);
    check_generated(IPM_DATA_COMPLICATED);
    check_split();
    check_netcdf_files();
    check_cut_classic();
    check_packed();
    check_hostile_netcdf();
    check_bad_values();
    check_idx();
    return check_report("test_dataset");
}
