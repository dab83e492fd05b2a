/*
 * fcgxio.c - stream adapters over libfcgi and plain fds (fcgxio.h). Only
 * libfcgi's public API is used (fcgiapp.h).
 */
#include "fcgxio.h"

#include <errno.h>
#include <limits.h>
#include <unistd.h>

#include "deadline.h"
#include "rl.h"
#include "util.h"

int fcgx_write(void *ctx, const char *p, size_t n)
{
    FCGX_Stream *s = ctx;

    while (n > 0) {
        int chunk = n > INT_MAX ? INT_MAX : (int)n;

        if (FCGX_PutStr(p, chunk, s) != chunk)
            return RL_ERR;
        p += chunk;
        n -= (size_t)chunk;
    }
    return RL_OK;
}

int fcgx_flush(void *ctx)
{
    return FCGX_FFlush(ctx) == 0 ? RL_OK : RL_ERR;
}

ssize_t fcgx_read(void *ctx, char *p, size_t n)
{
    FCGX_Stream *s = ctx;
    size_t got = 0;

    if (n > SSIZE_MAX)
        n = SSIZE_MAX;
    /* FCGX_GetStr blocks until it has its count, the end of the body or
     * an error; a count is an int, so large reads take several calls. */
    while (got < n) {
        int want = n - got > INT_MAX ? INT_MAX : (int)(n - got);
        int k = FCGX_GetStr(p + got, want, s);

        got += (size_t)(k > 0 ? k : 0);
        if (k < want)
            break; /* the end of the body, or an error */
    }
    /* An error after some bytes: they are returned (the caller counts
     * what arrived), and the error, which libfcgi keeps, is the next
     * call's -1. */
    if (got == 0 && FCGX_GetError(s) != 0)
        return -1;
    return (ssize_t)got;
}

int fcgx_log(void *ctx, const char *line, int len)
{
    FCGX_Request *r = ctx;

    if (FCGX_GetError(r->in) != 0 || FCGX_GetError(r->out) != 0 ||
        FCGX_PutStr(line, len, r->err) != len)
        return RL_ERR;
    return RL_OK;
}

void fcgx_errlog(void *ctx, const char *p, size_t n)
{
    (void)fcgx_write(ctx, p, n);
}

int fcgx_drain(FCGX_Stream *s)
{
    char scratch[4096];

    while (FCGX_GetStr(scratch, sizeof(scratch), s) > 0)
        ;
    return FCGX_HasSeenEOF(s) && FCGX_GetError(s) == 0;
}

int fcgx_end(void *ctx)
{
    FCGX_Request *r = ctx;
    int e = FCGX_FClose(r->err), o = FCGX_FClose(r->out);

    return e == 0 && o == 0 ? RL_OK : RL_ERR;
}

int fd_write(void *ctx, const char *p, size_t n)
{
    return write_full(*(int *)ctx, p, n);
}

ssize_t fd_read(void *ctx, char *p, size_t n)
{
    int fd = *(int *)ctx;
    ssize_t r;

    do
        r = read(fd, p, n);
    while (r < 0 && errno == EINTR && !deadline_expired());
    return r;
}

void fd_errlog(void *ctx, const char *p, size_t n)
{
    (void)fd_write(ctx, p, n);
}
