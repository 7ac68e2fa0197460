#include "ipmpi/base/bytes.h"

#include <string.h>

#include "ipmpi/base/assert.h"

void ipm_le_encode(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

uint64_t ipm_le_decode(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

void ipm_put_le(ipm_bytes *c, uint64_t v, int bytes)
{
    IPM_ASSERT(bytes >= 1 && bytes <= 8);
    if (c->out)
        ipm_le_encode(c->out + c->pos, v, bytes);
    c->pos += (size_t)bytes;
}

/* Whether n more bytes can be read; marks the cursor otherwise. */
static int can_read(ipm_bytes *c, size_t n)
{
    if (c->short_read || c->size - c->pos < n) {
        c->short_read = 1;
        return 0;
    }
    return 1;
}

uint64_t ipm_get_le(ipm_bytes *c, int bytes)
{
    if (!can_read(c, (size_t)bytes))
        return 0;
    uint64_t v = ipm_le_decode(c->in + c->pos, bytes);
    c->pos += (size_t)bytes;
    return v;
}

void ipm_put_f32(ipm_bytes *c, float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    ipm_put_le(c, u, 4);
}

float ipm_get_f32(ipm_bytes *c)
{
    uint32_t u = (uint32_t)ipm_get_le(c, 4);
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

void ipm_put_f64(ipm_bytes *c, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    ipm_put_le(c, u, 8);
}

double ipm_get_f64(ipm_bytes *c)
{
    uint64_t u = ipm_get_le(c, 8);
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

void ipm_put_raw(ipm_bytes *c, const void *p, size_t n)
{
    if (c->out && n)
        memcpy(c->out + c->pos, p, n);
    c->pos += n;
}

void ipm_get_raw(ipm_bytes *c, void *p, size_t n)
{
    if (!can_read(c, n)) {
        memset(p, 0, n);
        return;
    }
    if (n)
        memcpy(p, c->in + c->pos, n);
    c->pos += n;
}

uint64_t ipm_fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL; /* the FNV prime */
    return h;
}
