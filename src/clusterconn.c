/*
 * clusterconn.c - the worker's connections to a Redis Cluster
 * (clusterconn.h).
 *
 * The map: read with CLUSTER SLOTS from a node we know (the masters of the
 * last map first, then the URL's seed nodes), at first use, after a MOVED
 * and after a node failed; the whole refresh within one timeout after its
 * first attempt. The hot path is cluster_key_slot() (done by the caller)
 * and one array read.
 *
 * Connections: one per node used (masters; a node named by ASK too), made
 * with the URL's credentials and the script loaded, kept in a small table
 * by HOST:PORT, dropped after any failure on them.
 */
#include "clusterconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "log.h"
#include "redisnode.h"
#include "util.h"

struct cl_conn {
    char host[CLUSTER_HOST_MAX + 1];
    int port;
    redisContext *ctx; /* NULL: the entry is free */
};

struct clusterconn {
    struct cluster_map map, next; /* next: where a refresh is built */
    int have_map;
    struct cl_conn conn[CLUSTER_NODES_MAX];
};

struct clusterconn *clusterconn_new(void)
{
    return xcalloc(1, sizeof(struct clusterconn));
}

void clusterconn_reset(struct clusterconn *cc)
{
    size_t i;

    if (cc == NULL)
        return;
    for (i = 0; i < CLUSTER_NODES_MAX; i++) {
        if (cc->conn[i].ctx != NULL)
            redisFree(cc->conn[i].ctx);
        cc->conn[i].ctx = NULL;
    }
    cluster_map_init(&cc->map);
    cc->have_map = 0;
}

void clusterconn_free(struct clusterconn *cc)
{
    if (cc == NULL)
        return;
    clusterconn_reset(cc);
    free(cc);
}

/* ------------------------------------------------------------ connections */

static struct cl_conn *conn_find(struct clusterconn *cc, const char *host, int port)
{
    size_t i;

    for (i = 0; i < CLUSTER_NODES_MAX; i++) {
        if (cc->conn[i].ctx != NULL && cc->conn[i].port == port &&
            strcmp(cc->conn[i].host, host) == 0)
            return &cc->conn[i];
    }
    return NULL;
}

static void conn_drop(struct clusterconn *cc, const char *host, int port)
{
    struct cl_conn *k = conn_find(cc, host, port);

    if (k != NULL) {
        redisFree(k->ctx);
        k->ctx = NULL;
    }
}

/* How many entries of the table are free. */
static size_t conn_unused(const struct clusterconn *cc)
{
    size_t i, n = 0;

    for (i = 0; i < CLUSTER_NODES_MAX; i++)
        n += cc->conn[i].ctx == NULL;
    return n;
}

/* The connection to host:port, made (logged in, script loaded) when there
 * is none. NULL with *err and *conf. */
static redisContext *conn_get(struct clusterconn *cc, const struct rl_redis_target *t,
                              int timeout_ms, const char *host, int port, const char *script,
                              const char *sha, int *conf, struct rl_err *err)
{
    struct redisnode_login login = {t->user, t->password, 0, 0};
    struct cl_conn *k = conn_find(cc, host, port);
    size_t i;

    if (k != NULL)
        return k->ctx;
    if (strlen(host) > CLUSTER_HOST_MAX) {
        rl_err_set(err, RL_E_REDIS, "cluster: node name too long");
        return NULL;
    }
    for (i = 0; i < CLUSTER_NODES_MAX && cc->conn[i].ctx != NULL; i++)
        ;
    if (i == CLUSTER_NODES_MAX) { /* full: give up the first, reopen later */
        i = 0;
        redisFree(cc->conn[0].ctx);
        cc->conn[0].ctx = NULL;
    }
    k = &cc->conn[i];
    k->ctx = redisnode_open(host, port, NULL, &login, timeout_ms, script, sha, conf, err);
    if (k->ctx == NULL) {
        char msg[RL_ERR_MSG_MAX];

        (void)snprintf(msg, sizeof(msg), "%s", err != NULL ? err->msg : "");
        rl_err_set(err, RL_E_REDIS, "cluster node %s:%d: %s", host, port, msg);
        return NULL;
    }
    memcpy(k->host, host, strlen(host) + 1);
    k->port = port;
    return k->ctx;
}

/* ------------------------------------------------------------ the map */

