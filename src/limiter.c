/*
 * limiter.c - the EVALSHA call and the strict decoding of the script's
 * reply into a struct rl_decision.
 *
 * Every algorithm is a row of src/algorithms.def and a file of src/lua/
 * that registers itself in the scripts the build embeds (see
 * src/lua/prelude.lua for KEYS, ARGV and the reply, src/lua/embed.sh for
 * how they are made): limiter_lua with all of them, and
 * limiter_lua_by_id[id] with one algorithm in one layout (RATELIMIT_STORE).
 * A request whose rules share one id runs that script, the cheapest for
 * Redis (it re-creates every function of a script per call); mixed rules
 * run the full one. The hot path allocates nothing and skips
 * hiredis' printf formatting: the EVALSHA request is written in RESP
 * straight into a buffer on the stack (struct redisconn_cmd).
 * limiter_decode() does no I/O so that tests feed it canned RESP replies.
 */
#include "limiter.h"

#include <string.h>

#include "log.h"
#include "lua_scripts.h"
#include "redisconn.h"
#include "util.h"

/* The id a script dispatches on (its ALGO[id] table, sent in ARGV) for an
 * algorithm in a layout (enum rl_store): the algorithm's number for keys,
 * plus RL_ALGO_COUNT for buckets; limiter_lua_by_id is indexed by it. */
#define SCRIPT_ID(algo, store) ((algo) + RL_ALGO_COUNT * (store))

#define SCRIPT_ROWS (sizeof(limiter_lua_by_id) / sizeof(limiter_lua_by_id[0]))
_Static_assert(SCRIPT_ROWS == RL_ALGO_COUNT * RL_STORE_COUNT,
               "one script per algorithm and layout (src/lua/embed.sh)");
/* The script index of the all-algorithm script, after the rows'. */
#define SCRIPT_ALL SCRIPT_ROWS

/* Values per rule in ARGV and in the reply (after allowed_all). */
#define ARGS_PER_RULE 4
#define REPLY_PER_RULE 4

/* Script i (a row's, or SCRIPT_ALL) and its SHA-1, computed once. */
static const char *script_at(size_t i, const char **sha)
{
    static char shas[SCRIPT_ROWS + 1][RL_SHA1_HEX_LEN + 1];
    const char *lua = i < SCRIPT_ROWS ? limiter_lua_by_id[i] : limiter_lua;

    /* Workers are single-threaded: computing it on first use is enough.
     * On failure (libcrypto OOM) the empty name makes SCRIPT LOAD's check
     * fail, so Redis errors are reported rather than a wrong script run. */
    if (shas[i][0] == '\0' && sha1_hex(lua, strlen(lua), shas[i]) != RL_OK) {
        rl_log(RL_LOG_ERROR, "cannot compute the SHA-1 of the limiter script");
        shas[i][0] = '\0';
    }
    *sha = shas[i];
    return lua;
}

const char *limiter_script(void)
{
    return limiter_lua;
}

const char *limiter_script_sha(void)
{
    const char *sha;

    (void)script_at(SCRIPT_ALL, &sha);
    return sha;
}

const char *limiter_pick_script(const struct rl_config *cfg, const char *const *keys,
                                const char **sha)
{
    size_t i, pick = SCRIPT_ALL;
    int id = -1;

    for (i = 0; i < cfg->nrules && i < RL_MAX_RULES; i++) {
        if (keys[i] == NULL)
            continue;
        if (id != -1 && SCRIPT_ID(cfg->rules[i].algo, cfg->store) != id) {
            id = -1;
            break;
        }
        id = SCRIPT_ID(cfg->rules[i].algo, cfg->store);
    }
    /* An id without a script of its own (out of range, or a layout the
     * algorithm lacks) takes the full script, whose dispatcher refuses it
     * with an error reply. */
    if (id >= 0 && (size_t)id < SCRIPT_ROWS && limiter_lua_by_id[id] != NULL)
        pick = (size_t)id;
    return script_at(pick, sha);
}

/* ------------------------------------------------------------ the call */

/* EVALSHA sha numkeys, the keys of the applied rules, then their 4
 * numbers each, in RESP into *cmd. RL_ERR when it does not fit (a key
 * longer than RL_KEY_MAX). */
