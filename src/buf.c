/*
 * buf.c - capped, always NUL-terminated byte buffer (see buf.h).
 *
 * Growth doubles the allocation up to max+1 bytes; the cap is the defence
 * against scripts and clients that send more than we are willing to hold.
 */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rl.h"
#include "util.h"

void buf_init(struct buf *b, size_t max)
{
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void buf_free(struct buf *b)
{
    if (b == NULL)
        return;
    free(b->ptr);
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->ptr != NULL)
        b->ptr[0] = '\0';
}

int buf_reserve(struct buf *b, size_t need)
{
    size_t want, cap;

    if (need > b->max - b->len)
        return RL_ERR;
    want = b->len + need + 1;
    if (want <= b->cap)
        return RL_OK;
    cap = b->cap ? b->cap : 64;
    while (cap < want)
        cap *= 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    b->ptr = xrealloc(b->ptr, cap);
    b->cap = cap;
    return RL_OK;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) != RL_OK)
        return RL_ERR;
    if (n > 0)
        memcpy(b->ptr + b->len, p, n);
    b->len += n;
    b->ptr[b->len] = '\0';
    return RL_OK;
}

int buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    size_t room = b->cap > b->len ? b->cap - b->len : 0;
    int n;

    /* One pass when the output fits the room already there (the usual
     * case); otherwise measure, grow and format again. */
    va_start(ap, fmt);
    n = vsnprintf(room > 0 ? b->ptr + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        return RL_ERR;
    if ((size_t)n >= room) {
        if (buf_reserve(b, (size_t)n) != RL_OK) {
            if (b->ptr != NULL)
                b->ptr[b->len] = '\0'; /* undo the partial output */
            return RL_ERR;
        }
        va_start(ap, fmt);
        (void)vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
    return RL_OK;
}

int buf_append_ll(struct buf *b, long long v)
{
    char tmp[24]; /* 19 digits, a sign */
    char *p = tmp + sizeof(tmp);
    /* Negate in unsigned arithmetic: -LLONG_MIN overflows a long long. */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    return buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->ptr, b->ptr + n, b->len - n);
    b->len -= n;
    b->ptr[b->len] = '\0';
}

const char *buf_str(const struct buf *b)
{
    return b->ptr != NULL ? b->ptr : "";
}
