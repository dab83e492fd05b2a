/*
 * buf.h - a growable byte buffer with a hard cap, for everything whose size
 * an attacker or a script decides (curl dynbuf, lighttpd buffer).
 *
 * The content is always NUL-terminated (the NUL is not counted in len), so
 * it can be passed to functions that want a C string. Appending past max
 * fails with RL_ERR and leaves the buffer as it was.
 */
#ifndef RL_BUF_H
#define RL_BUF_H

#include <stddef.h>

struct buf {
    char *ptr;  /* caller owns through buf_free(); NULL until first append */
    size_t len; /* bytes used, not counting the NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* hard cap on len */
};

/* Empty buffer that may grow to max bytes. No allocation yet. */
void buf_init(struct buf *b, size_t max);
/* Release memory; b is left empty and reusable with the same max. NULL ok. */
void buf_free(struct buf *b);
/* Forget the content but keep the memory. */
void buf_reset(struct buf *b);
/* Append n bytes. RL_OK, or RL_ERR when len+n would pass max. */
int buf_append(struct buf *b, const void *p, size_t n);
/* Append a C string. */
int buf_puts(struct buf *b, const char *s);
/* Make room for need more bytes (and the NUL) up front. RL_ERR past max. */
int buf_reserve(struct buf *b, size_t need);
/* Append v in decimal, without printf. */
int buf_append_ll(struct buf *b, long long v);
/* Append printf output. RL_ERR when it would pass max. */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop the first n bytes (n <= len), moving the rest to the front. */
void buf_consume(struct buf *b, size_t n);
/* Content as a C string: "" when empty, never NULL. Borrowed. */
const char *buf_str(const struct buf *b);

#endif
