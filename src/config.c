/*
 * config.c - every RATELIMIT_* variable of SPEC.md in one declarative table
 * (name, type, target field, default, bounds, enum names, setter), in the
 * manner of redis config.c: parsing walks the table once, then cross-field
 * rules (RATELIMIT_RULES replacing the single-rule variables, BURST
 * defaulting to LIMIT) are applied and the result is frozen as const.
 *
 * An empty value means "use the default", exactly as if unset; since the
 * last NAME=VALUE wins, a request parameter set to "" therefore resets a
 * variable to its default for that request.
 *
 * Per-request overrides go through a small LRU cache keyed by the bytes of
 * the request's RATELIMIT_* params, so the hot path does not parse.
 */
#include "rlconfig.h"

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "buf.h"
#include "limiter.h"
#include "log.h"
#include "util.h"

#define ENV_PREFIX "RATELIMIT_"
#define ENV_PREFIX_LEN (sizeof(ENV_PREFIX) - 1)

#define SHOW_MAX 60            /* a value is cut to this many bytes in messages */
#define LIMIT_MAX 1000000000LL /* RATELIMIT_LIMIT / burst upper bound */
#define DAY_MS 86400000LL
#define URL_MAX 1024
#define HOST_MAX 253 /* longest DNS name */
#define PASSWORD_MAX 1024
#define USER_MAX 256
#define PATH_LEN_MAX 4096
#define DB_MAX 1000000
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)
#define CACHE_SLOTS 8
#define CACHE_KEY_MAX 65536 /* bytes of RATELIMIT_* params in one request */
#define SUGGEST_MAX_DIST 3  /* "did you mean" only for close names */
#define NAME_CMP_MAX 64     /* names longer than this get no suggestion */

struct cfg_enum {
    const char *name;
    int value;
};

enum cfg_type { T_INT, T_LL, T_DURATION, T_SIZE, T_ENUM, T_PATH, T_CIDR, T_CUSTOM };
enum cfg_where { W_CFG, W_RULE, W_BUILD };
enum cfg_secret { S_NONE, S_ALL, S_URL };

/* A variable flagged F_RULE is replaced by RATELIMIT_RULES. */
#define F_RULE 1
/* F_BOUNDARY: a boundary of the process (where Redis is, what may run,
 * who is trusted), set by the process environment only. A request
 * parameter of that name is ignored, never parsed: a FastCGI peer or an
 * .htaccess author must not re-point Redis or widen the script root.
 * Variables without it are the limit policy, which a request may override. */
#define F_BOUNDARY 2

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
    PLAIN_VAR("RATELIMIT_METRICS_PATH", T_PATH, CFG(metrics_path), NULL, B),
    PLAIN_VAR("RATELIMIT_METRICS_ALLOW", T_CIDR, CFG(metrics_allow), "127.0.0.0/8 ::1/128", B),
};

#undef B

#define NVARS (sizeof(cfg_vars) / sizeof(cfg_vars[0]))

/* ------------------------------------------------------------ helpers */