/* CLUSTER SLOTS from host:port into cc->next. RL_OK, or RL_ERR (*err). */
static int slots_from(struct clusterconn *cc, const struct rl_redis_target *t, int timeout_ms,
                      const char *host, int port, const char *script, const char *sha, int *conf,
                      struct rl_err *err)
{
    static const char cmd[] = "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n";
    struct rediswire_part part = {cmd, sizeof(cmd) - 1};
    redisContext *c = conn_get(cc, t, timeout_ms, host, port, script, sha, conf, err);
    redisReply *r;
    int ret;

    if (c == NULL)
        return RL_ERR;
    r = rediswire_roundtrip(c, &part, 1, now_ms() + timeout_ms, "CLUSTER SLOTS", err);
    if (r == NULL) {
        conn_drop(cc, host, port);
        return RL_ERR;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        *conf = rediswire_conf_of(r, RW_CONF_NONE);
        rl_err_set(err, RL_E_REDIS, "cluster node %s:%d: CLUSTER SLOTS: %s%s", host, port, r->str,
                   strstr(r->str, "disabled") != NULL ? " (not a cluster: use redis://)" : "");
        freeReplyObject(r);
        return RL_ERR;
    }
    ret = cluster_map_from_slots(&cc->next, r, host, err);
    freeReplyObject(r);
    return ret;
}

/* Read the map from a node we know: the masters of the current map, then
 * the seed nodes, never avoid_host:avoid_port (a node that just failed: a
 * dead host would take the whole timeout); after the first attempt, only
 * while the timeout lasts. RL_OK with cc->map replaced, or RL_ERR with the
 * last *err. */
static int map_refresh(struct clusterconn *cc, const struct rl_redis_target *t, int timeout_ms,
                       const char *script, const char *sha, const char *avoid_host, int avoid_port,
                       int *conf, struct rl_err *err)
{
    struct cluster_node known[CLUSTER_NODES_MAX] = {{{0}, 0, 0}};
    long long end = now_ms() + timeout_ms;
    int n = 0, i, tried = 0;

    for (i = 0; cc->have_map && i < cc->map.nodes; i++) {
        if (cc->map.node[i].slots > 0)
            known[n++] = cc->map.node[i];
    }
    rl_err_set(err, RL_E_REDIS, "cluster: no node to ask");
    for (i = 0; i < n + t->nnodes; i++) {
        const char *host = i < n ? known[i].host : t->nodes[i - n].host;
        int port = i < n ? known[i].port : t->nodes[i - n].port;

        if (avoid_host != NULL && port == avoid_port && strcmp(host, avoid_host) == 0)
            continue;
        if (tried++ > 0 && now_ms() >= end)
            break;
        if (slots_from(cc, t, timeout_ms, host, port, script, sha, conf, err) == RL_OK) {
            cc->map = cc->next;
            cc->have_map = 1;
            return RL_OK;
        }
        if (*conf != RW_CONF_NONE)
            return RL_ERR;
    }
    return RL_ERR;
}

/* ------------------------------------------------------------ EVALSHA */

/* The redirection in error reply r (from host), or RL_ERR. */
static int redirect_of(const redisReply *r, const char *host, struct cluster_redirect *rd)
{
    return cluster_redirect_parse(r->str, r->len, host, rd);
}

