/*
 * limiter.h - the rate-limit algorithms and the decision they produce.
 *
 * The algorithms are Lua (src/lua/, embedded at build time) so that every
 * rule of a request is checked, and only if all pass committed, in one
 * EVALSHA: one round trip, atomic, Redis time. Each algorithm has a script
 * of its own and one script holds them all (for rules that mix them).
 * Adding an algorithm is one .lua file, one name in Makefile.am's
 * LUA_ALGOS and one row of the table in limiter.c.
 */
#ifndef RL_LIMITER_H
#define RL_LIMITER_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "rlconfig.h"
#include "rl.h"

struct redisconn;

struct rl_rule_result {
    int applied;         /* 0 when the rule was skipped (no key) */
    int allowed;         /* this rule alone admits the request */
    long long remaining; /* requests left after this one (0 when denied) */
    long long reset_ms;  /* until the quota is whole again (RateLimit t) */
    long long retry_ms;  /* until a request would be admitted; 0 if allowed */
};

struct rl_decision {
    int allowed; /* every applied rule admits (the request was charged) */
    size_t nrules;
    struct rl_rule_result r[RL_MAX_RULES];
    /* The rule the headers and JSON describe: on a denial the violated rule
     * with the longest retry; when allowed the one with the fewest remaining
     * (ties: the longer reset). */
    size_t worst;
};

/* Name <-> enum rl_algo. limiter_algo_parse returns -1 when unknown. */
int limiter_algo_parse(const char *name, size_t len);
const char *limiter_algo_name(int algo);

/* The script with every algorithm and its SHA-1 (computed once): what
 * --check loads. Borrowed, static. */
const char *limiter_script(void);
const char *limiter_script_sha(void);

/*
 * The script a request for keys (NULL for a rule that does not apply) runs:
 * the one-algorithm script when every applied rule uses the same algorithm,
 * else the full one. Sets *sha to its SHA-1. Both borrowed, static.
 */
const char *limiter_pick_script(const struct rl_config *cfg, const char *const *keys,
                                const char **sha);

/*
 * Check the rules of cfg for keys[i] (NULL for a rule that does not apply)
 * in one EVALSHA through rc. Fills *out and returns RL_OK; RL_ERR with
 * *err (kind RL_E_REDIS) when Redis cannot answer, so the caller applies
 * RATELIMIT_FAIL. When no rule applies, answers "allowed" without Redis.
 */
int limiter_check(struct redisconn *rc, const struct rl_config *cfg, const char *const *keys,
                  struct rl_decision *out, struct rl_err *err);

/*
 * Decode the script's reply (see src/lua/main.lua for its shape) for the
 * rules of cfg, applied[i] telling which rules were sent. I/O-free: unit
 * tests feed it replies built by hiredis' reader. RL_OK, or RL_ERR with
 * *err (kind RL_E_PROTO) for any unexpected shape or value.
 */
int limiter_decode(const redisReply *reply, const struct rl_config *cfg,
                   const unsigned char *applied, struct rl_decision *out, struct rl_err *err);

/* Whole seconds, at least 1, for a millisecond delay: Retry-After / ttl. */
long long limiter_ttl_seconds(long long ms);

#endif
