/*
 * limiter.h - running the rate-limit algorithms in Redis (the decision
 * they produce is in decision.h, their names in algo.h).
 *
 * The algorithms are Lua (src/lua/, embedded at build time) so that every
 * rule of a request is checked, and only if all pass committed, in one
 * EVALSHA: one round trip, atomic, Redis time. Each algorithm has a script
 * of its own and one script holds them all (for rules that mix them).
 * Adding an algorithm is one .lua file and one row of src/algorithms.def
 * (README: "Adding an algorithm").
 */
#ifndef RL_LIMITER_H
#define RL_LIMITER_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "algo.h"
#include "decision.h"
#include "rlconfig.h"
#include "rl.h"

struct redisconn;

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
 * *err when Redis cannot answer (kind RL_E_REDIS, or RL_E_CONFIG for a
 * refused AUTH or a missing right) or answered what the limiter cannot read
 * (RL_E_PROTO); for every kind the caller applies RATELIMIT_FAIL. When no
 * rule applies, answers "allowed" without Redis.
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

#endif