static int starts_with_ci(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);

    return strlen(s) >= n && ascii_ncaseeq(s, prefix, n);
}

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* RFC 9110 5.6.2 tchar: what a header field name may contain. */
static int is_tchar(char c)
{
    return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Copy s into out (outsz > SHOW_MAX + 3), control characters as '?' and
 * cut to SHOW_MAX bytes with "..." so a message stays one short line. */
static void shorten(const char *s, size_t len, char *out, size_t outsz)
{
    size_t i, n = len > SHOW_MAX ? SHOW_MAX : len;

    if (n > outsz - 4)
        n = outsz - 4;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (n < len) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

/* The length of val's "SCHEME://" (RFC 3986 3.1: letters, digits, '+',
 * '-', '.'), or 0 when it has none: what comes before a "://" that does
 * not follow a real scheme may be part of a password. */
static size_t scheme_len(const char *val)
{
    size_t n = strspn(val, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");

    return n > 0 && strncmp(val + n, "://", 3) == 0 ? n + 3 : 0;
}

/* A Redis URL as an error message may show it: whatever lies between the
 * scheme's "//" and the last '@' (the userinfo, where the password is)
 * becomes "***". Without an '@', a ':' after the "//" may still be a
 * password that lost its '@' (redis://:secret), and a value without a
 * scheme is no URL at all (perhaps a pasted password): then nothing past
 * the scheme is shown. */
static void mask_url(const char *val, char *out, size_t outsz)
{
    size_t n = scheme_len(val);
    const char *at = strrchr(val, '@'), *rest = val + n;

    if (at != NULL)
        (void)snprintf(out, outsz, "%.*s%s@%s", (int)n, val, rest[0] == ':' ? ":***" : "***",
                       at + 1);
    else if (n == 0 || strchr(rest, ':') != NULL)
        (void)snprintf(out, outsz, "%.*s***", (int)n, val);
    else
        (void)snprintf(out, outsz, "%s", val); /* truncation is fine: shortened anyway */
}

/* "NAME: invalid value 'VALUE': WHY", VALUE masked and shortened. */
static void var_error(struct rl_err *err, const struct cfg_var *v, const char *val, const char *why)
{
    char masked[SHOW_MAX * 2 + 16], shown[SHOW_MAX + 8];
    const char *src = val;

    if (v->secret == S_ALL) {
        src = "***";
    } else if (v->secret == S_URL) {
        mask_url(val, masked, sizeof(masked));
        src = masked;
    }
    shorten(src, strlen(src), shown, sizeof(shown));
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

/* ------------------------------------------------------------ durations */

static const struct {
    const char *suffix;
    long long ms;
} duration_units[] = {{"d", DAY_MS}, {"h", 3600000LL}, {"m", 60000LL}, {"s", 1000LL}, {"ms", 1LL}};

#define NUNITS (sizeof(duration_units) / sizeof(duration_units[0]))
#define UNIT_SECONDS 3 /* index of "s" */

static long long unit_ms(const char *u, size_t len)
{
    size_t i;

    if (len == 0)
        return 1000; /* a plain number is seconds */
    for (i = 0; i < NUNITS; i++) {
        if (strlen(duration_units[i].suffix) == len &&
            memcmp(duration_units[i].suffix, u, len) == 0)
            return duration_units[i].ms;
    }
    return -1;
}

int config_parse_duration(const char *s, long long min_ms, long long max_ms, long long *out_ms)
{
    size_t len, digits = 0;
    long long n, mult;

    if (s == NULL)
        return RL_ERR;
    len = strlen(s);
    while (digits < len && s[digits] >= '0' && s[digits] <= '9')
        digits++;
    if (digits == 0)
        return RL_ERR; /* also refuses a sign, a space or a leading '.' */
    mult = unit_ms(s + digits, len - digits);
    if (mult < 0 || parse_ll(s, digits, 0, LLONG_MAX, &n) != RL_OK)
        return RL_ERR;
    if (max_ms < 0 || n > max_ms / mult)
        return RL_ERR; /* checked before multiplying: no overflow */
    n *= mult;
    if (n < min_ms)
        return RL_ERR;
    *out_ms = n;
    return RL_OK;
}

/* Duration text with the largest unit (from duration_units[first]) that
 * divides ms exactly: 60000 gives "1m" (first 0) or "60s" (UNIT_SECONDS). */
static void fmt_duration(long long ms, size_t first, char *out, size_t outsz)
{
    size_t i;

    for (i = first; i < NUNITS; i++) {
        if (ms % duration_units[i].ms == 0) {
            (void)snprintf(out, outsz, "%lld%s", ms / duration_units[i].ms,
                           duration_units[i].suffix);
            return;
        }
    }
    (void)snprintf(out, outsz, "%lldms", ms);
}

/* A byte count: "1048576", or with a 1024-based unit "512k", "10m", "1g"
 * (either case), within [min, max]. RL_OK or RL_ERR. */
static int parse_size(const char *s, long long min, long long max, long long *out)
{
    size_t len = strlen(s), digits = 0;
    long long n, mult = 1;

    while (digits < len && s[digits] >= '0' && s[digits] <= '9')
        digits++;
    if (digits == 0 || len - digits > 1)
        return RL_ERR;
    if (len - digits == 1) {
        const char *u = strchr("kKmMgG", s[digits]);

        if (u == NULL)
            return RL_ERR;
        mult = 1LL << (10 * (1 + (u - "kKmMgG") / 2));
    }
    if (parse_ll(s, digits, 0, LLONG_MAX, &n) != RL_OK || n > max / mult)
        return RL_ERR; /* checked before multiplying: no overflow */
    n *= mult;
    if (n < min)
        return RL_ERR;
    *out = n;
    return RL_OK;
}

/* Bytes as text with the largest 1024-based unit that divides them. */
static void fmt_size(long long n, char *out, size_t outsz)
{
    const char *units = "gmk";
    int shift;

    for (shift = 30; shift >= 10 && n > 0; shift -= 10, units++) {
        if (n % (1LL << shift) == 0) {
            (void)snprintf(out, outsz, "%lld%c", n >> shift, *units);
            return;
        }
    }
    (void)snprintf(out, outsz, "%lld", n);
}

/* ------------------------------------------------------------ rules: keys and names */

/* header:NAME is read from the CGI variable the server makes of it:
 * HTTP_ + upper case, other characters as '_' (RFC 3875 4.1.18), except
 * Content-Type and Content-Length, which have their own (4.1.2, 4.1.3). */
static void header_param(const char *name, size_t n, char *out)
{
    size_t i, o = 0;

    if (n == 12 && ascii_ncaseeq(name, "Content-Type", n)) {
        memcpy(out, "CONTENT_TYPE", 13);
        return;
    }
    if (n == 14 && ascii_ncaseeq(name, "Content-Length", n)) {
        memcpy(out, "CONTENT_LENGTH", 15);
        return;
    }
    memcpy(out, "HTTP_", 5);
    o = 5;
    for (i = 0; i < n; i++) {
        char c = name[i];

        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        else if (!is_alnum(c))
            c = '_';
        out[o++] = c;
    }
    out[o] = '\0';
}

static int parse_key_name(int kind, const char *name, size_t n, const char **why)
{
    size_t i;

    if (kind == RL_KEY_HEADER) {
        *why = "expected header:NAME with NAME a header field name (at most 123 bytes)";
        if (n == 0 || n > RL_PARAM_MAX - 5)
            return RL_ERR;
        for (i = 0; i < n; i++) {
            if (!is_tchar(name[i]))
                return RL_ERR;
        }
        return RL_OK;
    }
    *why = "expected env:NAME with NAME of A-Z, a-z, 0-9 and _ (at most 128 bytes)";
    if (n == 0 || n > RL_PARAM_MAX)
        return RL_ERR;
    for (i = 0; i < n; i++) {
        if (!is_alnum(name[i]) && name[i] != '_')
            return RL_ERR;
    }
    return RL_OK;
}

/* "ip", "header:NAME" or "env:NAME" (kind words in any case) into the key
 * fields of r. RL_ERR with *why. */
static int parse_key(const char *s, size_t len, struct rl_rule *r, const char **why)
{
    int kind;
    size_t skip;

    if (len == 2 && ascii_ncaseeq(s, "ip", 2)) {
        kind = RL_KEY_IP;
        skip = 2;
    } else if (len >= 7 && ascii_ncaseeq(s, "header:", 7)) {
        kind = RL_KEY_HEADER;
        skip = 7;
    } else if (len >= 4 && ascii_ncaseeq(s, "env:", 4)) {
        kind = RL_KEY_ENV;
        skip = 4;
    } else {
        *why = "expected ip, header:NAME or env:NAME";
        return RL_ERR;
    }
    if (kind != RL_KEY_IP && parse_key_name(kind, s + skip, len - skip, why) != RL_OK)
        return RL_ERR;
    r->key_kind = kind;
    memcpy(r->key_spec, s, len); /* len <= 4 + RL_PARAM_MAX < sizeof(key_spec) */
    r->key_spec[len] = '\0';
    r->key_param[0] = '\0';
    if (kind == RL_KEY_HEADER)
        header_param(s + skip, len - skip, r->key_param);
    if (kind == RL_KEY_ENV) {
        memcpy(r->key_param, s + skip, len - skip); /* <= RL_PARAM_MAX */
        r->key_param[len - skip] = '\0';
    }
    return RL_OK;
}

/* A rule name: [A-Za-z0-9_.-]{1,RL_NAME_MAX}; it is part of Redis keys and
 * of a quoted Structured Field string. */
static int parse_name(const char *s, size_t len, char *out, const char **why)
{
    size_t i;

    *why = "expected 1..64 characters of A-Z, a-z, 0-9, '_', '.' and '-'";
    if (len == 0 || len > RL_NAME_MAX)
        return RL_ERR;
    for (i = 0; i < len; i++) {
        if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
            return RL_ERR;
    }
    memcpy(out, s, len);
    out[len] = '\0';
    return RL_OK;
}

/* ------------------------------------------------------------ RATELIMIT_RULES */

struct token {
    const char *p;
    size_t n;
};

#define RULE_TOKENS_MAX 5 /* NAME KEY LIMIT/WINDOW [ALGORITHM] [burst=N] */

/* Split s[0..len) at white space into at most max+1 tokens (one more
 * than allowed, so the caller can name the first extra one). */
static size_t tokenize(const char *s, size_t len, struct token *t, size_t max)
{
    size_t i = 0, n = 0;

    while (i < len && n <= max) {
        if (is_space(s[i])) {
            i++;
            continue;
        }
        t[n].p = s + i;
        while (i < len && !is_space(s[i]))
            i++;
        t[n].n = (size_t)(s + i - t[n].p);
        n++;
    }
    return n;
}

static void rule_error(struct rl_err *err, const char *item, size_t len, const char *why)
{
    char shown[SHOW_MAX + 8];

    while (len > 0 && is_space(*item))
        item++, len--;
    while (len > 0 && is_space(item[len - 1]))
        len--;
    shorten(item, len, shown, sizeof(shown));
    rl_err_set(err, RL_E_CONFIG, "RATELIMIT_RULES: invalid rule '%s': %s", shown, why);
}

/* "LIMIT/WINDOW" into r. */
static int parse_rate(const struct token *t, struct rl_rule *r, const char **why)
{
    const char *slash = memchr(t->p, '/', t->n);
    char win[32];
    size_t wlen;

    *why = "expected LIMIT/WINDOW, e.g. 100/1m";
    if (slash == NULL)
        return RL_ERR;
    if (parse_ll(t->p, (size_t)(slash - t->p), 1, LIMIT_MAX, &r->limit) != RL_OK) {
        *why = "expected a limit 1..1000000000 before '/'";
        return RL_ERR;
    }
    wlen = t->n - (size_t)(slash - t->p) - 1;
    *why = "expected a window 1ms..365d after '/' (e.g. 500ms, 30s, 1m, 1h, 1d)";
    if (wlen >= sizeof(win))
        return RL_ERR;
    memcpy(win, slash + 1, wlen);
    win[wlen] = '\0';
    return config_parse_duration(win, 1, 365 * DAY_MS, &r->window_ms);
}

/* The optional ALGORITHM and burst=N, in either order, once each. */
static int parse_rule_options(const struct token *t, size_t n, struct rl_rule *r, const char **why)
{
    int have_algo = 0, have_burst = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        if (t[i].n >= 6 && memcmp(t[i].p, "burst=", 6) == 0) {
            *why = "expected burst=N with N 1..1000000000";
            if (have_burst++ || parse_ll(t[i].p + 6, t[i].n - 6, 1, LIMIT_MAX, &r->burst) != RL_OK)
                return RL_ERR;
            continue;
        }
        *why = "expected an algorithm: fixed-window, sliding-log, sliding-window or token-bucket";
        if (have_algo++ || (r->algo = limiter_algo_parse(t[i].p, t[i].n)) < 0)
            return RL_ERR;
    }
    if (have_burst && r->algo != RL_ALGO_TOKEN_BUCKET) {
        *why = "burst=N applies to token-bucket only";
        return RL_ERR;
    }
    if (!have_burst)
        r->burst = r->limit;
    return RL_OK;
}

/* One "NAME KEY LIMIT/WINDOW [ALGORITHM] [burst=N]" item into *r. */
static int parse_rule(const char *item, size_t len, struct rl_rule *r, struct rl_err *err)
{
    struct token t[RULE_TOKENS_MAX + 1];
    size_t n = tokenize(item, len, t, RULE_TOKENS_MAX);
    const char *why = "expected NAME KEY LIMIT/WINDOW [ALGORITHM] [burst=N]";

    memset(r, 0, sizeof(*r));
    r->algo = RL_ALGO_FIXED_WINDOW;
    if (n < 3 || n > RULE_TOKENS_MAX || parse_name(t[0].p, t[0].n, r->name, &why) != RL_OK ||
        parse_key(t[1].p, t[1].n, r, &why) != RL_OK || parse_rate(&t[2], r, &why) != RL_OK ||
        parse_rule_options(t + 3, n - 3, r, &why) != RL_OK) {
        if (n > RULE_TOKENS_MAX)
            why = "too many words: expected NAME KEY LIMIT/WINDOW [ALGORITHM] [burst=N]";
        rule_error(err, item, len, why);
        return RL_ERR;
    }
    return RL_OK;
}

static int is_blank(const char *s, size_t len)
{
    while (len > 0 && is_space(*s))
        s++, len--;
    return len == 0;
}

static int name_taken(const struct rl_rule *rules, size_t n, const char *name)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcmp(rules[i].name, name) == 0)
            return 1;
    }
    return 0;
}

