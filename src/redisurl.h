/*
 * redisurl.h - where Redis is: RATELIMIT_REDIS_URL parsed into a target,
 * its display for logs and a mask for error messages (never a password).
 *
 * Schemes: redis://[[USER]:PASSWORD@]host[:port][/db] (user and password
 * percent-decoded, RFC 3986 2.1), unix:///path/redis.sock[?db=N] and
 * redis+sentinel://[[USER]:PASSWORD@]host[:port][,host[:port]...]/MASTER[/db]
 * (the sentinels, default port 26379; the credentials are the master's)
 * and redis+cluster://[[USER]:PASSWORD@]host[:port][,host[:port]...] (seed
 * nodes of a Cluster, default port 6379). Each is one row of the scheme
 * table in redisurl.c with its parser and the mode it gives.
 */
#ifndef RL_REDISURL_H
#define RL_REDISURL_H

#include <stddef.h>

/* How the target is reached. */
enum rl_redis_mode {
    RL_REDIS_SERVER = 0, /* one server: host:port, or a unix socket path */
    RL_REDIS_SENTINEL,   /* the master that sentinels name */
    RL_REDIS_CLUSTER     /* the masters of a Redis Cluster, found from seed nodes */
};

#define REDISURL_MAX 1024     /* longest URL accepted */
#define REDISURL_PW_MAX 1024  /* longest password, in the URL or not */
#define REDISURL_NODES_MAX 16 /* most sentinels or seed nodes in one URL */
#define REDISURL_NAME_MAX 128 /* longest master name */

/* A host and port: a sentinel or a seed node. */
struct rl_redis_node {
    char *host; /* owned */
    int port;
};

struct rl_redis_target {
    int mode;   /* enum rl_redis_mode */
    char *host; /* TCP host, or NULL for a unix socket; owned */
    int port;
    char *path;     /* unix socket path, or NULL; owned */
    int db;         /* SELECT after connecting when != 0 */
    char *user;     /* ACL user (redis://USER:PASSWORD@...): AUTH user password; NULL: default user;
                       owned */
    char *password; /* AUTH; RATELIMIT_REDIS_PASSWORD wins over the URL; owned */
    char *display;  /* "redis://[user@]host:port/db" or "unix:///p?db=N", never the password */
    char *sentinel_password; /* RATELIMIT_SENTINEL_PASSWORD, or NULL; owned */
    /* RL_REDIS_SENTINEL: the sentinels in the URL's order and the master's
     * name; RL_REDIS_CLUSTER: the seed nodes (host, port and path are
     * unset: the sentinels or the cluster tell them). */
    struct rl_redis_node nodes[REDISURL_NODES_MAX];
    int nnodes;
    char *master; /* owned */
};

/*
 * Parse url into t, whose URL fields (mode, host, port, path, db, user,
 * password, display) must be unset (zero); sentinel_password is left
 * alone. RL_OK with t filled and t->display set; RL_ERR with *why (static
 * text saying what was expected) and t unchanged. The scheme's case does
 * not matter.
 */
int redisurl_parse(const char *url, struct rl_redis_target *t, const char **why);

/*
 * url as an error message may show it, into out (cut at outsz): whatever
 * lies between the scheme's "//" and the last '@' (the userinfo, where the
 * password is) becomes "***"; without an '@', a ':' after the "//" may
 * still be a password that lost its '@' (redis://:secret), and a value
 * without a scheme is no URL at all (perhaps a pasted password): then
 * nothing past the scheme is shown.
 */
void redisurl_mask(const char *url, char *out, size_t outsz);

/*
 * url as --check --verbose lists it, into out (cut at outsz): a URL that
 * redisurl_parse() takes, with only the password of its userinfo replaced
 * by "***" ("redis://user:***@host", "redis://:***@host"; the user name
 * is shown as written); a URL without userinfo as it is. A URL that does
 * not parse is shown as redisurl_mask() shows it: where its password lies
 * is then anyone's guess.
 */
void redisurl_mask_password(const char *url, char *out, size_t outsz);

/* 1 when a and b name the same server(s) with the same credentials. */
int redisurl_target_eq(const struct rl_redis_target *a, const struct rl_redis_target *b);

/* A deep copy of src into dst (unset or freed). */
void redisurl_target_copy(struct rl_redis_target *dst, const struct rl_redis_target *src);

/* Free what t owns and zero it; NULL is a no-op. */
void redisurl_target_free(struct rl_redis_target *t);

#endif
