/*
 * config.c - every RATELIMIT_* variable in one declarative table
 * (name, type, target field, default, bounds, enum names, setter), in the
 * manner of redis config.c: parsing walks the table once, then cross-field
 * rules (RATELIMIT_RULES replacing the single-rule variables, BURST
 * defaulting to LIMIT) are applied and the result is frozen as const.
 *
 * An empty value means "use the default", exactly as if unset; since the
 * last NAME=VALUE wins, a request parameter set to "" therefore resets a
 * variable to its default for that request.
 *
 * config_list() walks the same table for --check --verbose, so a new
 * variable is listed as soon as it has a row.
 *
 * The other rooms of the configuration: rules.c (RATELIMIT_RULES and the
 * rule key/name grammar), redisurl.c (RATELIMIT_REDIS_URL), units.c
 * (durations, sizes), confcache.c (per-request overrides, unknown names);
 * confint.h is what they share.
 */
#include "rlconfig.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo.h"
#include "buf.h"
#include "confint.h"
#include "log.h"
#include "redisurl.h"
#include "util.h"

#define PATH_LEN_MAX 4096

struct cfg_enum {
    const char *name;
    int value;
};

enum cfg_type { T_INT, T_LL, T_DURATION, T_SIZE, T_ENUM, T_PATH, T_CIDR, T_CUSTOM };
enum cfg_where { W_CFG, W_RULE, W_BUILD };
enum cfg_secret { S_NONE, S_ALL, S_URL };

/* Parsing state: the config being built plus the single rule that the
 * LIMIT/WINDOW/... variables describe until RULES decides. */
struct cfg_build {
    struct rl_config *cfg;
    struct rl_rule single;
    long long burst;          /* 0 when not given: then = limit */
    const char *rules;        /* RATELIMIT_RULES, borrowed from envp while parsing */
    char why[RL_ERR_MSG_MAX]; /* dynamic tail of an error message */
};

typedef int cfg_setter(struct cfg_build *b, const char *val, const char **why);

struct cfg_var {
    const char *name;
    enum cfg_type type;
    enum cfg_where where; /* which struct offset points into */
    size_t offset;
    const char *def;              /* default text; NULL: unset */
    long long min, max;           /* T_INT, T_LL, T_DURATION (ms), T_SIZE (bytes) */
    const struct cfg_enum *enums; /* T_ENUM, terminated by a NULL name */
    cfg_setter *set;              /* T_CUSTOM */
    int secret;                   /* enum cfg_secret: how the value is shown */
    int flags;                    /* F_RULE, F_BOUNDARY */
};

static cfg_setter set_redis_url, set_redis_password, set_sentinel_password, set_algorithm, set_key,
    set_name, set_rules, set_prefix, set_near_limit;

static const struct cfg_enum missing_names[] = {
    {"ip", RL_MISSING_IP}, {"skip", RL_MISSING_SKIP}, {NULL, 0}};
static const struct cfg_enum store_names[] = {
    {"keys", RL_STORE_KEYS}, {"buckets", RL_STORE_BUCKETS}, {NULL, 0}};
static const struct cfg_enum status_names[] = {{"429", 429}, {"503", 503}, {NULL, 0}};
static const struct cfg_enum fail_names[] = {
    {"open", RL_FAIL_OPEN}, {"closed", RL_FAIL_CLOSED}, {NULL, 0}};
static const struct cfg_enum bool_names[] = {{"0", 0},     {"1", 1},   {"true", 1},
                                             {"false", 0}, {"yes", 1}, {"no", 0},
                                             {"on", 1},    {"off", 0}, {NULL, 0}};
static const struct cfg_enum header_names[] = {{"all", RL_HDR_IETF | RL_HDR_X},
                                               {"ietf", RL_HDR_IETF},
                                               {"x", RL_HDR_X},
                                               {"none", 0},
                                               {NULL, 0}};
