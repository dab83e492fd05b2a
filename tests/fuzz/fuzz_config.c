/*
 * fuzz_config.c - libFuzzer target for the configuration parser
 * (rlconfig.h: src/config.c and its rooms rules.c, units.c, confcache.c,
 * redisurl.c): what an administrator, or a FastCGI request carrying
 * RATELIMIT_* params, can put into the environment.
 *
 * The input is split into lines; each line is one "NAME=VALUE" entry of a
 * synthetic environment given to config_parse() and config_warn_unknown().
 * The lines up to the first empty one form the process environment of a
 * config cache, those after it a request's params for config_for_request().
 * Every value is also fed to config_parse_rules() and
 * config_parse_duration(), so RATELIMIT_RULES and RATELIMIT_WINDOW grammars
 * get inputs of their own, and wrapped around a marker password into a
 * Redis URL whose error message must never show that password. Results are
 * checked against rlconfig.h's promises (a request never changes a
 * boundary); logging goes to a sink that drops it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rlconfig.h"
#include "log.h"
#include "rl.h"

#define FUZZ_MAX_LINES 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int drop_log(void *ctx, const char *line, int len)
{
    (void)ctx;
    (void)line;
    (void)len;
    return 0;
}

static int holds(const char *s, const char *pw)
{
    return s != NULL && strstr(s, pw) != NULL;
}

/* 1 when pw is also part of what the display form must show: the host
 * or socket path, a sentinel's or seed node's host, the master's name. */
static int shown_elsewhere(const struct rl_redis_target *t, const char *pw)
{
    int i;

    if (holds(t->host, pw) || holds(t->path, pw) || holds(t->master, pw))
        return 1;
    for (i = 0; i < t->nnodes; i++)
        if (holds(t->nodes[i].host, pw))
            return 1;
    return 0;
}

/* Check what rlconfig.h promises of a parsed configuration. */
static void check_config(const struct rl_config *cfg)
{
    char summary[1024];
    const char *pw, *shown;
    size_t i;

    if (cfg->nrules < 1 || cfg->nrules > RL_MAX_RULES)
        abort();
    for (i = 0; i < cfg->nrules; i++) {
        const struct rl_rule *r = &cfg->rules[i];

        if (r->limit < 1 || r->window_ms < 1 || r->algo < 0 || r->algo >= RL_ALGO_COUNT)
            abort();
        if (memchr(r->name, '\0', sizeof(r->name)) == NULL)
            abort();
    }
    if (cfg->status != 429 && cfg->status != 503)
        abort();
    if (cfg->ipv6_prefix < 1 || cfg->ipv6_prefix > 128)
        abort();
    summary[sizeof(summary) - 1] = 'x';
    if (config_summary(cfg, summary, sizeof(summary)) == RL_OK &&
        memchr(summary, '\0', sizeof(summary)) == NULL)
        abort(); /* the summary is always terminated */
    if (cfg->redis.display == NULL)
        abort();
    /* The password never shows in the display form of the URL (unless it
     * is also part of the host or path, which the display must show; the
     * user name before the '@' may be anything). */
    pw = cfg->redis.password;
    shown = cfg->redis.display;
    if (cfg->redis.user != NULL && (shown = strchr(shown, '@')) == NULL)
        abort(); /* the user name is shown, percent-encoded, before an '@' */
    if (pw != NULL && strlen(pw) >= 6 && strspn(pw, "0123456789") != strlen(pw) &&
        strstr(shown, pw) != NULL && !shown_elsewhere(&cfg->redis, pw))
        abort();
    pw = cfg->redis.sentinel_password;
    if (pw != NULL && strlen(pw) >= 6 && strspn(pw, "0123456789") != strlen(pw) &&
        strstr(cfg->redis.display, pw) != NULL && !shown_elsewhere(&cfg->redis, pw) &&
        !holds(cfg->redis.user, pw))
        abort();
}

