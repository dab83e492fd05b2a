/*
 * confcache.c - the configuration as requests see it: the per-request
 * cache of RATELIMIT_* overrides (a small LRU keyed by the bytes of the
 * request's RATELIMIT_* params, so the hot path does not parse), which
 * params may override (RATELIMIT_OVERRIDES, boundaries), and the warnings
 * for unknown names ("did you mean ...?").
 */
#include "rlconfig.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "confint.h"
#include "log.h"
#include "util.h"

#define CACHE_SLOTS 8
#define CACHE_KEY_MAX 65536 /* bytes of RATELIMIT_* params in one request */
#define SUGGEST_MAX_DIST 3  /* "did you mean" only for close names */
#define NAME_CMP_MAX 64     /* names longer than this get no suggestion */

/* ------------------------------------------------------------ unknown names */

/* Levenshtein distance of a[0..na) and b[0..nb), both <= NAME_CMP_MAX. */
static size_t edit_distance(const char *a, size_t na, const char *b, size_t nb)
{
    size_t prev[NAME_CMP_MAX + 1], cur[NAME_CMP_MAX + 1], i, j;

    for (j = 0; j <= nb; j++)
        prev[j] = j;
    for (i = 1; i <= na; i++) {
        cur[0] = i;
        for (j = 1; j <= nb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;

            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (nb + 1) * sizeof(prev[0]));
    }
    return prev[nb];
}

/* The known name closest to name[0..n), or NULL when none is close. */
static const char *closest_name(const char *name, size_t n)
{
    size_t i, best = SUGGEST_MAX_DIST + 1;
    const char *found = NULL;

    if (n > NAME_CMP_MAX)
        return NULL;
    for (i = 0; i < cfg_var_count(); i++) {
        const char *known = cfg_var_name(i);
        size_t d = edit_distance(name, n, known, strlen(known));

        if (d < best) {
            best = d;
            found = known;
        }
    }
    return found;
}

/* 1 when envp[0..i) already holds the name of envp[i]. */
static int seen_before(char *const *envp, size_t i, size_t n)
{
    size_t j;

    for (j = 0; j < i; j++) {
        if (cfg_name_len(envp[j]) == n && memcmp(envp[j], envp[i], n) == 0)
            return 1;
    }
    return 0;
}

/* RATELIMIT_RULES replaces the single-rule variables: say so, since an
 * administrator who sets both otherwise wonders why LIMIT does nothing. */
static void warn_replaced(char *const *envp)
{
    const char *vals[CFG_VARS_MAX] = {NULL};
    int rules = cfg_var_find("RATELIMIT_RULES", 15);
    size_t i;

    cfg_collect(envp, vals);
    if (rules < 0 || vals[rules] == NULL || vals[rules][0] == '\0')
        return;
    for (i = 0; i < cfg_var_count(); i++) {
        if ((cfg_var_flags(i) & F_RULE) && vals[i] != NULL && vals[i][0] != '\0')
            rl_log(RL_LOG_WARN, "%s is ignored: RATELIMIT_RULES is set", cfg_var_name(i));
    }
}

void config_warn_unknown(char *const *envp)
{
    size_t i;

    for (i = 0; envp != NULL && envp[i] != NULL; i++) {
        const char *e = envp[i], *best;
        size_t n;

        if (strncmp(e, ENV_PREFIX, ENV_PREFIX_LEN) != 0)
            continue;
        n = cfg_name_len(e);
        if (cfg_var_find(e, n) >= 0 || seen_before(envp, i, n))
            continue;
        best = closest_name(e, n);
        if (best != NULL)
            rl_log(RL_LOG_WARN, "unknown variable %.*s (did you mean %s?)",
                   (int)(n > NAME_CMP_MAX ? NAME_CMP_MAX : n), e, best);
        else
            rl_log(RL_LOG_WARN, "unknown variable %.*s%s",
                   (int)(n > NAME_CMP_MAX ? NAME_CMP_MAX : n), e, n > NAME_CMP_MAX ? "..." : "");
    }
    warn_replaced(envp);
}

/* ------------------------------------------------------------ per-request cache */

struct cache_slot {
    char *key; /* the request's "NAME=VALUE\0..." overrides; owned */
    size_t keylen;
    struct rl_config *cfg;   /* owned; NULL when those overrides are invalid */
    struct rl_err err;       /* why, when cfg is NULL */
    unsigned long long used; /* LRU clock; 0: empty slot */
};

struct config_cache {
    struct rl_config *base;
    unsigned char ignored_said[CFG_VARS_MAX]; /* 1: "request parameter X ignored" logged */
    int none_said;                            /* 1: "RATELIMIT_OVERRIDES=none" logged */
    char **env; /* owned copies of the process RATELIMIT_* entries, NULL-terminated */
    size_t nenv;
    struct buf key; /* scratch for the current request's key; memory reused */
    struct cache_slot slot[CACHE_SLOTS];
    unsigned long long clock;
};

/* Copy the RATELIMIT_* entries of envp: the process environment may be
 * changed later, and the cache re-parses it for every override set. */
static void copy_env(struct config_cache *cc, char *const *envp)
{
    size_t i, n = 0;

    for (i = 0; envp != NULL && envp[i] != NULL; i++)
        n += strncmp(envp[i], ENV_PREFIX, ENV_PREFIX_LEN) == 0;
    cc->env = xcalloc(n + 1, sizeof(*cc->env));
    for (i = 0; envp != NULL && envp[i] != NULL; i++) {
        if (strncmp(envp[i], ENV_PREFIX, ENV_PREFIX_LEN) == 0)
            cc->env[cc->nenv++] = xstrdup(envp[i]);
    }
}