static const struct cfg_enum mode_names[] = {{"auto", RL_MODE_AUTO},
                                             {"wrapper", RL_MODE_WRAPPER},
                                             {"authorizer", RL_MODE_AUTHORIZER},
                                             {NULL, 0}};
static const struct cfg_enum log_names[] = {{"error", RL_LOG_ERROR},
                                            {"warn", RL_LOG_WARN},
                                            {"info", RL_LOG_INFO},
                                            {"debug", RL_LOG_DEBUG},
                                            {NULL, 0}};
static const struct cfg_enum overrides_names[] = {
    {"policy", RL_OVERRIDES_POLICY}, {"none", RL_OVERRIDES_NONE}, {NULL, 0}};
static const struct cfg_enum body_names[] = {
    {"json", RL_BODY_JSON}, {"problem", RL_BODY_PROBLEM}, {NULL, 0}};

#define CFG(f) W_CFG, offsetof(struct rl_config, f)
#define RULE(f) W_RULE, offsetof(struct rl_rule, f)
#define BUILD(f) W_BUILD, offsetof(struct cfg_build, f)
#define NOWHERE W_BUILD, 0

/* One macro per kind of variable, one line each; fl: F_RULE, F_BOUNDARY. */
/* clang-format off */
#define INT_VAR(n, t, where, d, lo, hi, fl) {n, t, where, d, lo, hi, NULL, NULL, S_NONE, fl}
#define ENUM_VAR(n, where, d, e, fl)        {n, T_ENUM, where, d, 0, 0, e, NULL, S_NONE, fl}
#define PLAIN_VAR(n, t, where, d, fl)       {n, t, where, d, 0, 0, NULL, NULL, S_NONE, fl}
#define CUSTOM_VAR(n, d, fn, sec, fl)       {n, T_CUSTOM, NOWHERE, d, 0, 0, NULL, fn, sec, fl}
/* clang-format on */

#define B F_BOUNDARY /* in the table's last column: the process's alone */
#define KIB 1024LL
#define GIB (KIB * KIB * KIB)

/* The table. Order matters once: the password comes after the URL so
 * that RATELIMIT_REDIS_PASSWORD wins over a password in the URL. The last
 * column says which variables are boundaries (B) and which are the limit
 * policy (0 or F_RULE) that a request parameter may override. */
