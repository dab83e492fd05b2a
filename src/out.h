/*
 * out.h - struct rl_out, the sink every answer is written through: the
 * FastCGI out stream, fd 1 (plain CGI) or, in tests, a memory buffer.
 */
#ifndef RL_OUT_H
#define RL_OUT_H

#include <stddef.h>

struct metrics;

struct rl_out {
    /* Write all n bytes: RL_OK or RL_ERR (peer gone). */
    int (*write)(void *ctx, const char *p, size_t n);
    /* Push buffered bytes to the peer now: RL_OK or RL_ERR. May be NULL. */
    int (*flush)(void *ctx);
    void *ctx;
    int failed;       /* sticky: set by the first failed write */
    int headers_sent; /* set once the header block has been written */
    /* The host's counters (metrics.h), NULL when off: the error answers
     * written through this sink are counted there. Borrowed. */
    struct metrics *metrics;
    /* enum rl_body (rlconfig.h) of the answers we write ourselves: 0 is
     * RL_BODY_JSON. Set from the request's configuration once it is known,
     * so that every error path (many have no config) answers in that
     * format; an error before the configuration is known stays JSON. */
    int body;
};

/* Write through o unless it already failed. RL_OK or RL_ERR (sticky). */
int out_write(struct rl_out *o, const void *p, size_t n);
int out_puts(struct rl_out *o, const char *s);
int out_flush(struct rl_out *o);

#endif
