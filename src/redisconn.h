/*
 * redisconn.h - the worker's one Redis connection: lazy connect (TCP or
 * unix socket), AUTH, SELECT, connect/command timeouts, SCRIPT LOAD on a
 * new connection, EVALSHA with re-load on NOSCRIPT, reconnect after any
 * failure, and a circuit breaker that fails fast during an outage.
 *
 * Outages are logged once when they start and once when they end, naming
 * the Redis address (never the password).
 */
#ifndef RL_REDISCONN_H
#define RL_REDISCONN_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "rlconfig.h"
#include "rl.h"

struct redisconn;

/* New, unconnected. Caller owns; redisconn_free(). */
struct redisconn *redisconn_new(void);
/* Close and free; NULL is a no-op. */
void redisconn_free(struct redisconn *rc);

/*
 * EVALSHA sha with argv[0..argc) following it (numkeys, keys..., args...).
 * Connects first when needed (to cfg->redis; a changed target reconnects)
 * and loads script with SCRIPT LOAD on every new connection; on a NOSCRIPT
 * reply loads it again and retries once. While the circuit breaker is open
 * (after a failure: 1 s, doubling to 30 s, one probe per period) it fails at
 * once without network I/O.
 * Returns the reply (caller owns: freeReplyObject) or NULL with *err
 * (kind RL_E_REDIS). An error reply from the script itself is also NULL.
 */
redisReply *redisconn_eval(struct redisconn *rc, const struct rl_config *cfg, const char *script,
                           const char *sha, int argc, const char **argv, const size_t *argvlen,
                           struct rl_err *err);

/*
 * For --check: connect now (ignoring the breaker), authenticate, select,
 * load script. RL_OK, or RL_ERR with *err.
 */
int redisconn_check(struct redisconn *rc, const struct rl_config *cfg, const char *script,
                    struct rl_err *err);

/* Drop the connection (e.g. in a child after fork). */
void redisconn_close(struct redisconn *rc);

#endif
