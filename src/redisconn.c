/*
 * redisconn.c - the worker's one Redis connection (hiredis 0.14 or 1.x).
 *
 * Lifecycle: connected lazily on the first EVALSHA, within
 * RATELIMIT_REDIS_TIMEOUT_MS, then AUTH (with the ACL user when there is
 * one), SELECT and SCRIPT LOAD of the first request's script (whose SHA
 * must be ours). A NOSCRIPT reply (another of the limiter's scripts,
 * first used later; Redis restarted, SCRIPT FLUSH, failover) loads the
 * script and retries once. A failed command leaves the connection dead:
 * it is freed and reopened on a later call. A changed target (per-request
 * RATELIMIT_REDIS_URL) reconnects.
 *
 * I/O is rediswire's (rediswire.h): a non-blocking, close-on-exec socket
 * and each command, sent and its whole reply read, within
 * RATELIMIT_REDIS_TIMEOUT_MS from its start, however the server trickles
 * the reply. Our RESP bytes never enter hiredis' output buffer: AUTH's
 * password is wiped from ours once sent.
 *
 * Circuit breaker (a dead Redis must not cost every request a timeout):
 * after a failure calls fail at once, with no I/O, for 1 s, doubling to
 * 30 s while probes keep failing; one call probes when the period ends and
 * a success closes the breaker. Outages are logged once when they start
 * and once when they end, with cfg->redis.display, never the password.
 *
 * What counts as a failure: no connection, a timeout, a dead socket, and
 * error replies that describe the server (LOADING, BUSY, READONLY, OOM,
 * ...): every request would get them. An error from the script itself
 * (a bug, a key a third party corrupted) concerns that request: it fails
 * alone, the connection stays, the breaker does not open.
 *
 * Configuration errors: a refused AUTH (WRONGPASS, invalid password, or
 * NOAUTH: a password is needed), a refused SELECT, an ACL refusal
 * (NOPERM, or a script's command the ACL user may not run). Redis is up,
 * so they get their own ERROR line naming what was refused, once per kind
 * until it is fixed, never "unreachable". The request still follows
 * RATELIMIT_FAIL, as for an outage: an admin who chose fail-open chose
 * that a broken limiter must not take the site down, and a revoked ACL
 * right or a rotated password is exactly that. The breaker's hold-off
 * still applies (fail at once, probe now and then), so a wrong password
 * does not cost Redis a connection and a refused AUTH per request.
 * --check runs the same steps and fails on any of them.
 */
#include "redisconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "cluster.h"
#include "clusterconn.h"
#include "redisnode.h"
#include "rediswire.h"
#include "util.h"

#define BACKOFF_FIRST_MS 1000LL
#define BACKOFF_MAX_MS 30000LL
#define SCRIPT_ERR_LOG_MS 60000LL /* at most one such WARN a minute */
#define DEFAULT_TIMEOUT_MS 100

struct redisconn {
    redisContext *ctx;
    struct clusterconn *cl; /* redis+cluster://: the nodes and the map; NULL before */
    int timeout_ms;         /* RATELIMIT_REDIS_TIMEOUT_MS of the current call */
    /* The target the connection and the breaker are about (a copy: the
     * config may be a per-request one). has_target: it is set. */
    int has_target;
    struct rl_redis_target t;
    /* Sentinel: the master they named last ("" before), and the sentinel
     * to ask first (the one that answered last). */
    char master_host[256];
    int master_port;
    int sentinel_first;
    int conf; /* enum rediswire_conf: what the current call's failure was */
    /* Circuit breaker: down while an outage lasts (it was logged);
     * down_conf: the configuration error it is open for, or RW_CONF_NONE. */
    int down, down_conf;
    unsigned conf_logged; /* bit (1 << kind): that kind's line was logged */
    long long down_since_ms, retry_at_ms, backoff_ms;
    char reason[RL_ERR_MSG_MAX];
    long long script_err_logged_ms; /* last WARN about a script error */
    /* The server's clock minus this host's, ms, as the limiter script
     * last told (the buckets layout's epochs; 0 until it does). */
    long long clock_offset_ms;
    struct metrics *m; /* borrowed; NULL: not counted */
    unsigned reloads;  /* NOSCRIPT reloads of the current call */
};