static int cmd_build(struct redisconn_cmd *cmd, const char *sha, const struct rl_config *cfg,
                     const char *const *keys, size_t napplied)
{
    size_t i;

    redisconn_cmd_init(cmd, (int)(3 + napplied * (1 + ARGS_PER_RULE)));
    redisconn_cmd_str(cmd, "EVALSHA", 7);
    redisconn_cmd_str(cmd, sha, strlen(sha));
    redisconn_cmd_ll(cmd, (long long)napplied);
    for (i = 0; i < cfg->nrules; i++) {
        if (keys[i] != NULL)
            redisconn_cmd_str(cmd, keys[i], strlen(keys[i]));
    }
    for (i = 0; i < cfg->nrules; i++) {
        const struct rl_rule *r = &cfg->rules[i];

        if (keys[i] == NULL)
            continue;
        redisconn_cmd_ll(cmd, SCRIPT_ID(r->algo, cfg->store));
        redisconn_cmd_ll(cmd, r->limit);
        redisconn_cmd_ll(cmd, r->window_ms);
        redisconn_cmd_ll(cmd, r->burst > 0 ? r->burst : r->limit);
    }
    return redisconn_cmd_complete(cmd) ? RL_OK : RL_ERR;
}

/* A decision for rules that were not sent: allowed, quota whole. */
static void decision_init(struct rl_decision *out, const struct rl_config *cfg)
{
    size_t i;

    memset(out, 0, sizeof(*out));
    out->allowed = 1;
    out->nrules = cfg->nrules;
    for (i = 0; i < cfg->nrules && i < RL_MAX_RULES; i++) {
        out->r[i].allowed = 1;
        out->r[i].remaining = cfg->rules[i].limit;
    }
}

int limiter_check(struct redisconn *rc, const struct rl_config *cfg, const char *const *keys,
                  struct rl_decision *out, struct rl_err *err)
{
    struct redisconn_cmd cmd;
    unsigned char applied[RL_MAX_RULES];
    size_t i, napplied = 0;
    const char *script, *sha;
    redisReply *reply;
    int ret;

    if (cfg->nrules > RL_MAX_RULES) {
        rl_err_set(err, RL_E_CONFIG, "%zu rules: at most %d", cfg->nrules, RL_MAX_RULES);
        return RL_ERR;
    }
    decision_init(out, cfg);
    for (i = 0; i < cfg->nrules; i++) {
        applied[i] = keys[i] != NULL;
        napplied += applied[i];
    }
    if (napplied == 0)
        return RL_OK;
    script = limiter_pick_script(cfg, keys, &sha);
    if (cmd_build(&cmd, sha, cfg, keys, napplied) != RL_OK) {
        rl_err_set(err, RL_E_CONFIG, "the EVALSHA request exceeds %d bytes", RL_CMD_MAX);
        return RL_ERR;
    }
    for (i = 0; keys[i] == NULL; i++)
        ; /* the first applied key routes the command on a Cluster */
    reply = redisconn_eval(rc, cfg, script, sha, &cmd, keys[i], err);
    if (reply == NULL)
        return RL_ERR;
    ret = limiter_decode(reply, cfg, applied, out, err);
    freeReplyObject(reply);
    /* A reply we cannot trust is Redis failing us: RATELIMIT_FAIL. */
    if (ret != RL_OK && err != NULL)
        err->kind = RL_E_REDIS;
    return ret;
}

/* ------------------------------------------------------------ decoding */

/* The integer at e[i], which limiter_decode checked is one. */
static long long int_at(const redisReply *reply, size_t i)
{
    return reply->element[i]->integer;
}

/* Rule r's four values starting at reply->element[j]; RL_ERR if odd. */
static int decode_rule(const redisReply *reply, size_t j, const struct rl_rule *rule,
                       struct rl_rule_result *r, struct rl_err *err)
{
    long long allowed = int_at(reply, j), remaining = int_at(reply, j + 1);
    long long reset = int_at(reply, j + 2), retry = int_at(reply, j + 3);
    long long cap = rule->burst > rule->limit ? rule->burst : rule->limit;