int config_parse_rules(const char *s, struct rl_rule *rules, size_t *n, struct rl_err *err)
{
    size_t count = 0;

    *n = 0;
    while (s != NULL && *s != '\0') {
        const char *semi = strchr(s, ';');
        size_t len = semi != NULL ? (size_t)(semi - s) : strlen(s);

        if (!is_blank(s, len)) {
            if (count == RL_MAX_RULES) {
                rl_err_set(err, RL_E_CONFIG, "RATELIMIT_RULES: too many rules (at most %d)",
                           RL_MAX_RULES);
                return RL_ERR;
            }
            if (parse_rule(s, len, &rules[count], err) != RL_OK)
                return RL_ERR;
            if (name_taken(rules, count, rules[count].name)) {
                rl_err_set(err, RL_E_CONFIG, "RATELIMIT_RULES: duplicate rule name '%s'",
                           rules[count].name);
                return RL_ERR;
            }
            count++;
        }
        s += len + (semi != NULL);
    }
    if (count == 0) {
        rl_err_set(err, RL_E_CONFIG,
                   "RATELIMIT_RULES: no rule given: expected NAME KEY LIMIT/WINDOW [ALGORITHM] "
                   "[burst=N] separated by ';'");
        return RL_ERR;
    }
    *n = count;
    return RL_OK;
}