/* How the EVALSHA went. */
enum eval_outcome { EV_OK, EV_SCRIPT_ERROR, EV_DOWN };

struct redisconn *redisconn_new(void)
{
    return xcalloc(1, sizeof(struct redisconn));
}

long long redisconn_clock_offset_ms(const struct redisconn *rc)
{
    return rc != NULL ? rc->clock_offset_ms : 0;
}

void redisconn_set_clock_offset_ms(struct redisconn *rc, long long ms)
{
    if (rc != NULL)
        rc->clock_offset_ms = ms;
}

void redisconn_set_metrics(struct redisconn *rc, struct metrics *m)
{
    if (rc != NULL)
        rc->m = m;
}

/* Count a failed call by kind: the connect itself failed (refused, or
 * timed out), a command timed out (on a new connection too: its AUTH or
 * SCRIPT LOAD), a new connection failed otherwise (its AUTH, SELECT or
 * ROLE refused), or anything else the server said or did (an error reply,
 * a closed connection): "reply". */
static void count_failure(struct redisconn *rc, const struct rl_err *err, int connecting)
{
    const char *msg = err != NULL ? err->msg : "";

    if (strstr(msg, "connect: ") != NULL) /* also a connect that timed out */
        metrics_count(rc->m, METRICS_REDIS_CONNECT);
    else if (strstr(msg, "timed out") != NULL)
        metrics_count(rc->m, METRICS_REDIS_TIMEOUT);
    else if (connecting)
        metrics_count(rc->m, METRICS_REDIS_CONNECT);
    else
        metrics_count(rc->m, METRICS_REDIS_REPLY);
}

/* The end of one call's exchanges: its NOSCRIPT reloads and, when the
 * server answered, its round trip since t0_us. */
static void count_call(struct redisconn *rc, long long t0_us, int answered)
{
    for (; rc->reloads > 0; rc->reloads--)
        metrics_count(rc->m, METRICS_REDIS_NOSCRIPT);
    if (answered)
        metrics_observe(rc->m, METRICS_H_REDIS, now_us() - t0_us);
}

void redisconn_close(struct redisconn *rc)
{
    if (rc == NULL)
        return;
    clusterconn_reset(rc->cl);
    if (rc->ctx == NULL)
        return;
    redisFree(rc->ctx);
    rc->ctx = NULL;
}

static void target_clear(struct redisconn *rc)
{
    redisurl_target_free(&rc->t);
    rc->master_host[0] = '\0';
    rc->master_port = 0;
    rc->sentinel_first = 0;
    rc->has_target = 0;
}

void redisconn_free(struct redisconn *rc)
{
    if (rc == NULL)
        return;
    redisconn_close(rc);
    target_clear(rc);
    clusterconn_free(rc->cl);
    memset(rc, 0xff, sizeof(*rc)); /* poison: a use after free shows */
    free(rc);
}

/* ------------------------------------------------------------ the target */

/* Make cfg's target the current one; another target starts afresh: new
 * connection, closed breaker (its outage was another server's). */
static void target_sync(struct redisconn *rc, const struct rl_config *cfg)
{
    const struct rl_redis_target *t = &cfg->redis;

    rc->timeout_ms = cfg->redis_timeout_ms > 0 ? cfg->redis_timeout_ms : DEFAULT_TIMEOUT_MS;
    rc->conf = RW_CONF_NONE;
    if (rc->has_target && redisurl_target_eq(&rc->t, t))
        return;
    if (rc->has_target)
        rl_log(RL_LOG_INFO, "redis target changed from %s to %s", rc->t.display,
               t->display != NULL ? t->display : "(redis)");
    redisconn_close(rc);
    target_clear(rc);
    redisurl_target_copy(&rc->t, t);
    if (rc->t.display == NULL)
        rc->t.display = xstrdup("(redis)");
    rc->has_target = 1;
    rc->down = 0;
    rc->down_conf = RW_CONF_NONE;
    rc->conf_logged = 0;
    rc->backoff_ms = 0;
}

