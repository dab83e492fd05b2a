/*
 * test_config.c - the RATELIMIT_* table: defaults, every variable with good
 * and bad values, durations, RATELIMIT_RULES, the Redis URL, secrecy of the
 * password, later-wins overrides, unknown-name warnings, the per-request
 * cache, the --check summary and the --check --verbose listing.
 *
 * Environments are built from string literals copied to the heap and
 * scribbled over and freed right after parsing, so that a config that kept
 * a pointer into its envp shows up under valgrind / ASan.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rlconfig.h"
#include "confint.h"
#include "limiter.h"
#include "log.h"
#include "rl.h"
#include "testhelp.h"
#include "util.h"

#define ENV(...) ((const char *const[]){__VA_ARGS__, NULL})
#define EMPTY_ENV ((const char *const[]){NULL})

/* A heap copy of a NULL-terminated list of strings. */
static char **env_dup(const char *const *list)
{
    size_t i, n = 0;
    char **e;

    while (list[n] != NULL)
        n++;
    e = xcalloc(n + 1, sizeof(*e));
    for (i = 0; i < n; i++)
        e[i] = xstrdup(list[i]);
    return e;
}

/* Overwrite and free: anything still pointing in reads garbage. */
static void env_burn(char **e)
{
    size_t i;

    for (i = 0; e[i] != NULL; i++) {
        memset(e[i], 'Z', strlen(e[i]));
        free(e[i]);
    }
    free(e);
}

static struct rl_config *parse(const char *const *list, struct rl_err *err)
{
    char **e = env_dup(list);
    struct rl_config *cfg = config_parse(e, err);

    env_burn(e);
    return cfg;
}

/* The config of the last with*() call, freed by the next one. */
static struct rl_config *cur;
static struct rl_err cur_err;

static struct rl_config *with(const char *const *list)
{
    config_free(cur);
    rl_err_clear(&cur_err);
    cur = parse(list, &cur_err);
    return cur;
}

static struct rl_config *with1(const char *kv)
{
    return with(ENV(kv));
}

/* 1 when kv is refused with a one-line message that starts with its name
 * and contains part (when not NULL). */
static int rejects(const char *kv, const char *part)
{
    size_t n = strcspn(kv, "=");

    if (with1(kv) != NULL) {
        printf("# accepted %s\n", kv);
        return 0;
    }
    if (cur_err.kind != RL_E_CONFIG || strncmp(cur_err.msg, kv, n) != 0 ||
        strncmp(cur_err.msg + n, ": ", 2) != 0 || strchr(cur_err.msg, '\n') != NULL ||
        (part != NULL && strstr(cur_err.msg, part) == NULL)) {
        printf("# %s: unexpected message: %s\n", kv, cur_err.msg);
        return 0;
    }
    return 1;
}

/* 1 when every kv of a NULL-terminated list is refused. */
static int rejects_all(const char *const *list)
{
    int ok = 1;

    for (; *list != NULL; list++)
        ok &= rejects(*list, NULL);
    return ok;
}

static long long dur(const char *s, long long min, long long max)
{
    long long v = -42;

    return config_parse_duration(s, min, max, &v) == RL_OK ? v : -1;
}

static void test_defaults(void)
{
    const struct rl_config *c = with(EMPTY_ENV);
    const struct rl_rule *r = c ? &c->rules[0] : NULL;

    test_cond("defaults parse", c != NULL);
    if (c == NULL)
        return;
    test_cond("default redis", c->redis.host && strcmp(c->redis.host, "127.0.0.1") == 0 &&
                                   c->redis.port == 6379 && c->redis.db == 0 &&
                                   c->redis.path == NULL && c->redis.password == NULL);
    test_cond("default display", strcmp(c->redis.display, "redis://127.0.0.1:6379/0") == 0);
    test_cond("default timeout", c->redis_timeout_ms == 100);
    test_cond("default one rule", c->nrules == 1 && c->from_rules == 0);
    test_cond("default rule", strcmp(r->name, "default") == 0 && r->key_kind == RL_KEY_IP &&
                                  strcmp(r->key_spec, "ip") == 0 && r->key_param[0] == '\0' &&
                                  r->limit == 60 && r->window_ms == 60000 &&
                                  r->algo == RL_ALGO_FIXED_WINDOW && r->burst == 60);
    test_cond("default misc", c->key_missing == RL_MISSING_IP &&
                                  strcmp(c->prefix, "ratelimit:") == 0 && c->status == 429 &&
                                  c->fail == RL_FAIL_OPEN && c->ipv6_prefix == 64 &&
                                  c->dry_run == 0 && c->headers == (RL_HDR_IETF | RL_HDR_X));
    test_cond("default lists empty",
              c->trusted_proxies.n == 0 && c->allow.n == 0 && c->deny.n == 0);
    test_cond("default relay", c->backend == NULL && c->script_root == NULL &&
                                   c->backend_timeout_ms == 30000 && c->mode == RL_MODE_AUTO &&
                                   c->log_level == RL_LOG_WARN);
    {
        struct rl_config *n = config_parse(NULL, NULL);

        test_cond("NULL envp is defaults", n != NULL && n->rules[0].limit == 60);
        config_free(n);
    }
    config_free(NULL);
}

static void test_duration(void)
{
    long long v = 7;
    const long long big = 365 * 86400000LL;

    test_cond("dur plain seconds", dur("90", 1, big) == 90000);
    test_cond("dur ms", dur("500ms", 1, big) == 500);
    test_cond("dur s", dur("30s", 1, big) == 30000);
    test_cond("dur m", dur("1m", 1, big) == 60000);
    test_cond("dur h", dur("2h", 1, big) == 7200000);
    test_cond("dur d", dur("1d", 1, big) == 86400000);
    test_cond("dur max", dur("365d", 1, big) == big);
    test_cond("dur over max", dur("366d", 1, big) == -1);
    test_cond("dur below min", dur("999ms", 1000, big) == -1);
    test_cond("dur at min", dur("1000ms", 1000, big) == 1000);
    test_cond("dur empty", dur("", 1, big) == -1);
    test_cond("dur zero", dur("0", 1, big) == -1);
    test_cond("dur zero ms", dur("0ms", 1, big) == -1);
    test_cond("dur bad unit", dur("5x", 1, big) == -1);
    test_cond("dur upper unit", dur("5S", 1, big) == -1);
    test_cond("dur negative", dur("-1", -100000, big) == -1);
    test_cond("dur fraction", dur("1.5s", 1, big) == -1);
    test_cond("dur overflow", dur("99999999999999999999d", 1, big) == -1);
    test_cond("dur mult overflow", dur("9223372036854775807d", 1, 9223372036854775807LL) == -1);
    test_cond("dur unit only", dur("ms", 1, big) == -1);
    test_cond("dur space", dur("5 s", 1, big) == -1);
    test_cond("dur lead space", dur(" 5s", 1, big) == -1);
    test_cond("dur plus", dur("+5s", 1, big) == -1);
    test_cond("dur two units", dur("1m30s", 1, big) == -1);
    test_cond("dur msx", dur("5msx", 1, big) == -1);
    test_cond("dur NULL", config_parse_duration(NULL, 1, big, &v) == RL_ERR && v == 7);
    test_cond("dur error keeps out", config_parse_duration("x", 1, big, &v) == RL_ERR && v == 7);
}

static void test_numbers(void)
{
    test_cond("limit 5",
              with1("RATELIMIT_LIMIT=5") && cur->rules[0].limit == 5 && cur->rules[0].burst == 5);
    test_cond("limit max",
              with1("RATELIMIT_LIMIT=1000000000") && cur->rules[0].limit == 1000000000LL);
    test_cond("limit abc message",
              rejects("RATELIMIT_LIMIT=abc", NULL) &&
                  strcmp(cur_err.msg, "RATELIMIT_LIMIT: invalid value 'abc': "
                                      "expected an integer 1..1000000000") == 0);
    test_cond("limit bad values",
              rejects_all(ENV("RATELIMIT_LIMIT=0", "RATELIMIT_LIMIT=-1",
                              "RATELIMIT_LIMIT=1000000001", "RATELIMIT_LIMIT=1e3",
                              "RATELIMIT_LIMIT= 5", "RATELIMIT_LIMIT=5 ", "RATELIMIT_LIMIT=0x10")));
    test_cond("window 500ms", with1("RATELIMIT_WINDOW=500ms") && cur->rules[0].window_ms == 500);
    test_cond("window plain", with1("RATELIMIT_WINDOW=90") && cur->rules[0].window_ms == 90000);
    test_cond("window 1d", with1("RATELIMIT_WINDOW=1d") && cur->rules[0].window_ms == 86400000);
    test_cond("window bad", rejects_all(ENV("RATELIMIT_WINDOW=0", "RATELIMIT_WINDOW=366d",
                                            "RATELIMIT_WINDOW=1.5s", "RATELIMIT_WINDOW=5x")));
    test_cond("window message",
              rejects("RATELIMIT_WINDOW=5x", "'5x'") && strstr(cur_err.msg, "1ms..365d") != NULL);
    test_cond("timeout ok",
              with1("RATELIMIT_REDIS_TIMEOUT_MS=60000") && cur->redis_timeout_ms == 60000);
    test_cond("timeout 1", with1("RATELIMIT_REDIS_TIMEOUT_MS=1") && cur->redis_timeout_ms == 1);
    test_cond("timeout bad",
              rejects_all(ENV("RATELIMIT_REDIS_TIMEOUT_MS=0", "RATELIMIT_REDIS_TIMEOUT_MS=60001",
                              "RATELIMIT_REDIS_TIMEOUT_MS=1s")));
    test_cond("ipv6 prefix", with1("RATELIMIT_IPV6_PREFIX=128") && cur->ipv6_prefix == 128);
    test_cond("ipv6 prefix 1", with1("RATELIMIT_IPV6_PREFIX=1") && cur->ipv6_prefix == 1);
    test_cond("ipv6 prefix bad",
              rejects_all(ENV("RATELIMIT_IPV6_PREFIX=0", "RATELIMIT_IPV6_PREFIX=129")));
    test_cond("backend timeout s",
              with1("RATELIMIT_BACKEND_TIMEOUT=1") && cur->backend_timeout_ms == 1000);
    test_cond("backend timeout d",
              with1("RATELIMIT_BACKEND_TIMEOUT=1d") && cur->backend_timeout_ms == 86400000);
    test_cond("backend timeout 2m",
              with1("RATELIMIT_BACKEND_TIMEOUT=2m") && cur->backend_timeout_ms == 120000);
    test_cond("backend timeout bad",
              rejects_all(ENV("RATELIMIT_BACKEND_TIMEOUT=999ms", "RATELIMIT_BACKEND_TIMEOUT=2d",
                              "RATELIMIT_BACKEND_TIMEOUT=x")));
}