    if (allowed != 0 && allowed != 1) {
        rl_err_set(err, RL_E_PROTO, "rule %s: allowed is %lld", rule->name, allowed);
        return RL_ERR;
    }
    if (remaining < 0 || remaining > cap || reset < 0 || retry < 0) {
        rl_err_set(err, RL_E_PROTO,
                   "rule %s: value out of range (remaining %lld, reset %lld, "
                   "retry %lld)",
                   rule->name, remaining, reset, retry);
        return RL_ERR;
    }
    /* Allowed: no wait. Denied: nothing left, and a wait of at least 1 ms. */
    if (allowed ? retry != 0 : (remaining != 0 || retry < 1)) {
        rl_err_set(err, RL_E_PROTO,
                   "rule %s: inconsistent reply (allowed %lld, remaining %lld, "
                   "retry %lld)",
                   rule->name, allowed, remaining, retry);
        return RL_ERR;
    }
    r->applied = 1;
    r->allowed = (int)allowed;
    r->remaining = remaining;
    r->reset_ms = reset;
    r->retry_ms = retry;
    return RL_OK;
}

/* Is a more restrictive than b (see struct rl_decision's worst)? */
static int more_restrictive(const struct rl_rule_result *a, const struct rl_rule_result *b)
{
    if (a->allowed != b->allowed)
        return !a->allowed;
    if (!a->allowed && a->retry_ms != b->retry_ms)
        return a->retry_ms > b->retry_ms;
    if (a->allowed && a->remaining != b->remaining)
        return a->remaining < b->remaining;
    return a->reset_ms > b->reset_ms;
}

/* The applied rule the answer describes (the first one on full ties). */
static size_t pick_worst(const struct rl_decision *d)
{
    size_t i, worst = d->nrules;

    for (i = 0; i < d->nrules; i++) {
        if (!d->r[i].applied)
            continue;
        if (worst == d->nrules || more_restrictive(&d->r[i], &d->r[worst]))
            worst = i;
    }
    return worst == d->nrules ? 0 : worst;
}

/* Top-level shape: an array of 1 + 4 * napplied integers. */
static int check_shape(const redisReply *reply, size_t napplied, struct rl_err *err)
{
    size_t i;

    if (reply->type != REDIS_REPLY_ARRAY) {
        rl_err_set(err, RL_E_PROTO, "limiter reply: type %d, expected an array", reply->type);
        return RL_ERR;
    }
    if (reply->elements != 1 + REPLY_PER_RULE * napplied || reply->element == NULL) {
        rl_err_set(err, RL_E_PROTO, "limiter reply: %zu elements, expected %zu", reply->elements,
                   1 + REPLY_PER_RULE * napplied);
        return RL_ERR;
    }
    for (i = 0; i < reply->elements; i++) {
        if (reply->element[i] == NULL || reply->element[i]->type != REDIS_REPLY_INTEGER) {
            rl_err_set(err, RL_E_PROTO, "limiter reply: element %zu is not an integer", i);
            return RL_ERR;
        }
    }
    return RL_OK;
}

/* The rules' results from a reply of the right shape. */
static int decode_rules(const redisReply *reply, const struct rl_config *cfg,
                        const unsigned char *applied, struct rl_decision *out, struct rl_err *err)
{
    size_t i, j = 1;
    int all = 1;

    for (i = 0; i < cfg->nrules; i++) {
        if (applied != NULL && !applied[i])
            continue;
        if (decode_rule(reply, j, &cfg->rules[i], &out->r[i], err) != RL_OK)
            return RL_ERR;
        all = all && out->r[i].allowed;
        j += REPLY_PER_RULE;
    }
    if (int_at(reply, 0) != all) {
        rl_err_set(err, RL_E_PROTO, "limiter reply: allowed_all %lld, expected %d",
                   int_at(reply, 0), all);
        return RL_ERR;
    }
    out->allowed = all;
    return RL_OK;
}

/* applied may be NULL: every rule of cfg was sent. */
int limiter_decode(const redisReply *reply, const struct rl_config *cfg,
                   const unsigned char *applied, struct rl_decision *out, struct rl_err *err)
{
    size_t i, napplied = 0;

    if (reply == NULL || cfg == NULL || out == NULL || cfg->nrules > RL_MAX_RULES) {
        rl_err_set(err, RL_E_PROTO, "limiter reply: nothing to decode");
        return RL_ERR;
    }
    decision_init(out, cfg);
    for (i = 0; i < cfg->nrules; i++)
        napplied += applied == NULL || applied[i];
    if (check_shape(reply, napplied, err) != RL_OK ||
        decode_rules(reply, cfg, applied, out, err) != RL_OK) {
        decision_init(out, cfg);
        return RL_ERR;
    }
    out->worst = pick_worst(out);
    return RL_OK;
}
