/*
 * redisnode.h - a session with one Redis server, on one connection: open
 * it (connect, AUTH, SELECT, optionally ROLE, SCRIPT LOAD) and run an
 * EVALSHA on it (re-loading the script once on NOSCRIPT, optionally after
 * ASKING). No policy: which server, when to retry, the breaker and the
 * logs are the caller's (redisconn.c for one server or a Sentinel master,
 * clusterconn.c for the nodes of a Cluster).
 *
 * Failures say in *conf (enum rediswire_conf) whether they were a
 * configuration error (a refused AUTH or SELECT, an ACL refusal) rather
 * than an outage.
 */
#ifndef RL_REDISNODE_H
#define RL_REDISNODE_H

#include <hiredis/hiredis.h>

#include "rediswire.h"
#include "rl.h"

/* How to log in on a server: borrowed strings. */
struct redisnode_login {
    const char *user;     /* ACL user, or NULL for the default user */
    const char *password; /* or NULL / "": no AUTH unless there is a user */
    int db;               /* SELECT when != 0 */
    int check_role;       /* 1: ROLE must say "master" */
};

/*
 * Connect to path (a unix socket) or host:port within timeout_ms, log in,
 * and load script (whose SHA must be sha). A ready context (caller owns:
 * redisFree), or NULL with *err and *conf.
 */
redisContext *redisnode_open(const char *host, int port, const char *path,
                             const struct redisnode_login *login, int timeout_ms,
                             const char *script, const char *sha, int *conf, struct rl_err *err);

/* What an EVALSHA came to. */
enum redisnode_outcome {
    RN_OK,           /* *out is the script's reply */
    RN_SCRIPT_ERROR, /* the script failed for this request alone */
    RN_DOWN,         /* the server failed (or refused: *conf); close c */
    RN_REDIRECT      /* *out is a MOVED or ASK error reply (Cluster) */
};

/*
 * What an EVALSHA's reply r (not NOSCRIPT: see redisnode_eval) comes to,
 * for a caller that read it itself: RN_OK and RN_REDIRECT hand r over in
 * *out; otherwise r is freed and *err (and *conf) say why.
 */
int redisnode_outcome_of(redisReply *r, redisReply **out, int *conf, struct rl_err *err);

/*
 * cmd (an EVALSHA of sha; complete) on c, preceded by ASKING when asking,
 * each exchange within timeout_ms; on NOSCRIPT, SCRIPT LOAD script and
 * retry once (adding 1 to *reloads). Returns enum redisnode_outcome; *out
 * (caller owns) for RN_OK and RN_REDIRECT, else *err (and *conf for a
 * configuration error).
 */
int redisnode_eval(redisContext *c, int asking, int timeout_ms, const char *script, const char *sha,
                   const struct redisconn_cmd *cmd, redisReply **out, int *conf, unsigned *reloads,
                   struct rl_err *err);

#endif