/* ------------------------------------------------------------ Redis URL */

/* s percent-encoded into out (RFC 3986: unreserved characters as they
 * are), cut at outsz: a user name as the display shows it. */
static void pct_encode(const char *s, char *out, size_t outsz)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (; *s != '\0' && o + 4 <= outsz; s++) {
        unsigned char c = (unsigned char)*s;

        if (is_alnum((char)c) || strchr("-._~", c) != NULL) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

/* The target as logs show it: the user name, never the password. */
static void set_display(struct rl_redis_target *t)
{
    char d[USER_MAX * 3 + HOST_MAX + 64], user[USER_MAX * 3 + 2];

    user[0] = '\0';
    if (t->user != NULL) {
        pct_encode(t->user, user, sizeof(user) - 1);
        memcpy(user + strlen(user), "@", 2);
    }
    if (t->path != NULL)
        (void)snprintf(d, sizeof(d), "unix://%s?db=%d", t->path, t->db);
    else
        (void)snprintf(d, sizeof(d),
                       strchr(t->host, ':') ? "redis://%s[%s]:%d/%d" : "redis://%s%s:%d/%d", user,
                       t->host, t->port, t->db);
    t->display = xstrdup(d); /* sizes are bounded: no truncation */
}

/* unix:///path/redis.sock[?db=N]; s points after "unix://". */
static int parse_unix_url(struct rl_redis_target *t, const char *s, const char **why)
{
    size_t plen = strcspn(s, "?");
    long long db = 0;

    *why = "expected unix:///absolute/path.sock[?db=N] (path at most 107 bytes)";
    if (s[0] != '/' || plen > SUN_PATH_MAX)
        return RL_ERR;
    if (s[plen] == '?') {
        const char *q = s + plen + 1;

        *why = "expected ?db=N with N 0..1000000 after the socket path";
        if (strncmp(q, "db=", 3) != 0 || parse_ll(q + 3, strlen(q + 3), 0, DB_MAX, &db) != RL_OK)
            return RL_ERR;
    }
    t->path = xstrndup(s, plen);
    t->db = (int)db;
    return RL_OK;
}

/* host, [v6] or name: the host part up to ':' or '/'; *rest after it. */
static int parse_url_host(struct rl_redis_target *t, const char *s, const char **rest,
                          const char **why)
{
    size_t n, i;

    *why = "expected a host name or address after redis://";
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        struct rl_addr a;

        *why = "expected an IPv6 address in [brackets]";
        if (end == NULL || cidr_parse_addr(s, (size_t)(end - s + 1), &a) != RL_OK)
            return RL_ERR;
        t->host = xstrndup(s + 1, (size_t)(end - s - 1));
        *rest = end + 1;
        return RL_OK;
    }
    n = strcspn(s, ":/");
    if (n == 0 || n > HOST_MAX)
        return RL_ERR;
    for (i = 0; i < n; i++) {
        if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_')
            return RL_ERR;
    }
    t->host = xstrndup(s, n);
    *rest = s + n;
    return RL_OK;
}