static const struct cfg_var cfg_vars[] = {
    CUSTOM_VAR("RATELIMIT_REDIS_URL", "redis://127.0.0.1:6379/0", set_redis_url, S_URL, B),
    CUSTOM_VAR("RATELIMIT_REDIS_PASSWORD", NULL, set_redis_password, S_ALL, B),
    CUSTOM_VAR("RATELIMIT_SENTINEL_PASSWORD", NULL, set_sentinel_password, S_ALL, B),
    INT_VAR("RATELIMIT_REDIS_TIMEOUT_MS", T_INT, CFG(redis_timeout_ms), "100", 1, 60000, B),
    INT_VAR("RATELIMIT_LIMIT", T_LL, RULE(limit), "60", 1, LIMIT_MAX, F_RULE),
    INT_VAR("RATELIMIT_WINDOW", T_DURATION, RULE(window_ms), "60", 1, 365 * DAY_MS, F_RULE),
    CUSTOM_VAR("RATELIMIT_ALGORITHM", "fixed-window", set_algorithm, S_NONE, F_RULE),
    INT_VAR("RATELIMIT_BURST", T_LL, BUILD(burst), NULL, 1, LIMIT_MAX, F_RULE),
    CUSTOM_VAR("RATELIMIT_KEY", "ip", set_key, S_NONE, F_RULE),
    ENUM_VAR("RATELIMIT_KEY_MISSING", CFG(key_missing), "ip", missing_names, 0),
    CUSTOM_VAR("RATELIMIT_NAME", "default", set_name, S_NONE, F_RULE),
    CUSTOM_VAR("RATELIMIT_RULES", NULL, set_rules, S_NONE, 0),
    CUSTOM_VAR("RATELIMIT_PREFIX", "ratelimit:", set_prefix, S_NONE, B),
    ENUM_VAR("RATELIMIT_STORE", CFG(store), "keys", store_names, B),
    ENUM_VAR("RATELIMIT_STATUS", CFG(status), "429", status_names, 0),
    ENUM_VAR("RATELIMIT_FAIL", CFG(fail), "open", fail_names, 0),
    PLAIN_VAR("RATELIMIT_TRUSTED_PROXIES", T_CIDR, CFG(trusted_proxies), NULL, B),
    INT_VAR("RATELIMIT_IPV6_PREFIX", T_INT, CFG(ipv6_prefix), "64", 1, 128, 0),
    PLAIN_VAR("RATELIMIT_ALLOW", T_CIDR, CFG(allow), NULL, 0),
    PLAIN_VAR("RATELIMIT_DENY", T_CIDR, CFG(deny), NULL, 0),
    ENUM_VAR("RATELIMIT_DRY_RUN", CFG(dry_run), "0", bool_names, 0),
    ENUM_VAR("RATELIMIT_HEADERS", CFG(headers), "all", header_names, 0),
    PLAIN_VAR("RATELIMIT_BACKEND", T_PATH, CFG(backend), NULL, B),
    PLAIN_VAR("RATELIMIT_SCRIPT_ROOT", T_PATH, CFG(script_root), NULL, B),
    INT_VAR("RATELIMIT_BACKEND_TIMEOUT", T_DURATION, CFG(backend_timeout_ms), "30", 1000, DAY_MS,
            0),
    ENUM_VAR("RATELIMIT_MODE", CFG(mode), "auto", mode_names, B),
    ENUM_VAR("RATELIMIT_LOG", CFG(log_level), "warn", log_names, 0),
    ENUM_VAR("RATELIMIT_OVERRIDES", CFG(overrides), "policy", overrides_names, B),
    /* 0 refuses every request body; 1g is Apache's LimitRequestBody default. */
    INT_VAR("RATELIMIT_MAX_BODY", T_SIZE, CFG(max_body), "1g", 0, 64 * GIB, B),
    ENUM_VAR("RATELIMIT_BODY", CFG(body), "json", body_names, 0),
    CUSTOM_VAR("RATELIMIT_NEAR_LIMIT", "0.8", set_near_limit, S_NONE, 0),
    PLAIN_VAR("RATELIMIT_METRICS_FILE", T_PATH, CFG(metrics_file), METRICS_FILE_DEFAULT, B),
    PLAIN_VAR("RATELIMIT_METRICS_PATH", T_PATH, CFG(metrics_path), NULL, B),
    PLAIN_VAR("RATELIMIT_METRICS_ALLOW", T_CIDR, CFG(metrics_allow), "127.0.0.0/8 ::1/128", B),
};

#undef B

#define NVARS (sizeof(cfg_vars) / sizeof(cfg_vars[0]))
_Static_assert(NVARS <= CFG_VARS_MAX, "confint.h's CFG_VARS_MAX holds every variable");

/* "NAME: invalid value 'VALUE': WHY", VALUE masked and shortened. */
static void var_error(struct rl_err *err, const struct cfg_var *v, const char *val, const char *why)
{
    char masked[SHOW_MAX * 2 + 16], shown[SHOW_MAX + 8];
    const char *src = val;

    if (v->secret == S_ALL) {
        src = "***";
    } else if (v->secret == S_URL) {
        redisurl_mask(val, masked, sizeof(masked));
        src = masked;
    }
    cfg_shorten(src, strlen(src), shown, sizeof(shown));
    rl_err_set(err, RL_E_CONFIG, "%s: invalid value '%s': %s", v->name, shown, why);
}

static const struct cfg_var *var_find(const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < NVARS; i++) {
        if (strlen(cfg_vars[i].name) == len && memcmp(cfg_vars[i].name, name, len) == 0)
            return &cfg_vars[i];
    }
    return NULL;
}

