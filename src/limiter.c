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

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "log.h"
#include "lua_scripts.h"
#include "redisconn.h"
#include "util.h"

/* The id a script dispatches on (its ALGO[id] table, sent in ARGV) for an
 * algorithm in a layout (enum rl_store): the algorithm's number for keys,
 * plus RL_ALGO_COUNT for buckets; limiter_lua_by_id is indexed by it. */
#define SCRIPT_ID(algo, store) ((algo) + RL_ALGO_COUNT * (store))
/* The id rule r sends in ARGV: its script id, or for a shadow rule
 * -1 - that id (src/lua/main.lua: it never denies). */
#define ARG_ID(r, store)                                                                           \
    ((r)->shadow ? -1 - SCRIPT_ID((r)->algo, store) : SCRIPT_ID((r)->algo, store))

#define SCRIPT_ROWS (sizeof(limiter_lua_by_id) / sizeof(limiter_lua_by_id[0]))
_Static_assert(SCRIPT_ROWS == RL_ALGO_COUNT * RL_STORE_COUNT,
               "one script per algorithm and layout (src/lua/embed.sh)");
/* The script index of the all-algorithm script, after the rows'. */
#define SCRIPT_ALL SCRIPT_ROWS

/* Values per rule in ARGV (one more in the buckets layout: the field) and
 * in the reply (after allowed_all). */
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

/* ------------------------------------------------------------ declared keys */

/*
 * The KEYS a call declares for each applied rule. The keys layout: the
 * rule's key, PREFIX NAME ":{" H "}". The buckets layout
 * (src/lua/buckets.lua): the hashes PREFIX NAME ":{" H[0..3) "}:" N of the
 * epochs N - 1, N and N + 1, N the epoch of this host's clock corrected by
 * the server's (redisconn_clock_offset_ms), and in ARGV the field, the
 * rest of H. A script whose server is in another epoch answers with its
 * time and nothing written; the call is made again with its epochs.
 */
#define BUCKET_HASHES 3
#define BUCKET_TAG 3    /* hex digits of H in a hash's name (4096 buckets) */
#define BUCKET_FIELD 61 /* the rest of H: the field */
#define KEY_H 64        /* hex digits of H */

struct rule_keys {
    size_t nk;                    /* KEYS of the rule: 1 or BUCKET_HASHES */
    const char *k[BUCKET_HASHES]; /* into the caller's key, or buf */
    size_t klen[BUCKET_HASHES];
    const char *field;                        /* the buckets field, else NULL */
    char buf[BUCKET_HASHES][RL_KEY_MAX + 24]; /* room for ":" N */
};

struct call_keys {
    struct rule_keys r[RL_MAX_RULES];
};

/* This host's clock, ms since the epoch. */
static long long wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The hashes and field of rule r for key (buckets layout) at now_ms: of
 * the epochs N - 1, N and N + 1, N that of now_ms - E/2, so that the
 * server's epoch and the one before it are declared while its clock is
 * within half an epoch of now_ms either way. */
static int bucket_keys(const struct rl_rule *r, const char *key, long long now_ms,
                       struct rule_keys *rk, struct rl_err *err)
{
    size_t len = strlen(key), base;
    long long burst = r->burst > 0 ? r->burst : r->limit;
    long long e = algo_bucket_epoch_ms(r->algo, r->limit, r->window_ms, burst);
    long long t = now_ms - e / 2;
    long long n = t >= 0 ? t / e : -((-t + e - 1) / e);
    size_t i;

    if (len < KEY_H + 4 || memcmp(key + len - KEY_H - 3, ":{", 2) != 0 || key[len - 1] != '}') {
        rl_err_set(err, RL_E_CONFIG, "rule %s: not a key of the buckets layout", r->name);
        return RL_ERR;
    }
    base = len - KEY_H - 1; /* through "{" */
    rk->nk = BUCKET_HASHES;
    rk->field = key + base + BUCKET_TAG;
    for (i = 0; i < BUCKET_HASHES; i++) {
        int m = snprintf(rk->buf[i], sizeof(rk->buf[i]), "%.*s}:%lld", (int)(base + BUCKET_TAG),
                         key, n - 1 + (long long)i);

        if (m < 0 || (size_t)m >= sizeof(rk->buf[i])) {
            rl_err_set(err, RL_E_CONFIG, "rule %s: the bucket's name is too long", r->name);
            return RL_ERR;
        }
        rk->k[i] = rk->buf[i];
        rk->klen[i] = (size_t)m;
    }
    return RL_OK;
}

/* ck for the applied keys of cfg (keys[i] non-NULL; only those with
 * only[i] set unless only is NULL), offset_ms being the server's clock
 * minus this host's. */
