/*
 * rlconfig.h - the configuration: every RATELIMIT_* variable (README's
 * table), parsed and validated by one declarative table in config.c.
 *
 * The process environment gives the base configuration. A FastCGI request
 * may carry RATELIMIT_* params (Apache SetEnv, lighttpd setenv) that
 * override its limit policy for that request only (never a boundary: Redis,
 * the script root, the backend, the mode...; see F_BOUNDARY in confint.h);
 * config_for_request() returns a cached parse for each distinct set of
 * overrides so the hot path does no parsing.
 * A struct rl_config is immutable once built: callers get const pointers.
 */
#ifndef RL_CONFIG_H
#define RL_CONFIG_H

#include <stddef.h>

#include "algo.h"
#include "cidr.h"
#include "redisurl.h"
#include "rl.h"

#define RL_MAX_RULES 8
#define RL_NAME_MAX 64   /* rule / policy name: [A-Za-z0-9_.-] */
#define RL_PARAM_MAX 128 /* CGI variable name a key is read from */
#define RL_PREFIX_MAX 128
/* RATELIMIT_METRICS_FILE's default: tmpfs on every Linux, so counting
 * works without setup; the first process to count creates it (0600). */
#define METRICS_FILE_DEFAULT "/dev/shm/fcgi-ratelimit.metrics"
#define RL_KEY_MAX (RL_PREFIX_MAX + RL_NAME_MAX + 2 + 64 + 1 + 1) /* PREFIX NAME ":{" H "}" */

/* RATELIMIT_STORE: how rule state is laid out in Redis. keys: one key per
 * client and rule (PREFIX NAME ":{" hash "}"); buckets: clients share hashes
 * (see src/lua/buckets.lua), about 70 rather than 180 bytes a client, no
 * sliding-log. */
enum rl_store { RL_STORE_KEYS = 0, RL_STORE_BUCKETS, RL_STORE_COUNT };

enum rl_key_kind { RL_KEY_IP = 0, RL_KEY_HEADER, RL_KEY_ENV };
enum rl_missing { RL_MISSING_IP = 0, RL_MISSING_SKIP };
enum rl_fail { RL_FAIL_OPEN = 0, RL_FAIL_CLOSED };
enum rl_mode { RL_MODE_AUTO = 0, RL_MODE_WRAPPER, RL_MODE_AUTHORIZER };
/* RATELIMIT_OVERRIDES: policy = request params may override the limit
 * policy; none = they override nothing. */
enum rl_overrides { RL_OVERRIDES_POLICY = 0, RL_OVERRIDES_NONE };
/* RATELIMIT_BODY: json, or RFC 9457 application/problem+json. */
enum rl_body { RL_BODY_JSON = 0, RL_BODY_PROBLEM };

/* RATELIMIT_HEADERS as flags: all = both, none = 0. */
#define RL_HDR_IETF 1
#define RL_HDR_X 2

struct rl_rule {
    char name[RL_NAME_MAX + 1];
    int key_kind;                     /* enum rl_key_kind */
    char key_spec[RL_PARAM_MAX + 16]; /* as configured: "ip", "header:X-Api-Key" */
    /* The CGI variable the identity is read from: header:X-Api-Key gives
     * HTTP_X_API_KEY (RFC 3875 4.1.18), env:REMOTE_USER gives REMOTE_USER,
     * "" for ip. */
    char key_param[RL_PARAM_MAX + 1];
    long long limit;     /* requests per window, >= 1 */
    long long window_ms; /* >= 1 */
    int algo;            /* enum rl_algo (algo.h) */
    long long burst;     /* token-bucket capacity; = limit when not given */
    /* RATELIMIT_RULES' word shadow: checked and charged like any rule, but
     * never denies (over its limit it is just not charged), sends no
     * header and is never the rule an answer describes. */
    int shadow;
};

struct rl_config {
    struct rl_redis_target redis;
    int redis_timeout_ms;

    struct rl_rule rules[RL_MAX_RULES];
    size_t nrules;  /* >= 1 */
    int from_rules; /* 1 when RATELIMIT_RULES defined the rules */

    int key_missing; /* enum rl_missing */
    char prefix[RL_PREFIX_MAX + 1];
    int store;  /* enum rl_store */
    int status; /* 429 or 503 */
    int fail;   /* enum rl_fail */
    struct rl_cidr_list trusted_proxies;
    int ipv6_prefix; /* 1..128 */
    struct rl_cidr_list allow, deny;
    int dry_run;
    int headers; /* RL_HDR_* flags */