/* ------------------------------------------------------------ breaker */

/* 1 when the breaker is open: fail now with *err, without I/O. */
static int breaker_blocks(const struct redisconn *rc, struct rl_err *err)
{
    long long now;

    if (!rc->down)
        return 0;
    now = now_ms();
    if (now >= rc->retry_at_ms) {
        metrics_breaker(rc->m, METRICS_BREAKER_HALF_OPEN);
        return 0; /* this call is the probe */
    }
    rl_err_set(err, RL_E_REDIS, "redis %s %s: %s (next try in %lld ms)", rc->t.display,
               rc->down_conf != RW_CONF_NONE ? "configuration error" : "unavailable", rc->reason,
               rc->retry_at_ms - now);
    return 1;
}

static const char *fail_mode(const struct rl_config *cfg)
{
    return cfg->fail == RL_FAIL_CLOSED ? "closed (503)" : "open (not limiting)";
}

/* The line that starts a failure of this kind: "unreachable" for an
 * outage, the configuration error (once per kind until it is fixed). */
static void log_down(struct redisconn *rc, const struct rl_config *cfg, const char *reason)
{
    unsigned bit = 1U << rc->conf;

    if (rc->conf == RW_CONF_NONE) {
        rl_log(RL_LOG_ERROR, "redis %s unreachable: %s; failing %s until it is back", rc->t.display,
               reason, fail_mode(cfg));
        return;
    }
    if (rc->conf_logged & bit)
        return;
    rc->conf_logged |= bit;
    rl_log(RL_LOG_ERROR, "redis %s: configuration error, %s: %s; failing %s until it is fixed",
           rc->t.display, rediswire_conf_name(rc->conf), reason, fail_mode(cfg));
}

/* A failure (rc->conf says of what kind): open the breaker (log if it was
 * closed or open for another kind) or, when a probe failed, double the
 * period. */
static void breaker_fail(struct redisconn *rc, const struct rl_config *cfg, const char *reason)
{
    long long now = now_ms();

    (void)snprintf(rc->reason, sizeof(rc->reason), "%s", reason);
    if (!rc->down || rc->down_conf != rc->conf) {
        if (!rc->down)
            rc->down_since_ms = now;
        rc->down = 1;
        metrics_breaker(rc->m, METRICS_BREAKER_OPEN);
        rc->down_conf = rc->conf;
        rc->backoff_ms = BACKOFF_FIRST_MS;
        log_down(rc, cfg, reason);
    } else {
        metrics_breaker(rc->m, METRICS_BREAKER_OPEN); /* the probe failed */
        rc->backoff_ms = rc->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : rc->backoff_ms * 2;
        rl_log(RL_LOG_DEBUG, "redis %s still %s: %s; next try in %lld ms", rc->t.display,
               rc->conf != RW_CONF_NONE ? "refusing" : "unreachable", reason, rc->backoff_ms);
    }
    rc->retry_at_ms = now + rc->backoff_ms;
}

/* Redis answered: close the breaker (log the end of an outage). */
static void breaker_ok(struct redisconn *rc)
{
    if (!rc->down)
        return;
    if (rc->down_conf != RW_CONF_NONE)
        rl_log(RL_LOG_WARN, "redis %s: configuration accepted now, after %lld ms", rc->t.display,
               now_ms() - rc->down_since_ms);
    else
        rl_log(RL_LOG_WARN, "redis %s is back after %lld ms", rc->t.display,
               now_ms() - rc->down_since_ms);
    rc->down = 0;
    rc->down_conf = RW_CONF_NONE;
    rc->conf_logged = 0;
    rc->backoff_ms = 0;
    metrics_breaker(rc->m, METRICS_BREAKER_CLOSED);
}

/* One command and its reply within RATELIMIT_REDIS_TIMEOUT_MS from now:
 * the timeout bounds the whole command, however the server trickles its
 * reply. The reply (caller owns), or NULL with *err: then the connection
 * is unusable (a late reply could still arrive), close it. */
