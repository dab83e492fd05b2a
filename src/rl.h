/*
 * rl.h - things every module of fcgi-ratelimit shares: the OK/ERR return
 * convention and the caller-supplied error record.
 *
 * Functions return RL_OK (0) or RL_ERR (-1) and put the detail into a
 * struct rl_err the caller owns, in the manner of hiredis' err/errstr.
 * The record is filled through rl_err_set() only, so that every message is
 * formatted, truncated and NUL-terminated the same way.
 *
 * A function that may answer the request itself (its name ends in
 * _or_reply) returns an enum rl_step instead: RL_GO_ON when it wrote
 * nothing and the caller goes on, RL_ANSWERED when the answer is written
 * (and logged) and the request is over.
 */
#ifndef RL_RL_H
#define RL_RL_H

#include <stddef.h>

#define RL_OK 0
#define RL_ERR -1

enum rl_step { RL_GO_ON = 0, RL_ANSWERED = 1 };

/* What went wrong; rl_err_status() maps a kind to an HTTP status. */
enum rl_err_kind {
    RL_E_NONE = 0,
    RL_E_CONFIG,   /* invalid configuration: 500 */
    RL_E_REDIS,    /* Redis unreachable or failing: RATELIMIT_FAIL */
    RL_E_IO,       /* a read/write/syscall failed */
    RL_E_PROTO,    /* malformed input from a peer (script, server) */
    RL_E_NOTFOUND, /* script missing: 404 */
    RL_E_DENIED    /* script not executable / outside the root: 403 */
};

#define RL_ERR_MSG_MAX 256

struct rl_err {
    int kind;
    char msg[RL_ERR_MSG_MAX];
};

/*
 * Fill *err (may be NULL: then nothing happens) with kind and a printf-style
 * message, truncated to fit. Save errno before calling anything that may
 * change it; this function itself does not touch errno.
 */
void rl_err_set(struct rl_err *err, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reset *err to "no error". */
void rl_err_clear(struct rl_err *err);

/*
 * The HTTP status of an answer to err, the one place kinds meet statuses:
 * NOTFOUND 404, DENIED 403, REDIS 503, PROTO 502 (a peer, e.g. a script,
 * failed us), and 500 for the rest (our own fault).
 */
int rl_err_status(const struct rl_err *err);

#endif