    char *backend;     /* owned, NULL when unset */
    char *script_root; /* owned, NULL when unset */
    long long backend_timeout_ms;
    int mode;           /* enum rl_mode */
    int log_level;      /* enum rl_log_level */
    long long max_body; /* RATELIMIT_MAX_BODY: largest request body relayed, bytes (413 beyond) */
    int overrides;      /* enum rl_overrides: RATELIMIT_OVERRIDES */
    int body;           /* enum rl_body: RATELIMIT_BODY */
    double near_limit;  /* RATELIMIT_NEAR_LIMIT: 0 < f <= 1 */
    char *metrics_path; /* RATELIMIT_METRICS_PATH: owned, NULL when unset */
    char *metrics_file; /* RATELIMIT_METRICS_FILE: the host's counter file, owned */
    struct rl_cidr_list metrics_allow; /* RATELIMIT_METRICS_ALLOW */
};

/*
 * Build a configuration from a NULL-terminated "NAME=VALUE" array (the
 * process environment, optionally followed by overrides: for a name given
 * twice, the LAST one wins). Only RATELIMIT_* names are read.
 * Returns a new config (caller owns, config_free()) or NULL with *err set
 * (kind RL_E_CONFIG, message naming the variable and the value, e.g.
 * "RATELIMIT_LIMIT: invalid value 'abc': expected an integer 1..1000000000").
 * The password never appears in a message.
 */
struct rl_config *config_parse(char *const *envp, struct rl_err *err);

/* Release a config from config_parse(); NULL is a no-op. */
void config_free(struct rl_config *cfg);

/*
 * Warn (rl_log WARN) once for each RATELIMIT_* name in envp that is not a
 * known variable, naming the closest known one ("did you mean ...?").
 */
void config_warn_unknown(char *const *envp);

/*
 * Per-request configuration cache. base is built from the process
 * environment at start and owned by the cache.
 */
struct config_cache;

/* New cache around the process environment envp; NULL with *err on error
 * in the process-level configuration (then nothing is owned). */
struct config_cache *config_cache_new(char *const *envp, struct rl_err *err);
void config_cache_free(struct config_cache *cc);

/* The process-level config (borrowed, valid until config_cache_free). */
const struct rl_config *config_cache_base(const struct config_cache *cc);

/*
 * The config for one request whose FastCGI params are params: the base
 * when params hold no RATELIMIT_* name that may override, else a cached
 * parse of the base environment overridden by those params (re-parsed only
 * when the set of RATELIMIT_* name=value pairs changes). A param naming a
 * boundary variable, or any RATELIMIT_* param under RATELIMIT_OVERRIDES=none,
 * is ignored (not parsed) and named once per cache, i.e. per worker, in
 * the log (rl_log WARN, never its value). Borrowed: valid until the next
 * call. NULL with *err when the overrides are invalid (answer 500).
 */
const struct rl_config *config_for_request(struct config_cache *cc, char *const *params,
                                           struct rl_err *err);

/*
 * Parse a duration: "90" (seconds), "500ms", "30s", "1m", "1h", "1d" into
 * milliseconds within [min_ms, max_ms]. RL_OK or RL_ERR. Exposed for tests.
 */
int config_parse_duration(const char *s, long long min_ms, long long max_ms, long long *out_ms);

/*
 * Parse RATELIMIT_RULES into rules[] and *n: "NAME KEY LIMIT/WINDOW [ALGORITHM]
 * [burst=N] [shadow]" separated by ';'. RL_OK, or RL_ERR with *err naming the rule.
 */
int config_parse_rules(const char *s, struct rl_rule *rules, size_t *n, struct rl_err *err);

/* One-line summary for --check and startup debug logs (no password). */
int config_summary(const struct rl_config *cfg, char *out, size_t outsz);

/*
 * The effective configuration for --check --verbose, read from envp (the
 * process environment, before its secrets are wiped): one line for each
 * variable of config.c's table, in the table's order,
 *
 *   NAME=VALUE (SOURCE)
 *
 * SOURCE is "environment" when envp sets NAME to a non-empty value (the
 * last one wins, as in config_parse()), else "default" (unset or empty:
 * VALUE is then the default, or "unset" for a variable without one).
 * Spaces after VALUE line the sources up for lines up to 48 bytes, one
 * space after longer ones. RATELIMIT_REDIS_PASSWORD and
 * RATELIMIT_SENTINEL_PASSWORD show "***" when set, the password in
 * RATELIMIT_REDIS_URL is "***" (redisurl_mask_password()); control
 * characters show as '?', a value is cut at 4096 bytes with "...".
 * Values are not validated: an invalid one is listed as it is (its
 * secrets masked all the same), so --check can list a configuration that
 * config_parse() refuses. Returns a new string, caller owns (free()).
 */
char *config_list(char *const *envp);

#endif