static int call_keys_fill(const struct rl_config *cfg, const char *const *keys,
                          const unsigned char *only, long long offset_ms, struct call_keys *ck,
                          struct rl_err *err)
{
    /* The clock only for the buckets layout (the keys layout's hot path
     * reads none). */
    long long now = cfg->store == RL_STORE_BUCKETS ? wall_ms() + offset_ms : 0;
    size_t i;

    for (i = 0; i < cfg->nrules && i < RL_MAX_RULES; i++) {
        struct rule_keys *rk = &ck->r[i];

        if (keys[i] == NULL || (only != NULL && !only[i]))
            continue;
        if (cfg->store == RL_STORE_BUCKETS) {
            if (bucket_keys(&cfg->rules[i], keys[i], now < 0 ? 0 : now, rk, err) != RL_OK)
                return RL_ERR;
        } else {
            rk->nk = 1;
            rk->k[0] = keys[i];
            rk->klen[0] = strlen(keys[i]);
            rk->field = NULL;
        }
    }
    return RL_OK;
}

/* The key that routes rule i's call on a Cluster (all of its keys share
 * its slot). */
static const char *route_key(const struct call_keys *ck, size_t i)
{
    return ck->r[i].k[0];
}

/* The server's clock minus this host's, from the server's time server_ms
 * in the reply to a call sent at this host's sent_ms (the script ran
 * after it was sent, as the next call will: measured from the send, the
 * next call's epochs are centred on the server's), logged and kept in rc
 * for the next requests. */
static long long learn_offset(struct redisconn *rc, long long server_ms, long long sent_ms)
{
    long long offset = server_ms - sent_ms;

    rl_log(RL_LOG_DEBUG,
           "the Redis server's clock is %lld ms from this host's: asking again with its epochs",
           offset);
    redisconn_set_clock_offset_ms(rc, offset);
    return offset;
}

/* Is reply the script's "other epochs" answer, {-1, server ms}? */
static int clock_reply(const redisReply *reply, long long *server_ms)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER || reply->element[0]->integer != -1 ||
        reply->element[1]->type != REDIS_REPLY_INTEGER)
        return 0;
    *server_ms = reply->element[1]->integer;
    return 1;
}

/* ------------------------------------------------------------ the call */

/* EVALSHA sha numkeys, the declared keys of the applied rules, then their
 * 4 numbers each (the first, ARG_ID, tells a shadow rule; the field follows
 * in the buckets layout; "refund" last when refund: src/lua/main.lua), in
 * RESP into *cmd. RL_ERR when it does not fit. */