static void test_burst_algo(void)
{
    test_cond("algorithms", with1("RATELIMIT_ALGORITHM=sliding-log") &&
                                cur->rules[0].algo == RL_ALGO_SLIDING_LOG &&
                                with1("RATELIMIT_ALGORITHM=sliding-window") &&
                                cur->rules[0].algo == RL_ALGO_SLIDING_WINDOW &&
                                with1("RATELIMIT_ALGORITHM=token-bucket") &&
                                cur->rules[0].algo == RL_ALGO_TOKEN_BUCKET &&
                                with1("RATELIMIT_ALGORITHM=fixed-window") &&
                                cur->rules[0].algo == RL_ALGO_FIXED_WINDOW);
    test_cond("algorithm bad", rejects("RATELIMIT_ALGORITHM=leaky-bucket", "token-bucket"));
    test_cond("burst given", with(ENV("RATELIMIT_ALGORITHM=token-bucket", "RATELIMIT_LIMIT=10",
                                      "RATELIMIT_BURST=25")) &&
                                 cur->rules[0].burst == 25 && cur->rules[0].limit == 10);
    test_cond("burst defaults to limit",
              with(ENV("RATELIMIT_LIMIT=10")) && cur->rules[0].burst == 10);
    test_cond("burst bad", rejects_all(ENV("RATELIMIT_BURST=0", "RATELIMIT_BURST=-3",
                                           "RATELIMIT_BURST=x", "RATELIMIT_BURST=1000000001")));
}

static void test_key(void)
{
    const struct rl_rule *r;
    char big[200];

    test_cond("key header", with1("RATELIMIT_KEY=header:X-Api-Key") &&
                                (r = &cur->rules[0])->key_kind == RL_KEY_HEADER &&
                                strcmp(r->key_param, "HTTP_X_API_KEY") == 0 &&
                                strcmp(r->key_spec, "header:X-Api-Key") == 0);
    test_cond("key header auth", with1("RATELIMIT_KEY=header:authorization") &&
                                     strcmp(cur->rules[0].key_param, "HTTP_AUTHORIZATION") == 0);
    test_cond("key header tchar", with1("RATELIMIT_KEY=header:X.Odd~Name") &&
                                      strcmp(cur->rules[0].key_param, "HTTP_X_ODD_NAME") == 0);
    test_cond("key content-type", with1("RATELIMIT_KEY=header:Content-Type") &&
                                      strcmp(cur->rules[0].key_param, "CONTENT_TYPE") == 0);
    test_cond("key env", with1("RATELIMIT_KEY=env:REMOTE_USER") &&
                             cur->rules[0].key_kind == RL_KEY_ENV &&
                             strcmp(cur->rules[0].key_param, "REMOTE_USER") == 0);
    test_cond("key IP any case", with1("RATELIMIT_KEY=IP") && cur->rules[0].key_kind == RL_KEY_IP);
    test_cond("key bad", rejects_all(ENV("RATELIMIT_KEY=foo", "RATELIMIT_KEY=header:",
                                         "RATELIMIT_KEY=header:X Y", "RATELIMIT_KEY=header:X:Y",
                                         "RATELIMIT_KEY=env:", "RATELIMIT_KEY=env:REMOTE-USER",
                                         "RATELIMIT_KEY=ipv4", "RATELIMIT_KEY=header:X\x01")));
    memcpy(big, "RATELIMIT_KEY=header:", 21);
    memset(big + 21, 'a', 123);
    big[21 + 123] = '\0';
    test_cond("key header 123 ok", with1(big) && strlen(cur->rules[0].key_param) == 128);
    big[21 + 123] = 'a';
    big[21 + 124] = '\0';
    test_cond("key header 124 bad", rejects(big, NULL));
    memcpy(big, "RATELIMIT_KEY=env:", 18);
    memset(big + 18, 'B', 128);
    big[18 + 128] = '\0';
    test_cond("key env 128 ok", with1(big) && strlen(cur->rules[0].key_param) == 128);
    big[18 + 128] = 'B';
    big[18 + 129] = '\0';
    test_cond("key env 129 bad", rejects(big, NULL));
}

static void test_name(void)
{
    char big[100];

    test_cond("name ok",
              with1("RATELIMIT_NAME=api.v1-x_2") && strcmp(cur->rules[0].name, "api.v1-x_2") == 0);
    memcpy(big, "RATELIMIT_NAME=", 15);
    memset(big + 15, 'n', 64);
    big[15 + 64] = '\0';
    test_cond("name 64 ok", with1(big) && strlen(cur->rules[0].name) == 64);
    big[15 + 64] = 'n';
    big[15 + 65] = '\0';
    test_cond("name 65 bad", rejects(big, NULL));
    test_cond("name bad", rejects_all(ENV("RATELIMIT_NAME=a b", "RATELIMIT_NAME=a/b",
                                          "RATELIMIT_NAME=a\"b", "RATELIMIT_NAME=a:b")));
}

static void test_enums(void)
{
    test_cond("missing skip",
              with1("RATELIMIT_KEY_MISSING=skip") && cur->key_missing == RL_MISSING_SKIP);
    test_cond("missing bad", rejects("RATELIMIT_KEY_MISSING=drop", "ip, skip"));
    test_cond("status 503", with1("RATELIMIT_STATUS=503") && cur->status == 503);
    test_cond("status bad", rejects_all(ENV("RATELIMIT_STATUS=500", "RATELIMIT_STATUS=429 ",
                                            "RATELIMIT_STATUS=4290")));
    test_cond("fail closed", with1("RATELIMIT_FAIL=closed") && cur->fail == RL_FAIL_CLOSED);
    test_cond("fail bad", rejects("RATELIMIT_FAIL=shut", "'shut'"));
    test_cond("dry run truthy", with1("RATELIMIT_DRY_RUN=1") && cur->dry_run == 1 &&
                                    with1("RATELIMIT_DRY_RUN=true") && cur->dry_run == 1 &&
                                    with1("RATELIMIT_DRY_RUN=YES") && cur->dry_run == 1 &&
                                    with1("RATELIMIT_DRY_RUN=on") && cur->dry_run == 1);
    test_cond("dry run falsy", with1("RATELIMIT_DRY_RUN=0") && cur->dry_run == 0 &&
                                   with1("RATELIMIT_DRY_RUN=false") && cur->dry_run == 0 &&
                                   with1("RATELIMIT_DRY_RUN=no") && cur->dry_run == 0 &&
                                   with1("RATELIMIT_DRY_RUN=Off") && cur->dry_run == 0);
    test_cond("dry run bad", rejects_all(ENV("RATELIMIT_DRY_RUN=2", "RATELIMIT_DRY_RUN=y")));
    test_cond("headers", with1("RATELIMIT_HEADERS=ietf") && cur->headers == RL_HDR_IETF &&
                             with1("RATELIMIT_HEADERS=x") && cur->headers == RL_HDR_X &&
                             with1("RATELIMIT_HEADERS=none") && cur->headers == 0 &&
                             with1("RATELIMIT_HEADERS=all") &&
                             cur->headers == (RL_HDR_IETF | RL_HDR_X));
    test_cond("headers bad", rejects("RATELIMIT_HEADERS=both", "all, ietf, x, none"));
    test_cond("mode", with1("RATELIMIT_MODE=wrapper") && cur->mode == RL_MODE_WRAPPER &&
                          with1("RATELIMIT_MODE=authorizer") && cur->mode == RL_MODE_AUTHORIZER);
    test_cond("mode bad", rejects("RATELIMIT_MODE=responder", NULL));
    test_cond("log", with1("RATELIMIT_LOG=debug") && cur->log_level == RL_LOG_DEBUG &&
                         with1("RATELIMIT_LOG=error") && cur->log_level == RL_LOG_ERROR &&
                         with1("RATELIMIT_LOG=info") && cur->log_level == RL_LOG_INFO);
    test_cond("log bad", rejects("RATELIMIT_LOG=verbose", NULL));
}

