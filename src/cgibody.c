/*
 * cgibody.c - receive the whole request body before the script starts,
 * as nginx does by default: read to EOF with blocking reads (the
 * request's deadline timer breaks a stalled one), keep up to CGIBODY_MEM bytes in
 * memory and the rest in an unlinked temp file. The script's stdin is
 * then /dev/null (no body), a pipe already filled and closed (a body that
 * fits the pipe), or the file rewound. Memory stays bounded, no deadlock
 * is possible (the script's stdin never waits on us), and CONTENT_LENGTH
 * is the exact count received (RFC 3875 4.1.2; servers omit it for
 * chunked bodies).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgirelay.h"
#include "cgiint.h"
#include "deadline.h"
#include "log.h"
#include "rl.h"
#include "util.h"

#define CGIBODY_MEM 65536               /* body kept in memory; also a pipe's size */
#define CGIBODY_DEFAULT_MAX (1LL << 30) /* RATELIMIT_MAX_BODY unset: 1 GiB */

int cgibody_spool_open(void)
{
    const char *dir = getenv("TMPDIR");
    char tmpl[PATH_MAX];
    int fd;

    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
#ifdef O_TMPFILE
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
#endif
    if ((size_t)snprintf(tmpl, sizeof tmpl, "%s/fcgi-ratelimit.XXXXXX", dir) >= sizeof tmpl)
        return -1;
    fd = mkostemp(tmpl, O_CLOEXEC);
    if (fd >= 0)
        (void)unlink(tmpl);
    return fd;
}

/* Append n bytes: in mem while they fit, else everything goes to the
 * file (mem first, so the order is kept). RL_OK, or RL_ERR with errno. */
static int spool_add(struct relay_spool *s, const char *p, size_t n)
{
    if (s->fd < 0 && s->len + n <= CGIBODY_MEM) {
        if (s->mem == NULL)
            s->mem = xmalloc(CGIBODY_MEM);
        memcpy(s->mem + s->len, p, n);
        s->len += n;
        return RL_OK;
    }
    if (s->fd < 0) {
        if ((s->fd = cgibody_spool_open()) < 0 || write_full(s->fd, s->mem, s->len) != RL_OK)
            return RL_ERR;
        s->len = 0;
    }
    return write_full(s->fd, p, n);
}

/* The effective RATELIMIT_MAX_BODY. */
static long long max_body(const struct relay *r)
{
    return r->req->cfg->max_body > 0 ? r->req->cfg->max_body : CGIBODY_DEFAULT_MAX;
}

/* Log and answer a failure to store the body; RL_ANSWERED. */
static enum rl_step store_failed_or_reply(struct relay *r, const char *what)
{
    cgirelay_log(r, RL_LOG_ERROR, "cannot %s the request body: %s", what, strerror(errno));
    return cgirelay_reply(r, 500, "cannot store the request body");
}

/* Read the body to EOF into s. RL_GO_ON, or RL_ANSWERED. */
static enum rl_step receive_or_reply(struct relay *r, struct relay_spool *s)
{
    const struct rl_body_src *b = r->req->body;
    long long max = max_body(r);

    for (;;) {
        ssize_t n = b->read(b->ctx, r->io, RELAY_IO_SIZE);

        if (n == 0)
            return RL_GO_ON;
        if (n < 0 && deadline_expired()) {
            cgirelay_log(r, RL_LOG_WARN, "request body not received in time (%lld bytes)",
                         s->total);
            return cgirelay_reply(r, 408, "request body not received in time");
        }
        if (n < 0) {
            cgirelay_log(r, RL_LOG_WARN, "request body ended early after %lld bytes", s->total);
            return cgirelay_reply(r, 400, "request body incomplete");
        }
        if (s->total + n > max) {
            cgirelay_log(r, RL_LOG_WARN, "request body over RATELIMIT_MAX_BODY (%lld)", max);
            return cgirelay_reply(r, 413, "request body too large");
        }
        if (spool_add(s, r->io, (size_t)n) != RL_OK)
            return store_failed_or_reply(r, "store");
        s->total += n;
    }
}

/* A pipe holding mem whole, its write end closed: the read end, blocking
 * as scripts expect, or -1 when it does not fit (a pipe can be smaller
 * than CGIBODY_MEM under fs.pipe-user-pages-soft) or cannot be made. */
static int filled_pipe(const struct relay_spool *s)
{
    int fds[2];
    ssize_t w;

    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
        return -1;
    do
        w = write(fds[1], s->mem, s->len);
    while (w < 0 && errno == EINTR);
    fd_close(&fds[1]);
    /* O_NONBLOCK is on the pipe's one open file description: clear it. */
    if (w != (ssize_t)s->len || fcntl(fds[0], F_SETFL, 0) < 0) {
        fd_close(&fds[0]);
        return -1;
    }
    return fds[0];
}

/* The script's stdin for what s holds: /dev/null, a filled pipe, or the
 * file (mem written there when the pipe did not take it). RL_GO_ON, or
 * RL_ANSWERED. */
static enum rl_step deliver_or_reply(struct relay *r, struct relay_spool *s)
{
    if (s->total == 0)
        r->stdin_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    else if (s->fd < 0)
        r->stdin_fd = filled_pipe(s);
    if (r->stdin_fd < 0 && s->total > 0) {
        if (s->fd < 0 &&
            ((s->fd = cgibody_spool_open()) < 0 || write_full(s->fd, s->mem, s->len) != RL_OK))
            return store_failed_or_reply(r, "store");
        if (lseek(s->fd, 0, SEEK_SET) < 0)
            return store_failed_or_reply(r, "rewind");
        r->stdin_fd = s->fd;
        s->fd = -1;
    }
    if (r->stdin_fd < 0) {
        cgirelay_log(r, RL_LOG_ERROR, "cannot open /dev/null: %s", strerror(errno));
        return cgirelay_reply(r, 500, RELAY_MSG_CANNOT_RUN);
    }
    return RL_GO_ON;
}

enum rl_step cgibody_receive_or_reply(struct relay *r)
{
    const char *v = env_get(r->req->params, "CONTENT_LENGTH");
    const struct rl_body_src *b = r->req->body;
    struct relay_spool *s = &r->spool;
    long long cl = -1;
    enum rl_step rc;

    if (v != NULL && parse_ll(v, strlen(v), 0, LLONG_MAX, &cl) != RL_OK)
        cl = -1;
    if (cl > max_body(r)) {
        cgirelay_log(r, RL_LOG_WARN, "CONTENT_LENGTH %lld over RATELIMIT_MAX_BODY (%lld)", cl,
                     max_body(r));
        return cgirelay_reply(r, 413, "request body too large");
    }
    rc = (b == NULL || b->fd < 0) ? RL_GO_ON : receive_or_reply(r, s);
    if (rc == RL_GO_ON)
        rc = deliver_or_reply(r, s);
    /* RFC 3875 4.1.2: set iff there is a body (a declared 0 is kept). */
    r->content_length = (s->total > 0 || cl >= 0) ? s->total : -1;
    return rc;
}
