/*
 * cgirelay.h - run the legacy CGI script for an admitted request and
 * stream its answer back (RFC 3875), better than fcgiwrap where fcgiwrap
 * fails: one poll() loop feeds the body and reads stdout/stderr at once,
 * the environment is built explicitly (no HTTP_PROXY, no RATELIMIT_*, no
 * password), the child runs in its own process group, is killed at the
 * deadline or when the client goes away, and is always reaped.
 */
#ifndef RL_CGIRELAY_H
#define RL_CGIRELAY_H

#include <stddef.h>
#include <sys/types.h>

#include "rlconfig.h"
#include "response.h"

/* Where the request body comes from (FastCGI in stream, or fd 0). */
struct rl_body_src {
    /* Read up to n bytes: count, 0 at EOF, -1 on error. Called only when
     * buffered() says bytes are ready or fd polled readable. */
    ssize_t (*read)(void *ctx, char *p, size_t n);
    /* 1 when read() can return data without blocking (bytes already in a
     * user-space buffer, e.g. libfcgi's), else 0. May be NULL. */
    int (*buffered)(void *ctx);
    int fd; /* fd to poll for more input; -1 when there is no body at all */
    void *ctx;
};

struct rl_relay_req {
    char *const *params;         /* the request's CGI variables (borrowed) */
    const struct rl_config *cfg; /* borrowed */
    struct rl_body_src *body;    /* borrowed */
    struct rl_out *out;          /* the answer (borrowed) */
    /* Script stderr, one chunk at a time, to the web server's log. */
    void (*errlog)(void *ctx, const char *p, size_t n);
    void *errlog_ctx;
    const char *extra_headers; /* "Name: v\r\n"... added to the answer; may be NULL */
    const char *self_path;     /* our own binary (realpath), never run; may be NULL */
    const char *argv1;         /* script named on our command line (lighttpd
                                  cgi.assign interpreter style), may be NULL */
};

/*
 * Resolve the script, run it and relay its answer to req->out. Always
 * answers: when anything fails before the script's headers were sent it
 * writes the JSON error answer itself (404, 403, 502, 504); after that it
 * ends the answer without corrupting it. Returns RL_OK when the script's
 * answer was relayed whole, RL_ERR otherwise (already answered and logged).
 */
int cgirelay_run_or_reply(const struct rl_relay_req *req);

#endif