size_t cfg_var_count(void)
{
    return NVARS;
}

int cfg_var_find(const char *name, size_t len)
{
    const struct cfg_var *v = var_find(name, len);

    return v != NULL ? (int)(v - cfg_vars) : -1;
}

const char *cfg_var_name(size_t i)
{
    return i < NVARS ? cfg_vars[i].name : NULL;
}

int cfg_var_flags(size_t i)
{
    return i < NVARS ? cfg_vars[i].flags : 0;
}

size_t cfg_name_len(const char *e)
{
    const char *eq = strchr(e, '=');

    return eq != NULL ? (size_t)(eq - e) : strlen(e);
}

static const struct cfg_enum *enum_by_name(const struct cfg_enum *e, const char *s)
{
    size_t n = strlen(s);

    for (; e->name != NULL; e++) {
        if (strlen(e->name) == n && ascii_ncaseeq(e->name, s, n))
            return e;
    }
    return NULL;
}

static const char *enum_name(const struct cfg_enum *e, int value)
{
    for (; e->name != NULL; e++) {
        if (e->value == value)
            return e->name;
    }
    return "?";
}

/* "expected one of a, b, c" into out. */
static void enum_expect(const struct cfg_enum *e, char *out, size_t outsz)
{
    size_t len;
    int n = snprintf(out, outsz, "expected one of ");

    for (; n >= 0 && e->name != NULL; e++) {
        len = strlen(out);
        n = snprintf(out + len, outsz - len, "%s%s", e->name, e[1].name != NULL ? ", " : "");
        if (n < 0 || (size_t)n >= outsz - len)
            break; /* truncated: the message is merely shorter */
    }
}

static int set_redis_url(struct cfg_build *b, const char *val, const char **why)
{
    return redisurl_parse(val, &b->cfg->redis, why);
}

static int set_redis_password(struct cfg_build *b, const char *val, const char **why)
{
    *why = "expected at most 1024 bytes";
    if (strlen(val) > REDISURL_PW_MAX)
        return RL_ERR;
    free(b->cfg->redis.password);
    b->cfg->redis.password = xstrdup(val);
    return RL_OK;
}

static int set_sentinel_password(struct cfg_build *b, const char *val, const char **why)
{
    *why = "expected at most 1024 bytes";
    if (strlen(val) > REDISURL_PW_MAX)
        return RL_ERR;
    free(b->cfg->redis.sentinel_password);
    b->cfg->redis.sentinel_password = xstrdup(val);
    return RL_OK;
}

/* ------------------------------------------------------------ other setters */

static int set_algorithm(struct cfg_build *b, const char *val, const char **why)
{
    int algo = algo_parse(val, strlen(val));

    if (algo < 0) {
        memcpy(b->why, "expected one of ", 17);
        algo_names(b->why + 16, sizeof(b->why) - 16, ", ");
        *why = b->why;
        return RL_ERR;
    }
    b->single.algo = algo;
    return RL_OK;
}

static int set_key(struct cfg_build *b, const char *val, const char **why)
{
    return rule_parse_key(val, strlen(val), &b->single, why);
}

static int set_name(struct cfg_build *b, const char *val, const char **why)
{
    return rule_parse_name(val, strlen(val), b->single.name, why);
}

/* Parsed after the table (see finish()): the single-rule variables must
 * be known first to be replaced. */
static int set_rules(struct cfg_build *b, const char *val, const char **why)
{
    (void)why;
    b->rules = val;
    return RL_OK;
}

static int set_prefix(struct cfg_build *b, const char *val, const char **why)
{
    size_t i, n = strlen(val);

    *why = "expected 1..128 printable characters without spaces";
    if (n > RL_PREFIX_MAX)
        return RL_ERR;
    for (i = 0; i < n; i++) {
        if ((unsigned char)val[i] <= 0x20 || (unsigned char)val[i] >= 0x7f)
            return RL_ERR;
    }
    memcpy(b->cfg->prefix, val, n + 1);
    return RL_OK;
}

