/*
 * cgirelay.h - run the legacy CGI script for an admitted request and
 * relay its answer (RFC 3875), better than fcgiwrap where fcgiwrap fails:
 * the whole body is received before the script starts (bounded memory,
 * no deadlock), the environment is built explicitly from the request (no
 * HTTP_PROXY, no RATELIMIT_*), the script that runs is the one checked,
 * one poll() loop reads stdout and stderr, a small answer goes out whole,
 * the child runs in its own process group, is killed at the deadline or
 * when the client goes away, and is always reaped.
 */
#ifndef RL_CGIRELAY_H
#define RL_CGIRELAY_H

#include <stddef.h>
#include <sys/types.h>

#include "limiter.h"
#include "rlconfig.h"
#include "response.h"

/* Where the request body comes from (FastCGI in stream, or fd 0). */
struct rl_body_src {
    /* Read up to n bytes, blocking: count (> 0), 0 at EOF, -1 on error
     * (also when the request's deadline broke the read: then
     * deadline_expired() is 1). Read to EOF before the script starts. */
    ssize_t (*read)(void *ctx, char *p, size_t n);
    int fd; /* the connection; -1 when there is no body at all */
    void *ctx;
};

/*
 * What the relay keeps from one request to the next (the worker owns it,
 * worker.h): our own binary's identity, the script root's realpath and
 * the last posix_spawn file actions, each recomputed when its key changes.
 * All zero is empty; cgirelay_cache_free() empties it again.
 */
struct cgirelay_cache {
    char *self_path; /* key of self_dev/self_ino */
    dev_t self_dev;
    ino_t self_ino;
    char *root; /* key of root_real */
    char *root_real;
    void *actions;     /* posix_spawn_file_actions_t *, for action_fds */
    int action_fds[4]; /* stdin, stdout, stderr, folder */
};

/* Free what c holds and empty it. */
void cgirelay_cache_free(struct cgirelay_cache *c);

struct rl_relay_req {
    char *const *params;         /* the request's CGI variables (borrowed) */
    const struct rl_config *cfg; /* borrowed */
    struct rl_body_src *body;    /* borrowed */
    struct rl_out *out;          /* the answer (borrowed) */
    /* The decision that admitted the request: every answer carries its
     * rate-limit headers (response_ratelimit_headers). NULL: none. */
    const struct rl_decision *decision;
    /* Script stderr, one chunk at a time, to the web server's log. */
    void (*errlog)(void *ctx, const char *p, size_t n);
    void *errlog_ctx;
    const char *self_path; /* our own binary (realpath), never run; may be NULL */
    const char *argv1;     /* script named on our command line (lighttpd
                              cgi.assign interpreter style), may be NULL */
    /* End the answer now, while the script may still run (FastCGI: close
     * the out and err streams, which sends FCGI_END_REQUEST): RL_OK, or
     * RL_ERR when the peer is gone. Called at most once, after the last
     * answer byte, only when the script closed its output and goes on;
     * the relay then waits for it (up to its deadline) without holding the
     * client. May be NULL: the answer then ends when the relay returns. */
    int (*end)(void *ctx);
    void *end_ctx;
    struct cgirelay_cache *cache; /* may be NULL: nothing is kept */
};

/* One run of the script (cgiint.h). */
struct relay;

/* A relay for req, which stays borrowed until cgirelay_free(). */
struct relay *cgirelay_new(const struct rl_relay_req *req);

/*
 * Resolve the script, run it and relay its answer to req->out. Always
 * answers: when anything fails before the script's headers were sent it
 * writes the JSON error answer itself (400, 403, 404, 408, 413, 500, 502,
 * 504); after that it ends the answer without corrupting it. Returns
 * RL_OK when the script's answer was relayed whole, RL_ERR otherwise
 * (answered and logged): an outcome to report, not a step to take.
 */
int cgirelay_run(struct relay *r);

/* Release everything r holds: fds closed, a child still running killed
 * and reaped, memory freed. NULL is a no-op. */
void cgirelay_free(struct relay *r);

#endif