/* [:port][/db] after the host. */
static int parse_url_port_db(struct rl_redis_target *t, const char *s, const char **why)
{
    long long port = 6379, db = 0;

    if (*s == ':') {
        size_t n = strcspn(s + 1, "/");

        *why = "expected a port 1..65535 after ':'";
        if (parse_ll(s + 1, n, 1, 65535, &port) != RL_OK)
            return RL_ERR;
        s += 1 + n;
    }
    if (*s == '/') {
        *why = "expected a database number 0..1000000 after '/'";
        if (s[1] != '\0' && parse_ll(s + 1, strlen(s + 1), 0, DB_MAX, &db) != RL_OK)
            return RL_ERR;
    } else if (*s != '\0') {
        *why = "expected redis://[:password@]host[:port][/db]";
        return RL_ERR;
    }
    t->port = (int)port;
    t->db = (int)db;
    return RL_OK;
}

/* s[0..n) percent-decoded (RFC 3986 2.1) into a new string (caller owns),
 * or NULL when an escape is malformed or decodes to NUL, or the result is
 * longer than max. */
static char *pct_decode(const char *s, size_t n, size_t max)
{
    char *out = xmalloc(n + 1);
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        int hi, lo;

        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        if (i + 2 >= n)
            goto bad; /* "%" or "%X" at the end */
        hi = hex_value(s[i + 1]);
        lo = hex_value(s[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            goto bad;
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    if (o <= max)
        return out;
bad:
    free(out);
    return NULL;
}

/* "[USER]:PASSWORD" (userinfo, s[0..n)) into t->user and t->password,
 * both percent-decoded; an empty user is the default user. */
static int parse_userinfo(struct rl_redis_target *t, const char *s, size_t n, const char **why)
{
    const char *colon = memchr(s, ':', n);
    size_t ulen;

    *why = "expected [USER]:PASSWORD@ before the host";
    if (colon == NULL)
        return RL_ERR;
    ulen = (size_t)(colon - s);
    *why = "invalid %-escape, or too long, in the user name or password before '@'";
    if (ulen > 0 && (t->user = pct_decode(s, ulen, USER_MAX)) == NULL)
        return RL_ERR;
    if (n > ulen + 1 && (t->password = pct_decode(colon + 1, n - ulen - 1, PASSWORD_MAX)) == NULL)
        return RL_ERR;
    return RL_OK;
}

/* redis://[[USER]:PASSWORD@]host[:port][/db]; s points after "redis://".
 * The userinfo runs to the last '@' (a host has none), so an unencoded '@'
 * in a password still works. */
static int parse_tcp_url(struct rl_redis_target *t, const char *s, const char **why)
{
    const char *at = strrchr(s, '@');

    if (at != NULL) {
        if (parse_userinfo(t, s, (size_t)(at - s), why) != RL_OK)
            return RL_ERR;
        s = at + 1;
    }
    if (parse_url_host(t, s, &s, why) != RL_OK)
        return RL_ERR;
    return parse_url_port_db(t, s, why);
}

static int set_redis_url(struct cfg_build *b, const char *val, const char **why)
{
    struct rl_redis_target *t = &b->cfg->redis;
    int rc;

    *why = "expected redis://[[USER]:PASSWORD@]host[:port][/db] or "
           "unix:///path/redis.sock[?db=N]";
    if (strlen(val) > URL_MAX)
        return RL_ERR;
    if (starts_with_ci(val, "unix://"))
        rc = parse_unix_url(t, val + 7, why);
    else if (starts_with_ci(val, "redis://"))
        rc = parse_tcp_url(t, val + 8, why);
    else
        return RL_ERR;
    if (rc == RL_OK)
        set_display(t);
    return rc;
}

static int set_redis_password(struct cfg_build *b, const char *val, const char **why)
{
    *why = "expected at most 1024 bytes";
    if (strlen(val) > PASSWORD_MAX)
        return RL_ERR;
    free(b->cfg->redis.password);
    b->cfg->redis.password = xstrdup(val);
    return RL_OK;
}

static int set_sentinel_password(struct cfg_build *b, const char *val, const char **why)
{
    *why = "expected at most 1024 bytes";
    if (strlen(val) > PASSWORD_MAX)
        return RL_ERR;
    free(b->cfg->redis.sentinel_password);
    b->cfg->redis.sentinel_password = xstrdup(val);
    return RL_OK;
}

/* ------------------------------------------------------------ other setters */

static int set_algorithm(struct cfg_build *b, const char *val, const char **why)
{
    int algo = limiter_algo_parse(val, strlen(val));

    *why = "expected one of fixed-window, sliding-log, sliding-window, token-bucket";
    if (algo < 0)
        return RL_ERR;
    b->single.algo = algo;
    return RL_OK;
}

static int set_key(struct cfg_build *b, const char *val, const char **why)
{
    return parse_key(val, strlen(val), &b->single, why);
}

static int set_name(struct cfg_build *b, const char *val, const char **why)
{
    return parse_name(val, strlen(val), b->single.name, why);
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
        fmt_duration(v->min, 0, lo, sizeof(lo));
        fmt_duration(v->max, 0, hi, sizeof(hi));
        (void)snprintf(b->why, sizeof(b->why),
                       "expected a duration %s..%s (seconds, or with a unit: 500ms, 30s, 1m, "
                       "1h, 1d)",
                       lo, hi);
        rc = config_parse_duration(val, v->min, v->max, &n);
    } else if (v->type == T_SIZE) {
        fmt_size(v->min, lo, sizeof(lo));
        fmt_size(v->max, hi, sizeof(hi));
        (void)snprintf(b->why, sizeof(b->why),
                       "expected a size %s..%s (bytes, or with a unit: 512k, 10m, 1g)", lo, hi);
        rc = parse_size(val, v->min, v->max, &n);
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

/* RATELIMIT_STORE=buckets has no sliding-log: its state is a set of
 * timestamps per client, not a number a shared hash field could hold. */
static int check_store(const struct rl_config *cfg, struct rl_err *err)
{
    size_t i;

    if (cfg->store != RL_STORE_BUCKETS)
        return RL_OK;
    for (i = 0; i < cfg->nrules; i++) {
        if (cfg->rules[i].algo == RL_ALGO_SLIDING_LOG) {
            rl_err_set(err, RL_E_CONFIG,
                       "RATELIMIT_STORE: 'buckets' does not support sliding-log (rule '%s'): "
                       "use RATELIMIT_STORE=keys or another algorithm",
                       cfg->rules[i].name);
            return RL_ERR;
        }
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
        return check_store(cfg, err);
    }
    /* RATELIMIT_BURST defaults to RATELIMIT_LIMIT: a full bucket holds
     * one window's worth, the behaviour of the other algorithms. */
    b->single.burst = b->burst > 0 ? b->burst : b->single.limit;
    cfg->rules[0] = b->single;
    cfg->nrules = 1;
    cfg->from_rules = 0;
    return check_store(cfg, err);
}

/* vals[i] = the value of cfg_vars[i] in envp, the last one winning. */
static void collect(char *const *envp, const char **vals)
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
    const char *vals[NVARS] = {NULL};
    struct cfg_build b;
    size_t i;

    memset(&b, 0, sizeof(b));
    b.cfg = xcalloc(1, sizeof(*b.cfg));
    collect(envp, vals);
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
    free(cfg->redis.host);
    free(cfg->redis.path);
    free(cfg->redis.user);
    free(cfg->redis.password);
    free(cfg->redis.display);
    free(cfg->redis.sentinel_password);
    cidr_list_free(&cfg->trusted_proxies);
    cidr_list_free(&cfg->allow);
    cidr_list_free(&cfg->deny);
    free(cfg->backend);
    free(cfg->script_root);
    free(cfg->metrics_path);
    cidr_list_free(&cfg->metrics_allow);
    free(cfg);
}

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
    for (i = 0; i < NVARS; i++) {
        size_t d = edit_distance(name, n, cfg_vars[i].name, strlen(cfg_vars[i].name));

        if (d < best) {
            best = d;
            found = cfg_vars[i].name;
        }
    }
    return found;
}

static size_t name_len(const char *e)
{
    const char *eq = strchr(e, '=');

    return eq != NULL ? (size_t)(eq - e) : strlen(e);
}

/* 1 when envp[0..i) already holds the name of envp[i]. */
static int seen_before(char *const *envp, size_t i, size_t n)
{
    size_t j;

    for (j = 0; j < i; j++) {
        if (name_len(envp[j]) == n && memcmp(envp[j], envp[i], n) == 0)
            return 1;
    }
    return 0;
}

/* RATELIMIT_RULES replaces the single-rule variables: say so, since an
 * administrator who sets both otherwise wonders why LIMIT does nothing. */
static void warn_replaced(char *const *envp)
{
    const char *vals[NVARS] = {NULL};
    const struct cfg_var *rules = var_find("RATELIMIT_RULES", 15);
    size_t i;

    collect(envp, vals);
    if (rules == NULL || vals[rules - cfg_vars] == NULL || vals[rules - cfg_vars][0] == '\0')
        return;
    for (i = 0; i < NVARS; i++) {
        if ((cfg_vars[i].flags & F_RULE) && vals[i] != NULL && vals[i][0] != '\0')
            rl_log(RL_LOG_WARN, "%s is ignored: RATELIMIT_RULES is set", cfg_vars[i].name);
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
        n = name_len(e);
        if (var_find(e, n) != NULL || seen_before(envp, i, n))
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
    unsigned char ignored_said[NVARS]; /* 1: "request parameter X ignored" logged */
    int none_said;                     /* 1: "RATELIMIT_OVERRIDES=none" logged */
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
    const struct cfg_var *v = var_find(p, name_len(p));
    int none = cc->base->overrides == RL_OVERRIDES_NONE;

    if (!none && (v == NULL || !(v->flags & F_BOUNDARY)))
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
    if (!cc->ignored_said[v - cfg_vars])
        rl_log(RL_LOG_WARN,
               "request parameter %s ignored: it is set by the process environment only", v->name);
    cc->ignored_said[v - cfg_vars] = 1;
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

        fmt_duration(r->window_ms, UNIT_SECONDS, win, sizeof(win));
        out_printf(o, "%s%s(%s %lld/%s %s", i ? "," : "", r->name, r->key_spec, r->limit, win,
                   limiter_algo_name(r->algo));
        if (r->algo == RL_ALGO_TOKEN_BUCKET)
            out_printf(o, " burst=%lld", r->burst);
        out_printf(o, ")");
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