/* A fraction 0 < f <= 1 written "0.8", "1", ".75" or "1.0": digits, at
 * most 6 after the point, no exponent (strtod would take "1e-3", "nan"
 * and the locale's decimal point). */
static int set_near_limit(struct cfg_build *b, const char *val, const char **why)
{
    const char *dot = strchr(val, '.');
    size_t ilen = dot != NULL ? (size_t)(dot - val) : strlen(val);
    size_t flen = dot != NULL ? strlen(dot + 1) : 0, i;
    long long whole = 0, frac = 0, scale = 1;

    *why = "expected a fraction 0 < f <= 1 with at most 6 decimals, e.g. 0.8";
    if (ilen + flen == 0 || (dot != NULL && flen == 0) || ilen > 6 || flen > 6 ||
        strspn(val, "0123456789") != ilen || (dot != NULL && strspn(dot + 1, "0123456789") != flen))
        return RL_ERR;
    if ((ilen > 0 && parse_ll(val, ilen, 0, 1, &whole) != RL_OK) ||
        (flen > 0 && parse_ll(dot + 1, flen, 0, 999999, &frac) != RL_OK))
        return RL_ERR;
    for (i = 0; i < flen; i++)
        scale *= 10;
    if ((whole == 0 && frac == 0) || (whole == 1 && frac != 0))
        return RL_ERR;
    b->cfg->near_limit = (double)whole + (double)frac / (double)scale;
    return RL_OK;
}

/* ------------------------------------------------------------ the table walk */

static void *var_target(struct cfg_build *b, const struct cfg_var *v)
{
    char *base = v->where == W_CFG    ? (char *)b->cfg
                 : v->where == W_RULE ? (char *)&b->single
                                      : (char *)b;

    return base + v->offset;
}

static int apply_number(struct cfg_build *b, const struct cfg_var *v, const char *val,
                        const char **why)
{
    long long n;
    char lo[32], hi[32];
    int rc;

    if (v->type == T_DURATION) {
        units_fmt_duration(v->min, UNIT_FIRST, lo, sizeof(lo));
        units_fmt_duration(v->max, UNIT_FIRST, hi, sizeof(hi));
        (void)snprintf(b->why, sizeof(b->why),
                       "expected a duration %s..%s (seconds, or with a unit: 500ms, 30s, 1m, "
                       "1h, 1d)",
                       lo, hi);
        rc = config_parse_duration(val, v->min, v->max, &n);
    } else if (v->type == T_SIZE) {
        units_fmt_size(v->min, lo, sizeof(lo));
        units_fmt_size(v->max, hi, sizeof(hi));
        (void)snprintf(b->why, sizeof(b->why),
                       "expected a size %s..%s (bytes, or with a unit: 512k, 10m, 1g)", lo, hi);
        rc = units_parse_size(val, v->min, v->max, &n);
    } else {
        (void)snprintf(b->why, sizeof(b->why), "expected an integer %lld..%lld", v->min, v->max);
        rc = parse_ll(val, strlen(val), v->min, v->max, &n);
    }
    if (rc != RL_OK)
        return *why = b->why, RL_ERR;
    if (v->type == T_INT)
        *(int *)var_target(b, v) = (int)n;
    else
        *(long long *)var_target(b, v) = n;
    return RL_OK;
}