int clusterconn_eval(struct clusterconn *cc, const struct rl_redis_target *t, int timeout_ms,
                     unsigned slot, const char *script, const char *sha,
                     const struct redisconn_cmd *cmd, redisReply **out, int *conf,
                     unsigned *reloads, struct rl_err *err)
{
    char host[CLUSTER_HOST_MAX + 1];
    int port = 0, asking = 0, tries, refreshed = 0;

    if (!cc->have_map && map_refresh(cc, t, timeout_ms, script, sha, NULL, 0, conf, err) != RL_OK)
        return RN_DOWN;
    host[0] = '\0';
    /* The owner, then at most: a retry after MOVED or a dead node, and one
     * after ASK. */
    for (tries = 0; tries < 4; tries++) {
        struct cluster_redirect rd;
        redisContext *c;
        redisReply *r = NULL;
        int outcome;

        if (!asking) {
            const struct cluster_node *owner = cluster_map_lookup(&cc->map, slot);

            if (owner == NULL) {
                /* The map may come from a node that had not joined yet:
                 * read it again, once. */
                if (!refreshed) {
                    refreshed = 1;
                    if (map_refresh(cc, t, timeout_ms, script, sha, NULL, 0, conf, err) == RL_OK)
                        continue;
                }
                cc->have_map = 0; /* read it again at the next request */
                rl_err_set(err, RL_E_REDIS, "cluster: no master serves slot %u (%d of %d covered)",
                           slot, cc->map.covered, CLUSTER_SLOTS);
                return RN_DOWN;
            }
            memcpy(host, owner->host, strlen(owner->host) + 1);
            port = owner->port;
        }
        c = conn_get(cc, t, timeout_ms, host, port, script, sha, conf, err);
        outcome = c == NULL ? RN_DOWN
                            : redisnode_eval(c, asking, timeout_ms, script, sha, cmd, &r, conf,
                                             reloads, err);
        asking = 0;
        if (outcome == RN_OK) {
            *out = r;
            return RN_OK;
        }
        if (outcome == RN_SCRIPT_ERROR)
            return outcome;
        if (outcome == RN_DOWN) {
            /* A dead or failing node: another node may already name its
             * replica as the owner. Once. */
            if (c != NULL)
                conn_drop(cc, host, port);
            if (*conf != RW_CONF_NONE || refreshed)
                return RN_DOWN;
            refreshed = 1;
            if (map_refresh(cc, t, timeout_ms, script, sha, host, port, conf, err) != RL_OK)
                return RN_DOWN;
            continue;
        }
        /* RN_REDIRECT */
        if (redirect_of(r, host, &rd) != RL_OK) {
            rl_err_set(err, RL_E_REDIS, "cluster node %s:%d: EVALSHA: %s", host, port, r->str);
            freeReplyObject(r);
            return RN_DOWN;
        }
        freeReplyObject(r);
        rl_log(RL_LOG_DEBUG, "cluster: slot %u: %s from %s:%d to %s:%d", slot,
               rd.kind == CLUSTER_ASK ? "ASK" : "MOVED", host, port, rd.host, rd.port);
        memcpy(host, rd.host, strlen(rd.host) + 1);
        port = rd.port;
        if (rd.kind == CLUSTER_ASK) {
            asking = 1;
            continue;
        }
        /* MOVED: the slot moved for good; the map is stale. */
        if (refreshed || map_refresh(cc, t, timeout_ms, script, sha, NULL, 0, conf, err) != RL_OK) {
            *conf = RW_CONF_NONE;
            if (cluster_map_assign(&cc->map, rd.slot, rd.host, rd.port, err) != RL_OK)
                return RN_DOWN;
        }
        refreshed = 1;
    }
    rl_err_set(err, RL_E_REDIS, "cluster: slot %u: too many redirections", slot);
    return RN_DOWN;
}

/* clusterconn_eval_many's states of a command before its outcome. */
enum { MANY_SENT = -1, MANY_ALONE = -2 };

/* Every command after the i-th that went out on c gets RN_DOWN: c is
 * gone, and with it their replies (a command sent may still have run). */
static void many_lost(size_t i, size_t n, redisContext *c, redisContext **on, int *outcome)
{
    for (; i < n; i++) {
        if (outcome[i] == MANY_SENT && on[i] == c)
            outcome[i] = RN_DOWN;
    }
}

int clusterconn_eval_many(struct clusterconn *cc, const struct rl_redis_target *t, int timeout_ms,
                          size_t n, const unsigned *slots, const char *const *scripts,
                          const char *const *shas, const struct redisconn_cmd *const *cmds,
                          redisReply **out, int *outcome, int *conf, unsigned *reloads,
                          struct rl_err *err)
{
    redisContext *on[CLUSTERCONN_MANY_MAX];
    struct cluster_node where[CLUSTERCONN_MANY_MAX];
    long long deadline;
    size_t i;

