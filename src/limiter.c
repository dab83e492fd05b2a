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

#include "cluster.h"
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
 * numbers each (and "refund" when refund: src/lua/main.lua), in RESP into
 * *cmd. RL_ERR when it does not fit (a key longer than RL_KEY_MAX). */
static int cmd_build(struct redisconn_cmd *cmd, const char *sha, const struct rl_config *cfg,
                     const char *const *keys, size_t napplied, int refund)
{
    size_t i;

    redisconn_cmd_init(cmd, (int)(3 + napplied * (1 + ARGS_PER_RULE)) + (refund ? 1 : 0));
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
    if (refund)
        redisconn_cmd_str(cmd, "refund", 6);
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

/* ------------------------------------------------------------ split checks */

/*
 * On a Redis Cluster, rules keyed by different identities have keys in
 * different slots, most likely on different masters: one script cannot
 * check them all. Each slot's rules get their own EVALSHA, all sent before
 * any reply is read (redisconn_eval_many); each is atomic for its rules.
 * When any of them denies (or fails), the others' charges are given back
 * (the script's "refund" form), so that a denied request is still charged
 * to no rule. Between the charge and the give-back (one more round trip)
 * a concurrent request of the same client may see the count one higher.
 */

static size_t pick_worst(const struct rl_decision *d);

_Static_assert(RL_MAX_RULES <= REDISCONN_MANY_MAX, "every rule may be in a slot of its own");

/* The applied rules whose keys are in one slot (keys[] NULL for others). */
struct slot_group {
    unsigned slot;
    const char *keys[RL_MAX_RULES];
    unsigned char applied[RL_MAX_RULES];
    size_t napplied;
    const char *script, *sha;
    const char *route; /* a key of the group: where it goes */
};

/* The applied keys grouped by slot into g; the number of groups. */
static size_t group_by_slot(const struct rl_config *cfg, const char *const *keys,
                            struct slot_group *g)
{
    size_t i, j, n = 0;

    for (i = 0; i < cfg->nrules && i < RL_MAX_RULES; i++) {
        unsigned slot;

        if (keys[i] == NULL)
            continue;
        slot = cluster_key_slot(keys[i], strlen(keys[i]));
        for (j = 0; j < n && g[j].slot != slot; j++)
            ;
        if (j == n) {
            memset(&g[n], 0, sizeof(g[n]));
            g[n].slot = slot;
            g[n].route = keys[i];
            n++;
        }
        g[j].keys[i] = keys[i];
        g[j].applied[i] = 1;
        g[j].napplied++;
    }
    return n;
}

/* The EVALSHA (or its refund form) of the groups g[i] with pick[i] set,
 * all at once; replies[i] for those (NULL when it failed). RL_OK when
 * every one was answered. */
static int send_groups(struct redisconn *rc, const struct rl_config *cfg, struct slot_group *g,
                       size_t ng, const unsigned char *pick, int refund, struct redisconn_cmd *cmds,
                       redisReply **replies, struct rl_err *err)
{
    const char *scripts[RL_MAX_RULES], *shas[RL_MAX_RULES], *routes[RL_MAX_RULES];
    const struct redisconn_cmd *cp[RL_MAX_RULES];
    redisReply *got[RL_MAX_RULES];
    size_t i, n = 0;
    int ret;

    for (i = 0; i < ng; i++)
        replies[i] = NULL;
    for (i = 0; i < ng; i++) {
        if (!pick[i])
            continue;
        g[i].script = limiter_pick_script(cfg, g[i].keys, &g[i].sha);
        if (cmd_build(&cmds[i], g[i].sha, cfg, g[i].keys, g[i].napplied, refund) != RL_OK) {
            rl_err_set(err, RL_E_CONFIG, "the EVALSHA request exceeds %d bytes", RL_CMD_MAX);
            return RL_ERR;
        }
        scripts[n] = g[i].script;
        shas[n] = g[i].sha;
        routes[n] = g[i].route;
        cp[n++] = &cmds[i];
    }
    if (n == 0)
        return RL_OK;
    /* A give-back is tried even while the breaker is open (a check just
     * failed), and its failure is no outage of the checks. */
    ret = redisconn_eval_many(rc, cfg, n, scripts, shas, cp, routes,
                              refund ? REDISCONN_NO_BREAKER : 0, got, err);
    for (i = 0, n = 0; i < ng; i++) {
        if (pick[i])
            replies[i] = got[n++];
    }
    return ret;
}

/* Give back what the groups with charged[i] set charged; a failure is
 * logged (the rules keep the charge until their windows pass). */
static void give_back(struct redisconn *rc, const struct rl_config *cfg, struct slot_group *g,
                      size_t ng, const unsigned char *charged, struct redisconn_cmd *cmds)
{
    redisReply *replies[RL_MAX_RULES];
    struct rl_err err;
    size_t i;
    int ret;

    rl_err_clear(&err);
    ret = send_groups(rc, cfg, g, ng, charged, 1, cmds, replies, &err);
    for (i = 0; i < ng; i++) {
        if (replies[i] != NULL)
            freeReplyObject(replies[i]);
    }
    if (ret != RL_OK)
        redisconn_warn_rarely(rc,
                              "a request's charge could not be given back to the rules of "
                              "other slots (they keep it until their windows pass)",
                              &err);
}

/* limiter_check() for keys in ng > 1 slots (see above). */
static int check_split(struct redisconn *rc, const struct rl_config *cfg, struct slot_group *g,
                       size_t ng, struct rl_decision *out, struct rl_err *err)
{
    struct redisconn_cmd cmds[RL_MAX_RULES];
    redisReply *replies[RL_MAX_RULES];
    unsigned char all[RL_MAX_RULES], charged[RL_MAX_RULES];
    size_t i, j;
    int ok;

    memset(all, 1, sizeof(all));
    memset(charged, 0, sizeof(charged));
    ok = send_groups(rc, cfg, g, ng, all, 0, cmds, replies, err) == RL_OK;
    for (i = 0; i < ng; i++) {
        struct rl_decision d;

        if (replies[i] == NULL)
            continue;
        if (limiter_decode(replies[i], cfg, g[i].applied, &d, err) != RL_OK) {
            ok = 0;
        } else {
            charged[i] = (unsigned char)d.allowed;
            out->allowed = out->allowed && d.allowed;
            for (j = 0; j < cfg->nrules; j++) {
                if (g[i].applied[j])
                    out->r[j] = d.r[j];
            }
        }
        freeReplyObject(replies[i]);
    }
    if (!ok || !out->allowed)
        give_back(rc, cfg, g, ng, charged, cmds);
    /* A rule that denied is an answer even if another slot failed. */
    if (!ok && !out->allowed)
        ok = 1;
    if (!ok) {
        /* RATELIMIT_FAIL decides, as for one script. */
        if (err != NULL)
            err->kind = err->kind == RL_E_CONFIG ? RL_E_CONFIG : RL_E_REDIS;
        decision_init(out, cfg);
        return RL_ERR;
    }
    out->worst = pick_worst(out);
    return RL_OK;
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
    /* One applied rule is one slot: no grouping (no second CRC16). */
    if (cfg->redis.mode == RL_REDIS_CLUSTER && napplied > 1) {
        struct slot_group g[RL_MAX_RULES];
        size_t ng = group_by_slot(cfg, keys, g);

        if (ng > 1)
            return check_split(rc, cfg, g, ng, out, err);
    }
    if (cmd_build(&cmd, sha, cfg, keys, napplied, 0) != RL_OK) {
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