static int apply_var(struct cfg_build *b, const struct cfg_var *v, const char *val,
                     const char **why)
{
    const struct cfg_enum *e;
    struct rl_err cerr;

    switch (v->type) {
    case T_INT:
    case T_LL:
    case T_DURATION:
    case T_SIZE:
        return apply_number(b, v, val, why);
    case T_ENUM:
        enum_expect(v->enums, b->why, sizeof(b->why));
        *why = b->why;
        if ((e = enum_by_name(v->enums, val)) == NULL)
            return RL_ERR;
        *(int *)var_target(b, v) = e->value;
        return RL_OK;
    case T_PATH:
        *why = "expected an absolute path";
        if (val[0] != '/' || strlen(val) > PATH_LEN_MAX)
            return RL_ERR;
        *(char **)var_target(b, v) = xstrdup(val);
        return RL_OK;
    case T_CIDR:
        rl_err_clear(&cerr);
        if (cidr_list_parse(val, var_target(b, v), &cerr) == RL_OK)
            return RL_OK;
        (void)snprintf(b->why, sizeof(b->why), "%s", cerr.msg);
        return *why = b->why, RL_ERR;
    case T_CUSTOM:
        return v->set(b, val, why);
    }
    return RL_ERR;
}

/* RATELIMIT_STORE=buckets takes only the algorithms with a buckets layout
 * (sliding-log has none: its state is a set of timestamps per client, not
 * a number a shared hash field could hold), and epochs of at least
 * ALGO_BUCKET_EPOCH_MIN_MS (fixed-window and sliding-window: their window). */
static int check_store(const struct rl_config *cfg, struct rl_err *err)
{
    size_t i;

    if (cfg->store != RL_STORE_BUCKETS)
        return RL_OK;
    for (i = 0; i < cfg->nrules; i++) {
        const struct rl_rule *r = &cfg->rules[i];

        if (!algo_has_buckets(r->algo)) {
            rl_err_set(err, RL_E_CONFIG,
                       "RATELIMIT_STORE: 'buckets' does not support %s (rule '%s'): "
                       "use RATELIMIT_STORE=keys or another algorithm",
                       algo_name(r->algo), r->name);
            return RL_ERR;
        }
        if (algo_bucket_epoch_ms(r->algo, r->limit, r->window_ms,
                                 r->burst > 0 ? r->burst : r->limit) < ALGO_BUCKET_EPOCH_MIN_MS) {
            rl_err_set(err, RL_E_CONFIG,
                       "RATELIMIT_STORE: 'buckets' takes windows of %d ms or more for %s "
                       "(rule '%s' has %lld ms): use RATELIMIT_STORE=keys",
                       ALGO_BUCKET_EPOCH_MIN_MS, algo_name(r->algo), r->name, r->window_ms);
            return RL_ERR;
        }
    }
    return RL_OK;
}

/* redis+cluster://: a key's first '{' must be the one before the client's
 * hash (the hash tag, in both layouts). (Rules keyed by different
 * identities are checked one script per slot: limiter.c.) */
static int check_cluster(const struct rl_config *cfg, struct rl_err *err)
{
    if (cfg->redis.mode != RL_REDIS_CLUSTER)
        return RL_OK;
    if (strpbrk(cfg->prefix, "{}") != NULL) {
        rl_err_set(err, RL_E_CONFIG,
                   "RATELIMIT_PREFIX: no '{' or '}' with redis+cluster:// (the client's hash is "
                   "the keys' hash tag)");
        return RL_ERR;
    }
    return RL_OK;
}

/* Cross-field rules once every variable is known. */
static int finish(struct cfg_build *b, struct rl_err *err)
{
    struct rl_config *cfg = b->cfg;

    if (cfg->redis.user != NULL && cfg->redis.password == NULL) {
        rl_err_set(err, RL_E_CONFIG,
                   "RATELIMIT_REDIS_URL: a user name needs a password (redis://USER:PASSWORD@host "
                   "or RATELIMIT_REDIS_PASSWORD)");
        return RL_ERR;
    }
    if (b->rules != NULL) {
        if (config_parse_rules(b->rules, cfg->rules, &cfg->nrules, err) != RL_OK)
            return RL_ERR;
        cfg->from_rules = 1;
        return check_store(cfg, err) == RL_OK ? check_cluster(cfg, err) : RL_ERR;
    }
    /* RATELIMIT_BURST defaults to RATELIMIT_LIMIT: a full bucket holds
     * one window's worth, the behaviour of the other algorithms. */
    b->single.burst = b->burst > 0 ? b->burst : b->single.limit;
    cfg->rules[0] = b->single;
    cfg->nrules = 1;
    cfg->from_rules = 0;
    return check_store(cfg, err) == RL_OK ? check_cluster(cfg, err) : RL_ERR;
}