struct config_cache *config_cache_new(char *const *envp, struct rl_err *err)
{
    struct config_cache *cc = xcalloc(1, sizeof(*cc));

    buf_init(&cc->key, CACHE_KEY_MAX);
    copy_env(cc, envp);
    cc->base = config_parse(cc->env, err);
    if (cc->base == NULL) {
        config_cache_free(cc);
        return NULL;
    }
    return cc;
}

void config_cache_free(struct config_cache *cc)
{
    size_t i;

    if (cc == NULL)
        return;
    for (i = 0; i < CACHE_SLOTS; i++) {
        free(cc->slot[i].key);
        config_free(cc->slot[i].cfg);
    }
    for (i = 0; i < cc->nenv; i++)
        free(cc->env[i]);
    free(cc->env);
    buf_free(&cc->key);
    config_free(cc->base);
    free(cc);
}

const struct rl_config *config_cache_base(const struct config_cache *cc)
{
    return cc->base;
}

/* 1 when p is, byte for byte, an entry of the process environment. */
static int in_process_env(const struct config_cache *cc, const char *p)
{
    size_t i;

    for (i = 0; i < cc->nenv; i++) {
        if (strcmp(cc->env[i], p) == 0)
            return 1;
    }
    return 0;
}

/* 1 when the request parameter p (RATELIMIT_*) may override the process
 * environment; else it is to be ignored, and the first time this worker
 * sees such a name it says so (by name only: the value may be a secret).
 * A parameter that repeats the process's own entry changes nothing and is
 * ignored without a word. */
static int param_may_override(struct config_cache *cc, const char *p)
{
    int v = cfg_var_find(p, cfg_name_len(p));
    int none = cc->base->overrides == RL_OVERRIDES_NONE;

    if (!none && (v < 0 || !(cfg_var_flags((size_t)v) & F_BOUNDARY)))
        return 1; /* policy, or unknown: config_warn_unknown names it */
    if (in_process_env(cc, p))
        return 0;
    if (none) {
        if (!cc->none_said)
            rl_log(RL_LOG_WARN, "request parameters RATELIMIT_* ignored: RATELIMIT_OVERRIDES=none "
                                "in the process environment");
        cc->none_said = 1;
        return 0;
    }
    if (!cc->ignored_said[v])
        rl_log(RL_LOG_WARN,
               "request parameter %s ignored: it is set by the process environment only",
               cfg_var_name((size_t)v));
    cc->ignored_said[v] = 1;
    return 0;
}

/* The request's RATELIMIT_* params that may override, as "NAME=VALUE\0..."
 * into cc->key and their count into *n. The scan is the hot path: one
 * byte compared per param that cannot be ours. */
static int build_key(struct config_cache *cc, char *const *params, size_t *n, struct rl_err *err)
{
    size_t i;

    *n = 0;
    buf_reset(&cc->key);
    for (i = 0; params != NULL && params[i] != NULL; i++) {
        const char *p = params[i];

        if (p[0] != 'R' || strncmp(p, ENV_PREFIX, ENV_PREFIX_LEN) != 0)
            continue;
        if (!param_may_override(cc, p))
            continue;
        if (buf_append(&cc->key, p, strlen(p) + 1) != RL_OK) {
            rl_err_set(err, RL_E_CONFIG, "RATELIMIT_* request parameters exceed %d bytes",
                       CACHE_KEY_MAX);
            return RL_ERR;
        }
        (*n)++;
    }
    return RL_OK;
}

static struct cache_slot *cache_find(struct config_cache *cc)
{
    size_t i;

    for (i = 0; i < CACHE_SLOTS; i++) {
        struct cache_slot *s = &cc->slot[i];

        if (s->used != 0 && s->keylen == cc->key.len && memcmp(s->key, cc->key.ptr, s->keylen) == 0)
            return s;
    }
    return NULL;
}

/* Parse base environment + the n overrides of cc->key (the params that
 * build_key kept, and only those) into the least recently used slot. The
 * parse copies everything it keeps, so no pointer into the key survives. */
static struct cache_slot *cache_fill(struct config_cache *cc, size_t n)
{
    struct cache_slot *s = &cc->slot[0];
    char **merged = xcalloc(cc->nenv + n + 1, sizeof(*merged));
    size_t i, m = 0, off;

    for (i = 1; i < CACHE_SLOTS; i++) {
        if (cc->slot[i].used < s->used)
            s = &cc->slot[i];
    }
    free(s->key);
    config_free(s->cfg);
    s->keylen = cc->key.len;
    s->key = xmalloc(s->keylen);
    memcpy(s->key, cc->key.ptr, s->keylen);
    for (i = 0; i < cc->nenv; i++)
        merged[m++] = cc->env[i];
    for (off = 0; off < s->keylen; off += strlen(s->key + off) + 1)
        merged[m++] = s->key + off;
    rl_err_clear(&s->err);
    s->cfg = config_parse(merged, &s->err);
    /* Once per distinct set, not per request: a typo in a SetEnv. */
    config_warn_unknown(merged + cc->nenv);
    free(merged);
    return s;
}

const struct rl_config *config_for_request(struct config_cache *cc, char *const *params,
                                           struct rl_err *err)
{
    struct cache_slot *s;
    size_t n;

    if (build_key(cc, params, &n, err) != RL_OK)
        return NULL;
    if (n == 0)
        return cc->base;
    s = cache_find(cc);
    if (s == NULL)
        s = cache_fill(cc, n);
    s->used = ++cc->clock;
    if (s->cfg == NULL && err != NULL)
        *err = s->err;
    return s->cfg;
}