static int cmd_build(struct redisconn_cmd *cmd, const char *sha, const struct rl_config *cfg,
                     const char *const *keys, const struct call_keys *ck, int refund)
{
    size_t i, j, nkeys = 0, nargs = 0;

    for (i = 0; i < cfg->nrules && i < RL_MAX_RULES; i++) {
        if (keys[i] == NULL)
            continue;
        nkeys += ck->r[i].nk;
        nargs += ARGS_PER_RULE + (ck->r[i].field != NULL);
    }
    redisconn_cmd_init(cmd, (int)(3 + nkeys + nargs) + (refund ? 1 : 0));
    redisconn_cmd_str(cmd, "EVALSHA", 7);
    redisconn_cmd_str(cmd, sha, strlen(sha));
    redisconn_cmd_ll(cmd, (long long)nkeys);
    for (i = 0; i < cfg->nrules && i < RL_MAX_RULES; i++) {
        if (keys[i] == NULL)
            continue;
        for (j = 0; j < ck->r[i].nk; j++)
            redisconn_cmd_str(cmd, ck->r[i].k[j], ck->r[i].klen[j]);
    }
    for (i = 0; i < cfg->nrules && i < RL_MAX_RULES; i++) {
        const struct rl_rule *r = &cfg->rules[i];

        if (keys[i] == NULL)
            continue;
        redisconn_cmd_ll(cmd, ARG_ID(r, cfg->store));
        redisconn_cmd_ll(cmd, r->limit);
        redisconn_cmd_ll(cmd, r->window_ms);
        redisconn_cmd_ll(cmd, r->burst > 0 ? r->burst : r->limit);
        if (ck->r[i].field != NULL)
            redisconn_cmd_str(cmd, ck->r[i].field, BUCKET_FIELD);
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

static size_t pick_worst(const struct rl_config *cfg, const struct rl_decision *d);

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

/* The applied rules grouped by the slot of their keys into g; the number
 * of groups. */
static size_t group_by_slot(const struct rl_config *cfg, const char *const *keys,
                            const struct call_keys *ck, struct slot_group *g)
{
    size_t i, j, n = 0;

    for (i = 0; i < cfg->nrules && i < RL_MAX_RULES; i++) {
        const char *route;
        unsigned slot;

        if (keys[i] == NULL)
            continue;
        route = route_key(ck, i);
        slot = cluster_key_slot(route, strlen(route));
        for (j = 0; j < n && g[j].slot != slot; j++)
            ;
        if (j == n) {
            memset(&g[n], 0, sizeof(g[n]));
            g[n].slot = slot;
            g[n].route = route;
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
                       size_t ng, const struct call_keys *ck, const unsigned char *pick, int refund,
                       struct redisconn_cmd *cmds, redisReply **replies, struct rl_err *err)
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
        if (cmd_build(&cmds[i], g[i].sha, cfg, g[i].keys, ck, refund) != RL_OK) {
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
                      size_t ng, const char *const *keys, struct call_keys *ck,
                      const unsigned char *charged, struct redisconn_cmd *cmds)
{
    redisReply *replies[RL_MAX_RULES];
    struct rl_err err;
    size_t i;
    int ret;

    rl_err_clear(&err);
    for (i = 0; i < ng; i++)
        replies[i] = NULL;
    /* The hashes of the epochs of now (the buckets layout). */
    ret = call_keys_fill(cfg, keys, NULL, redisconn_clock_offset_ms(rc), ck, &err);
    if (ret == RL_OK)
        ret = send_groups(rc, cfg, g, ng, ck, charged, 1, cmds, replies, &err);
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

/* The checks of every group into replies[i]; a group whose script
 * answered with the server's time (the buckets layout, the clocks over
 * half an epoch apart) is asked again, once, with the epochs of that
 * server's clock (masters may differ). */
static int send_checks(struct redisconn *rc, const struct rl_config *cfg, struct slot_group *g,
                       size_t ng, const char *const *keys, struct call_keys *ck,
                       struct redisconn_cmd *cmds, redisReply **replies, struct rl_err *err)
{
    unsigned char all[RL_MAX_RULES], again[RL_MAX_RULES];
    redisReply *more[RL_MAX_RULES];
    long long sent = cfg->store == RL_STORE_BUCKETS ? wall_ms() : 0, server_ms;
    size_t i, n = 0;
    int ok;

    memset(all, 1, sizeof(all));
    memset(again, 0, sizeof(again));
    ok = send_groups(rc, cfg, g, ng, ck, all, 0, cmds, replies, err) == RL_OK;
    for (i = 0; i < ng; i++) {
        if (!clock_reply(replies[i], &server_ms))
            continue;
        freeReplyObject(replies[i]);
        replies[i] = NULL;
        again[i] = 1;
        n++;
        if (call_keys_fill(cfg, keys, g[i].applied, learn_offset(rc, server_ms, sent), ck, err) !=
            RL_OK)
            return RL_ERR; /* (a key the first fill took: cannot happen) */
    }
    if (n == 0)
        return ok ? RL_OK : RL_ERR;
    if (send_groups(rc, cfg, g, ng, ck, again, 0, cmds, more, err) != RL_OK)
        ok = 0;
    for (i = 0; i < ng; i++) {
        if (!again[i])
            continue;
        replies[i] = more[i];
        if (clock_reply(more[i], &server_ms)) {
            rl_err_set(err, RL_E_REDIS, "the Redis server's clock keeps moving between epochs");
            freeReplyObject(more[i]);
            replies[i] = NULL;
            ok = 0;
        }
    }
    return ok ? RL_OK : RL_ERR;
}

/* Leave in g's keys only its rules that d (g's admitting decision)
 * charged: a shadow rule over its limit was not, and a give-back must not
 * refund it. 1 when any rule is left. */
static int only_charged(const struct rl_config *cfg, struct slot_group *g,
                        const struct rl_decision *d)
{
    size_t j;
    int left = 0;

    for (j = 0; j < cfg->nrules && j < RL_MAX_RULES; j++) {
        if (g->keys[j] != NULL && !d->r[j].allowed)
            g->keys[j] = NULL;
        left |= g->keys[j] != NULL;
    }
    return left;
}

/* limiter_check() for keys in ng > 1 slots (see above). */
static int check_split(struct redisconn *rc, const struct rl_config *cfg, struct slot_group *g,
                       size_t ng, const char *const *keys, struct call_keys *ck,
                       struct rl_decision *out, struct rl_err *err)
{
    struct redisconn_cmd cmds[RL_MAX_RULES];
    redisReply *replies[RL_MAX_RULES];
    unsigned char charged[RL_MAX_RULES];
    size_t i, j;
    int ok;

    memset(charged, 0, sizeof(charged));
    ok = send_checks(rc, cfg, g, ng, keys, ck, cmds, replies, err) == RL_OK;
    for (i = 0; i < ng; i++) {
        struct rl_decision d;

        if (replies[i] == NULL)
            continue;
        if (limiter_decode(replies[i], cfg, g[i].applied, &d, err) != RL_OK) {
            ok = 0;
        } else {
            charged[i] = (unsigned char)(d.allowed && only_charged(cfg, &g[i], &d));
            out->allowed = out->allowed && d.allowed;
            for (j = 0; j < cfg->nrules; j++) {
                if (g[i].applied[j])
                    out->r[j] = d.r[j];
            }
        }
        freeReplyObject(replies[i]);
    }
    if (!ok || !out->allowed)
        give_back(rc, cfg, g, ng, keys, ck, charged, cmds);
    /* A rule that denied is an answer even if another slot failed. */
    if (!ok && !out->allowed)
        ok = 1;
    if (!ok) {
        /* RATELIMIT_FAIL decides, as for one script. */
        if (err != NULL && err->kind != RL_E_CONFIG && err->kind != RL_E_PROTO)
            err->kind = RL_E_REDIS;
        decision_init(out, cfg);
        return RL_ERR;
    }
    out->worst = pick_worst(cfg, out);
    return RL_OK;
}

/* One EVALSHA of every applied rule; NULL on failure (*err set). A
 * script that answered with the server's time (the buckets layout) is
 * asked again, once, with the server's epochs. */
static redisReply *eval_once(struct redisconn *rc, const struct rl_config *cfg,
                             const char *const *keys, struct call_keys *ck, struct rl_err *err)
{
    struct redisconn_cmd cmd;
    const char *script, *sha;
    redisReply *reply = NULL;
    long long server_ms, sent = 0;
    size_t i;
    int attempt;

    script = limiter_pick_script(cfg, keys, &sha);
    for (i = 0; keys[i] == NULL; i++)
        ; /* the first applied rule routes the command on a Cluster */
    for (attempt = 0; attempt < 2; attempt++) {
        if (cmd_build(&cmd, sha, cfg, keys, ck, 0) != RL_OK) {
            rl_err_set(err, RL_E_CONFIG, "the EVALSHA request exceeds %d bytes", RL_CMD_MAX);
            return NULL;
        }
        if (cfg->store == RL_STORE_BUCKETS)
            sent = wall_ms();
        reply = redisconn_eval(rc, cfg, script, sha, &cmd, route_key(ck, i), err);
        if (!clock_reply(reply, &server_ms))
            return reply;
        freeReplyObject(reply);
        if (call_keys_fill(cfg, keys, NULL, learn_offset(rc, server_ms, sent), ck, err) != RL_OK)
            return NULL;
    }
    rl_err_set(err, RL_E_REDIS, "the Redis server's clock keeps moving between epochs");
    return NULL;
}

int limiter_check(struct redisconn *rc, const struct rl_config *cfg, const char *const *keys,
                  struct rl_decision *out, struct rl_err *err)
{
    struct call_keys ck;
    unsigned char applied[RL_MAX_RULES];
    size_t i, napplied = 0;
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
    if (call_keys_fill(cfg, keys, NULL, redisconn_clock_offset_ms(rc), &ck, err) != RL_OK)
        return RL_ERR;
    /* One applied rule is one slot: no grouping (no second CRC16). */
    if (cfg->redis.mode == RL_REDIS_CLUSTER && napplied > 1) {
        struct slot_group g[RL_MAX_RULES];
        size_t ng = group_by_slot(cfg, keys, &ck, g);

        if (ng > 1)
            return check_split(rc, cfg, g, ng, keys, &ck, out, err);
    }
    reply = eval_once(rc, cfg, keys, &ck, err);
    if (reply == NULL)
        return RL_ERR;
    /* A reply we cannot trust is Redis failing us: RL_E_PROTO, and the
     * caller applies RATELIMIT_FAIL as for any other failure. */
    ret = limiter_decode(reply, cfg, applied, out, err);
    freeReplyObject(reply);
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

/* The applied rule the answer describes (the first one on full ties),
 * never a shadow rule; 0 when there is none. */
static size_t pick_worst(const struct rl_config *cfg, const struct rl_decision *d)
{
    size_t i, worst = d->nrules;

    for (i = 0; i < d->nrules; i++) {
        if (!d->r[i].applied || cfg->rules[i].shadow)
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
        /* A shadow rule over its limit denies nothing (main.lua). */
        out->r[i].would_deny = cfg->rules[i].shadow && !out->r[i].allowed;
        all = all && (out->r[i].allowed || cfg->rules[i].shadow);
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
    out->worst = pick_worst(cfg, out);
    return RL_OK;
}