static void test_store(void)
{
    test_cond("store default keys", with(EMPTY_ENV) && cur->store == RL_STORE_KEYS);
    test_cond("store keys / buckets",
              with1("RATELIMIT_STORE=keys") && cur->store == RL_STORE_KEYS &&
                  with1("RATELIMIT_STORE=buckets") && cur->store == RL_STORE_BUCKETS);
    test_cond("store empty is the default",
              with1("RATELIMIT_STORE=") && cur->store == RL_STORE_KEYS);
    test_cond("store bad", rejects_all(ENV("RATELIMIT_STORE=bucket", "RATELIMIT_STORE=hash",
                                           "RATELIMIT_STORE=keys ")) &&
                               rejects("RATELIMIT_STORE=shards", "keys, buckets"));
    test_cond("buckets with fixed-window, sliding-window, token-bucket",
              with(ENV("RATELIMIT_STORE=buckets", "RATELIMIT_ALGORITHM=sliding-window")) &&
                  with(ENV("RATELIMIT_STORE=buckets", "RATELIMIT_ALGORITHM=token-bucket")) &&
                  with(ENV("RATELIMIT_STORE=buckets",
                           "RATELIMIT_RULES=a ip 5/1s; b ip 9/1m token-bucket burst=2")) &&
                  cur->nrules == 2);
    test_cond("buckets refuse sliding-log, naming the rule",
              !with(ENV("RATELIMIT_STORE=buckets", "RATELIMIT_ALGORITHM=sliding-log")) &&
                  cur_err.kind == RL_E_CONFIG &&
                  strncmp(cur_err.msg, "RATELIMIT_STORE: ", 17) == 0 &&
                  strstr(cur_err.msg, "sliding-log (rule 'default')") != NULL);
    test_cond("buckets refuse a sliding-log rule among others",
              !with(ENV("RATELIMIT_RULES=a ip 5/1s; slow ip 9/1m sliding-log",
                        "RATELIMIT_STORE=buckets")) &&
                  strstr(cur_err.msg, "(rule 'slow')") != NULL);
    test_cond(
        "buckets: a window under 1 s refused for fixed-window and sliding-window",
        !with(ENV("RATELIMIT_STORE=buckets", "RATELIMIT_WINDOW=500ms")) &&
            cur_err.kind == RL_E_CONFIG && strstr(cur_err.msg, "1000 ms or more") != NULL &&
            !with(ENV("RATELIMIT_STORE=buckets", "RATELIMIT_RULES=a ip 5/999ms sliding-window")) &&
            with(ENV("RATELIMIT_STORE=buckets", "RATELIMIT_WINDOW=1s")) != NULL);
    test_cond("buckets: token-bucket with a short window (its epochs are 1 s or more)",
              with(ENV("RATELIMIT_STORE=buckets", "RATELIMIT_RULES=a ip 5/100ms token-bucket")) !=
                  NULL);
    test_cond("keys take sliding-log",
              with(ENV("RATELIMIT_STORE=keys", "RATELIMIT_ALGORITHM=sliding-log")) != NULL);
}

static void test_cluster_limits(void)
{
    test_cond("cluster: keys store, one identity for all rules",
              with(ENV("RATELIMIT_REDIS_URL=redis+cluster://h:7000",
                       "RATELIMIT_RULES=a ip 5/1s; b ip 9/1m token-bucket")) &&
                  cur->redis.mode == RL_REDIS_CLUSTER && cur->nrules == 2 &&
                  with(ENV("RATELIMIT_REDIS_URL=redis+cluster://h:7000",
                           "RATELIMIT_RULES=a header:X-Api-Key 5/1s; b header:x-api-key 9/1m")));
    test_cond("cluster: the buckets store (its hashes are declared keys)",
              with(ENV("RATELIMIT_REDIS_URL=redis+cluster://h:7000", "RATELIMIT_STORE=buckets",
                       "RATELIMIT_RULES=a ip 5/1s; b header:X-Api-Key 9/1m token-bucket")) &&
                  cur->store == RL_STORE_BUCKETS);
    test_cond("cluster: rules keyed by different identities (checked per slot)",
              with(ENV("RATELIMIT_REDIS_URL=redis+cluster://h:7000",
                       "RATELIMIT_RULES=a ip 5/1s; b header:X-Api-Key 9/1m")) != NULL);
    test_cond("cluster: a prefix with a brace refused (it would move the hash tag)",
              !with(ENV("RATELIMIT_REDIS_URL=redis+cluster://h:7000", "RATELIMIT_PREFIX=rl{x}:")) &&
                  strncmp(cur_err.msg, "RATELIMIT_PREFIX: ", 18) == 0 &&
                  with(ENV("RATELIMIT_PREFIX=rl{x}:")) != NULL);
    test_cond("not a cluster: rules keyed by different identities are fine",
              with(ENV("RATELIMIT_RULES=a ip 5/1s; b header:X-Api-Key 9/1m")) != NULL);
}

static void test_strings_lists(void)
{
    char big[300];

    test_cond("prefix",
              with1("RATELIMIT_PREFIX=rl:{app}:") && strcmp(cur->prefix, "rl:{app}:") == 0);
    memcpy(big, "RATELIMIT_PREFIX=", 17);
    memset(big + 17, 'p', 128);
    big[17 + 128] = '\0';
    test_cond("prefix 128", with1(big) && strlen(cur->prefix) == 128);
    big[17 + 128] = 'p';
    big[17 + 129] = '\0';
    test_cond("prefix 129 bad", rejects(big, NULL));
    test_cond("prefix bad", rejects_all(ENV("RATELIMIT_PREFIX=a b", "RATELIMIT_PREFIX=a\tb",
                                            "RATELIMIT_PREFIX=\x01", "RATELIMIT_PREFIX=\xc3\xa9")));
    test_cond("backend", with1("RATELIMIT_BACKEND=/usr/lib/cgi-bin/app.cgi") &&
                             strcmp(cur->backend, "/usr/lib/cgi-bin/app.cgi") == 0);
    test_cond("backend relative", rejects("RATELIMIT_BACKEND=app.cgi", "absolute"));
    test_cond("script root",
              with1("RATELIMIT_SCRIPT_ROOT=/srv/cgi") && strcmp(cur->script_root, "/srv/cgi") == 0);
    test_cond("script root relative", rejects("RATELIMIT_SCRIPT_ROOT=./x", "absolute"));
    test_cond("trusted", with1("RATELIMIT_TRUSTED_PROXIES=10.0.0.0/8, ::1 192.168.1.1") &&
                             cur->trusted_proxies.n == 3);
    test_cond("allow deny", with(ENV("RATELIMIT_ALLOW=127.0.0.1", "RATELIMIT_DENY=203.0.113.0/24,"
                                                                  "2001:db8::/32")) &&
                                cur->allow.n == 1 && cur->deny.n == 2 &&
                                cur->deny.v[0].prefix == 24);
    test_cond("trusted bad", rejects("RATELIMIT_TRUSTED_PROXIES=10.0.0.0/33", "'10.0.0.0/33'"));
    test_cond("allow bad", rejects("RATELIMIT_ALLOW=10.0.0.1;10.0.0.2", NULL));
    test_cond("deny bad", rejects("RATELIMIT_DENY=localhost", "localhost"));
}

static void test_redis_url(void)
{
    const struct rl_redis_target *t;

    test_cond("url host only", with1("RATELIMIT_REDIS_URL=redis://cache.example") &&
                                   (t = &cur->redis)->port == 6379 && t->db == 0 &&
                                   strcmp(t->host, "cache.example") == 0 &&
                                   strcmp(t->display, "redis://cache.example:6379/0") == 0);
    test_cond("url full", with1("RATELIMIT_REDIS_URL=redis://:s3cret@10.0.0.5:6380/2") &&
                              (t = &cur->redis)->port == 6380 && t->db == 2 &&
                              strcmp(t->password, "s3cret") == 0 &&
                              strcmp(t->display, "redis://10.0.0.5:6380/2") == 0);
    test_cond("url ipv6", with1("RATELIMIT_REDIS_URL=redis://[::1]:7000/1") &&
                              strcmp(cur->redis.host, "::1") == 0 && cur->redis.port == 7000 &&
                              strcmp(cur->redis.display, "redis://[::1]:7000/1") == 0);
    test_cond("url trailing slash", with1("RATELIMIT_REDIS_URL=redis://h/") && cur->redis.db == 0);
    test_cond("url db max",
              with1("RATELIMIT_REDIS_URL=redis://h/1000000") && cur->redis.db == 1000000);
    test_cond("url scheme case", with1("RATELIMIT_REDIS_URL=REDIS://h:1") && cur->redis.port == 1);
    test_cond("url at in password", with1("RATELIMIT_REDIS_URL=redis://:p@ss/w@h:2") &&
                                        strcmp(cur->redis.password, "p@ss/w") == 0 &&
                                        strcmp(cur->redis.host, "h") == 0 && cur->redis.port == 2);
    test_cond("url unix",
              with1("RATELIMIT_REDIS_URL=unix:///run/redis/r.sock") && cur->redis.host == NULL &&
                  strcmp(cur->redis.path, "/run/redis/r.sock") == 0 && cur->redis.db == 0 &&
                  strcmp(cur->redis.display, "unix:///run/redis/r.sock?db=0") == 0);
    test_cond("url unix db", with1("RATELIMIT_REDIS_URL=unix:///tmp/r.sock?db=3") &&
                                 strcmp(cur->redis.path, "/tmp/r.sock") == 0 && cur->redis.db == 3);
    test_cond("url bad",
              rejects_all(
                  ENV("RATELIMIT_REDIS_URL=http://h", "RATELIMIT_REDIS_URL=redis://",
                      "RATELIMIT_REDIS_URL=redis://h:0", "RATELIMIT_REDIS_URL=redis://h:65536",
                      "RATELIMIT_REDIS_URL=redis://h:", "RATELIMIT_REDIS_URL=redis://h:ab",
                      "RATELIMIT_REDIS_URL=redis://h/x", "RATELIMIT_REDIS_URL=redis://h/1000001",
                      "RATELIMIT_REDIS_URL=redis://h/0/1", "RATELIMIT_REDIS_URL=redis://[::1",
                      "RATELIMIT_REDIS_URL=redis://[zz]:1", "RATELIMIT_REDIS_URL=redis://h h",
                      "RATELIMIT_REDIS_URL=redis://h?db=1", "RATELIMIT_REDIS_URL=unix://rel.sock",
                      "RATELIMIT_REDIS_URL=unix:///p?db=x", "RATELIMIT_REDIS_URL=unix:///p?x=1",
                      "RATELIMIT_REDIS_URL=redis://[::1]x", "RATELIMIT_REDIS_URL=127.0.0.1:6379")));
    test_cond("url port message", rejects("RATELIMIT_REDIS_URL=redis://h:99999", "1..65535"));
}

static void test_unix_path_len(void)
{
    char u[200];

    memcpy(u, "RATELIMIT_REDIS_URL=unix://", 27);
    u[27] = '/';
    memset(u + 28, 's', 106);
    u[28 + 106] = '\0';
    test_cond("unix path 107", with1(u) && strlen(cur->redis.path) == 107);
    u[28 + 106] = 's';
    u[28 + 107] = '\0';
    test_cond("unix path 108 bad", rejects(u, NULL));
}