    if (n > CLUSTERCONN_MANY_MAX) {
        rl_err_set(err, RL_E_REDIS, "cluster: %zu commands at once (at most %d)", n,
                   CLUSTERCONN_MANY_MAX);
        return RL_ERR;
    }
    for (i = 0; i < n; i++) {
        out[i] = NULL;
        outcome[i] = MANY_ALONE;
    }
    if (!cc->have_map &&
        map_refresh(cc, t, timeout_ms, scripts[0], shas[0], NULL, 0, conf, err) != RL_OK) {
        for (i = 0; i < n; i++)
            outcome[i] = RN_DOWN;
        return RL_OK;
    }
    /* conn_get() gives up a connection when the table is full: make room
     * first, so that none of ours is given up while its reply is due. */
    if (conn_unused(cc) < n) {
        for (i = 0; i < CLUSTER_NODES_MAX; i++) {
            if (cc->conn[i].ctx != NULL)
                redisFree(cc->conn[i].ctx);
            cc->conn[i].ctx = NULL;
        }
    }
    /* Send them all. */
    deadline = now_ms() + timeout_ms;
    for (i = 0; i < n; i++) {
        const struct cluster_node *owner = cluster_map_lookup(&cc->map, slots[i]);
        struct rediswire_part part = {cmds[i]->buf, cmds[i]->len};

        if (owner == NULL)
            continue; /* alone: it reads the map again */
        where[i] = *owner;
        on[i] =
            conn_get(cc, t, timeout_ms, owner->host, owner->port, scripts[i], shas[i], conf, err);
        if (on[i] == NULL)
            continue; /* alone: it reads the map from another node */
        if (rediswire_send(on[i], &part, 1, deadline, "EVALSHA", err) != RL_OK) {
            outcome[i] = MANY_SENT;
            many_lost(0, i + 1, on[i], on, outcome);
            conn_drop(cc, where[i].host, where[i].port);
            continue;
        }
        outcome[i] = MANY_SENT;
    }
    /* Then read them, in the order they went out on each connection. */
    for (i = 0; i < n; i++) {
        redisReply *r;

        if (outcome[i] != MANY_SENT)
            continue;
        r = rediswire_read(on[i], deadline, "EVALSHA", err);
        if (r == NULL) {
            many_lost(i, n, on[i], on, outcome);
            conn_drop(cc, where[i].host, where[i].port);
            continue;
        }
        if (rediswire_error_is(r, "NOSCRIPT") || rediswire_error_is(r, "MOVED") ||
            rediswire_error_is(r, "ASK") ||
            (rediswire_error_is_server_state(r) &&
             rediswire_conf_of(r, RW_CONF_NONE) == RW_CONF_NONE)) {
            /* Not run: alone, it follows the redirection, loads the
             * script, or reads the map again after LOADING, CLUSTERDOWN... */
            freeReplyObject(r);
            outcome[i] = MANY_ALONE;
            continue;
        }
        outcome[i] = redisnode_outcome_of(r, &out[i], conf, err);
        if (outcome[i] == RN_REDIRECT) { /* not reached: MOVED, ASK above */
            freeReplyObject(out[i]);
            out[i] = NULL;
            outcome[i] = RN_DOWN;
        }
    }
    /* The ones that need the map, a connection or a redirection. */
    for (i = 0; i < n; i++) {
        if (outcome[i] == MANY_ALONE)
            outcome[i] = clusterconn_eval(cc, t, timeout_ms, slots[i], scripts[i], shas[i], cmds[i],
                                          &out[i], conf, reloads, err);
    }
    return RL_OK;
}

int clusterconn_check(struct clusterconn *cc, const struct rl_redis_target *t, int timeout_ms,
                      const char *script, const char *sha, int *conf, struct rl_err *err)
{
    clusterconn_reset(cc);
    if (map_refresh(cc, t, timeout_ms, script, sha, NULL, 0, conf, err) != RL_OK)
        return RL_ERR;
    if (!cluster_map_complete(&cc->map)) {
        rl_err_set(err, RL_E_REDIS,
                   "cluster: only %d of %d slots have a master (CLUSTER SLOTS); the cluster is "
                   "not whole",
                   cc->map.covered, CLUSTER_SLOTS);
        return RL_ERR;
    }
    return RL_OK;
}

void clusterconn_where(const struct clusterconn *cc, char *out, size_t outsz)
{
    if (cc->map.covered == CLUSTER_SLOTS)
        (void)snprintf(out, outsz, "cluster: %d masters, all %d slots covered",
                       cluster_map_masters(&cc->map), CLUSTER_SLOTS);
    else
        (void)snprintf(out, outsz, "cluster: %d masters, %d of %d slots covered",
                       cluster_map_masters(&cc->map), cc->map.covered, CLUSTER_SLOTS);
}
