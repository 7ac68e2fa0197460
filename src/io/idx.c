#include "ipmpi/io/idx.h"

#include "ipmpi/base/error.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Largest read: a multiple of every element size, so a chunk holds whole
 * values except at a truncated end; also below inflate's uInt limit. */
#define MAX_CHUNK ((size_t)1 << 18)
/* First allocation for the values: a lying header costs at most this much
 * (times two per doubling) beyond the data actually present. */
#define FIRST_VALUES ((size_t)1 << 12)

typedef struct idx_header {
    int type;
    int ndims;
    uint32_t dims[IPM_IDX_MAX_DIMS];
    size_t count;
} idx_header;

/* What the values become: floats for ipm_idx_read, exact int32 for labels,
 * the bytes themselves for unsigned-byte images. */
enum idx_sink { SINK_FLOAT, SINK_LABELS, SINK_BYTES };

static size_t sink_size(enum idx_sink sink)
{
    return sink == SINK_BYTES ? 1 : 4;
}

typedef struct idx_source {
    const char *path;
    int fd;
    int gzip;   /* else plain */
    z_stream z; /* gzip: the inflater; plain: only the unread head bytes */
    unsigned char *in;
    int at_eof;      /* read() returned 0 */
    int member_done; /* the last inflate ended a gzip member */
    int cut;         /* the input ended inside a member */
} idx_source;

static size_t type_size(int type)
{
    switch (type) {
    case IPM_IDX_UBYTE:
    case IPM_IDX_SBYTE:
        return 1;
    case IPM_IDX_SHORT:
        return 2;
    case IPM_IDX_INT:
    case IPM_IDX_FLOAT:
        return 4;
    case IPM_IDX_DOUBLE:
        return 8;
    default:
        return 0;
    }
}

const char *ipm_idx_type_name(int type)
{
    switch (type) {
    case IPM_IDX_UBYTE:
        return "ubyte";
    case IPM_IDX_SBYTE:
        return "sbyte";
    case IPM_IDX_SHORT:
        return "short";
    case IPM_IDX_INT:
        return "int";
    case IPM_IDX_FLOAT:
        return "float";
    case IPM_IDX_DOUBLE:
        return "double";
    default:
        return "unknown";
    }
}

static int is_integer_type(int type)
{
    return type == IPM_IDX_UBYTE || type == IPM_IDX_SBYTE || type == IPM_IDX_SHORT ||
           type == IPM_IDX_INT;
}

/* ---- big-endian decoding (sign handled arithmetically: no
 * implementation-defined unsigned-to-signed conversions) ---- */

static uint32_t be_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int32_t be_i32(const unsigned char *p)
{
    uint32_t u = be_u32(p);
    return u < 0x80000000u ? (int32_t)u : (int32_t)(u - 0x80000000u) - INT32_MAX - 1;
}

static int32_t be_i16(const unsigned char *p)
{
    int32_t u = (int32_t)p[0] << 8 | p[1];
    return u < 0x8000 ? u : u - 0x10000;
}

static int32_t s8(unsigned char b)
{
    return b < 0x80 ? b : (int32_t)b - 0x100;
}