static redisReply *send_cmd(struct redisconn *rc, const struct redisconn_cmd *cmd, const char *what,
                            struct rl_err *err)
{
    return rediswire_command(rc->ctx, cmd, now_ms() + rc->timeout_ms, what, err);
}

/* ------------------------------------------------------------ sentinel */

/* AUTH password on a sentinel (RATELIMIT_SENTINEL_PASSWORD), wiped once
 * sent. */
static int sentinel_auth(struct redisconn *rc, redisContext *c, long long deadline,
                         struct rl_err *err)
{
    const char *pw = rc->t.sentinel_password;
    struct redisconn_cmd cmd;
    redisReply *r;
    int ok;

    if (pw == NULL || pw[0] == '\0')
        return RL_OK;
    redisconn_cmd_init(&cmd, 2);
    redisconn_cmd_str(&cmd, "AUTH", 4);
    redisconn_cmd_str(&cmd, pw, strlen(pw));
    r = redisconn_cmd_complete(&cmd) ? rediswire_command(c, &cmd, deadline, "sentinel AUTH", err)
                                     : NULL;
    explicit_bzero(cmd.buf, cmd.len);
    if (r == NULL) {
        if (!redisconn_cmd_complete(&cmd))
            rl_err_set(err, RL_E_REDIS, "sentinel AUTH: password too long");
        return RL_ERR;
    }
    ok = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
    if (!ok) {
        rc->conf = rediswire_conf_of(r, RW_CONF_AUTH);
        rl_err_set(err, RL_E_REDIS, "sentinel AUTH (RATELIMIT_SENTINEL_PASSWORD): %s",
                   r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    }
    freeReplyObject(r);
    return ok ? RL_OK : RL_ERR;
}

/* Ask one sentinel, before deadline, where the master is: RL_OK with
 * rc->master_host/port, RL_ERR with *err (*unknown = 1 when the sentinel
 * answered that it knows no such master). */
static int sentinel_ask(struct redisconn *rc, const struct rl_redis_node *node, long long deadline,
                        int *unknown, struct rl_err *err)
{
    struct redisconn_cmd cmd;
    redisContext *c;
    redisReply *r = NULL;
    long long left = deadline - now_ms();
    long long port = 0;
    int ret = RL_ERR;

    c = rediswire_connect(node->host, node->port, NULL, left > 1 ? (int)left : 1, err);
    if (c == NULL)
        return RL_ERR;
    redisconn_cmd_init(&cmd, 3);
    redisconn_cmd_str(&cmd, "SENTINEL", 8);
    redisconn_cmd_str(&cmd, "get-master-addr-by-name", 23);
    redisconn_cmd_str(&cmd, rc->t.master, strlen(rc->t.master));
    if (sentinel_auth(rc, c, deadline, err) == RL_OK)
        r = rediswire_command(c, &cmd, deadline, "SENTINEL get-master-addr-by-name", err);
    if (r != NULL && r->type == REDIS_REPLY_NIL) {
        *unknown = 1;
        rl_err_set(err, RL_E_REDIS, "the sentinels know no master named '%s'", rc->t.master);
    } else if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
               r->element[0]->type == REDIS_REPLY_STRING &&
               r->element[0]->len < sizeof(rc->master_host) &&
               r->element[1]->type == REDIS_REPLY_STRING &&
               parse_ll(r->element[1]->str, r->element[1]->len, 1, 65535, &port) == RL_OK) {
        memcpy(rc->master_host, r->element[0]->str, r->element[0]->len + 1);
        rc->master_port = (int)port;
        ret = RL_OK;
    } else if (r != NULL && rediswire_error_is(r, "NOAUTH")) {
        rc->conf = RW_CONF_AUTH;
        rl_err_set(err, RL_E_REDIS,
                   "sentinel %s:%d requires a password: set RATELIMIT_SENTINEL_PASSWORD",
                   node->host, node->port);
    } else if (r != NULL) {
        rl_err_set(err, RL_E_REDIS, "sentinel %s:%d: SENTINEL get-master-addr-by-name: %s",
                   node->host, node->port,
                   r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    }
    if (r != NULL)
        freeReplyObject(r);
    redisFree(c);
    return ret;
}

/*
 * Where the master is now, from the sentinels (rc->master_host/port):
 * asked in turn, starting with the one that answered last, the whole walk
 * within one RATELIMIT_REDIS_TIMEOUT_MS: sentinel k of n may use the time
 * up to k+1 n-ths of it, so a refused connection hands its time on and a
 * dead set costs one timeout. A changed address is logged. RL_OK, or
 * RL_ERR with *err.
 */
static int sentinel_resolve(struct redisconn *rc, struct rl_err *err)
{
    char old[sizeof(rc->master_host)];
    int n = rc->t.nnodes, k, unknown = 0, old_port = rc->master_port;
    long long start = now_ms();
    struct rl_err last;

    memcpy(old, rc->master_host, sizeof(old));
    rl_err_set(&last, RL_E_REDIS, "no sentinel answered");
    for (k = 0; k < n; k++) {
        int i = (rc->sentinel_first + k) % n;
        long long deadline = start + (long long)rc->timeout_ms * (k + 1) / n;

        if (sentinel_ask(rc, &rc->t.nodes[i], deadline, &unknown, &last) == RL_OK) {
            rc->sentinel_first = i;
            rc->conf = RW_CONF_NONE; /* another sentinel's refusal is past */
            if (strcmp(old, rc->master_host) != 0 || old_port != rc->master_port)
                rl_log(old[0] != '\0' ? RL_LOG_WARN : RL_LOG_INFO,
                       "redis %s: master '%s' is at %s:%d (sentinel %s:%d)", rc->t.display,
                       rc->t.master, rc->master_host, rc->master_port, rc->t.nodes[i].host,
                       rc->t.nodes[i].port);
            return RL_OK;
        }
    }
    if (unknown)
        rl_err_set(err, RL_E_REDIS, "the sentinels know no master named '%s'", rc->t.master);
    else
        rl_err_set(err, RL_E_REDIS, "no sentinel of %d named the master in %d ms; the last: %s", n,
                   rc->timeout_ms, last.msg);
    return RL_ERR;
}

/* ------------------------------------------------------------ connecting */

/* Connect (for Sentinel: to the master the sentinels name now, checked
 * with ROLE), authenticate, select and load the script into rc->ctx. On
 * failure rc->ctx is NULL and rc->conf says whether it was a
 * configuration error. */
static int conn_open(struct redisconn *rc, const char *script, const char *sha, struct rl_err *err)
{
    struct redisnode_login login = {rc->t.user, rc->t.password, rc->t.db,
                                    rc->t.mode == RL_REDIS_SENTINEL};
    const char *host = rc->t.host;
    int port = rc->t.port;

    if (rc->t.mode == RL_REDIS_SENTINEL) {
        if (sentinel_resolve(rc, err) != RL_OK)
            return RL_ERR;
        host = rc->master_host;
        port = rc->master_port;
    }
    rc->ctx =
        redisnode_open(host, port, rc->t.path, &login, rc->timeout_ms, script, sha, &rc->conf, err);
    if (rc->ctx == NULL && rc->t.mode == RL_REDIS_SENTINEL) {
        char msg[RL_ERR_MSG_MAX];

        /* That sentinel may be stale or cut off: ask the next one first. */
        rc->sentinel_first = (rc->sentinel_first + 1) % rc->t.nnodes;
        if (err == NULL)
            return RL_ERR;
        (void)snprintf(msg, sizeof(msg), "%s", err->msg);
        rl_err_set(err, RL_E_REDIS, "master '%s' at %s:%d: %s", rc->t.master, host, port, msg);
    }
    return rc->ctx != NULL ? RL_OK : RL_ERR;
}

/* ------------------------------------------------------------ EVALSHA */

/* EVALSHA on rc->ctx, re-loading the script once on NOSCRIPT. EV_OK with
 * *out, or EV_SCRIPT_ERROR / EV_DOWN with *err (and rc->conf for a
 * configuration error). A redirection (no Cluster here) is an outage. */
static int eval_reload(struct redisconn *rc, const char *script, const char *sha,
                       const struct redisconn_cmd *cmd, redisReply **out, struct rl_err *err)
{
    redisReply *r = NULL;

    switch (redisnode_eval(rc->ctx, 0, rc->timeout_ms, script, sha, cmd, &r, &rc->conf,
                           &rc->reloads, err)) {
    case RN_OK:
        *out = r;
        return EV_OK;
    case RN_SCRIPT_ERROR:
        return EV_SCRIPT_ERROR;
    case RN_REDIRECT:
        rl_err_set(err, RL_E_REDIS, "EVALSHA: %s (a Redis Cluster: use redis+cluster://)", r->str);
        freeReplyObject(r);
        return EV_DOWN;
    default:
        return EV_DOWN;
    }
}

/* A script error fails only its request, and the caller may log it at
 * debug level only: say it at WARN, but not once per request. */
static void log_script_error(struct redisconn *rc, const struct rl_err *err)
{
    redisconn_warn_rarely(rc, "limiter script failed", err);
}

void redisconn_warn_rarely(struct redisconn *rc, const char *what, const struct rl_err *err)
{
    long long now = now_ms();

    if (rc->script_err_logged_ms != 0 && now - rc->script_err_logged_ms < SCRIPT_ERR_LOG_MS)
        return;
    rc->script_err_logged_ms = now;
    rl_log(RL_LOG_WARN, "redis %s: %s: %s", rc->t.display, what,
           err != NULL && err->msg[0] != '\0' ? err->msg : "error reply");
}

/* The EVALSHA through the cluster, to the master of key's slot. */
static int eval_cluster(struct redisconn *rc, const char *script, const char *sha,
                        const struct redisconn_cmd *cmd, const char *key, redisReply **out,
                        struct rl_err *err)
{
    unsigned slot = cluster_key_slot(key, key != NULL ? strlen(key) : 0);