static void test_password(void)
{
    char big[1100], line[512];

    test_cond("password var wins", with(ENV("RATELIMIT_REDIS_URL=redis://:fromurl@h",
                                            "RATELIMIT_REDIS_PASSWORD=fromvar")) &&
                                       strcmp(cur->redis.password, "fromvar") == 0);
    test_cond("password var alone",
              with1("RATELIMIT_REDIS_PASSWORD=pw") && strcmp(cur->redis.password, "pw") == 0);
    test_cond("summary hides password", with(ENV("RATELIMIT_REDIS_URL=redis://:hunter2@h:1/0",
                                                 "RATELIMIT_REDIS_PASSWORD=swordfish")) &&
                                            config_summary(cur, line, sizeof(line)) == RL_OK &&
                                            strstr(line, "hunter2") == NULL &&
                                            strstr(line, "swordfish") == NULL &&
                                            strstr(line, "redis://h:1/0") != NULL);
    test_cond("url error hides password",
              rejects("RATELIMIT_REDIS_URL=redis://:hunter2@h:99999", "'redis://:***@h:99999'") &&
                  strstr(cur_err.msg, "hunter2") == NULL);
    test_cond("url user error hides password",
              rejects("RATELIMIT_REDIS_URL=redis://admin:hunter2@h:0/0", "'redis://***@h:0/0'") &&
                  strstr(cur_err.msg, "hunter2") == NULL);
    test_cond("url bad db hides password",
              rejects("RATELIMIT_REDIS_URL=redis://:hunter2@h/x", "***") &&
                  strstr(cur_err.msg, "hunter2") == NULL);
    memcpy(big, "RATELIMIT_REDIS_PASSWORD=", 25);
    memset(big + 25, 'q', 1025);
    big[25 + 1025] = '\0';
    test_cond("password too long hidden",
              rejects(big, "'***'") && strchr(cur_err.msg, 'q') == NULL);
    big[25 + 1024] = '\0';
    test_cond("password 1024 ok", with1(big) && strlen(cur->redis.password) == 1024);
}

static void test_rules(void)
{
    struct rl_rule r[RL_MAX_RULES];
    struct rl_err err;
    size_t n = 99;

    test_cond("rules two", config_parse_rules("per-ip ip 100/1m; per-key header:X-Api-Key 5000/1h "
                                              "token-bucket burst=200",
                                              r, &n, &err) == RL_OK &&
                               n == 2);
    test_cond("rules first", strcmp(r[0].name, "per-ip") == 0 && r[0].key_kind == RL_KEY_IP &&
                                 r[0].limit == 100 && r[0].window_ms == 60000 &&
                                 r[0].algo == RL_ALGO_FIXED_WINDOW && r[0].burst == 100);
    test_cond("rules second", strcmp(r[1].name, "per-key") == 0 &&
                                  strcmp(r[1].key_param, "HTTP_X_API_KEY") == 0 &&
                                  r[1].limit == 5000 && r[1].window_ms == 3600000 &&
                                  r[1].algo == RL_ALGO_TOKEN_BUCKET && r[1].burst == 200);
    test_cond("rules whitespace", config_parse_rules(" \t a  ip\t5/1s ;; ;\n b env:REMOTE_USER "
                                                     "7/500ms   sliding-log ; ",
                                                     r, &n, &err) == RL_OK &&
                                      n == 2 && r[0].limit == 5 && r[1].window_ms == 500 &&
                                      r[1].algo == RL_ALGO_SLIDING_LOG &&
                                      strcmp(r[1].key_param, "REMOTE_USER") == 0);
    test_cond("rules options reversed",
              config_parse_rules("t ip 5/1m burst=9 token-bucket", r, &n, &err) == RL_OK &&
                  n == 1 && r[0].burst == 9 && r[0].algo == RL_ALGO_TOKEN_BUCKET);
    test_cond("rules plain window",
              config_parse_rules("w ip 5/30", r, &n, &err) == RL_OK && r[0].window_ms == 30000);
    test_cond("rules eight", config_parse_rules("a ip 1/1;b ip 1/1;c ip 1/1;d ip 1/1;e ip 1/1;"
                                                "f ip 1/1;g ip 1/1;h ip 1/1",
                                                r, &n, &err) == RL_OK &&
                                 n == 8);
    test_cond("rules not shadow by default",
              config_parse_rules("a ip 5/1m; b ip 9/1s token-bucket", r, &n, &err) == RL_OK &&
                  n == 2 && !r[0].shadow && !r[1].shadow);
    test_cond("rules shadow",
              config_parse_rules("real ip 100/1m; probe ip 5/1m shadow", r, &n, &err) == RL_OK &&
                  n == 2 && !r[0].shadow && r[1].shadow && r[1].limit == 5 &&
                  r[1].algo == RL_ALGO_FIXED_WINDOW);
    test_cond("rules shadow after the options",
              config_parse_rules("t header:X-Api-Key 5/1m burst=9 token-bucket shadow", r, &n,
                                 &err) == RL_OK &&
                  n == 1 && r[0].shadow && r[0].burst == 9 && r[0].algo == RL_ALGO_TOKEN_BUCKET);
    test_cond("rules shadow after the algorithm",
              config_parse_rules("s ip 5/1m sliding-window shadow", r, &n, &err) == RL_OK &&
                  r[0].shadow && r[0].algo == RL_ALGO_SLIDING_WINDOW);
    test_cond("rules a rule named shadow",
              config_parse_rules("shadow ip 5/1m; x ip 1/1s", r, &n, &err) == RL_OK && n == 2 &&
                  strcmp(r[0].name, "shadow") == 0 && !r[0].shadow);
    test_cond("rules a shadow rule named shadow",
              config_parse_rules("shadow ip 5/1m shadow", r, &n, &err) == RL_OK && n == 1 &&
                  r[0].shadow);
}

/* 1 when s is refused with a RATELIMIT_RULES message containing part;
 * *n must then be 0. */
static int rules_reject(const char *s, const char *part)
{
    struct rl_rule r[RL_MAX_RULES];
    struct rl_err err;
    size_t n = 77;

    rl_err_clear(&err);
    if (config_parse_rules(s, r, &n, &err) != RL_ERR || n != 0 || err.kind != RL_E_CONFIG ||
        strncmp(err.msg, "RATELIMIT_RULES: ", 17) != 0 || strchr(err.msg, '\n') != NULL ||
        (part != NULL && strstr(err.msg, part) == NULL)) {
        printf("# rules '%s' gave: %s\n", s, err.msg);
        return 0;
    }
    return 1;
}

