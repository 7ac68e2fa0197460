/* bytes: the one little-endian, fixed-width encoding of every blob ipmpi
 * stores or sends (checkpoints, replica states, the stopping state), so a
 * file written on one machine reads on any other.
 * A cursor either writes into out (pack) or reads from in (unpack). Writing
 * with out == NULL only counts bytes, so one function can both size and pack
 * a blob. Reading past the end never touches memory beyond size: it returns
 * zeros and sets short_read, which the caller checks once at the end. */
#ifndef IPMPI_BASE_BYTES_H
#define IPMPI_BASE_BYTES_H

#include <stddef.h>
#include <stdint.h>

typedef struct ipm_bytes {
    unsigned char *out;      /* pack (NULL: count only) */
    const unsigned char *in; /* unpack */
    size_t pos, size;        /* bytes done; the buffer's size (unpack) */
    int short_read;          /* a read went past size */
} ipm_bytes;

static inline ipm_bytes ipm_bytes_writer(unsigned char *out)
{
    return (ipm_bytes){out, NULL, 0, 0, 0};
}

static inline ipm_bytes ipm_bytes_reader(const unsigned char *in, size_t size)
{
    return (ipm_bytes){NULL, in, 0, size, 0};
}

/* v's low `bytes` bytes (1..8), least significant first. */
void ipm_put_le(ipm_bytes *c, uint64_t v, int bytes);
uint64_t ipm_get_le(ipm_bytes *c, int bytes);

/* IEEE bit patterns, as 4 and 8 bytes. */
void ipm_put_f32(ipm_bytes *c, float v);
float ipm_get_f32(ipm_bytes *c);
void ipm_put_f64(ipm_bytes *c, double v);
double ipm_get_f64(ipm_bytes *c);

/* n raw bytes (text, nested blobs). */
void ipm_put_raw(ipm_bytes *c, const void *p, size_t n);
void ipm_get_raw(ipm_bytes *c, void *p, size_t n);

/* Decodes without a cursor: the same as ipm_get_le on p[0..bytes). */
uint64_t ipm_le_decode(const unsigned char *p, int bytes);
void ipm_le_encode(unsigned char *p, uint64_t v, int bytes);

/* 64-bit FNV-1a of p[0..n), continued from h (start with IPM_FNV_OFFSET):
 * the checkpoint's checksum and the output's data fingerprint. */
#define IPM_FNV_OFFSET 0xcbf29ce484222325ULL
uint64_t ipm_fnv1a(uint64_t h, const void *p, size_t n);

#endif