static float be_float(const unsigned char *p)
{
    uint32_t bits = be_u32(p);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float be_double_as_float(const unsigned char *p)
{
    uint64_t bits = (uint64_t)be_u32(p) << 32 | be_u32(p + 4);
    double d;
    memcpy(&d, &bits, sizeof d);
    /* Out of float's range the conversion is undefined in C: saturate. */
    if (d > FLT_MAX)
        return INFINITY;
    if (d < -FLT_MAX)
        return -INFINITY;
    return (float)d;
}

/* The switch sits outside the loops: the images are tens of millions of values. */
static void decode_floats(int type, const unsigned char *p, size_t n, float *out)
{
    switch (type) {
    case IPM_IDX_UBYTE:
        for (size_t i = 0; i < n; i++)
            out[i] = p[i];
        break;
    case IPM_IDX_SBYTE:
        for (size_t i = 0; i < n; i++)
            out[i] = (float)s8(p[i]);
        break;
    case IPM_IDX_SHORT:
        for (size_t i = 0; i < n; i++)
            out[i] = (float)be_i16(p + 2 * i);
        break;
    case IPM_IDX_INT:
        for (size_t i = 0; i < n; i++)
            out[i] = (float)be_i32(p + 4 * i);
        break;
    case IPM_IDX_FLOAT:
        for (size_t i = 0; i < n; i++)
            out[i] = be_float(p + 4 * i);
        break;
    case IPM_IDX_DOUBLE:
        for (size_t i = 0; i < n; i++)
            out[i] = be_double_as_float(p + 8 * i);
        break;
    }
}

/* Integer types only (checked from the header before any data is read). */
static void decode_ints(int type, const unsigned char *p, size_t n, int32_t *out)
{
    switch (type) {
    case IPM_IDX_UBYTE:
        for (size_t i = 0; i < n; i++)
            out[i] = p[i];
        break;
    case IPM_IDX_SBYTE:
        for (size_t i = 0; i < n; i++)
            out[i] = s8(p[i]);
        break;
    case IPM_IDX_SHORT:
        for (size_t i = 0; i < n; i++)
            out[i] = be_i16(p + 2 * i);
        break;
    case IPM_IDX_INT:
        for (size_t i = 0; i < n; i++)
            out[i] = be_i32(p + 4 * i);
        break;
    }
}

/* "60000 x 28 x 28" */
static const char *dims_text(const idx_header *h, char buf[64])
{
    int len = 0;
    buf[0] = '\0';
    for (int i = 0; i < h->ndims; i++)
        len += snprintf(buf + len, 64 - (size_t)len, "%s%lu", i ? " x " : "",
                        (unsigned long)h->dims[i]);
    return buf;
}

/* ---- the byte source: a gzip file (recognised by its magic 1f 8b) is
 * inflated, any other is read as it is. zlib's inflate is used directly, not
 * gzread: gzread returns a clean end of file when a stream is cut just after
 * the data (input exhausted exactly as the caller's buffer fills), so a
 * missing CRC/length trailer would go unnoticed. ---- */

#define IN_BYTES ((size_t)1 << 15)

static int source_fail_errno(const idx_source *s, char *err)
{
    return ipm_fail(err, "%s: read error: %s", s->path, strerror(errno));
}

static int fill_input(idx_source *s, char *err)
{
    ssize_t r;
    do
        r = read(s->fd, s->in, IN_BYTES);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return source_fail_errno(s, err);
    s->at_eof = r == 0;
    s->z.next_in = s->in;
    s->z.avail_in = (uInt)r;
    return 0;
}

static int read_plain(idx_source *s, unsigned char *buf, size_t len, size_t *got, char *err)
{
    /* first the bytes source_open looked at */
    size_t head = s->z.avail_in < len ? s->z.avail_in : len;
    if (head) {
        memcpy(buf, s->z.next_in, head);
        s->z.next_in += head;
        s->z.avail_in -= (uInt)head;
        *got += head;
    }
    while (*got < len) {
        ssize_t r = read(s->fd, buf + *got, len - *got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return source_fail_errno(s, err);
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return 0;
}

/* Members follow one another (gzip allows several); the stream must end
 * exactly at a member's end, else it was cut (s->cut). */
static int read_gzip(idx_source *s, unsigned char *buf, size_t len, size_t *got, char *err)
{
    s->z.next_out = buf;
    s->z.avail_out = (uInt)len;
    while (s->z.avail_out > 0) {
        if (s->z.avail_in == 0 && !s->at_eof && fill_input(s, err))
            return -1;
        if (s->z.avail_in == 0) {
            s->cut = !s->member_done;
            break;
        }
        if (s->member_done) {
            inflateReset(&s->z);
            s->member_done = 0;
        }
        int rc = inflate(&s->z, Z_NO_FLUSH);
        if (rc == Z_STREAM_END)
            s->member_done = 1;
        else if (rc != Z_OK && rc != Z_BUF_ERROR)
            return ipm_fail(err, "%s: gzip: %s", s->path,
                            s->z.msg            ? s->z.msg
                            : rc == Z_MEM_ERROR ? "out of memory"
                                                : "corrupt stream");
    }
    *got = len - s->z.avail_out;
    return 0;
}

/* Reads up to len bytes; *got < len only at the end of the data. */
static int source_read(idx_source *s, void *buf, size_t len, size_t *got, char *err)
{
    *got = 0;
    if (!s->gzip)
        return read_plain(s, buf, len, got, err);
    /* avail_out is a uInt: large reads go in slices */
    while (*got < len) {
        size_t want = len - *got, slice = want < MAX_CHUNK ? want : MAX_CHUNK, n = 0;
        if (read_gzip(s, (unsigned char *)buf + *got, slice, &n, err))
            return -1;
        *got += n;
        if (n < slice)
            break;
    }
    return 0;
}

/* " (gzip: unexpected end of file)" when a gzip stream was cut, else "". */
static const char *cut_note(const idx_source *s)
{
    return s->cut ? " (gzip: unexpected end of file)" : "";
}

static void source_close(idx_source *s)
{
    if (s->gzip)
        inflateEnd(&s->z);
    free(s->in);
    close(s->fd);
}

static int source_open(idx_source *s, const char *path, char *err)
{
    memset(s, 0, sizeof *s);
    s->path = path;
    s->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0)
        return ipm_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(s->fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(s->fd);
        return ipm_fail(err, "%s: cannot open: is a directory", path);
    }
    unsigned char magic[2];
    size_t got = 0;
    if (read_plain(s, magic, 2, &got, err)) {
        close(s->fd);
        return -1;
    }
    s->gzip = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    s->in = malloc(IN_BYTES);
    int zrc = s->in ? inflateInit2(&s->z, 15 + 16) : Z_MEM_ERROR; /* 16: gzip wrapper */
    if (zrc != Z_OK) {
        free(s->in);
        close(s->fd);
        return ipm_fail(err, "%s: cannot open: out of memory", path);
    }
    memcpy(s->in, magic, got); /* put back in front: pipes cannot seek */
    s->z.next_in = s->in;
    s->z.avail_in = (uInt)got;
    if (!s->gzip)
        inflateEnd(&s->z);
    return 0;
}

/* ---- the IDX layers ---- */

static int read_header(idx_source *s, idx_header *h, char *err)
{
    unsigned char m[4], raw[4 * IPM_IDX_MAX_DIMS];
    size_t got;
    if (source_read(s, m, 4, &got, err))
        return -1;
    if (got < 4)
        return ipm_fail(err, "%s: not an IDX file: %zu bytes, shorter than the 4-byte magic%s",
                        s->path, got, cut_note(s));
    if (m[0] != 0 || m[1] != 0)
        return ipm_fail(err,
                        "%s: not an IDX file: magic %02x %02x %02x %02x, expected 00 00 TYPE NDIMS",
                        s->path, m[0], m[1], m[2], m[3]);
    h->type = m[2];
    h->ndims = m[3];
    if (type_size(h->type) == 0)
        return ipm_fail(err,
                        "%s: unsupported IDX type 0x%02x (magic %02x %02x %02x %02x): expected "
                        "0x08 ubyte, 0x09 sbyte, 0x0b short, 0x0c int, 0x0d float or 0x0e double",
                        s->path, m[2], m[0], m[1], m[2], m[3]);
    if (h->ndims < 1 || h->ndims > IPM_IDX_MAX_DIMS)
        return ipm_fail(err, "%s: %d dimensions: only 1 to %d are supported", s->path, h->ndims,
                        IPM_IDX_MAX_DIMS);
    size_t want = 4 * (size_t)h->ndims;
    if (source_read(s, raw, want, &got, err))
        return -1;
    if (got < want)
        return ipm_fail(
            err, "%s: truncated header: expected %d dimension sizes (%zu bytes), found %zu bytes%s",
            s->path, h->ndims, want, got, cut_note(s));
    memset(h->dims, 0, sizeof h->dims);
    for (int i = 0; i < h->ndims; i++)
        h->dims[i] = be_u32(raw + 4 * i);
    return 0;
}

static int check_shape(const idx_source *s, idx_header *h, char *err)
{
    char dims[64];
    for (int i = 0; i < h->ndims; i++)
        if (h->dims[i] == 0)
            return ipm_fail(err, "%s: dimension %d of %d is 0 (dims %s)", s->path, i + 1, h->ndims,
                            dims_text(h, dims));
    /* Each factor is < 2^32 and the running product <= 2^31 - 1: no overflow. */
    uint64_t count = 1;
    for (int i = 0; i < h->ndims; i++) {
        count *= h->dims[i];
        if (count > (uint64_t)IPM_IDX_MAX_VALUES)
            return ipm_fail(err, "%s: dims %s declare more than %lld values, the most accepted",
                            s->path, dims_text(h, dims), IPM_IDX_MAX_VALUES);
    }
    h->count = (size_t)count;
    return 0;
}

static int check_labels(const idx_source *s, const idx_header *h, char *err)
{
    char dims[64];
    if (!is_integer_type(h->type))
        return ipm_fail(err,
                        "%s: labels must have an integer type (ubyte, sbyte, short or int), not %s",
                        s->path, ipm_idx_type_name(h->type));
    if (h->ndims != 1)
        return ipm_fail(err, "%s: labels must have 1 dimension, not %d (dims %s)", s->path,
                        h->ndims, dims_text(h, dims));
    return 0;
}

/* Grows *values (elements of esize bytes) to hold need, doubling but never
 * past count, so memory follows the data that actually arrives. */
static int grow(void **values, size_t esize, size_t *cap, size_t need, size_t count)
{
    size_t next = *cap ? 2 * *cap : FIRST_VALUES;
    if (next < need)
        next = need;
    if (next > count)
        next = count;
    void *p = realloc(*values, next * esize);
    if (!p)
        return -1;
    *values = p;
    *cap = next;
    return 0;
}

static int read_values(idx_source *s, const idx_header *h, enum idx_sink sink, unsigned char *chunk,
                       size_t chunk_bytes, void **values, char *err)
{
    size_t esize = type_size(h->type), done = 0, cap = 0;
    *values = NULL;
    while (done < h->count) {
        size_t n = chunk_bytes / esize, got;
        if (n > h->count - done)
            n = h->count - done;
        if (done + n > cap && grow(values, sink_size(sink), &cap, done + n, h->count))
            return ipm_fail(err, "%s: out of memory for %zu values", s->path, h->count);
        if (source_read(s, chunk, n * esize, &got, err))
            return -1;
        size_t whole = got / esize;
        if (sink == SINK_FLOAT)
            decode_floats(h->type, chunk, whole, (float *)*values + done);
        else if (sink == SINK_BYTES)
            memcpy((uint8_t *)*values + done, chunk, whole);
        else
            decode_ints(h->type, chunk, whole, (int32_t *)*values + done);
        done += whole;
        if (got < n * esize) {
            return ipm_fail(err, "%s: truncated: expected %zu bytes of data, found %zu%s", s->path,
                            h->count * esize, done * esize + got % esize, cut_note(s));
        }
    }
    return 0;
}

/* Nothing may follow the data: extra bytes mean the dims are wrong. Reading
 * on also lets zlib check the gzip trailer (CRC and length). */
static int check_end(idx_source *s, const idx_header *h, unsigned char *chunk, size_t chunk_bytes,
                     char *err)
{
    size_t extra = 0, got;
    do {
        if (source_read(s, chunk, chunk_bytes, &got, err))
            return -1;
        extra += got;
    } while (got == chunk_bytes);
    char dims[64];
    if (extra)
        return ipm_fail(err,
                        "%s: %zu trailing bytes after the %zu bytes of data declared by the header "
                        "(%s %s): refused",
                        s->path, extra, h->count * type_size(h->type), dims_text(h, dims),
                        ipm_idx_type_name(h->type));
    if (s->cut)
        return ipm_fail(err, "%s: gzip stream cut short after the data%s", s->path, cut_note(s));
    return 0;
}

static int read_body(idx_source *s, idx_header *h, enum idx_sink sink, void **values, char *err)
{
    if (read_header(s, h, err) || check_shape(s, h, err) ||
        (sink == SINK_LABELS && check_labels(s, h, err)))
        return -1;
    if (sink == SINK_BYTES && h->type != IPM_IDX_UBYTE)
        return ipm_fail(err, "%s: values are %s, not unsigned bytes (type 0x08)", s->path,
                        ipm_idx_type_name(h->type));
    /* Small files get a small buffer: allocating 256 KiB per read was most
     * of the fuzzer's time. Rounded up to 8, a multiple of every type's size. */
    size_t data_bytes = h->count * type_size(h->type);
    size_t chunk_bytes = data_bytes < MAX_CHUNK ? (data_bytes + 7) / 8 * 8 : MAX_CHUNK;
    unsigned char *chunk = malloc(chunk_bytes);
    if (!chunk)
        return ipm_fail(err, "%s: out of memory", s->path);
    int rc = read_values(s, h, sink, chunk, chunk_bytes, values, err);
    if (rc == 0)
        rc = check_end(s, h, chunk, chunk_bytes, err);
    free(chunk);
    return rc;
}

static int read_file(const char *path, enum idx_sink sink, idx_header *h, void **values, char *err)
{
    idx_source s;
    *values = NULL;
    if (source_open(&s, path, err))
        return -1;
    int rc = read_body(&s, h, sink, values, err);
    source_close(&s);
    if (rc) {
        free(*values);
        *values = NULL;
    }
    return rc;
}

static int read_idx(const char *path, enum idx_sink sink, ipm_idx *out, char *err)
{
    idx_header h;
    void *values;
    memset(out, 0, sizeof *out);
    if (read_file(path, sink, &h, &values, err))
        return -1;
    out->type = h.type;
    out->ndims = h.ndims;
    memcpy(out->dims, h.dims, sizeof out->dims);
    out->count = h.count;
    if (sink == SINK_BYTES)
        out->bytes = values;
    else
        out->values = values;
    return 0;
}

int ipm_idx_read(const char *path, ipm_idx *out, char *err)
{
    return read_idx(path, SINK_FLOAT, out, err);
}

void ipm_idx_free(ipm_idx *idx)
{
    free(idx->values);
    free(idx->bytes);
    memset(idx, 0, sizeof *idx);
}

static int read_pair(const char *images, const char *labels, enum idx_sink sink, ipm_idx *x,
                     int32_t **y, int *n, char *err)
{
    idx_header lh;
    void *lv;
    memset(x, 0, sizeof *x);
    *y = NULL;
    *n = 0;
    /* Labels first: they are small and their type is checked before the
     * images' tens of megabytes are decompressed. */
    if (read_file(labels, SINK_LABELS, &lh, &lv, err))
        return -1;
    if (read_idx(images, sink, x, err)) {
        free(lv);
        return -1;
    }
    if (x->dims[0] != lh.dims[0]) {
        ipm_fail(err, "count mismatch: %s has %lu images, %s has %lu labels", images,
                 (unsigned long)x->dims[0], labels, (unsigned long)lh.dims[0]);
        ipm_idx_free(x);
        free(lv);
        return -1;
    }
    *y = lv;
    *n = (int)lh.dims[0];
    return 0;
}

int ipm_idx_read_pair(const char *images, const char *labels, ipm_idx *x, int32_t **y, int *n,
                      char *err)
{
    return read_pair(images, labels, SINK_FLOAT, x, y, n, err);
}

int ipm_idx_read_pair_bytes(const char *images, const char *labels, ipm_idx *x, int32_t **y, int *n,
                            char *err)
{
    return read_pair(images, labels, SINK_BYTES, x, y, n, err);
}
