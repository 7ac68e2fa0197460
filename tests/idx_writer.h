/* idx_writer: IDX files built in memory (header, then big-endian values)
 * and written plain or gzip-compressed, for the tests of the IDX reader
 * (test_idx) and of the idx data source (test_dataset). Include after
 * check.h. */
#ifndef IPMPI_TESTS_IDX_WRITER_H
#define IPMPI_TESTS_IDX_WRITER_H

#include <stdint.h>
#include <stdio.h>
#include <zlib.h>

typedef struct idx_bytes {
    unsigned char b[1 << 16];
    size_t len;
} idx_bytes;

static inline void idx_put_u32(idx_bytes *f, uint32_t v)
{
    for (int s = 24; s >= 0; s -= 8)
        f->b[f->len++] = (unsigned char)(v >> s);
}

/* Starts f over with the header: two zero bytes, the type code, the
 * number of dimensions and each dimension. */
static inline void idx_header(idx_bytes *f, int type, int ndims, const uint32_t *dims)
{
    f->len = 0;
    f->b[f->len++] = 0;
    f->b[f->len++] = 0;
    f->b[f->len++] = (unsigned char)type;
    f->b[f->len++] = (unsigned char)ndims;
    for (int i = 0; i < ndims; i++)
        idx_put_u32(f, dims[i]);
}

/* Writes len bytes of b to path, gzip-compressed when gz; returns path. */
static inline const char *idx_write(const char *path, const void *b, size_t len, int gz)
{
    if (gz) {
        gzFile g = gzopen(path, "wb");
        CHECK(g != NULL);
        if (g) {
            CHECK(gzwrite(g, b, (unsigned)len) == (int)len);
            CHECK(gzclose(g) == Z_OK);
        }
    } else {
        FILE *fp = fopen(path, "wb");
        CHECK(fp != NULL);
        if (fp) {
            CHECK(fwrite(b, 1, len, fp) == len);
            CHECK(fclose(fp) == 0);
        }
    }
    return path;
}

#endif