static int str_same(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* A request's config keeps every boundary of the process's (rlconfig.h:
 * a boundary param is ignored). */
static void check_boundaries(const struct rl_config *base, const struct rl_config *rc)
{
    if (!str_same(base->redis.display, rc->redis.display) ||
        !str_same(base->redis.password, rc->redis.password) ||
        !str_same(base->redis.user, rc->redis.user) || !str_same(base->backend, rc->backend) ||
        !str_same(base->script_root, rc->script_root) ||
        !str_same(base->metrics_path, rc->metrics_path) || base->mode != rc->mode ||
        base->store != rc->store || base->max_body != rc->max_body ||
        base->overrides != rc->overrides || base->redis_timeout_ms != rc->redis_timeout_ms ||
        strcmp(base->prefix, rc->prefix) != 0 || base->trusted_proxies.n != rc->trusted_proxies.n)
        abort();
    if (base->overrides == RL_OVERRIDES_NONE && rc != base)
        abort();
}

#define MARK "Pw7qXz"

/* SCHEME v[0..half) ":" MARK "@" v[half..): when it is refused, the
 * message must not hold MARK (unless v itself does). */
static void fuzz_url_secret(const char *val)
{
    static const char *const schemes[] = {"redis://", "rediss://",         "unix://",
                                          "",         "redis+sentinel://", "redis+cluster://"};
    size_t len = strlen(val), half = len / 2;
    char *kv, *env[2];
    struct rl_config *cfg;
    struct rl_err err;
    const char *scheme = schemes[len % 6];
    size_t n = 20 + strlen(scheme) + len + sizeof(MARK) + 2;

    if (strstr(val, MARK) != NULL || (kv = malloc(n)) == NULL)
        return;
    (void)snprintf(kv, n, "RATELIMIT_REDIS_URL=%s%.*s:" MARK "@%s", scheme, (int)half, val,
                   val + half);
    env[0] = kv;
    env[1] = NULL;
    rl_err_clear(&err);
    cfg = config_parse(env, &err);
    if (cfg == NULL && strstr(err.msg, MARK) != NULL) {
        fprintf(stderr, "password shown: %s\n", err.msg);
        abort();
    }
    /* A unix:// URL has no password: its path may hold anything. */
    if (cfg != NULL && cfg->redis.path == NULL && strstr(cfg->redis.display, MARK) != NULL)
        abort();
    config_free(cfg);
    free(kv);
}

/* The rules and duration grammars on one value. */
static void fuzz_value(const char *val)
{
    struct rl_rule rules[RL_MAX_RULES];
    struct rl_err err;
    size_t n = 0;
    long long ms = -1;

    rl_err_clear(&err);
    if (config_parse_rules(val, rules, &n, &err) == RL_OK) {
        if (n < 1 || n > RL_MAX_RULES)
            abort();
    } else if (err.msg[0] == '\0') {
        abort(); /* an error always says why */
    }
    if (config_parse_duration(val, 1, 86400000LL * 366, &ms) == RL_OK &&
        (ms < 1 || ms > 86400000LL * 366))
        abort();
}

/* Split data into NUL-terminated lines in buf; env gets the lines before
 * the first empty one, params the rest. Both arrays end with NULL. */
static void split_lines(char *buf, size_t size, char **env, char **params)
{
    size_t ne = 0, np = 0;
    char *p = buf, *end = buf + size;
    int in_params = 0;

    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));

        if (nl == NULL)
            nl = end;
        *nl = '\0';
        if (nl == p)
            in_params = 1;
        else if (in_params && np < FUZZ_MAX_LINES)
            params[np++] = p;
        else if (!in_params && ne < FUZZ_MAX_LINES)
            env[ne++] = p;
        p = nl + 1;
    }
    env[ne] = NULL;
    params[np] = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *env[FUZZ_MAX_LINES + 1], *params[FUZZ_MAX_LINES + 1], *all[2 * FUZZ_MAX_LINES + 1];
    char *buf = malloc(size + 1);
    struct config_cache *cc;
    struct rl_config *cfg;
    struct rl_err err;
    size_t i, n = 0;

    if (buf == NULL)
        return 0;
    log_set_sink(drop_log, NULL);
    log_set_level(RL_LOG_DEBUG);
    memcpy(buf, data, size);
    buf[size] = '\0';
    split_lines(buf, size, env, params);

    for (i = 0; env[i] != NULL; i++)
        all[n++] = env[i];
    for (i = 0; params[i] != NULL; i++)
        all[n++] = params[i];
    all[n] = NULL;

    /* The typo finder is an edit distance against every known name: run
     * it on one input in eight so that it does not eat the time budget. */
    if ((size & 7) == 0)
        config_warn_unknown(all);
    cfg = config_parse(all, &err);
    if (cfg != NULL)
        check_config(cfg);
    config_free(cfg);

    cc = config_cache_new(env, &err);
    if (cc != NULL) {
        const struct rl_config *rc;

        check_config(config_cache_base(cc));
        rc = config_for_request(cc, params, &err);
        if (rc != NULL) {
            check_config(rc);
            check_boundaries(config_cache_base(cc), rc);
        }
        /* The same params again come from the cache. */
        if (config_for_request(cc, params, &err) != rc && rc != NULL)
            abort();
        config_cache_free(cc);
    }

    for (i = 0; all[i] != NULL; i++) {
        const char *eq = strchr(all[i], '=');

        fuzz_value(eq != NULL ? eq + 1 : all[i]);
        if (i < 4)
            fuzz_url_secret(eq != NULL ? eq + 1 : all[i]);
    }
    free(buf);
    return 0;
}
