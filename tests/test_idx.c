/* test_idx: the IDX reader on small files written here (plain and gzip),
 * every refusal's message, and the real Fashion-MNIST files when installed
 * (Debian package dataset-fashion-mnist).
 * Usage: test_idx        everything (the real files are "skipped" if absent)
 *        test_idx DIR    only the real files in DIR (77 = absent) */
#include "ipmpi/base/error.h"
#include "ipmpi/io/idx.h"

#include "check.h"
#include "idx_writer.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

typedef struct scratch {
    char dir[256];
} scratch;

static void put_u16(idx_bytes *f, uint16_t v)
{
    f->b[f->len++] = (unsigned char)(v >> 8);
    f->b[f->len++] = (unsigned char)v;
}

static void put_f32(idx_bytes *f, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    idx_put_u32(f, u);
}

static void put_f64(idx_bytes *f, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    idx_put_u32(f, (uint32_t)(u >> 32));
    idx_put_u32(f, (uint32_t)u);
}

static const char *path_in(const scratch *s, const char *name, char out[512])
{
    snprintf(out, 512, "%s/%s", s->dir, name);
    return out;
}

static const char *write_raw(const scratch *s, const char *name, const void *b, size_t len,
                             char out[512])
{
    return idx_write(path_in(s, name, out), b, len, 0);
}

