/*
 * redisconn.h - the worker's Redis connection (one server, the master
 * Sentinel names, or the masters of a Cluster through clusterconn.h):
 * lazy connect (TCP or unix socket), AUTH, SELECT, connect/command timeouts, SCRIPT LOAD on a
 * new connection, EVALSHA with re-load on NOSCRIPT, reconnect after any
 * failure, and a circuit breaker that fails fast during an outage.
 *
 * Outages are logged once when they start and once when they end, naming
 * the Redis address (never the password). RATELIMIT_REDIS_TIMEOUT_MS
 * bounds the connect and each whole command (send and full reply). A
 * refused AUTH or SELECT and a NOPERM are configuration errors: their own
 * log line, not "unreachable"; the request still follows RATELIMIT_FAIL.
 *
 * The commands are built with rediswire.h's struct redisconn_cmd; the
 * socket I/O under a deadline is rediswire's too.
 */
#ifndef RL_REDISCONN_H
#define RL_REDISCONN_H

#include <hiredis/hiredis.h>

#include "rediswire.h"
#include "rlconfig.h"
#include "rl.h"

struct metrics;

struct redisconn;

/* New, unconnected. Caller owns; redisconn_free(). */
struct redisconn *redisconn_new(void);
/* Close and free; NULL is a no-op. */
void redisconn_free(struct redisconn *rc);

/* The server's clock minus this host's in ms, as the limiter learnt it
 * (0 at first and for NULL); setting it on NULL is a no-op. */
long long redisconn_clock_offset_ms(const struct redisconn *rc);
void redisconn_set_clock_offset_ms(struct redisconn *rc, long long ms);

/* Count into m (borrowed; NULL: not at all): failures by kind, NOSCRIPT
 * reloads, the breaker's changes and each EVALSHA's round trip. */
void redisconn_set_metrics(struct redisconn *rc, struct metrics *m);

/*
 * Send cmd, an EVALSHA of sha (complete: redisconn_cmd_complete; borrowed),
 * and return its reply. Connects first when needed (to cfg->redis; a
 * changed target reconnects) and loads script with SCRIPT LOAD on every new
 * connection; on a NOSCRIPT reply (another script than the connection's
 * first, a Redis restart, SCRIPT FLUSH) loads script and retries once.
 * While the circuit breaker is open (after a failure: 1 s, doubling to 30
 * s, one probe per period) it fails at once without network I/O. Returns
 * the reply (caller owns: freeReplyObject) or NULL with *err (kind
 * RL_E_REDIS, for configuration errors too: the caller applies
 * RATELIMIT_FAIL). An error reply from the script itself is also NULL.
 * key: one of the command's keys (all in one slot): on a Cluster it
 * chooses the master (clusterconn.h); elsewhere unused.
 */
redisReply *redisconn_eval(struct redisconn *rc, const struct rl_config *cfg, const char *script,
                           const char *sha, const struct redisconn_cmd *cmd, const char *key,
                           struct rl_err *err);

/* At most this many commands in one redisconn_eval_many(). */
#define REDISCONN_MANY_MAX 8

/*
 * On a Redis Cluster only: n (<= REDISCONN_MANY_MAX) EVALSHAs, cmds[i] of
 * shas[i] (scripts[i]) with its keys in the slot of keys[i], each sent to
 * its slot's master, all before any reply is read (one round trip for
 * all, not one after another). out[i]: the reply (caller owns), or NULL
 * when that one failed. RL_OK when every command got a reply; RL_ERR
 * with *err when any failed (a script error fails its request; a failed
 * server also counts for the breaker, as in redisconn_eval; while the
 * breaker is open nothing is sent). With REDISCONN_NO_BREAKER the
 * breaker neither stops nor counts these commands (a give-back after a
 * failure must still be tried, and its failure is no outage of checks).
 */
#define REDISCONN_NO_BREAKER 1
int redisconn_eval_many(struct redisconn *rc, const struct rl_config *cfg, size_t n,
                        const char *const *scripts, const char *const *shas,
                        const struct redisconn_cmd *const *cmds, const char *const *keys, int flags,
                        redisReply **out, struct rl_err *err);

/* A WARN line "redis URL: what: err", at most one a minute, shared with the
 * lines about script errors (for failures that would repeat per request). */
void redisconn_warn_rarely(struct redisconn *rc, const char *what, const struct rl_err *err);

/*
 * For --check: connect now (ignoring the breaker), authenticate, select,
 * load script, and run it once with a key under cfg->prefix and no
 * arguments (the script refuses them before touching a key): that proves
 * the EVALSHA right and the key pattern of an ACL user. RL_OK, or RL_ERR
 * with *err: kind RL_E_CONFIG and "ADDR: configuration error, WHAT: ..."
 * for a refused AUTH, SELECT or NOPERM, else RL_E_REDIS.
 */
int redisconn_check(struct redisconn *rc, const struct rl_config *cfg, const char *script,
                    struct rl_err *err);

/*
 * What the last connect found, for --check: "server ADDR", or "sentinel:
 * master 'NAME' at HOST:PORT (asked N sentinels from URL)". Into out (cut
 * at outsz).
 */
void redisconn_where(const struct redisconn *rc, char *out, size_t outsz);

/* Drop the connection (e.g. in a child after fork). */
void redisconn_close(struct redisconn *rc);

#endif
