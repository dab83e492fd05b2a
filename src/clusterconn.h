/*
 * clusterconn.h - the worker's connections to a Redis Cluster: the slot map
 * read from the cluster (CLUSTER SLOTS) at first use, one connection per
 * master used, and an EVALSHA sent to the master that owns its keys' slot,
 * following MOVED (refresh the map, retry once) and ASK (ASKING on the
 * named node, retry there), re-loading the script on NOSCRIPT per node, and
 * after a dead node refreshing the map from another known node.
 *
 * No breaker and no logs of outages here: redisconn.c wraps this as it
 * wraps one server. The slot routing itself is cluster.c's.
 */
#ifndef RL_CLUSTERCONN_H
#define RL_CLUSTERCONN_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "redisurl.h"
#include "rediswire.h"
#include "rl.h"

struct clusterconn;

/* New, with no map and no connection. Caller owns: clusterconn_free(). */
struct clusterconn *clusterconn_new(void);
/* Close every connection and free; NULL is a no-op. */
void clusterconn_free(struct clusterconn *cc);
/* Close every connection and forget the map (e.g. after fork, or another
 * target). */
void clusterconn_reset(struct clusterconn *cc);

/*
 * cmd (an EVALSHA of sha whose keys are all in slot) on the master that
 * owns slot in the cluster t names, each exchange within timeout_ms.
 * Returns enum redisnode_outcome: RN_OK with *out (caller owns), else
 * RN_SCRIPT_ERROR or RN_DOWN with *err (and *conf for a configuration
 * error). Never RN_REDIRECT: redirections are followed here.
 */
int clusterconn_eval(struct clusterconn *cc, const struct rl_redis_target *t, int timeout_ms,
                     unsigned slot, const char *script, const char *sha,
                     const struct redisconn_cmd *cmd, redisReply **out, int *conf,
                     unsigned *reloads, struct rl_err *err);

/* At most this many commands in one clusterconn_eval_many(). */
#define CLUSTERCONN_MANY_MAX 8

/*
 * n (<= CLUSTERCONN_MANY_MAX) EVALSHAs at once: cmds[i] (of shas[i], the
 * SHA-1 of scripts[i], its keys in slots[i]) to the master of slots[i].
 * All are sent, each to its master, before any reply is read, and every
 * reply is read within one timeout_ms; a command answered with a
 * redirection or NOSCRIPT is run again alone (clusterconn_eval), as is
 * one whose master is not known or not reachable. outcome[i]: enum
 * redisnode_outcome (never RN_REDIRECT); out[i] the reply for RN_OK
 * (caller owns), else NULL. *err (and *conf) tell of the last failure.
 * RL_OK, or RL_ERR (nothing done, nothing set but *err) when n is too
 * large.
 */
int clusterconn_eval_many(struct clusterconn *cc, const struct rl_redis_target *t, int timeout_ms,
                          size_t n, const unsigned *slots, const char *const *scripts,
                          const char *const *shas, const struct redisconn_cmd *const *cmds,
                          redisReply **out, int *outcome, int *conf, unsigned *reloads,
                          struct rl_err *err);

/*
 * For --check: read the slot map now. RL_OK when every slot has a master,
 * else RL_ERR with *err ("N of 16384 slots covered", or why no node
 * answered) and *conf.
 */
int clusterconn_check(struct clusterconn *cc, const struct rl_redis_target *t, int timeout_ms,
                      const char *script, const char *sha, int *conf, struct rl_err *err);

/* "cluster: N masters, all 16384 slots covered" (or how many are), into
 * out (cut at outsz). */
void clusterconn_where(const struct clusterconn *cc, char *out, size_t outsz);

#endif