void cfg_collect(char *const *envp, const char **vals)
{
    for (; envp != NULL && *envp != NULL; envp++) {
        const char *e = *envp, *eq;
        const struct cfg_var *v;

        if (e[0] != 'R' || strncmp(e, ENV_PREFIX, ENV_PREFIX_LEN) != 0)
            continue;
        if ((eq = strchr(e, '=')) == NULL)
            continue;
        if ((v = var_find(e, (size_t)(eq - e))) != NULL)
            vals[v - cfg_vars] = eq + 1;
    }
}

struct rl_config *config_parse(char *const *envp, struct rl_err *err)
{
    const char *vals[CFG_VARS_MAX] = {NULL};
    struct cfg_build b;
    size_t i;

    memset(&b, 0, sizeof(b));
    b.cfg = xcalloc(1, sizeof(*b.cfg));
    cfg_collect(envp, vals);
    for (i = 0; i < NVARS; i++) {
        const struct cfg_var *v = &cfg_vars[i];
        const char *val = vals[i] != NULL && vals[i][0] != '\0' ? vals[i] : v->def;
        const char *why = "invalid";

        if (val == NULL)
            continue;
        if (apply_var(&b, v, val, &why) != RL_OK) {
            var_error(err, v, val, why);
            goto fail;
        }
    }
    if (finish(&b, err) != RL_OK)
        goto fail;
    return b.cfg;
fail:
    config_free(b.cfg);
    return NULL;
}

void config_free(struct rl_config *cfg)
{
    if (cfg == NULL)
        return;
    redisurl_target_free(&cfg->redis);
    cidr_list_free(&cfg->trusted_proxies);
    cidr_list_free(&cfg->allow);
    cidr_list_free(&cfg->deny);
    free(cfg->backend);
    free(cfg->script_root);
    free(cfg->metrics_path);
    free(cfg->metrics_file);
    cidr_list_free(&cfg->metrics_allow);
    free(cfg);
}

/* ------------------------------------------------------------ summary */

struct outbuf {
    char *p;
    size_t sz, len;
    int trunc;
};

static void __attribute__((format(printf, 2, 3))) out_printf(struct outbuf *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->trunc)
        return;
    va_start(ap, fmt);
    n = vsnprintf(o->p + o->len, o->sz - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->sz - o->len)
        o->trunc = 1;
    else
        o->len += (size_t)n;
}

static void summary_rules(struct outbuf *o, const struct rl_config *cfg)
{
    size_t i;

    for (i = 0; i < cfg->nrules; i++) {
        const struct rl_rule *r = &cfg->rules[i];
        char win[32];

        units_fmt_duration(r->window_ms, UNIT_SECONDS, win, sizeof(win));
        out_printf(o, "%s%s(%s %lld/%s %s", i ? "," : "", r->name, r->key_spec, r->limit, win,
                   algo_name(r->algo));
        if (r->algo == RL_ALGO_TOKEN_BUCKET)
            out_printf(o, " burst=%lld", r->burst);
        out_printf(o, "%s)", r->shadow ? " shadow" : "");
    }
}

