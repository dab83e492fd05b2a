/*
 * worker.h - what one worker process holds from one request to the next,
 * in one place: what it set up at start (the configuration cache, the
 * Redis connection, who we are) and its caches (recent denials, the
 * key hashing's context, the JSON of policy names, the relay's paths and
 * spawn actions). A worker serves one request at a
 * time, so nothing here needs a lock; it is created at start and freed at
 * exit, and tests can reset the caches.
 */
#ifndef RL_WORKER_H
#define RL_WORKER_H

#include <limits.h>

#include "cgirelay.h"
#include "clientkey.h"
#include "denycache.h"
#include "metrics.h"
#include "redisconn.h"
#include "response.h"
#include "rl.h"
#include "rlconfig.h"

struct rl_worker {
    struct config_cache *cc; /* NULL when the process configuration is invalid */
    struct rl_err cfg_err;   /* why cc is NULL */
    struct redisconn *rc;
    char self_path[PATH_MAX];   /* our own binary, never run as a script; "" unknown */
    const char *argv1;          /* script named on the command line, or NULL */
    struct denycache deny;      /* recent denials (denycache.h) */
    struct clientkey_hash hash; /* the key hashing's digest and context */
    struct response_memo memo;  /* policy names rendered as JSON */
    struct cgirelay_cache relay;
    /* The host's counters (NULL: off, the reason logged once) and each
     * rule name's row in them, found once per name (metrics_rule). */
    struct metrics *metrics;
    struct worker_metric_row {
        char name[RL_NAME_MAX + 1];
        int row;
    } mrows[METRICS_RULES];
    size_t nmrows;
};

/* Set w up from the environment env (borrowed: the configuration copies
 * what it keeps) and the command line's script argv1 (borrowed, may be
 * NULL). An invalid configuration leaves w->cc NULL and w->cfg_err set. */
void worker_init(struct rl_worker *w, char **env, const char *argv1);

/* Map the host's counter file (RATELIMIT_METRICS_FILE) for a process
 * that serves requests; never for --check, which an admin may run as
 * another user (the file would then be theirs). On failure metrics are
 * off, said once at warn (a file of another owner may be a local user's
 * squat: the admin should know). */
void worker_open_metrics(struct rl_worker *w);

/* The counter row of rule name, for the request path: cached per name;
 * a name not in the configuration w opened the file with is registered
 * with metrics_rule_request (it may be a request's choice). */
int worker_metric_row(struct rl_worker *w, const char *name);

/* After each request, its log sink gone (request_reset): what is too
 * rare to check per counter add. A counter file found truncated
 * (metrics_lost: the request's counts went to private memory) is said at
 * warn, and the file opened again: a new one replaces the truncated
 * file, and the host's counts start again there. */
void worker_request_done(struct rl_worker *w);

/* Forget every cached thing (denials, paths, spawn actions). */
void worker_reset(struct rl_worker *w);

/* Free everything w holds. */
void worker_free(struct rl_worker *w);

#endif
