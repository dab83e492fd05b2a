/*
 * redisconn.h - the worker's one Redis connection: lazy connect (TCP or
 * unix socket), AUTH, SELECT, connect/command timeouts, SCRIPT LOAD on a
 * new connection, EVALSHA with re-load on NOSCRIPT, reconnect after any
 * failure, and a circuit breaker that fails fast during an outage.
 *
 * Outages are logged once when they start and once when they end, naming
 * the Redis address (never the password). RATELIMIT_REDIS_TIMEOUT_MS
 * bounds the connect and each whole command (send and full reply). A
 * refused AUTH or SELECT and a NOPERM are configuration errors: their own
 * log line, not "unreachable"; the request still follows RATELIMIT_FAIL.
 */
#ifndef RL_REDISCONN_H
#define RL_REDISCONN_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "rlconfig.h"
#include "rl.h"

struct redisconn;

/*
 * One command in RESP (an array of bulk strings), written I/O-free into a
 * buffer the caller owns (usually on its stack), without hiredis' printf
 * path (redisFormatSdsCommandArgv: sdscatfmt, vsnprintf). Declare the
 * number of arguments first, then add exactly that many. A command that
 * does not fit RL_CMD_MAX bytes, or gets a different number of arguments,
 * is not complete and is never sent. RL_CMD_MAX holds an EVALSHA with
 * RL_MAX_RULES keys of RL_KEY_MAX bytes and their numbers.
 */
#define RL_CMD_MAX 4096

struct redisconn_cmd {
    size_t len;   /* bytes used in buf */
    int left;     /* arguments still to add */
    int overflow; /* 1 once something did not fit */
    char buf[RL_CMD_MAX];
};

/* Start a command of argc arguments ("*argc\r\n"). */
void redisconn_cmd_init(struct redisconn_cmd *cmd, int argc);
/* Add s[0..len) as a bulk string ("$len\r\n" s "\r\n"); s borrowed. */
void redisconn_cmd_str(struct redisconn_cmd *cmd, const char *s, size_t len);
/* Add v in decimal as a bulk string. */
void redisconn_cmd_ll(struct redisconn_cmd *cmd, long long v);
/* 1 when every declared argument was added and everything fit, else 0. */
int redisconn_cmd_complete(const struct redisconn_cmd *cmd);

/* New, unconnected. Caller owns; redisconn_free(). */
struct redisconn *redisconn_new(void);
/* Close and free; NULL is a no-op. */
void redisconn_free(struct redisconn *rc);

/*
 * Send cmd, an EVALSHA of sha (complete: redisconn_cmd_complete; borrowed),
 * and return its reply. Connects first when needed (to cfg->redis; a
 * changed target reconnects) and loads script with SCRIPT LOAD on every new
 * connection; on a NOSCRIPT reply (another script than the connection's
 * first, a Redis restart, SCRIPT FLUSH) loads script and retries once. While the circuit breaker is
 * open (after a failure: 1 s, doubling to 30 s, one probe per period) it fails at once without
 * network I/O. Returns the reply (caller owns: freeReplyObject) or NULL with *err (kind
 * RL_E_REDIS, for configuration errors too: the caller applies RATELIMIT_FAIL). An error
 * reply from the script itself is also NULL.
 */
redisReply *redisconn_eval(struct redisconn *rc, const struct rl_config *cfg, const char *script,
                           const char *sha, const struct redisconn_cmd *cmd, struct rl_err *err);

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

/* Drop the connection (e.g. in a child after fork). */
void redisconn_close(struct redisconn *rc);

#endif