    if (rc->cl == NULL)
        rc->cl = clusterconn_new();
    switch (clusterconn_eval(rc->cl, &rc->t, rc->timeout_ms, slot, script, sha, cmd, out, &rc->conf,
                             &rc->reloads, err)) {
    case RN_OK:
        return EV_OK;
    case RN_SCRIPT_ERROR:
        return EV_SCRIPT_ERROR;
    default:
        return EV_DOWN;
    }
}

redisReply *redisconn_eval(struct redisconn *rc, const struct rl_config *cfg, const char *script,
                           const char *sha, const struct redisconn_cmd *cmd, const char *key,
                           struct rl_err *err)
{
    redisReply *reply = NULL;
    int outcome, fresh;
    long long t0, t0_us;

    if (!redisconn_cmd_complete(cmd)) {
        rl_err_set(err, RL_E_REDIS, "EVALSHA: incomplete request (a bug)");
        return NULL;
    }
    target_sync(rc, cfg);
    if (breaker_blocks(rc, err))
        return NULL;
    rc->reloads = 0;
    if (rc->t.mode == RL_REDIS_CLUSTER) {
        t0_us = now_us();
        outcome = eval_cluster(rc, script, sha, cmd, key, &reply, err);
        count_call(rc, t0_us, outcome != EV_DOWN);
        if (outcome == EV_DOWN) {
            count_failure(rc, err, 0);
            breaker_fail(rc, cfg, err != NULL ? err->msg : "EVALSHA failed");
            return NULL;
        }
        breaker_ok(rc);
        if (outcome == EV_SCRIPT_ERROR) {
            metrics_count(rc->m, METRICS_REDIS_REPLY);
            log_script_error(rc, err);
        }
        return reply;
    }
    fresh = rc->ctx == NULL;
    if (rc->ctx == NULL && conn_open(rc, script, sha, err) != RL_OK) {
        count_failure(rc, err, 1);
        breaker_fail(rc, cfg, err != NULL ? err->msg : "connect failed");
        return NULL;
    }
    t0 = now_ms();
    t0_us = now_us();
    outcome = eval_reload(rc, script, sha, cmd, &reply, err);
    if (outcome == EV_DOWN && !fresh && rc->t.mode == RL_REDIS_SENTINEL &&
        rc->conf == RW_CONF_NONE && now_ms() - t0 < rc->timeout_ms / 2) {
        /* The master closed the connection or turned read-only (not a
         * timeout): likely a failover. Ask the sentinels again at once,
         * one retry. */
        redisconn_close(rc);
        outcome = conn_open(rc, script, sha, err) == RL_OK
                      ? eval_reload(rc, script, sha, cmd, &reply, err)
                      : EV_DOWN;
    }
    count_call(rc, t0_us, outcome != EV_DOWN);
    if (outcome == EV_DOWN) {
        count_failure(rc, err, 0);
        /* After a timeout a late reply could still arrive: never reuse. */
        redisconn_close(rc);
        breaker_fail(rc, cfg, err != NULL ? err->msg : "EVALSHA failed");
        return NULL;
    }
    breaker_ok(rc);
    if (outcome == EV_SCRIPT_ERROR) {
        metrics_count(rc->m, METRICS_REDIS_REPLY);
        log_script_error(rc, err);
    }
    return reply; /* NULL for EV_SCRIPT_ERROR */
}

int redisconn_eval_many(struct redisconn *rc, const struct rl_config *cfg, size_t n,
                        const char *const *scripts, const char *const *shas,
                        const struct redisconn_cmd *const *cmds, const char *const *keys, int flags,
                        redisReply **out, struct rl_err *err)
{
    unsigned slots[REDISCONN_MANY_MAX];
    int outcome[REDISCONN_MANY_MAX], down = 0, failed = 0;
    int breaker = !(flags & REDISCONN_NO_BREAKER);
    long long t0_us;
    size_t i;

    _Static_assert(REDISCONN_MANY_MAX <= CLUSTERCONN_MANY_MAX, "the cluster room takes them all");
    if (n > REDISCONN_MANY_MAX) {
        rl_err_set(err, RL_E_REDIS, "%zu commands at once (at most %d)", n, REDISCONN_MANY_MAX);
        return RL_ERR;
    }
    for (i = 0; i < n; i++)
        out[i] = NULL;
    for (i = 0; i < n; i++) {
        if (!redisconn_cmd_complete(cmds[i])) {
            rl_err_set(err, RL_E_REDIS, "EVALSHA: incomplete request (a bug)");
            return RL_ERR;
        }
        slots[i] = cluster_key_slot(keys[i], strlen(keys[i]));
    }
    target_sync(rc, cfg);
    if (rc->t.mode != RL_REDIS_CLUSTER) {
        rl_err_set(err, RL_E_REDIS, "several EVALSHAs at once: only on a Redis Cluster (a bug)");
        return RL_ERR;
    }
    if (breaker && breaker_blocks(rc, err))
        return RL_ERR;
    if (rc->cl == NULL)
        rc->cl = clusterconn_new();
    rc->conf = RW_CONF_NONE;
    rc->reloads = 0;
    t0_us = now_us();
    if (clusterconn_eval_many(rc->cl, &rc->t, rc->timeout_ms, n, slots, scripts, shas, cmds, out,
                              outcome, &rc->conf, &rc->reloads, err) != RL_OK)
        return RL_ERR;
    for (i = 0; i < n; i++) {
        down += outcome[i] == RN_DOWN;
        failed += outcome[i] != RN_OK;
    }
    count_call(rc, t0_us, down == 0);
    if (down > 0) {
        count_failure(rc, err, 0);
        if (breaker)
            breaker_fail(rc, cfg, err != NULL ? err->msg : "EVALSHA failed");
        return RL_ERR;
    }
    if (breaker)
        breaker_ok(rc);
    if (failed > 0) {
        metrics_count(rc->m, METRICS_REDIS_REPLY);
        if (breaker)
            log_script_error(rc, err);
        return RL_ERR;
    }
    return RL_OK;
}

/* --check's EVALSHA: the script with one key under the prefix and no
 * ARGV. Redis checks the ACL for the command and the key first; the
 * script then refuses the arguments before it touches any key ("ERR
 * fcgi-ratelimit: KEYS and ARGV do not match"): that refusal is the
 * success. The rights for the commands inside the script are not checked
 * (only a real run would): a request reports them (RW_CONF_NOPERM). */
static int check_eval(struct redisconn *rc, const struct rl_config *cfg, const char *script,
                      const char *sha, struct rl_err *err)
{
    static const char ours[] = "ERR fcgi-ratelimit:";
    struct redisconn_cmd cmd;
    char key[RL_PREFIX_MAX + 8];
    redisReply *r;
    int ok;

    (void)snprintf(key, sizeof(key), "%scheck", cfg->prefix);
    redisconn_cmd_init(&cmd, 4);
    redisconn_cmd_str(&cmd, "EVALSHA", 7);
    redisconn_cmd_str(&cmd, sha, strlen(sha));
    redisconn_cmd_ll(&cmd, 1);
    redisconn_cmd_str(&cmd, key, strlen(key));
    if (rc->t.mode == RL_REDIS_CLUSTER) {
        /* The script's refusal is a script error to the cluster room. */
        r = NULL;
        ok = eval_cluster(rc, script, sha, &cmd, key, &r, err) == EV_SCRIPT_ERROR && err != NULL &&
             strstr(err->msg, ours) != NULL;
        if (r != NULL)
            freeReplyObject(r);
        return ok ? RL_OK : RL_ERR;
    }
    r = send_cmd(rc, &cmd, "EVALSHA", err);
    if (r == NULL)
        return RL_ERR;
    ok = r->type == REDIS_REPLY_ERROR && strncmp(r->str, ours, sizeof(ours) - 1) == 0;
    if (!ok) {
        rc->conf = rediswire_conf_of(r, RW_CONF_NONE);
        rl_err_set(err, RL_E_REDIS, "EVALSHA: %s",
                   r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    }
    freeReplyObject(r);
    return ok ? RL_OK : RL_ERR;
}

int redisconn_check(struct redisconn *rc, const struct rl_config *cfg, const char *script,
                    struct rl_err *err)
{
    char sha[RL_SHA1_HEX_LEN + 1];
    char msg[RL_ERR_MSG_MAX];

    if (sha1_hex(script, strlen(script), sha) != RL_OK) {
        rl_err_set(err, RL_E_REDIS, "cannot compute the script's SHA-1");
        return RL_ERR;
    }
    target_sync(rc, cfg);
    redisconn_close(rc);
    if (rc->t.mode == RL_REDIS_CLUSTER) {
        if (rc->cl == NULL)
            rc->cl = clusterconn_new();
        if (clusterconn_check(rc->cl, &rc->t, rc->timeout_ms, script, sha, &rc->conf, err) ==
                RL_OK &&
            check_eval(rc, cfg, script, sha, err) == RL_OK)
            return RL_OK;
    } else if (conn_open(rc, script, sha, err) == RL_OK &&
               check_eval(rc, cfg, script, sha, err) == RL_OK) {
        breaker_ok(rc);
        return RL_OK;
    }
    redisconn_close(rc);
    if (err != NULL && rc->conf != RW_CONF_NONE) {
        (void)snprintf(msg, sizeof(msg), "%s", err->msg);
        rl_err_set(err, RL_E_CONFIG, "%s: configuration error, %s: %s", rc->t.display,
                   rediswire_conf_name(rc->conf), msg);
    } else if (err != NULL) {
        (void)snprintf(msg, sizeof(msg), "%s", err->msg);
        rl_err_set(err, RL_E_REDIS, "%s unreachable or failing: %s", rc->t.display, msg);
    }
    return RL_ERR;
}

void redisconn_where(const struct redisconn *rc, char *out, size_t outsz)
{
    if (rc->t.mode == RL_REDIS_CLUSTER && rc->cl != NULL)
        clusterconn_where(rc->cl, out, outsz);
    else if (rc->t.mode == RL_REDIS_SENTINEL)
        (void)snprintf(out, outsz, "sentinel: master '%s' at %s:%d (%d sentinel%s in %s)",
                       rc->t.master, rc->master_host, rc->master_port, rc->t.nnodes,
                       rc->t.nnodes == 1 ? "" : "s", rc->t.display);
    else
        (void)snprintf(out, outsz, "server %s", rc->t.display != NULL ? rc->t.display : "(none)");
}