int config_summary(const struct rl_config *cfg, char *out, size_t outsz)
{
    struct outbuf o = {out, outsz, 0, 0};

    if (out == NULL || outsz == 0)
        return RL_ERR;
    out[0] = '\0';
    out_printf(&o, "redis=%s%s rules=", cfg->redis.display,
               cfg->redis.password != NULL ? " (auth)" : "");
    summary_rules(&o, cfg);
    out_printf(&o, " prefix=%s status=%d fail=%s headers=%s mode=%s", cfg->prefix, cfg->status,
               enum_name(fail_names, cfg->fail), enum_name(header_names, cfg->headers),
               enum_name(mode_names, cfg->mode));
    if (cfg->store != RL_STORE_KEYS)
        out_printf(&o, " store=%s", enum_name(store_names, cfg->store));
    if (cfg->key_missing == RL_MISSING_SKIP)
        out_printf(&o, " key_missing=skip");
    if (cfg->dry_run)
        out_printf(&o, " dry_run=1");
    if (cfg->overrides == RL_OVERRIDES_NONE)
        out_printf(&o, " overrides=none");
    if (cfg->backend != NULL)
        out_printf(&o, " backend=%s", cfg->backend);
    return o.trunc ? RL_ERR : RL_OK;
}

/* ------------------------------------------------------------ --check --verbose */

#define LIST_COLUMN 48                   /* sources line up after NAME=VALUE up to this long */
#define LIST_VALUE_MAX 4096              /* a longer value is cut, with "..." */
#define LIST_MAX (256 * 1024)            /* the whole listing: NVARS lines of at most ~4.2 kB */
#define LIST_SCRATCH (REDISURL_MAX + 16) /* a masked URL: "***" may be longer than the password */

/* The value variable i has in vals (collected from the environment) as
 * the listing shows it, and in *from_env whether the environment gave it.
 * An empty value is the default, exactly as config_parse() takes it; no
 * value and no default is "unset"; a secret is "***", a URL's password
 * too. Borrowed: from vals, the table, static text or scratch. */
static const char *list_value(size_t i, const char *const *vals, int *from_env, char *scratch)
{
    const struct cfg_var *v = &cfg_vars[i];
    const char *val;

    *from_env = vals[i] != NULL && vals[i][0] != '\0';
    val = *from_env ? vals[i] : v->def;
    if (val == NULL)
        return "unset"; /* before the mask: an unset secret is not a secret */
    if (v->secret == S_ALL)
        return "***";
    if (v->secret == S_URL) {
        redisurl_mask_password(val, scratch, LIST_SCRATCH);
        return scratch;
    }
    return val;
}

/* The bytes s takes in the listing (list_put_value). */
static size_t list_len(const char *s)
{
    size_t n = strlen(s);

    return n > LIST_VALUE_MAX ? LIST_VALUE_MAX + 3 : n;
}

/* s into o on one line: control characters (a newline in a value) as
 * '?', cut at LIST_VALUE_MAX with "...". */
static void list_put_value(struct buf *o, const char *s)
{
    size_t i;

    for (i = 0; i < LIST_VALUE_MAX && s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        char shown = c < 0x20 || c == 0x7f ? '?' : (char)c;

        (void)buf_append(o, &shown, 1);
    }
    if (s[i] != '\0')
        (void)buf_puts(o, "...");
}

/* The contract: rlconfig.h. */
char *config_list(char *const *envp)
{
    const char *vals[CFG_VARS_MAX] = {NULL};
    char scratch[LIST_SCRATCH];
    struct buf o;
    size_t i, n, col = 0;
    int from_env;

    cfg_collect(envp, vals);
    for (i = 0; i < NVARS; i++) {
        n = strlen(cfg_vars[i].name) + 1 + list_len(list_value(i, vals, &from_env, scratch));
        if (n <= LIST_COLUMN && n > col)
            col = n;
    }
    buf_init(&o, LIST_MAX);
    for (i = 0; i < NVARS; i++) {
        const char *val = list_value(i, vals, &from_env, scratch);

        n = strlen(cfg_vars[i].name) + 1 + list_len(val);
        (void)buf_printf(&o, "%s=", cfg_vars[i].name);
        list_put_value(&o, val);
        (void)buf_printf(&o, "%*s(%s)\n", (int)(n < col ? col - n + 1 : 1), "",
                         from_env ? "environment" : "default");
    }
    return o.ptr != NULL ? o.ptr : xstrdup("");
}