static void test_rules_bad(void)
{
    test_cond("rule no rate", rules_reject("a ip 5", "'a ip 5'"));
    test_cond("rule zero limit", rules_reject("a ip 0/1m", "limit"));
    test_cond("rule bad key", rules_reject("a foo 5/1m", "header:NAME"));
    test_cond("rule bogus algo", rules_reject("a ip 5/1m bogus", "algorithm"));
    test_cond("rule burst 0", rules_reject("a ip 5/1m token-bucket burst=0", "burst"));
    test_cond("rule burst not bucket", rules_reject("a ip 5/1m burst=3", "token-bucket"));
    test_cond("rule two algos", rules_reject("a ip 5/1m sliding-log fixed-window", NULL));
    test_cond("rule two bursts", rules_reject("a ip 5/1m token-bucket burst=1 burst=2", NULL));
    test_cond("rule too many words", rules_reject("a ip 5/1m token-bucket burst=1 x", "too many"));
    test_cond("rule bad window", rules_reject("a ip 5/0", "window"));
    test_cond("rule bad window unit", rules_reject("a ip 5/1y", "window"));
    test_cond("rule long window",
              rules_reject("a ip 5/11111111111111111111111111111111111111s", "window"));
    test_cond("rule empty limit", rules_reject("a ip /1m", "limit"));
    test_cond("rule bad name", rules_reject("a/b ip 5/1m", NULL));
    test_cond("rule one word", rules_reject("a", NULL));
    test_cond("rule duplicate",
              rules_reject("a ip 5/1m; b ip 1/1s; a env:X 1/1s", "duplicate rule name 'a'"));
    test_cond("rule nine", rules_reject("a ip 1/1;b ip 1/1;c ip 1/1;d ip 1/1;e ip 1/1;"
                                        "f ip 1/1;g ip 1/1;h ip 1/1;i ip 1/1",
                                        "too many rules"));
    test_cond("rule only separators", rules_reject(" ; ;; ", "no rule"));
    test_cond("rule NULL", rules_reject(NULL, NULL));
    test_cond("rule second bad", rules_reject("good ip 5/1m; bad ip 5", "'bad ip 5'"));
    test_cond("rule shadow twice", rules_reject("a ip 5/1m shadow shadow", "shadow given twice"));
    test_cond("rule shadow twice, six words",
              rules_reject("a ip 5/1m token-bucket shadow shadow", "shadow given twice"));
    test_cond("rule shadow before the algorithm",
              rules_reject("a ip 5/1m shadow token-bucket", "shadow must be the last word"));
    test_cond(
        "rule shadow between the options",
        rules_reject("a ip 5/1m token-bucket shadow burst=3", "shadow must be the last word"));
    test_cond("rule shadow for the key", rules_reject("a shadow ip 5/1m", "last word"));
    test_cond("rule shadow for the rate", rules_reject("a ip shadow 5/1m", "last word"));
    test_cond("rule shadow without a rate",
              rules_reject("a ip shadow", "shadow must follow LIMIT/WINDOW"));
    test_cond("rule shadow in upper case", rules_reject("a ip 5/1m SHADOW", "algorithm"));
    test_cond("rule shadow, too many words",
              rules_reject("a ip 5/1m token-bucket burst=1 x shadow", "too many"));
    test_cond(
        "rule shadow, second rule named",
        rules_reject("good ip 5/1m; bad ip 5/1m shadow shadow", "'bad ip 5/1m shadow shadow'"));
    test_cond("rule message shortened",
              rules_reject(
                  "a ip 5/1m xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                  "...'"));
}

static void test_rules_env(void)
{
    test_cond("RULES replaces single", with(ENV("RATELIMIT_LIMIT=5", "RATELIMIT_NAME=zzz",
                                                "RATELIMIT_RULES=a ip 7/1m; b header:X-U 3/1s")) &&
                                           cur->from_rules == 1 && cur->nrules == 2 &&
                                           cur->rules[0].limit == 7 &&
                                           strcmp(cur->rules[0].name, "a") == 0 &&
                                           strcmp(cur->rules[1].key_param, "HTTP_X_U") == 0);
    test_cond("RULES error", rejects("RATELIMIT_RULES=a ip 5", "invalid rule 'a ip 5'"));
    test_cond("RULES shadow", with1("RATELIMIT_RULES=a ip 7/1m; b ip 3/1s shadow") &&
                                  cur->nrules == 2 && !cur->rules[0].shadow &&
                                  cur->rules[1].shadow);
    test_cond("RULES shadow misplaced",
              rejects("RATELIMIT_RULES=a ip 7/1m shadow fixed-window", "last word"));
    test_cond("RULES empty is unset",
              with1("RATELIMIT_RULES=") && cur->from_rules == 0 && cur->nrules == 1);
    test_cond("bad single var still checked with RULES",
              with(ENV("RATELIMIT_RULES=a ip 7/1m", "RATELIMIT_LIMIT=x")) == NULL);
}

static void test_later_wins(void)
{
    char nl[] = "RATELIMIT_LIMIT=1\n2";
    char longv[300];

    test_cond("later wins",
              with(ENV("RATELIMIT_LIMIT=5", "RATELIMIT_LIMIT=9")) && cur->rules[0].limit == 9);
    test_cond("later bad wins", with(ENV("RATELIMIT_LIMIT=5", "RATELIMIT_LIMIT=x")) == NULL);
    test_cond("later good wins",
              with(ENV("RATELIMIT_LIMIT=x", "RATELIMIT_LIMIT=5")) && cur->rules[0].limit == 5);
    test_cond("empty is default",
              with(ENV("RATELIMIT_LIMIT=5", "RATELIMIT_LIMIT=")) && cur->rules[0].limit == 60);
    test_cond("empty backend unsets",
              with(ENV("RATELIMIT_BACKEND=/a", "RATELIMIT_BACKEND=")) && cur->backend == NULL);
    test_cond("other names ignored",
              with(ENV("LIMIT=5", "XRATELIMIT_LIMIT=5", "RATELIMIT_LIMIT", "ratelimit_limit=5",
                       "RATELIMIT_LIMIT_X=5", "HTTP_RATELIMIT_LIMIT=5")) &&
                  cur->rules[0].limit == 60);
    test_cond("value with '='",
              with1("RATELIMIT_REDIS_PASSWORD=a=b") && strcmp(cur->redis.password, "a=b") == 0);
    test_cond("newline value one line", rejects(nl, "'1?2'"));
    memcpy(longv, "RATELIMIT_LIMIT=", 16);
    memset(longv + 16, '7', 250);
    longv[266] = '\0';
    test_cond("long value shortened", rejects(longv, "...'") && strlen(cur_err.msg) < 160);
}

static char logged[4096];
static size_t logged_len;

static int capture(void *ctx, const char *line, int len)
{
    (void)ctx;
    if (len > 0 && (size_t)len < sizeof(logged) - logged_len) {
        memcpy(logged + logged_len, line, (size_t)len);
        logged_len += (size_t)len;
        logged[logged_len] = '\0';
    }
    return 0;
}

static const char *warnings(const char *const *list)
{
    char **e = env_dup(list);

    logged_len = 0;
    logged[0] = '\0';
    log_set_sink(capture, NULL);
    config_warn_unknown(e);
    log_set_sink(NULL, NULL);
    env_burn(e);
    return logged;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;

    for (; (hay = strstr(hay, needle)) != NULL; hay++)
        n++;
    return n;
}

static void test_warn_unknown(void)
{
    char big[200];

    test_cond("warn typo", strstr(warnings(ENV("PATH=/bin", "RATELIMIT_LIMTI=5")),
                                  "unknown variable RATELIMIT_LIMTI (did you mean "
                                  "RATELIMIT_LIMIT?)") != NULL);
    test_cond("warn typo window", strstr(warnings(ENV("RATELIMIT_WINDOWS=5")),
                                         "(did you mean RATELIMIT_WINDOW?)") != NULL);
    test_cond("warn far name", strstr(warnings(ENV("RATELIMIT_ZZZZZZZZZZZZ=1")),
                                      "unknown variable RATELIMIT_ZZZZZZZZZZZZ\n") != NULL);
    test_cond("warn once per name", count(warnings(ENV("RATELIMIT_LIMTI=5", "RATELIMIT_LIMTI=6")),
                                          "RATELIMIT_LIMTI") == 1);
    test_cond("known names quiet", strlen(warnings(ENV("RATELIMIT_LIMIT=5", "RATELIMIT_DENY=",
                                                       "OTHER=1", "HTTP_RATELIMIT_X=1"))) == 0);
    test_cond("warn replaced by RULES",
              strstr(warnings(ENV("RATELIMIT_LIMIT=5", "RATELIMIT_RULES=a ip 1/1")),
                     "RATELIMIT_LIMIT is ignored") != NULL);
    memcpy(big, "RATELIMIT_", 10);
    memset(big + 10, 'L', 150);
    big[160] = '\0';
    test_cond("warn long name bounded", strlen(warnings((const char *const[]){big, NULL})) < 150 &&
                                            strstr(logged, "...") != NULL);
}

static void test_summary(void)
{
    char line[512], tiny[20];

    test_cond("summary default", with(EMPTY_ENV) &&
                                     config_summary(cur, line, sizeof(line)) == RL_OK &&
                                     strcmp(line, "redis=redis://127.0.0.1:6379/0 "
                                                  "rules=default(ip 60/60s fixed-window) "
                                                  "prefix=ratelimit: status=429 fail=open "
                                                  "headers=all mode=auto") == 0);
    test_cond("summary rules",
              with(ENV("RATELIMIT_RULES=a ip 5/500ms; b env:REMOTE_USER 7/1h "
                       "token-bucket burst=3",
                       "RATELIMIT_DRY_RUN=1", "RATELIMIT_HEADERS=x")) &&
                  config_summary(cur, line, sizeof(line)) == RL_OK &&
                  strstr(line, "rules=a(ip 5/500ms fixed-window),"
                               "b(env:REMOTE_USER 7/3600s token-bucket burst=3)") &&
                  strstr(line, "headers=x") && strstr(line, "dry_run=1"));
    test_cond("summary shadow rule",
              with1("RATELIMIT_RULES=a ip 5/1s; b ip 9/1m token-bucket burst=3 shadow") &&
                  config_summary(cur, line, sizeof(line)) == RL_OK &&
                  strstr(line, "rules=a(ip 5/1s fixed-window),"
                               "b(ip 9/60s token-bucket burst=3 shadow)"));
    test_cond("summary store", with1("RATELIMIT_STORE=buckets") &&
                                   config_summary(cur, line, sizeof(line)) == RL_OK &&
                                   strstr(line, " store=buckets") != NULL);
    test_cond("summary too small", config_summary(cur, tiny, sizeof(tiny)) == RL_ERR);
    test_cond("summary zero size", config_summary(cur, tiny, 0) == RL_ERR);
}

/* A request's params as a heap envp (see env_dup). */
static const struct rl_config *req(struct config_cache *cc, const char *const *list,
                                   struct rl_err *err)
{
    char **e = env_dup(list);
    const struct rl_config *c = config_for_request(cc, e, err);

    env_burn(e);
    return c;
}

static void test_cache(void)
{
    char **penv = env_dup(ENV("PATH=/bin", "RATELIMIT_LIMIT=100", "RATELIMIT_PREFIX=app:"));
    struct rl_err err;
    struct config_cache *cc = config_cache_new(penv, &err);
    const struct rl_config *base, *a, *b, *c;

    env_burn(penv); /* the cache must have its own copy */
    test_cond("cache new", cc != NULL);
    if (cc == NULL)
        return;
    base = config_cache_base(cc);
    test_cond("cache base", base->rules[0].limit == 100 && strcmp(base->prefix, "app:") == 0);
    test_cond("no overrides -> base",
              req(cc, ENV("REMOTE_ADDR=1.2.3.4", "HTTP_RATELIMIT_LIMIT=1", "SCRIPT_NAME=/x"),
                  &err) == base);
    test_cond("empty params -> base", req(cc, EMPTY_ENV, &err) == base);
    test_cond("NULL params -> base", config_for_request(cc, NULL, &err) == base);
    a = req(cc, ENV("REMOTE_ADDR=1.2.3.4", "RATELIMIT_LIMIT=5"), &err);
    test_cond("override distinct",
              a != NULL && a != base && a->rules[0].limit == 5 && strcmp(a->prefix, "app:") == 0);
    test_cond("override same pointer",
              req(cc, ENV("RATELIMIT_LIMIT=5", "REMOTE_ADDR=9.9.9.9"), &err) == a);
    b = req(cc, ENV("RATELIMIT_LIMIT=6", "RATELIMIT_FAIL=closed"), &err);
    test_cond("other override", b != NULL && b != a && b != base && b->rules[0].limit == 6 &&
                                    b->fail == RL_FAIL_CLOSED);
    c = req(cc, ENV("RATELIMIT_LIMIT=5", "RATELIMIT_FAIL=closed"), &err);
    test_cond("superset is another set", a != NULL && c != NULL && c != a &&
                                             c->fail == RL_FAIL_CLOSED && a->fail == RL_FAIL_OPEN);
    test_cond("first still cached",
              a != NULL && req(cc, ENV("RATELIMIT_LIMIT=5"), &err) == a && a->rules[0].limit == 5);
    test_cond("empty override is default",
              (c = req(cc, ENV("RATELIMIT_LIMIT="), &err)) != NULL && c->rules[0].limit == 60);
    rl_err_clear(&err);
    test_cond("bad override", req(cc, ENV("RATELIMIT_LIMIT=nope"), &err) == NULL &&
                                  err.kind == RL_E_CONFIG &&
                                  strstr(err.msg, "RATELIMIT_LIMIT: invalid value 'nope'") != NULL);
    rl_err_clear(&err);
    test_cond("bad override cached", req(cc, ENV("RATELIMIT_LIMIT=nope"), &err) == NULL &&
                                         strstr(err.msg, "'nope'") != NULL);
    test_cond("base intact", config_cache_base(cc) == base && base->rules[0].limit == 100);
    config_cache_free(cc);
}

static void test_cache_evict(void)
{
    struct config_cache *cc = config_cache_new(NULL, NULL);
    char kv[64], *params[2] = {kv, NULL};
    const struct rl_config *c;
    int i, ok = 1;

    for (i = 1; i <= 20; i++) {
        (void)snprintf(kv, sizeof(kv), "RATELIMIT_LIMIT=%d", i);
        c = config_for_request(cc, params, NULL);
        ok &= c != NULL && c->rules[0].limit == i;
    }
    test_cond("cache many sets", ok);
    (void)snprintf(kv, sizeof(kv), "RATELIMIT_LIMIT=%d", 20);
    c = config_for_request(cc, params, NULL);
    test_cond("recent set hit", c != NULL && config_for_request(cc, params, NULL) == c);
    (void)snprintf(kv, sizeof(kv), "RATELIMIT_LIMIT=%d", 1);
    c = config_for_request(cc, params, NULL);
    test_cond("evicted set re-parsed", c != NULL && c->rules[0].limit == 1);
    config_cache_free(cc);
    config_cache_free(NULL);
}

static void test_cache_bad_base(void)
{
    char **penv = env_dup(ENV("RATELIMIT_STATUS=200"));
    struct rl_err err;

    rl_err_clear(&err);
    test_cond("cache bad base",
              config_cache_new(penv, &err) == NULL && strstr(err.msg, "RATELIMIT_STATUS") != NULL);
    env_burn(penv);
}

/* ------------------------------------------------------------ new variables */

static void test_max_body(void)
{
    test_cond("max_body default 1g", with(EMPTY_ENV) && cur->max_body == 1073741824LL);
    test_cond("max_body bytes", with1("RATELIMIT_MAX_BODY=1000") && cur->max_body == 1000);
    test_cond("max_body 0", with1("RATELIMIT_MAX_BODY=0") && cur->max_body == 0);
    test_cond("max_body k", with1("RATELIMIT_MAX_BODY=512k") && cur->max_body == 524288);
    test_cond("max_body M", with1("RATELIMIT_MAX_BODY=10M") && cur->max_body == 10485760);
    test_cond("max_body 64g", with1("RATELIMIT_MAX_BODY=64g") && cur->max_body == 68719476736LL);
    test_cond(
        "max_body bad",
        rejects_all(ENV("RATELIMIT_MAX_BODY=65g", "RATELIMIT_MAX_BODY=-1", "RATELIMIT_MAX_BODY=1t",
                        "RATELIMIT_MAX_BODY=1kb", "RATELIMIT_MAX_BODY=k", "RATELIMIT_MAX_BODY=1.5m",
                        "RATELIMIT_MAX_BODY= 1k", "RATELIMIT_MAX_BODY=99999999999999999999",
                        "RATELIMIT_MAX_BODY=9223372036854775807g")));
    test_cond("max_body message", rejects("RATELIMIT_MAX_BODY=lots", "0..64g"));
}

static void test_body_near_limit(void)
{
    test_cond("body default", with(EMPTY_ENV) && cur->body == RL_BODY_JSON);
    test_cond("body problem", with1("RATELIMIT_BODY=problem") && cur->body == RL_BODY_PROBLEM);
    test_cond("body bad", rejects("RATELIMIT_BODY=xml", "json, problem"));
    test_cond("near default", with(EMPTY_ENV) && cur->near_limit > 0.79 && cur->near_limit < 0.81);
    test_cond("near 1", with1("RATELIMIT_NEAR_LIMIT=1") && cur->near_limit == 1.0);
    test_cond("near 1.0", with1("RATELIMIT_NEAR_LIMIT=1.0") && cur->near_limit == 1.0);
    test_cond("near .25", with1("RATELIMIT_NEAR_LIMIT=.25") && cur->near_limit == 0.25);
    test_cond("near 0.000001", with1("RATELIMIT_NEAR_LIMIT=0.000001") && cur->near_limit > 0 &&
                                   cur->near_limit < 0.00001);
    test_cond("near bad",
              rejects_all(ENV("RATELIMIT_NEAR_LIMIT=0", "RATELIMIT_NEAR_LIMIT=0.0",
                              "RATELIMIT_NEAR_LIMIT=1.5", "RATELIMIT_NEAR_LIMIT=2",
                              "RATELIMIT_NEAR_LIMIT=-0.5", "RATELIMIT_NEAR_LIMIT=1e-1",
                              "RATELIMIT_NEAR_LIMIT=nan", "RATELIMIT_NEAR_LIMIT=0.",
                              "RATELIMIT_NEAR_LIMIT=.", "RATELIMIT_NEAR_LIMIT=0.1234567",
                              "RATELIMIT_NEAR_LIMIT= 0.5", "RATELIMIT_NEAR_LIMIT=0,5",
                              "RATELIMIT_NEAR_LIMIT=1.000001", "RATELIMIT_NEAR_LIMIT=0.5.1")));
    test_cond("overrides default", with(EMPTY_ENV) && cur->overrides == RL_OVERRIDES_POLICY);
    test_cond("overrides none",
              with1("RATELIMIT_OVERRIDES=none") && cur->overrides == RL_OVERRIDES_NONE);
    test_cond("overrides bad", rejects("RATELIMIT_OVERRIDES=all", "policy, none"));
    test_cond("metrics defaults",
              with(EMPTY_ENV) && cur->metrics_path == NULL && cur->metrics_allow.n == 2);
    test_cond("metrics set",
              with(ENV("RATELIMIT_METRICS_PATH=/metrics", "RATELIMIT_METRICS_ALLOW=10.0.0.0/8")) &&
                  strcmp(cur->metrics_path, "/metrics") == 0 && cur->metrics_allow.n == 1);
    test_cond("metrics bad", rejects_all(ENV("RATELIMIT_METRICS_PATH=metrics",
                                             "RATELIMIT_METRICS_ALLOW=10.0.0.0/33")));
    test_cond("sentinel password", with1("RATELIMIT_SENTINEL_PASSWORD=sp") &&
                                       strcmp(cur->redis.sentinel_password, "sp") == 0 &&
                                       cur->redis.password == NULL);
}

/* ------------------------------------------------------------ URL user, secrecy */

static void test_url_user(void)
{
    char line[512];

    test_cond("url user", with1("RATELIMIT_REDIS_URL=redis://alice:s%40cr%3At@h:7/2") &&
                              strcmp(cur->redis.user, "alice") == 0 &&
                              strcmp(cur->redis.password, "s@cr:t") == 0 &&
                              strcmp(cur->redis.host, "h") == 0 && cur->redis.port == 7 &&
                              cur->redis.db == 2);
    test_cond("url user display",
              cur != NULL && strcmp(cur->redis.display, "redis://alice@h:7/2") == 0);
    test_cond("url user summary", config_summary(cur, line, sizeof(line)) == RL_OK &&
                                      strstr(line, "redis://alice@h:7/2 (auth)") != NULL &&
                                      strstr(line, "cr") == NULL);
    test_cond("url user encoded",
              with1("RATELIMIT_REDIS_URL=redis://al%20ice:pw@[::1]") &&
                  strcmp(cur->redis.user, "al ice") == 0 &&
                  strcmp(cur->redis.display, "redis://al%20ice@[::1]:6379/0") == 0);
    test_cond("url no user", with1("RATELIMIT_REDIS_URL=redis://:p%25w@h") &&
                                 cur->redis.user == NULL &&
                                 strcmp(cur->redis.password, "p%w") == 0);
    test_cond("url raw @ in password", with1("RATELIMIT_REDIS_URL=redis://u:p@ss@h") &&
                                           strcmp(cur->redis.password, "p@ss") == 0 &&
                                           strcmp(cur->redis.host, "h") == 0);
    test_cond(
        "url user, password var wins",
        with(ENV("RATELIMIT_REDIS_URL=redis://bob:fromurl@h", "RATELIMIT_REDIS_PASSWORD=var")) &&
            strcmp(cur->redis.user, "bob") == 0 && strcmp(cur->redis.password, "var") == 0);
    test_cond("url user, password from var",
              with(ENV("RATELIMIT_REDIS_URL=redis://bob:@h", "RATELIMIT_REDIS_PASSWORD=var")) &&
                  strcmp(cur->redis.user, "bob") == 0 && strcmp(cur->redis.password, "var") == 0);
    test_cond("url user without password", rejects("RATELIMIT_REDIS_URL=redis://bob:@h", "user"));
    test_cond("url bad escapes",
              rejects_all(
                  ENV("RATELIMIT_REDIS_URL=redis://u:%zz@h", "RATELIMIT_REDIS_URL=redis://u:%4@h",
                      "RATELIMIT_REDIS_URL=redis://u:ab%@h", "RATELIMIT_REDIS_URL=redis://u:%00@h",
                      "RATELIMIT_REDIS_URL=redis://u%0:p@h", "RATELIMIT_REDIS_URL=redis://u@h")));
    test_cond("unix url still", with1("RATELIMIT_REDIS_URL=unix:///tmp/r.sock?db=2") &&
                                    cur->redis.user == NULL && cur->redis.db == 2);
}

/* Malformed URLs holding the marker password: no message may show it. */
static void test_url_secret_never_shown(void)
{
    static const char *const bad[] = {
        "RATELIMIT_REDIS_URL=redis://:SeCrEt",
        "RATELIMIT_REDIS_URL=redis://u:SeCrEt@host:notaport",
        "RATELIMIT_REDIS_URL=redis://SeCrEt@",
        "RATELIMIT_REDIS_URL=rediss://x:SeCrEt@h",
        "RATELIMIT_REDIS_URL=redis://u:SeCrEt@",
        "RATELIMIT_REDIS_URL=redis://:SeCrEt@[::1",
        "RATELIMIT_REDIS_URL=http://u:SeCrEt@h",
        "RATELIMIT_REDIS_URL=redis://u:SeCrEt%zz@h",
        "RATELIMIT_REDIS_URL=redis://host:SeCrEt",
        "RATELIMIT_REDIS_URL=redis://:SeCrEt/0",
        "RATELIMIT_REDIS_URL=redis:/:SeCrEt@h",
        "RATELIMIT_REDIS_URL=SeCrEt:x",
        "RATELIMIT_REDIS_URL=:SeCrEt",
        "RATELIMIT_REDIS_URL=unix://u:SeCrEt@/x",
        "RATELIMIT_REDIS_URL=redis://u:SeCrEt@h/0/1",
        "RATELIMIT_REDIS_URL=redis://u:SeCrEt@h h",
        "RATELIMIT_REDIS_URL=redis://SeCrEt:@h",
        "RATELIMIT_REDIS_URL=redis://u:SeCrEt@h\n",
        "RATELIMIT_REDIS_URL=REDIS://:SeCrEt",
        NULL,
    };
    char longurl[1200];
    size_t i;
    int ok = 1;

    for (i = 0; bad[i] != NULL; i++) {
        int r = rejects(bad[i], NULL);
        int hidden = strstr(cur_err.msg, "SeCrEt") == NULL;

        if (!r || !hidden)
            printf("# leaked or accepted: %s -> %s\n", bad[i], cur_err.msg);
        ok &= r && hidden;
    }
    test_cond("url secret never in message", ok);
    memcpy(longurl, "RATELIMIT_REDIS_URL=redis://:SeCrEt", 35);
    memset(longurl + 35, 'x', 1100);
    longurl[1135] = '\0';
    test_cond("long url secret hidden",
              rejects(longurl, NULL) && strstr(cur_err.msg, "SeCrEt") == NULL);
    test_cond("bad url names the variable",
              rejects("RATELIMIT_REDIS_URL=redis://:SeCrEt", "'redis://***'"));
}

/* ------------------------------------------------------------ boundaries */

/* The config for one request's params with the log captured into logged[]. */
static const struct rl_config *req_logged(struct config_cache *cc, const char *const *list,
                                          struct rl_err *err)
{
    const struct rl_config *c;
    char **e = env_dup(list);

    logged_len = 0;
    logged[0] = '\0';
    log_set_sink(capture, NULL);
    c = config_for_request(cc, e, err);
    log_set_sink(NULL, NULL);
    env_burn(e);
    return c;
}

static struct config_cache *cache_of(const char *const *list)
{
    char **penv = env_dup(list);
    struct rl_err err;
    struct config_cache *cc = config_cache_new(penv, &err);

    env_burn(penv);
    return cc;
}

#define BOUNDARY_BASE                                                                              \
    ENV("RATELIMIT_REDIS_URL=unix:///base.sock", "RATELIMIT_SCRIPT_ROOT=/srv/cgi",                 \
        "RATELIMIT_BACKEND=/srv/cgi/app", "RATELIMIT_LIMIT=100", "RATELIMIT_PREFIX=app:")

static void test_boundary_params(void)
{
    struct config_cache *cc = cache_of(BOUNDARY_BASE);
    const struct rl_config *base, *c;
    struct rl_err err;

    test_cond("boundary cache", cc != NULL);
    if (cc == NULL)
        return;
    base = config_cache_base(cc);
    c = req_logged(cc,
                   ENV("RATELIMIT_REDIS_URL=redis://evil.example:1/0", "RATELIMIT_SCRIPT_ROOT=",
                       "RATELIMIT_BACKEND=/bin/sh", "RATELIMIT_MODE=authorizer",
                       "RATELIMIT_REDIS_PASSWORD=pw-evil", "RATELIMIT_PREFIX=evil:"),
                   &err);
    test_cond("boundary params give the base", c == base);
    test_cond("boundary values kept", strcmp(base->redis.path, "/base.sock") == 0 &&
                                          strcmp(base->script_root, "/srv/cgi") == 0 &&
                                          strcmp(base->backend, "/srv/cgi/app") == 0 &&
                                          base->mode == RL_MODE_AUTO &&
                                          strcmp(base->prefix, "app:") == 0);
    test_cond("boundary ignore logged by name",
              count(logged, "request parameter RATELIMIT_REDIS_URL ignored") == 1 &&
                  count(logged, "request parameter RATELIMIT_BACKEND ignored") == 1 &&
                  count(logged, "request parameter RATELIMIT_SCRIPT_ROOT ignored") == 1 &&
                  count(logged, "request parameter RATELIMIT_MODE ignored") == 1);
    test_cond("boundary values never logged",
              strstr(logged, "evil") == NULL && strstr(logged, "/bin/sh") == NULL);
    c = req_logged(cc, ENV("RATELIMIT_REDIS_URL=redis://evil2:1", "RATELIMIT_LIMIT=5"), &err);
    test_cond("policy still overrides", c != NULL && c != base && c->rules[0].limit == 5 &&
                                            strcmp(c->redis.path, "/base.sock") == 0 &&
                                            strcmp(c->backend, "/srv/cgi/app") == 0);
    test_cond("boundary ignore logged once per worker", logged_len == 0);
    test_cond("invalid boundary never parsed",
              req_logged(cc, ENV("RATELIMIT_REDIS_TIMEOUT_MS=junk", "RATELIMIT_STORE=x"), &err) ==
                  base);
    test_cond("log level stays overridable",
              (c = req_logged(cc, ENV("RATELIMIT_LOG=debug"), &err)) != NULL &&
                  c->log_level == RL_LOG_DEBUG);
    config_cache_free(cc);
}

/* Every boundary (the man page's list) is ignored as a request parameter (the value
 * would be valid, so an override would show); every policy variable
 * still overrides. */
static void test_boundary_table(void)
{
    static const char *const boundary[] = {"RATELIMIT_REDIS_URL=redis://h:1/1",
                                           "RATELIMIT_REDIS_PASSWORD=x",
                                           "RATELIMIT_REDIS_TIMEOUT_MS=7",
                                           "RATELIMIT_SENTINEL_PASSWORD=x",
                                           "RATELIMIT_SCRIPT_ROOT=/",
                                           "RATELIMIT_BACKEND=/bin/sh",
                                           "RATELIMIT_MODE=wrapper",
                                           "RATELIMIT_TRUSTED_PROXIES=0.0.0.0/0",
                                           "RATELIMIT_PREFIX=x:",
                                           "RATELIMIT_STORE=buckets",
                                           "RATELIMIT_OVERRIDES=none",
                                           "RATELIMIT_METRICS_PATH=/m",
                                           "RATELIMIT_METRICS_ALLOW=0.0.0.0/0",
                                           "RATELIMIT_MAX_BODY=64g",
                                           NULL};
    static const char *const policy[] = {"RATELIMIT_LIMIT=7",
                                         "RATELIMIT_WINDOW=7",
                                         "RATELIMIT_ALGORITHM=sliding-log",
                                         "RATELIMIT_KEY=env:X",
                                         "RATELIMIT_KEY_MISSING=skip",
                                         "RATELIMIT_NAME=x",
                                         "RATELIMIT_RULES=a ip 1/1",
                                         "RATELIMIT_STATUS=503",
                                         "RATELIMIT_FAIL=closed",
                                         "RATELIMIT_IPV6_PREFIX=48",
                                         "RATELIMIT_ALLOW=10.0.0.0/8",
                                         "RATELIMIT_DENY=10.0.0.0/8",
                                         "RATELIMIT_DRY_RUN=1",
                                         "RATELIMIT_HEADERS=x",
                                         "RATELIMIT_BACKEND_TIMEOUT=5",
                                         "RATELIMIT_LOG=debug",
                                         "RATELIMIT_BODY=problem",
                                         "RATELIMIT_NEAR_LIMIT=0.5",
                                         NULL};
    struct config_cache *cc = cache_of(ENV("RATELIMIT_ALGORITHM=token-bucket"));
    struct rl_err err;
    size_t i;
    int ok_b = 1, ok_p = 1;

    if (cc == NULL)
        return;
    for (i = 0; boundary[i] != NULL; i++)
        ok_b &= req_logged(cc, ENV(boundary[i]), &err) == config_cache_base(cc);
    for (i = 0; policy[i] != NULL; i++) {
        const struct rl_config *c = req_logged(cc, ENV(policy[i]), &err);

        if (c == NULL || c == config_cache_base(cc))
            printf("# policy did not override: %s\n", policy[i]);
        ok_p &= c != NULL && c != config_cache_base(cc);
    }
    test_cond("every boundary ignored", ok_b);
    test_cond("every policy variable overrides", ok_p);
    config_cache_free(cc);
}

static void test_overrides_none(void)
{
    struct config_cache *cc = cache_of(ENV("RATELIMIT_LIMIT=100", "RATELIMIT_OVERRIDES=none"));
    struct rl_err err;

    test_cond("overrides none cache", cc != NULL);
    if (cc == NULL)
        return;
    test_cond("overrides none: LIMIT ignored",
              req_logged(cc, ENV("RATELIMIT_LIMIT=5", "RATELIMIT_NAME=x"), &err) ==
                  config_cache_base(cc));
    test_cond("overrides none logged",
              count(logged, "RATELIMIT_OVERRIDES=none") == 1 && strstr(logged, "=5") == NULL);
    test_cond("overrides none: invalid value not parsed",
              req_logged(cc, ENV("RATELIMIT_LIMIT=nope"), &err) == config_cache_base(cc));
    test_cond("overrides none logged once", logged_len == 0);
    test_cond("overrides none: base limit", config_cache_base(cc)->rules[0].limit == 100);
    config_cache_free(cc);
}

/* Plain CGI hands the process environment in as the params: no override,
 * nothing ignored, nothing logged. */
/* Plain CGI never asks config_for_request (request.c takes the base: its
 * environment is the process's); a FastCGI param equal to the process's
 * own entry is ignored without a word. */
static void test_cgi_params_are_env(void)
{
    struct config_cache *cc = cache_of(
        ENV("RATELIMIT_REDIS_URL=unix:///r.sock", "RATELIMIT_LIMIT=4", "REMOTE_ADDR=1.2.3.4"));
    struct rl_err err;

    test_cond("cgi cache", cc != NULL);
    if (cc != NULL) {
        test_cond("param equal to the process entry is quiet",
                  req_logged(cc, ENV("RATELIMIT_REDIS_URL=unix:///r.sock"), &err) ==
                          config_cache_base(cc) &&
                      logged_len == 0);
        config_cache_free(cc);
    }
}

static void test_warn_new_names(void)
{
    test_cond("new names quiet",
              strlen(warnings(ENV("RATELIMIT_OVERRIDES=none", "RATELIMIT_MAX_BODY=1m",
                                  "RATELIMIT_SENTINEL_PASSWORD=x", "RATELIMIT_BODY=json",
                                  "RATELIMIT_NEAR_LIMIT=0.5", "RATELIMIT_METRICS_PATH=/m",
                                  "RATELIMIT_METRICS_ALLOW=::1/128"))) == 0);
    test_cond("typo max body", strstr(warnings(ENV("RATELIMIT_MAX_BODDY=1")),
                                      "(did you mean RATELIMIT_MAX_BODY?)") != NULL);
    test_cond("typo overrides", strstr(warnings(ENV("RATELIMIT_OVERIDES=none")),
                                       "(did you mean RATELIMIT_OVERRIDES?)") != NULL);
}

/* ------------------------------------------------------------ --check --verbose */

/* config_list() of a heap copy of list, burned before the listing is
 * read (it must hold no pointer into the environment). Caller frees. */
static char *listing(const char *const *list)
{
    char **e = env_dup(list);
    char *out = config_list(e);

    env_burn(e);
    return out;
}

/* The line of text that starts with "NAME=", without its newline, in a
 * static buffer; "" when there is none. */
static const char *list_line(const char *text, const char *name)
{
    static char line[8192];
    size_t n = strlen(name);
    const char *p = text, *end;

    line[0] = '\0';
    for (; *p != '\0'; p = end + 1) {
        end = strchr(p, '\n');
        if (end == NULL)
            break;
        if (strncmp(p, name, n) == 0 && p[n] == '=' && (size_t)(end - p) < sizeof(line)) {
            memcpy(line, p, (size_t)(end - p));
            line[end - p] = '\0';
            break;
        }
    }
    return line;
}

/* 1 when the line of NAME is "NAME=VALUE", spaces, "(SOURCE)". */
static int listed(const char *text, const char *name, const char *value, const char *source)
{
    const char *l = list_line(text, name), *v = l + strlen(name) + 1;
    size_t vlen = strlen(value);
    char src[32];

    (void)snprintf(src, sizeof(src), "(%s)", source);
    if (l[0] == '\0' || strncmp(v, value, vlen) != 0 || v[vlen] != ' ')
        return 0;
    v += strspn(v + vlen, " ") + vlen;
    return strcmp(v, src) == 0;
}

/* 1 when each variable of the table has exactly one line, and there is
 * no other line. */
static int lists_table(const char *text)
{
    size_t i, lines = 0;
    const char *p;

    for (p = text; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    if (lines != cfg_var_count())
        return 0;
    for (i = 0; i < cfg_var_count(); i++) {
        const char *name = cfg_var_name(i);
        size_t n = strlen(name), seen = 0;

        for (p = text; *p != '\0'; p = strchr(p, '\n') + 1)
            seen += strncmp(p, name, n) == 0 && p[n] == '=';
        if (seen != 1)
            return 0;
    }
    return 1;
}

/* The column of the '(' of the source on the line of NAME. */
static size_t source_col(const char *text, const char *name)
{
    const char *l = list_line(text, name), *paren = strrchr(l, '(');

    return paren != NULL ? (size_t)(paren - l) : 0;
}

static void test_list_sources(void)
{
    char *t =
        listing(ENV("PATH=/bin", "RATELIMIT_LIMIT=100", "RATELIMIT_KEY=", "RATELIMIT_STATUS=503",
                    "RATELIMIT_STATUS=429", "RATELIMIT_TYPO=1"));

    test_cond("list: every variable once", lists_table(t));
    test_cond("list: set", listed(t, "RATELIMIT_LIMIT", "100", "environment"));
    test_cond("list: default", listed(t, "RATELIMIT_WINDOW", "60", "default"));
    test_cond("list: default URL",
              listed(t, "RATELIMIT_REDIS_URL", "redis://127.0.0.1:6379/0", "default"));
    test_cond("list: empty is the default", listed(t, "RATELIMIT_KEY", "ip", "default"));
    test_cond("list: the last one wins", listed(t, "RATELIMIT_STATUS", "429", "environment"));
    test_cond("list: no default", listed(t, "RATELIMIT_BURST", "unset", "default") &&
                                      listed(t, "RATELIMIT_RULES", "unset", "default"));
    test_cond("list: value with spaces",
              listed(t, "RATELIMIT_METRICS_ALLOW", "127.0.0.0/8 ::1/128", "default"));
    test_cond("list: only the table's names", strstr(t, "TYPO") == NULL &&
                                                  strncmp(t, "PATH=", 5) != 0 &&
                                                  strstr(t, "\nPATH=") == NULL);
    test_cond("list: sources aligned",
              source_col(t, "RATELIMIT_LIMIT") == source_col(t, "RATELIMIT_SENTINEL_PASSWORD") &&
                  source_col(t, "RATELIMIT_LIMIT") == source_col(t, "RATELIMIT_METRICS_ALLOW") &&
                  source_col(t, "RATELIMIT_LIMIT") > strlen("RATELIMIT_METRICS_ALLOW="));
    free(t);
    t = listing(EMPTY_ENV);
    test_cond("list: empty environment", lists_table(t) && strstr(t, "(environment)") == NULL);
    free(t);
}

static void test_list_secrets(void)
{
    char *t = listing(ENV("RATELIMIT_REDIS_URL=redis://bob:Secr3t@h:1/2",
                          "RATELIMIT_REDIS_PASSWORD=Secr3t", "RATELIMIT_SENTINEL_PASSWORD="));

    test_cond("list: URL password masked, user kept",
              listed(t, "RATELIMIT_REDIS_URL", "redis://bob:***@h:1/2", "environment"));
    test_cond("list: env password masked",
              listed(t, "RATELIMIT_REDIS_PASSWORD", "***", "environment"));
    test_cond("list: empty secret is unset",
              listed(t, "RATELIMIT_SENTINEL_PASSWORD", "unset", "default"));
    test_cond("list: no password text", strstr(t, "Secr3t") == NULL);
    free(t);
    t = listing(ENV("RATELIMIT_REDIS_URL=redis+sentinel://:Secr3t@s1,s2:26380/mymaster",
                    "RATELIMIT_SENTINEL_PASSWORD=Secr3t"));
    test_cond("list: URL password without user",
              listed(t, "RATELIMIT_REDIS_URL", "redis+sentinel://:***@s1,s2:26380/mymaster",
                     "environment"));
    test_cond("list: sentinel password masked",
              listed(t, "RATELIMIT_SENTINEL_PASSWORD", "***", "environment"));
    test_cond("list: unset secret", listed(t, "RATELIMIT_REDIS_PASSWORD", "unset", "default"));
    test_cond("list: no password text (sentinel)", strstr(t, "Secr3t") == NULL);
    free(t);
    t = listing(ENV("RATELIMIT_REDIS_URL=redis://:Se@cr3t@h"));
    test_cond("list: '@' in the password",
              listed(t, "RATELIMIT_REDIS_URL", "redis://:***@h", "environment") &&
                  strstr(t, "cr3t") == NULL);
    free(t);
    t = listing(ENV("RATELIMIT_REDIS_URL=unix:///run/redis.sock?db=2"));
    test_cond("list: URL without userinfo",
              listed(t, "RATELIMIT_REDIS_URL", "unix:///run/redis.sock?db=2", "environment"));
    free(t);
}

static void test_list_invalid(void)
{
    char *t = listing(ENV("RATELIMIT_WINDOW=5x", "RATELIMIT_REDIS_URL=redis://:Secr3t",
                          "RATELIMIT_REDIS_PASSWORD=Secr3t", "RATELIMIT_RULES=a ip 5/1m\nb"));

    test_cond("list: invalid config listed", lists_table(t));
    test_cond("list: invalid value as it is", listed(t, "RATELIMIT_WINDOW", "5x", "environment"));
    test_cond("list: invalid URL masked as in messages",
              listed(t, "RATELIMIT_REDIS_URL", "redis://***", "environment") &&
                  strstr(t, "Secr3t") == NULL);
    test_cond("list: control characters",
              listed(t, "RATELIMIT_RULES", "a ip 5/1m?b", "environment"));
    free(t);
}

static void test_list_long(void)
{
    char big[6000];
    char *t;
    const char *l;

    memcpy(big, "RATELIMIT_PREFIX=", 17);
    memset(big + 17, 'x', sizeof(big) - 18);
    big[sizeof(big) - 1] = '\0';
    t = listing(ENV(big));
    l = list_line(t, "RATELIMIT_PREFIX");
    test_cond("list: long value cut", lists_table(t) && strlen(l) == 17 + 4096 + 3 + 1 + 13 &&
                                          strstr(l, "x... (environment)") != NULL);
    free(t);
}

int main(void)
{
    test_defaults();
    test_duration();
    test_numbers();
    test_burst_algo();
    test_key();
    test_name();
    test_enums();
    test_store();
    test_cluster_limits();
    test_strings_lists();
    test_redis_url();
    test_unix_path_len();
    test_password();
    test_rules();
    test_rules_bad();
    test_rules_env();
    test_later_wins();
    test_warn_unknown();
    test_summary();
    test_cache();
    test_cache_evict();
    test_cache_bad_base();
    test_max_body();
    test_body_near_limit();
    test_url_user();
    test_url_secret_never_shown();
    test_boundary_params();
    test_boundary_table();
    test_overrides_none();
    test_warn_new_names();
    test_cgi_params_are_env();
    test_list_sources();
    test_list_secrets();
    test_list_invalid();
    test_list_long();
    config_free(cur);
    return test_report();
}
