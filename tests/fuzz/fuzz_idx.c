/* fuzz_idx: the input is an IDX file. It is read as it is and, unless it
 * is already gzip, again gzip-compressed here, so that mutations reach the
 * IDX parser behind a valid gzip stream; the two reads must agree exactly
 * (same result, same message, same values bit for bit). The file is also
 * read as a pair, images and labels at once. A success must be consistent
 * with its header, a failure must leave a one-line message naming the file
 * and nothing allocated. Any allocation above 64 MiB is a crash: memory must
 * follow the data present, not the header's claim (a 4 KiB input inflates
 * to at most ~4 MiB, 16 MiB as floats). */
#include "ipmpi/base/error.h"
#include "ipmpi/io/idx.h"

#include "fuzz_scratch.h"

#include <stdint.h>
#include <string.h>
#include <zlib.h>

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "max_allocation_size_mb=64";
}

static fuzz_scratch input_file;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_scratch_open_temporary(&input_file);
    return 0;
}

typedef struct outcome {
    int rc;
    ipm_idx x;
    char err[IPM_ERRLEN];
} outcome;

static void read_checked(outcome *o)
{
    o->err[0] = '\0';
    o->rc = ipm_idx_read(input_file.path, &o->x, o->err);
    if (o->rc == 0) {
        const ipm_idx *x = &o->x;
        fuzz_require(x->ndims >= 1 && x->ndims <= IPM_IDX_MAX_DIMS, "bad ndims", NULL);
        size_t count = 1;
        for (int i = 0; i < x->ndims; i++)
            count *= x->dims[i];
        fuzz_require(count == x->count && count >= 1 && count <= (size_t)IPM_IDX_MAX_VALUES,
                     "count is not the product of the dims", NULL);
        fuzz_require(x->values != NULL, "no values", NULL);
        volatile float sink = x->values[0] + x->values[count - 1]; /* both ends allocated */
        (void)sink;
    } else {
        fuzz_require(o->rc == -1, "return code neither 0 nor -1", NULL);
        fuzz_require(strchr(o->err, '\n') == NULL, "message not one line", o->err);
        fuzz_require(strstr(o->err, input_file.path) != NULL, "message does not name the file",
                     o->err);
        fuzz_require(o->x.values == NULL && o->x.count == 0, "failed read left values", NULL);
    }
}

static void read_pair_checked(void)
{
    ipm_idx x;
    int32_t *y;
    int n;
    char err[IPM_ERRLEN] = "";
    if (ipm_idx_read_pair(input_file.path, input_file.path, &x, &y, &n, err) == 0) {
        /* the same file as labels: one dimension of an integer type */
        fuzz_require(x.ndims == 1 && n == (int)x.dims[0] && y != NULL, "pair inconsistent", NULL);
        for (int i = 0; i < n; i++)
            fuzz_require((float)y[i] == x.values[i], "labels differ from the values", NULL);
        ipm_idx_free(&x);
        free(y);
    } else {
        fuzz_require(strchr(err, '\n') == NULL && strstr(err, input_file.path) != NULL,
                     "pair message not one line naming the file", err);
        fuzz_require(x.values == NULL && y == NULL && n == 0, "failed pair left data", NULL);
    }
    /* As bytes: accepted exactly when the file is unsigned bytes that read as a pair. */
    ipm_idx b;
    int32_t *by;
    int bn;
    int ok = ipm_idx_read_pair_bytes(input_file.path, input_file.path, &b, &by, &bn, err) == 0;
    if (ok) {
        fuzz_require(b.type == IPM_IDX_UBYTE && b.bytes && !b.values && bn == (int)b.dims[0],
                     "byte pair inconsistent", NULL);
        for (int i = 0; i < bn; i++)
            fuzz_require(by[i] == b.bytes[i], "byte labels differ from the bytes", NULL);
        ipm_idx_free(&b);
        free(by);
    } else {
        fuzz_require(strchr(err, '\n') == NULL && b.bytes == NULL && by == NULL,
                     "failed byte pair: message or data", err);
    }
}

/* data as a one-member gzip stream, or NULL when zlib fails. The smallest
 * window and memory level: deflate's state dominated the time per input. */
static unsigned char *gzip_bytes(const uint8_t *data, size_t size, size_t *out_size)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 1, Z_DEFLATED, 9 + 16, 1, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    size_t cap = deflateBound(&z, (uLong)size);
    unsigned char *out = malloc(cap);
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)size;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int ok = out && deflate(&z, Z_FINISH) == Z_STREAM_END;
    *out_size = z.total_out;
    deflateEnd(&z);
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}

static void require_same(const outcome *a, const outcome *b)
{
    fuzz_require(a->rc == b->rc, "plain and gzip reads disagree", b->err);
    fuzz_require(strcmp(a->err, b->err) == 0, "plain and gzip messages differ", b->err);
    if (a->rc == 0)
        fuzz_require(a->x.type == b->x.type && a->x.ndims == b->x.ndims &&
                         a->x.count == b->x.count &&
                         memcmp(a->x.dims, b->x.dims, sizeof a->x.dims) == 0 &&
                         memcmp(a->x.values, b->x.values, a->x.count * sizeof(float)) == 0,
                     "plain and gzip values differ", NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static outcome plain, packed; /* 2 KiB of messages each: off the stack */
    fuzz_scratch_write(&input_file, data, size);
    read_checked(&plain);
    read_pair_checked();
    int is_gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    size_t gz_size;
    unsigned char *gz = is_gzip ? NULL : gzip_bytes(data, size, &gz_size);
    if (gz) {
        fuzz_scratch_write(&input_file, gz, gz_size);
        free(gz);
        read_checked(&packed);
        require_same(&plain, &packed);
        ipm_idx_free(&packed.x);
    }
    ipm_idx_free(&plain.x);
    return 0;
}