static const char *write_gz(const scratch *s, const char *name, const void *b, size_t len,
                            char out[512])
{
    return idx_write(path_in(s, name, out), b, len, 1);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* ---- files that read ---- */

static void check_ubyte_images(const scratch *s, int gz)
{
    static const uint32_t dims[3] = {2, 2, 3};
    idx_bytes f;
    idx_header(&f, 0x08, 3, dims);
    for (int i = 0; i < 12; i++)
        f.b[f.len++] = (unsigned char)(i * 23); /* 0, 23, ..., 253 */
    char path[512];
    if (gz)
        write_gz(s, "img.gz", f.b, f.len, path);
    else
        write_raw(s, "img", f.b, f.len, path);
    ipm_idx x;
    char err[IPM_ERRLEN] = "";
    CHECK(ipm_idx_read(path, &x, err) == 0);
    CHECK(x.type == IPM_IDX_UBYTE && x.ndims == 3);
    CHECK(x.dims[0] == 2 && x.dims[1] == 2 && x.dims[2] == 3 && x.dims[3] == 0);
    CHECK(x.count == 12);
    for (size_t i = 0; x.values && i < 12; i++)
        CHECK(x.values[i] == (float)(i * 23));
    ipm_idx_free(&x);
    CHECK(x.values == NULL && x.count == 0);
    ipm_idx_free(&x); /* twice is harmless */
}

static void check_float_file(const scratch *s, int gz)
{
    static const float v[5] = {-1.5f, 3.25f, 0.0f, 1e-30f, -7e20f};
    uint32_t dims[1] = {5};
    idx_bytes f;
    idx_header(&f, 0x0D, 1, dims);
    for (int i = 0; i < 5; i++)
        put_f32(&f, v[i]);
    char path[512];
    if (gz)
        write_gz(s, "float.gz", f.b, f.len, path);
    else
        write_raw(s, "float", f.b, f.len, path);
    ipm_idx x;
    char err[IPM_ERRLEN];
    CHECK(ipm_idx_read(path, &x, err) == 0);
    CHECK(x.type == IPM_IDX_FLOAT && x.ndims == 1 && x.count == 5);
    for (int i = 0; x.values && i < 5; i++)
        CHECK(memcmp(&x.values[i], &v[i], 4) == 0); /* bit for bit */
    ipm_idx_free(&x);
}

static void check_short_file(const scratch *s)
{
    static const int v[6] = {-32768, -1, 0, 1, 300, 32767};
    uint32_t dims[2] = {2, 3};
    idx_bytes f;
    idx_header(&f, 0x0B, 2, dims);
    for (int i = 0; i < 6; i++)
        put_u16(&f, (uint16_t)(v[i] & 0xffff));
    char path[512];
    write_raw(s, "short", f.b, f.len, path);
    ipm_idx x;
    char err[IPM_ERRLEN];
    CHECK(ipm_idx_read(path, &x, err) == 0);
    CHECK(x.type == IPM_IDX_SHORT && x.count == 6 && x.dims[0] == 2 && x.dims[1] == 3);
    for (int i = 0; x.values && i < 6; i++)
        CHECK(x.values[i] == (float)v[i]);
    ipm_idx_free(&x);
}

static void check_sbyte_int_double(const scratch *s)
{
    char path[512], err[IPM_ERRLEN];
    ipm_idx x;
    idx_bytes f;
    uint32_t four[1] = {4};

    idx_header(&f, 0x09, 1, four);
    static const unsigned char sb[4] = {0x80, 0xff, 0x00, 0x7f};
    memcpy(f.b + f.len, sb, 4);
    f.len += 4;
    CHECK(ipm_idx_read(write_raw(s, "sbyte", f.b, f.len, path), &x, err) == 0);
    CHECK(x.count == 4 && x.values && x.values[0] == -128 && x.values[1] == -1 &&
          x.values[2] == 0 && x.values[3] == 127);
    ipm_idx_free(&x);

    idx_header(&f, 0x0C, 1, four);
    idx_put_u32(&f, 0x80000000u); /* INT32_MIN */
    idx_put_u32(&f, 0xfffffffbu); /* -5 */
    idx_put_u32(&f, 16777216u);
    idx_put_u32(&f, 0x7fffffffu);
    CHECK(ipm_idx_read(write_raw(s, "int", f.b, f.len, path), &x, err) == 0);
    CHECK(x.count == 4 && x.values && x.values[0] == -2147483648.0f && x.values[1] == -5 &&
          x.values[2] == 16777216.0f && x.values[3] == 2147483648.0f);
    ipm_idx_free(&x);

    idx_header(&f, 0x0E, 1, four);
    put_f64(&f, 0.1);
    put_f64(&f, -2.5);
    put_f64(&f, 1e300);
    put_f64(&f, -1e300);
    CHECK(ipm_idx_read(write_raw(s, "double", f.b, f.len, path), &x, err) == 0);
    CHECK(x.count == 4 && x.values && x.values[0] == 0.1f && x.values[1] == -2.5f &&
          isinf(x.values[2]) && x.values[2] > 0 && isinf(x.values[3]) && x.values[3] < 0);
    ipm_idx_free(&x);
}

static void check_pair(const scratch *s, int gz)
{
    static const uint32_t idims[3] = {3, 2, 2}, ldims[1] = {3};
    idx_bytes f;
    char ipath[512], lpath[512], err[IPM_ERRLEN];
    idx_header(&f, 0x08, 3, idims);
    for (int i = 0; i < 12; i++)
        f.b[f.len++] = (unsigned char)(255 - i);
    (gz ? write_gz : write_raw)(s, "pair-img", f.b, f.len, ipath);
    /* int labels beyond float's 2^24: they must come back exactly */
    idx_header(&f, 0x0C, 1, ldims);
    idx_put_u32(&f, 16777217u);
    idx_put_u32(&f, 0xfffffffbu);
    idx_put_u32(&f, 9);
    (gz ? write_gz : write_raw)(s, "pair-lab", f.b, f.len, lpath);
    ipm_idx x;
    int32_t *y = NULL;
    int n = -1;
    CHECK(ipm_idx_read_pair(ipath, lpath, &x, &y, &n, err) == 0);
    CHECK(n == 3 && x.count == 12 && x.dims[0] == 3);
    CHECK(y && y[0] == 16777217 && y[1] == -5 && y[2] == 9);
    CHECK(x.values && x.values[0] == 255 && x.values[11] == 244);
    ipm_idx_free(&x);
    free(y);

    /* The same images kept as bytes. */
    CHECK(ipm_idx_read_pair_bytes(ipath, lpath, &x, &y, &n, err) == 0);
    CHECK(n == 3 && x.count == 12 && x.values == NULL && x.bytes != NULL);
    for (int i = 0; x.bytes && i < 12; i++)
        CHECK(x.bytes[i] == 255 - i);
    CHECK(y && y[0] == 16777217);
    ipm_idx_free(&x);
    free(y);
    /* Bytes are for unsigned-byte images only: the int labels file as images. */
    CHECK(ipm_idx_read_pair_bytes(lpath, lpath, &x, &y, &n, err) == -1);
    CHECK(strstr(err, lpath) && strstr(err, "values are int, not unsigned bytes"));
    CHECK(x.bytes == NULL && y == NULL && n == 0);

    idx_header(&f, 0x08, 1, ldims);
    f.b[f.len++] = 7, f.b[f.len++] = 0, f.b[f.len++] = 200;
    write_raw(s, "pair-lab-u8", f.b, f.len, lpath);
    CHECK(ipm_idx_read_pair(ipath, lpath, &x, &y, &n, err) == 0);
    CHECK(n == 3 && y && y[0] == 7 && y[1] == 0 && y[2] == 200);
    ipm_idx_free(&x);
    free(y);
}

/* ---- refusals ---- */

/* The read fails, *out is left zeroed, and the message names the path and
 * contains every given substring. */
static int refused_with(const char *path, const char *want1, const char *want2)
{
    ipm_idx x;
    char err[IPM_ERRLEN] = "";
    int ok = ipm_idx_read(path, &x, err) == -1 && x.values == NULL && x.count == 0 &&
             strstr(err, path) && strstr(err, want1) && (!want2 || strstr(err, want2)) &&
             !strchr(err, '\n');
    if (!ok)
        fprintf(stderr, "message for %s: \"%s\" (wanted \"%s\"%s%s)\n", path, err, want1,
                want2 ? ", " : "", want2 ? want2 : "");
    ipm_idx_free(&x);
    return ok;
}

static void check_header_refusals(const scratch *s)
{
    char path[512];
    idx_bytes f;
    uint32_t dims[5] = {2, 3, 4, 5, 6};

    CHECK(refused_with(path_in(s, "missing", path), "cannot open", "No such file"));
    CHECK(refused_with(s->dir, "is a directory", NULL));
    CHECK(refused_with(write_raw(s, "empty", "", 0, path), "not an IDX file", "0 bytes"));
    CHECK(refused_with(write_raw(s, "two", "\0\0", 2, path), "not an IDX file", "2 bytes"));
    CHECK(refused_with(write_raw(s, "text", "ABCDEFGH", 8, path), "not an IDX file",
                       "magic 41 42 43 44"));
    /* a gzip file whose content is not IDX: the magic shown is decompressed */
    CHECK(refused_with(write_gz(s, "text.gz", "hello, world", 12, path), "not an IDX file",
                       "magic 68 65 6c 6c"));
    idx_header(&f, 0x0A, 1, dims);
    CHECK(refused_with(write_raw(s, "type", f.b, f.len, path), "unsupported IDX type 0x0a", NULL));
    idx_header(&f, 0x08, 0, dims);
    CHECK(refused_with(write_raw(s, "nd0", f.b, f.len, path), "0 dimensions", NULL));
    idx_header(&f, 0x08, 5, dims);
    CHECK(refused_with(write_raw(s, "nd5", f.b, f.len, path), "5 dimensions", NULL));
    idx_header(&f, 0x08, 3, dims);
    f.len -= 2;
    CHECK(refused_with(write_raw(s, "cuthdr", f.b, f.len, path), "truncated header",
                       "expected 3 dimension sizes (12 bytes), found 10"));
    uint32_t zero[3] = {4, 0, 7};
    idx_header(&f, 0x08, 3, zero);
    CHECK(
        refused_with(write_raw(s, "dim0", f.b, f.len, path), "dimension 2 of 3 is 0", "4 x 0 x 7"));
    uint32_t big[2] = {65536, 32768}; /* 2^31: one too many */
    idx_header(&f, 0x08, 2, big);
    CHECK(refused_with(write_raw(s, "big", f.b, f.len, path), "more than 2147483647 values",
                       "65536 x 32768"));
    uint32_t huge[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    idx_header(&f, 0x0E, 4, huge);
    CHECK(
        refused_with(write_raw(s, "huge", f.b, f.len, path), "more than 2147483647 values", NULL));
}

static void check_data_refusals(const scratch *s)
{
    char path[512];
    idx_bytes f;
    uint32_t dims[3] = {2, 2, 3};
    idx_header(&f, 0x08, 3, dims);
    memset(f.b + f.len, 1, 12);
    f.len += 12;
    CHECK(refused_with(write_raw(s, "cut", f.b, f.len - 2, path),
                       "truncated: expected 12 bytes of data, found 10", NULL));
    CHECK(refused_with(write_gz(s, "cut.gz", f.b, f.len - 2, path),
                       "truncated: expected 12 bytes of data, found 10", NULL));
    memcpy(f.b + f.len, "xyz", 3);
    CHECK(refused_with(write_raw(s, "trail", f.b, f.len + 3, path), "3 trailing bytes",
                       "12 bytes of data"));
    CHECK(refused_with(write_gz(s, "trail.gz", f.b, f.len + 3, path), "3 trailing bytes", NULL));

    /* the largest accepted count with 5 bytes of data: refused by what is
     * there, without allocating 8 GiB first */
    uint32_t most[1] = {0x7fffffffu};
    idx_header(&f, 0x0C, 1, most);
    memset(f.b + f.len, 0, 5);
    CHECK(refused_with(write_raw(s, "claims", f.b, f.len + 5, path),
                       "truncated: expected 8589934588 bytes of data, found 5", NULL));

    /* a partial last value counts in "found" */
    uint32_t two[1] = {2};
    idx_header(&f, 0x0D, 1, two);
    put_f32(&f, 1.0f);
    CHECK(refused_with(write_raw(s, "halffloat", f.b, f.len + 3, path),
                       "expected 8 bytes of data, found 7", NULL));
}

/* A gzip stream cut in the middle, or with a corrupt trailer, is refused. */
static void check_broken_gzip(const scratch *s)
{
    static idx_bytes f;
    uint32_t dims[1] = {40000};
    idx_header(&f, 0x08, 1, dims);
    uint32_t state = 12345; /* incompressible-ish bytes so the cut lands in the data */
    for (int i = 0; i < 40000; i++) {
        state = state * 1103515245u + 12345u;
        f.b[f.len++] = (unsigned char)(state >> 24);
    }
    char path[512];
    write_gz(s, "whole.gz", f.b, f.len, path);
    long size = file_size(path);
    CHECK(size > 20000);
    ipm_idx whole;
    char err[IPM_ERRLEN];
    CHECK(ipm_idx_read(path, &whole, err) == 0 && whole.count == 40000 &&
          whole.values[39999] == f.b[f.len - 1]);
    ipm_idx_free(&whole);

    unsigned char *gz = malloc((size_t)size);
    FILE *fp = fopen(path, "rb");
    CHECK(fp && gz && fread(gz, 1, (size_t)size, fp) == (size_t)size);
    if (fp)
        fclose(fp);
    CHECK(refused_with(write_raw(s, "half.gz", gz, (size_t)size / 2, path),
                       "truncated: expected 40000 bytes of data, found ",
                       "(gzip: unexpected end of file)"));
    CHECK(refused_with(write_raw(s, "notrailer.gz", gz, (size_t)size - 8, path),
                       "gzip stream cut short after the data", "unexpected end of file"));
    gz[size - 8] ^= 0x55; /* CRC-32 */
    CHECK(refused_with(write_raw(s, "badcrc.gz", gz, (size_t)size, path),
                       "gzip: incorrect data check", NULL));
    gz[size - 8] ^= 0x55;
    gz[3] = 0; /* FLG fine, now corrupt the method byte */
    gz[2] = 7;
    CHECK(refused_with(write_raw(s, "method.gz", gz, (size_t)size, path), "gzip: ", NULL));
    free(gz);
}

static int pair_refused_with(const char *ipath, const char *lpath, const char *want1,
                             const char *want2, const char *named)
{
    ipm_idx x;
    int32_t *y = (int32_t *)&x; /* must be reset */
    int n = -1;
    char err[IPM_ERRLEN] = "";
    int ok = ipm_idx_read_pair(ipath, lpath, &x, &y, &n, err) == -1 && x.values == NULL &&
             y == NULL && n == 0 && strstr(err, want1) && (!want2 || strstr(err, want2)) &&
             strstr(err, named);
    if (!ok)
        fprintf(stderr, "pair message: \"%s\" (wanted \"%s\", \"%s\", \"%s\")\n", err, want1,
                want2 ? want2 : "", named);
    return ok;
}

static void check_pair_refusals(const scratch *s)
{
    char ipath[512], lpath[512];
    idx_bytes f;
    uint32_t idims[2] = {3, 2}, ldims[2] = {3, 1}, two[1] = {2};
    idx_header(&f, 0x08, 2, idims);
    memset(f.b + f.len, 3, 6);
    write_raw(s, "p-img", f.b, f.len + 6, ipath);

    idx_header(&f, 0x0D, 1, two);
    put_f32(&f, 1), put_f32(&f, 0);
    CHECK(pair_refused_with(ipath, write_raw(s, "p-flt", f.b, f.len, lpath),
                            "labels must have an integer type", "not float", lpath));
    idx_header(&f, 0x08, 2, ldims);
    memset(f.b + f.len, 1, 3);
    CHECK(pair_refused_with(ipath, write_raw(s, "p-2d", f.b, f.len + 3, lpath),
                            "labels must have 1 dimension, not 2", "3 x 1", lpath));
    idx_header(&f, 0x08, 1, two);
    memset(f.b + f.len, 1, 2);
    write_raw(s, "p-two", f.b, f.len + 2, lpath);
    CHECK(pair_refused_with(ipath, lpath, "count mismatch", "has 3 images", ipath));
    CHECK(pair_refused_with(ipath, lpath, "has 2 labels", NULL, lpath));
    char missing[512];
    CHECK(pair_refused_with(path_in(s, "p-missing", missing), lpath, "cannot open", NULL, missing));
    CHECK(pair_refused_with(ipath, missing, "cannot open", NULL, missing));
}

/* ---- the real files ---- */

typedef struct real_expect {
    const char *split;
    int n;
    int first_labels[5];
    double first_image_sum, last_image_sum, pixel_sum; /* from numpy, see the report */
} real_expect;

static void check_real_split(const char *dir, const real_expect *e)
{
    char ipath[600], lpath[600], err[IPM_ERRLEN] = "";
    snprintf(ipath, sizeof ipath, "%s/%s-images-idx3-ubyte.gz", dir, e->split);
    snprintf(lpath, sizeof lpath, "%s/%s-labels-idx1-ubyte.gz", dir, e->split);
    ipm_idx x;
    int32_t *y;
    int n;
    int rc = ipm_idx_read_pair(ipath, lpath, &x, &y, &n, err);
    CHECK(rc == 0);
    if (rc) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK(n == e->n && x.type == IPM_IDX_UBYTE && x.ndims == 3);
    CHECK(x.dims[0] == (uint32_t)e->n && x.dims[1] == 28 && x.dims[2] == 28);
    CHECK(x.count == (size_t)e->n * 784);
    int per_class[10] = {0}, bad_labels = 0;
    for (int i = 0; i < n; i++) {
        if (y[i] < 0 || y[i] > 9)
            bad_labels++;
        else
            per_class[y[i]]++;
    }
    CHECK(bad_labels == 0);
    for (int c = 0; c < 10; c++)
        CHECK(per_class[c] == e->n / 10); /* Fashion-MNIST is balanced */
    for (int i = 0; i < 5; i++)
        CHECK(y[i] == e->first_labels[i]);
    double first = 0, last = 0, all = 0, max = 0;
    for (size_t i = 0; i < x.count; i++) {
        all += x.values[i];
        max = x.values[i] > max ? x.values[i] : max;
    }
    for (size_t i = 0; i < 784; i++) {
        first += x.values[i];
        last += x.values[x.count - 784 + i];
    }
    CHECK(first == e->first_image_sum && last == e->last_image_sum && all == e->pixel_sum);
    CHECK(max == 255);
    ipm_idx_free(&x);
    free(y);
}

/* Returns 1 when dir is absent (nothing checked). */
static int check_real_files(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return 1;
    static const real_expect train = {"train", 60000, {9, 0, 0, 3, 0}, 76247, 16684, 3431114169.0};
    static const real_expect test = {"t10k", 10000, {9, 2, 1, 1, 6}, 33456, 24390, 573469082.0};
    check_real_split(dir, &train);
    check_real_split(dir, &test);
    return 0;
}

static void remove_scratch(const scratch *s)
{
    DIR *d = opendir(s->dir);
    struct dirent *e;
    char path[512];
    while (d && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlink(path_in(s, e->d_name, path));
    if (d)
        closedir(d);
    rmdir(s->dir);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        int absent = check_real_files(argv[1]);
        int rc = check_report("test_idx");
        if (rc == 0 && absent) {
            printf("test_idx: %s absent: skipped\n", argv[1]);
            return 77;
        }
        return rc;
    }
    scratch s;
    const char *tmp = getenv("TMPDIR");
    snprintf(s.dir, sizeof s.dir, "%s/test_idx.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s.dir)) {
        perror(s.dir);
        return 1;
    }
    for (int gz = 0; gz <= 1; gz++) {
        check_ubyte_images(&s, gz);
        check_float_file(&s, gz);
        check_pair(&s, gz);
    }
    check_short_file(&s);
    check_sbyte_int_double(&s);
    check_header_refusals(&s);
    check_data_refusals(&s);
    check_broken_gzip(&s);
    check_pair_refusals(&s);
    remove_scratch(&s);
    if (check_real_files(FASHION_DIR))
        printf("test_idx: %s absent: real files skipped\n", FASHION_DIR);
    return check_report("test_idx");
}
