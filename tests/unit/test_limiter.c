/*
 * test_limiter.c - limiter_decode on canned RESP replies (fed through
 * hiredis' reader: no server), the algorithm table, the choice of script,
 * limiter_ttl_seconds, the no-rule shortcut of limiter_check, redisconn's
 * RESP formatter (against hiredis' own) and the circuit breaker of
 * redisconn against a socket that does not exist.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "rlconfig.h"
#include "limiter.h"
#include "log.h"
#include "redisconn.h"
#include "rl.h"
#include "testhelp.h"
#include "util.h"

/* One reply parsed from RESP bytes; NULL when the reader refuses them. */
static redisReply *resp(const char *bytes)
{
    redisReader *r = redisReaderCreate();
    void *reply = NULL;

    if (r == NULL)
        return NULL;
    if (redisReaderFeed(r, bytes, strlen(bytes)) != REDIS_OK ||
        redisReaderGetReply(r, &reply) != REDIS_OK)
        reply = NULL;
    redisReaderFree(r);
    return reply;
}

/* An array of n integers as RESP. */
static redisReply *resp_ints(int n, ...)
{
    char bytes[1024];
    size_t off;
    va_list ap;
    int i;

    off = (size_t)snprintf(bytes, sizeof(bytes), "*%d\r\n", n);
    va_start(ap, n);
    for (i = 0; i < n && off < sizeof(bytes); i++)
        off +=
            (size_t)snprintf(bytes + off, sizeof(bytes) - off, ":%lld\r\n", va_arg(ap, long long));
    va_end(ap);
    return resp(bytes);
}

/* n rules named r0.., limit 10 per minute, fixed-window. */
static void cfg_init(struct rl_config *cfg, size_t n)
{
    size_t i;

    memset(cfg, 0, sizeof(*cfg));
    cfg->nrules = n;
    cfg->redis_timeout_ms = 100;
    for (i = 0; i < n; i++) {
        struct rl_rule *r = &cfg->rules[i];

        (void)snprintf(r->name, sizeof(r->name), "r%zu", i);
        r->limit = 10;
        r->burst = 10;
        r->window_ms = 60000;
        r->algo = RL_ALGO_FIXED_WINDOW;
    }
}

/* Decode reply (consumed) for cfg; RL_OK or RL_ERR. */
static int decode(redisReply *reply, const struct rl_config *cfg, const unsigned char *applied,
                  struct rl_decision *d)
{
    struct rl_err err;
    int ret;

    rl_err_clear(&err);
    ret = limiter_decode(reply, cfg, applied, d, &err);
    if (ret != RL_OK && err.kind != RL_E_PROTO)
        ret = 99; /* wrong error kind: fails the test */
    freeReplyObject(reply);
    return ret;
}

static void test_decode_one(void)
{
    struct rl_config cfg;
    struct rl_decision d;

    cfg_init(&cfg, 1);
    test_cond("1 rule allowed",
              decode(resp_ints(5, 1LL, 1LL, 9LL, 60000LL, 0LL), &cfg, NULL, &d) == RL_OK &&
                  d.allowed == 1 && d.nrules == 1 && d.worst == 0 && d.r[0].applied &&
                  d.r[0].allowed && d.r[0].remaining == 9 && d.r[0].reset_ms == 60000 &&
                  d.r[0].retry_ms == 0);
    test_cond("1 rule denied",
              decode(resp_ints(5, 0LL, 0LL, 0LL, 42000LL, 41500LL), &cfg, NULL, &d) == RL_OK &&
                  d.allowed == 0 && d.r[0].allowed == 0 && d.r[0].remaining == 0 &&
                  d.r[0].retry_ms == 41500 && d.r[0].reset_ms == 42000 && d.worst == 0);
    test_cond("1 rule last request (remaining 0, allowed)",
              decode(resp_ints(5, 1LL, 1LL, 0LL, 10LL, 0LL), &cfg, NULL, &d) == RL_OK &&
                  d.allowed && d.r[0].remaining == 0);
}

static void test_decode_three(void)
{
    struct rl_config cfg;
    struct rl_decision d;
    unsigned char applied[3] = {1, 0, 1};

    cfg_init(&cfg, 3);
    test_cond("3 rules allowed: worst = fewest remaining, tie by longer reset",
              decode(resp_ints(13, 1LL, 1LL, 5LL, 1000LL, 0LL, 1LL, 3LL, 500LL, 0LL, 1LL, 3LL,
                               2000LL, 0LL),
                     &cfg, NULL, &d) == RL_OK &&
                  d.allowed && d.nrules == 3 && d.worst == 2);
    test_cond("3 rules, full tie: first one", decode(resp_ints(13, 1LL, 1LL, 3LL, 10LL, 0LL, 1LL,
                                                               3LL, 10LL, 0LL, 1LL, 3LL, 10LL, 0LL),
                                                     &cfg, NULL, &d) == RL_OK &&
                                                  d.worst == 0);
    test_cond("3 rules denied: worst = denied rule with the longest retry",
              decode(resp_ints(13, 0LL, 1LL, 0LL, 100LL, 0LL, 0LL, 0LL, 5000LL, 5000LL, 0LL, 0LL,
                               9000LL, 8000LL),
                     &cfg, NULL, &d) == RL_OK &&
                  !d.allowed && d.worst == 2 && d.r[0].allowed && !d.r[1].allowed &&
                  d.r[2].retry_ms == 8000);
    test_cond("3 rules: an allowed rule never is the worst of a denial",
              decode(resp_ints(13, 0LL, 1LL, 0LL, 99999LL, 0LL, 0LL, 0LL, 5LL, 5LL, 1LL, 1LL,
                               99999LL, 0LL),
                     &cfg, NULL, &d) == RL_OK &&
                  !d.allowed && d.worst == 1);
    test_cond("3 rules, rule 1 not applied",
              decode(resp_ints(9, 1LL, 1LL, 7LL, 100LL, 0LL, 1LL, 8LL, 100LL, 0LL), &cfg, applied,
                     &d) == RL_OK &&
                  d.allowed && d.nrules == 3 && d.r[0].applied && !d.r[1].applied &&
                  d.r[1].allowed && d.r[2].applied && d.r[2].remaining == 8 && d.worst == 0);
    test_cond("not-applied rule reply too long",
              decode(resp_ints(13, 1LL, 1LL, 5LL, 1LL, 0LL, 1LL, 5LL, 1LL, 0LL, 1LL, 5LL, 1LL, 0LL),
                     &cfg, applied, &d) == RL_ERR);
}

static void test_decode_shadow(void)
{
    struct rl_config cfg;
    struct rl_decision d;
    unsigned char applied[3] = {0, 1, 1};

    cfg_init(&cfg, 3);
    cfg.rules[1].shadow = 1;
    test_cond("shadow over its limit: admitted, would_deny, never the worst",
              decode(resp_ints(13, 1LL, 1LL, 5LL, 1000LL, 0LL, 0LL, 0LL, 9000LL, 8000LL, 1LL, 7LL,
                               2000LL, 0LL),
                     &cfg, NULL, &d) == RL_OK &&
                  d.allowed && !d.r[1].allowed && d.r[1].would_deny && !d.r[0].would_deny &&
                  !d.r[2].would_deny && d.r[1].retry_ms == 8000 && d.worst == 0);
    test_cond("shadow admitting: no would_deny, still never the worst",
              decode(resp_ints(13, 1LL, 1LL, 5LL, 1000LL, 0LL, 1LL, 0LL, 9000LL, 0LL, 1LL, 7LL,
                               2000LL, 0LL),
                     &cfg, NULL, &d) == RL_OK &&
                  d.allowed && d.r[1].allowed && !d.r[1].would_deny && d.worst == 0);
    test_cond("shadow over, a real rule denies: denied, the real rule the worst",
              decode(resp_ints(13, 0LL, 1LL, 5LL, 1000LL, 0LL, 0LL, 0LL, 90000LL, 90000LL, 0LL, 0LL,
                               2000LL, 2000LL),
                     &cfg, NULL, &d) == RL_OK &&
                  !d.allowed && d.r[1].would_deny && d.worst == 2);
    test_cond("shadow over: allowed_all 0 is a protocol error",
              decode(resp_ints(13, 0LL, 1LL, 5LL, 1000LL, 0LL, 0LL, 0LL, 9000LL, 8000LL, 1LL, 7LL,
                               2000LL, 0LL),
                     &cfg, NULL, &d) == RL_ERR);
    cfg.rules[2].shadow = 1;
    test_cond("only shadow rules, both over: admitted",
              decode(resp_ints(9, 1LL, 0LL, 0LL, 9000LL, 8000LL, 0LL, 0LL, 2000LL, 2000LL), &cfg,
                     applied, &d) == RL_OK &&
                  d.allowed && d.r[1].would_deny && d.r[2].would_deny && !d.r[0].applied);
}

static void test_decode_shapes(void)
{
    struct rl_config cfg;
    struct rl_decision d;

    cfg_init(&cfg, 1);
    test_cond("integer reply", decode(resp(":1\r\n"), &cfg, NULL, &d) == RL_ERR);
    test_cond("status reply", decode(resp("+OK\r\n"), &cfg, NULL, &d) == RL_ERR);
    test_cond("error reply", decode(resp("-ERR boom\r\n"), &cfg, NULL, &d) == RL_ERR);
    test_cond("nil reply", decode(resp("$-1\r\n"), &cfg, NULL, &d) == RL_ERR);
    test_cond("nil array", decode(resp("*-1\r\n"), &cfg, NULL, &d) == RL_ERR);
    test_cond("empty array", decode(resp("*0\r\n"), &cfg, NULL, &d) == RL_ERR);
    test_cond("short array", decode(resp_ints(4, 1LL, 1LL, 9LL, 10LL), &cfg, NULL, &d) == RL_ERR);
    test_cond("long array",
              decode(resp_ints(6, 1LL, 1LL, 9LL, 10LL, 0LL, 0LL), &cfg, NULL, &d) == RL_ERR);
    test_cond("string element",
              decode(resp("*5\r\n:1\r\n:1\r\n$1\r\n9\r\n:10\r\n:0\r\n"), &cfg, NULL, &d) == RL_ERR);
    test_cond("nil element",
              decode(resp("*5\r\n:1\r\n:1\r\n$-1\r\n:10\r\n:0\r\n"), &cfg, NULL, &d) == RL_ERR);
    test_cond("nested array", decode(resp("*5\r\n:1\r\n*1\r\n:1\r\n:9\r\n:10\r\n:0\r\n"), &cfg,
                                     NULL, &d) == RL_ERR);
    test_cond("NULL reply", limiter_decode(NULL, &cfg, NULL, &d, NULL) == RL_ERR);
    test_cond("failed decode leaves an allowed, unapplied decision",
              decode(resp_ints(4, 1LL, 1LL, 9LL, 10LL), &cfg, NULL, &d) == RL_ERR &&
                  d.allowed == 1 && d.r[0].applied == 0);
}

static void test_decode_values(void)
{
    struct rl_config cfg;
    struct rl_decision d;

    cfg_init(&cfg, 1);
    test_cond("allowed 2",
              decode(resp_ints(5, 1LL, 2LL, 9LL, 10LL, 0LL), &cfg, NULL, &d) == RL_ERR);
    test_cond("allowed -1",
              decode(resp_ints(5, 1LL, -1LL, 9LL, 10LL, 0LL), &cfg, NULL, &d) == RL_ERR);
    test_cond("allowed_all 2",
              decode(resp_ints(5, 2LL, 1LL, 9LL, 10LL, 0LL), &cfg, NULL, &d) == RL_ERR);
    test_cond("allowed_all disagrees (1 vs denied)",
              decode(resp_ints(5, 1LL, 0LL, 0LL, 10LL, 10LL), &cfg, NULL, &d) == RL_ERR);
    test_cond("allowed_all disagrees (0 vs allowed)",
              decode(resp_ints(5, 0LL, 1LL, 9LL, 10LL, 0LL), &cfg, NULL, &d) == RL_ERR);
    test_cond("negative remaining",
              decode(resp_ints(5, 1LL, 1LL, -1LL, 10LL, 0LL), &cfg, NULL, &d) == RL_ERR);
    test_cond("negative reset",
              decode(resp_ints(5, 1LL, 1LL, 1LL, -10LL, 0LL), &cfg, NULL, &d) == RL_ERR);
    test_cond("negative retry",
              decode(resp_ints(5, 0LL, 0LL, 0LL, 10LL, -10LL), &cfg, NULL, &d) == RL_ERR);
    test_cond("remaining above the limit",
              decode(resp_ints(5, 1LL, 1LL, 11LL, 10LL, 0LL), &cfg, NULL, &d) == RL_ERR);
    test_cond("allowed with a retry",
              decode(resp_ints(5, 1LL, 1LL, 1LL, 10LL, 5LL), &cfg, NULL, &d) == RL_ERR);
    test_cond("denied with remaining",
              decode(resp_ints(5, 0LL, 0LL, 1LL, 10LL, 5LL), &cfg, NULL, &d) == RL_ERR);
    test_cond("denied without a wait",
              decode(resp_ints(5, 0LL, 0LL, 0LL, 10LL, 0LL), &cfg, NULL, &d) == RL_ERR);
    test_cond("LLONG_MAX reset and retry accepted",
              decode(resp_ints(5, 0LL, 0LL, 0LL, LLONG_MAX, LLONG_MAX), &cfg, NULL, &d) == RL_OK &&
                  d.r[0].retry_ms == LLONG_MAX && limiter_ttl_seconds(d.r[0].retry_ms) > 0);
    test_cond("LLONG_MAX remaining refused",
              decode(resp_ints(5, 1LL, 1LL, LLONG_MAX, 10LL, 0LL), &cfg, NULL, &d) == RL_ERR);
    test_cond("LLONG_MIN retry refused",
              decode(resp_ints(5, 0LL, 0LL, 0LL, 10LL, LLONG_MIN), &cfg, NULL, &d) == RL_ERR);
    test_cond("LLONG_MIN allowed refused",
              decode(resp_ints(5, 1LL, LLONG_MIN, 0LL, 10LL, 0LL), &cfg, NULL, &d) == RL_ERR);
    cfg.rules[0].algo = RL_ALGO_TOKEN_BUCKET;
    cfg.rules[0].burst = 50;
    test_cond("token-bucket remaining up to burst - 1",
              decode(resp_ints(5, 1LL, 1LL, 49LL, 10LL, 0LL), &cfg, NULL, &d) == RL_OK &&
                  d.r[0].remaining == 49);
    cfg.nrules = RL_MAX_RULES + 1;
    test_cond("too many rules",
              decode(resp_ints(5, 1LL, 1LL, 1LL, 10LL, 0LL), &cfg, NULL, &d) == RL_ERR);
}

static void test_algos(void)
{
    int a, ok = 1;

    for (a = 0; a < RL_ALGO_COUNT; a++) {
        const char *name = algo_name(a);

        ok = ok && algo_parse(name, strlen(name)) == a;
    }
    test_cond("algo name/parse round trip", ok);
    test_cond("algo names", strcmp(algo_name(RL_ALGO_FIXED_WINDOW), "fixed-window") == 0 &&
                                strcmp(algo_name(RL_ALGO_SLIDING_LOG), "sliding-log") == 0 &&
                                strcmp(algo_name(RL_ALGO_SLIDING_WINDOW), "sliding-window") == 0 &&
                                strcmp(algo_name(RL_ALGO_TOKEN_BUCKET), "token-bucket") == 0);
    test_cond("algo parse unknown", algo_parse("leaky-bucket", 12) == -1);
    test_cond("algo parse prefix", algo_parse("token", 5) == -1);
    test_cond("algo parse len bound", algo_parse("sliding-logx", 11) == RL_ALGO_SLIDING_LOG);
    test_cond("algo parse empty / NULL", algo_parse("", 0) == -1 && algo_parse(NULL, 3) == -1);
    test_cond("algo name unknown",
              strcmp(algo_name(99), "unknown") == 0 && strcmp(algo_name(-1), "unknown") == 0);
}

static void test_ttl(void)
{
    test_cond("ttl 0 -> 1", limiter_ttl_seconds(0) == 1);
    test_cond("ttl -5 -> 1", limiter_ttl_seconds(-5) == 1);
    test_cond("ttl 1 -> 1", limiter_ttl_seconds(1) == 1);
    test_cond("ttl 1000 -> 1", limiter_ttl_seconds(1000) == 1);
    test_cond("ttl 1001 -> 2", limiter_ttl_seconds(1001) == 2);
    test_cond("ttl 60000 -> 60", limiter_ttl_seconds(60000) == 60);
    test_cond("ttl LLONG_MAX", limiter_ttl_seconds(LLONG_MAX) == LLONG_MAX / 1000 + 1);
    test_cond("ttl LLONG_MIN -> 1", limiter_ttl_seconds(LLONG_MIN) == 1);
}

static void test_script(void)
{
    const char *sha = limiter_script_sha();
    char again[RL_SHA1_HEX_LEN + 1];

    test_cond("script embedded", strstr(limiter_script(), "ALGO[3]") != NULL &&
                                     strstr(limiter_script(), "return rl_main()") != NULL);
    test_cond("script sha is 40 hex",
              strlen(sha) == RL_SHA1_HEX_LEN && strspn(sha, "0123456789abcdef") == RL_SHA1_HEX_LEN);
    test_cond("script sha matches",
              sha1_hex(limiter_script(), strlen(limiter_script()), again) == RL_OK &&
                  strcmp(again, sha) == 0 && limiter_script_sha() == sha);
}

/* The script limiter_pick_script gives cfg and keys holds exactly the
 * algorithms of want (a bit per script id: algorithm + RL_ALGO_COUNT *
 * store), and its sha is its SHA-1. */
#define ID_BIT(algo, store) (1U << ((algo) + RL_ALGO_COUNT * (store)))

/* Every script id of src/algorithms.def: each algorithm in the keys
 * layout, and in the buckets layout when it has one. */
static unsigned all_ids(void)
{
    unsigned ids = 0;
    int a;

    for (a = 0; a < RL_ALGO_COUNT; a++)
        ids |= ID_BIT(a, RL_STORE_KEYS) | (algo_has_buckets(a) ? ID_BIT(a, RL_STORE_BUCKETS) : 0);
    return ids;
}
static int picks(const struct rl_config *cfg, const char *const *keys, unsigned want)
{
    char marker[16], again[RL_SHA1_HEX_LEN + 1];
    const char *sha = NULL;
    const char *lua = limiter_pick_script(cfg, keys, &sha);
    int a;

    if (lua == NULL || sha == NULL || strstr(lua, "return rl_main()") == NULL)
        return 0;
    for (a = 0; a < RL_ALGO_COUNT * RL_STORE_COUNT; a++) {
        (void)snprintf(marker, sizeof(marker), "ALGO[%d] =", a);
        if ((strstr(lua, marker) != NULL) != ((want >> a) & 1))
            return 0;
    }
    return sha1_hex(lua, strlen(lua), again) == RL_OK && strcmp(again, sha) == 0;
}

static void test_pick_script(void)
{
    struct rl_config cfg;
    const char *keys[3] = {"k0", "k1", "k2"};
    int a, ok = 1;

    cfg_init(&cfg, 1);
    for (a = 0; a < RL_ALGO_COUNT; a++) {
        cfg.rules[0].algo = a;
        ok = ok && picks(&cfg, keys, ID_BIT(a, RL_STORE_KEYS));
    }
    test_cond("one rule: its algorithm's script alone", ok);
    cfg_init(&cfg, 3);
    cfg.rules[1].algo = RL_ALGO_TOKEN_BUCKET;
    test_cond("mixed algorithms: the full script", picks(&cfg, keys, all_ids()));
    keys[1] = NULL;
    test_cond("a mix only among unapplied rules: one script",
              picks(&cfg, keys, ID_BIT(RL_ALGO_FIXED_WINDOW, RL_STORE_KEYS)));
    cfg.rules[0].algo = cfg.rules[2].algo = RL_ALGO_SLIDING_WINDOW;
    test_cond("same algorithm in every applied rule: one script",
              picks(&cfg, keys, ID_BIT(RL_ALGO_SLIDING_WINDOW, RL_STORE_KEYS)));
    cfg.rules[0].algo = RL_ALGO_COUNT;
    test_cond("unknown algorithm: the full script (which refuses it)",
              picks(&cfg, keys, all_ids()));
    cfg_init(&cfg, 1);
    cfg.store = RL_STORE_BUCKETS;
    test_cond("buckets: fixed-window's own script",
              picks(&cfg, keys, ID_BIT(RL_ALGO_FIXED_WINDOW, RL_STORE_BUCKETS)));
    cfg.rules[0].algo = RL_ALGO_SLIDING_WINDOW;
    test_cond("buckets: sliding-window's, with the keys layout's decision",
              picks(&cfg, keys,
                    ID_BIT(RL_ALGO_SLIDING_WINDOW, RL_STORE_BUCKETS) |
                        ID_BIT(RL_ALGO_SLIDING_WINDOW, RL_STORE_KEYS)));
    cfg.rules[0].algo = RL_ALGO_TOKEN_BUCKET;
    test_cond("buckets: token-bucket's, with the keys layout's decision",
              picks(&cfg, keys,
                    ID_BIT(RL_ALGO_TOKEN_BUCKET, RL_STORE_BUCKETS) |
                        ID_BIT(RL_ALGO_TOKEN_BUCKET, RL_STORE_KEYS)));
    cfg.rules[0].algo = RL_ALGO_SLIDING_LOG;
    test_cond("buckets: sliding-log has none: the full script (which refuses it)",
              picks(&cfg, keys, all_ids()));
}

/* cmd holds exactly what hiredis' redisFormatCommandArgv makes of argv. */
static int same_as_hiredis(const struct redisconn_cmd *cmd, int argc, const char **argv,
                           const size_t *len)
{
    char *want = NULL;
    int n = redisFormatCommandArgv(&want, argc, argv, len);
    int same = n >= 0 && redisconn_cmd_complete(cmd) && (size_t)n == cmd->len &&
               memcmp(want, cmd->buf, cmd->len) == 0;

    redisFreeCommand(want);
    return same;
}

static void test_cmd_format(void)
{
    static struct redisconn_cmd cmd;
    static char big[RL_CMD_MAX];
    const char *argv[8] = {"EVALSHA",
                           "0123456789abcdef0123456789abcdef01234567",
                           "1",
                           "ratelimit:default:ab\r\n\0x",
                           "0",
                           "-42",
                           "9223372036854775807",
                           "-9223372036854775808"};
    size_t len[8] = {7, 40, 1, 24, 1, 3, 19, 20};
    const long long nums[4] = {0, -42, LLONG_MAX, LLONG_MIN};
    int i, ok = 1;

    redisconn_cmd_init(&cmd, 8);
    redisconn_cmd_str(&cmd, argv[0], len[0]);
    redisconn_cmd_str(&cmd, argv[1], len[1]);
    redisconn_cmd_ll(&cmd, 1);
    redisconn_cmd_str(&cmd, argv[3], len[3]);
    for (i = 0; i < 4; i++)
        redisconn_cmd_ll(&cmd, nums[i]);
    test_cond("RESP: strings (binary-safe), 0, negatives, LLONG_MAX/MIN as hiredis formats them",
              same_as_hiredis(&cmd, 8, argv, len));
    for (i = 0; i < 189 && ok; i++) {
        /* 2^k - 1, 2^k and -2^k for k = 0..62: every digit count. */
        long long p = 1LL << (i / 3);
        long long v = i % 3 == 0 ? p - 1 : i % 3 == 1 ? p : -p;
        char dec[24];

        redisconn_cmd_init(&cmd, 1);
        redisconn_cmd_ll(&cmd, v);
        argv[0] = dec;
        len[0] = (size_t)snprintf(dec, sizeof(dec), "%lld", v);
        ok = same_as_hiredis(&cmd, 1, argv, len);
    }
    test_cond("RESP: numbers across magnitudes", ok);
    redisconn_cmd_init(&cmd, 2);
    redisconn_cmd_str(&cmd, "a", 1);
    test_cond("RESP: too few arguments is incomplete", !redisconn_cmd_complete(&cmd));
    redisconn_cmd_str(&cmd, "b", 1);
    redisconn_cmd_ll(&cmd, 3);
    test_cond("RESP: too many arguments is incomplete", !redisconn_cmd_complete(&cmd));
    memset(big, 'x', sizeof(big));
    redisconn_cmd_init(&cmd, 1);
    redisconn_cmd_str(&cmd, big, sizeof(big) - 16);
    test_cond("RESP: just fits", redisconn_cmd_complete(&cmd) && cmd.len <= RL_CMD_MAX);
    redisconn_cmd_init(&cmd, 1);
    redisconn_cmd_str(&cmd, big, sizeof(big));
    test_cond("RESP: too long is incomplete",
              !redisconn_cmd_complete(&cmd) && cmd.len <= RL_CMD_MAX);
    redisconn_cmd_init(&cmd, -1);
    test_cond("RESP: negative argc is incomplete", !redisconn_cmd_complete(&cmd));
}

/* The longest EVALSHA the limiter can send fits RL_CMD_MAX. */
static void test_cmd_capacity(void)
{
    static struct redisconn_cmd cmd;
    char key[RL_KEY_MAX + 1];
    int i;

    memset(key, 'k', RL_KEY_MAX);
    key[RL_KEY_MAX] = '\0';
    redisconn_cmd_init(&cmd, 3 + 5 * RL_MAX_RULES);
    redisconn_cmd_str(&cmd, "EVALSHA", 7);
    redisconn_cmd_str(&cmd, key, RL_SHA1_HEX_LEN);
    redisconn_cmd_ll(&cmd, RL_MAX_RULES);
    for (i = 0; i < RL_MAX_RULES; i++)
        redisconn_cmd_str(&cmd, key, RL_KEY_MAX);
    for (i = 0; i < 4 * RL_MAX_RULES; i++)
        redisconn_cmd_ll(&cmd, LLONG_MIN);
    test_cond("RL_CMD_MAX holds RL_MAX_RULES keys of RL_KEY_MAX and 4 numbers each",
              redisconn_cmd_complete(&cmd));
}

/* The buckets layout's longest EVALSHA fits too: per rule 3 hashes
 * (PREFIX NAME ":{" 3 hex "}:" N, N up to 20 characters), 4 numbers and
 * the 61-byte field. */
static void test_cmd_capacity_buckets(void)
{
    static struct redisconn_cmd cmd;
    char key[RL_KEY_MAX + 1];
    size_t hashlen = RL_KEY_MAX - 1 - 65 + 3 + 2 + 20;
    int i;

    memset(key, 'k', RL_KEY_MAX);
    key[RL_KEY_MAX] = '\0';
    redisconn_cmd_init(&cmd, 3 + 8 * RL_MAX_RULES);
    redisconn_cmd_str(&cmd, "EVALSHA", 7);
    redisconn_cmd_str(&cmd, key, RL_SHA1_HEX_LEN);
    redisconn_cmd_ll(&cmd, 3 * RL_MAX_RULES);
    for (i = 0; i < 3 * RL_MAX_RULES; i++)
        redisconn_cmd_str(&cmd, key, hashlen);
    for (i = 0; i < RL_MAX_RULES; i++) {
        redisconn_cmd_ll(&cmd, LLONG_MIN);
        redisconn_cmd_ll(&cmd, LLONG_MIN);
        redisconn_cmd_ll(&cmd, LLONG_MIN);
        redisconn_cmd_ll(&cmd, LLONG_MIN);
        redisconn_cmd_str(&cmd, key, 61);
    }
    test_cond("RL_CMD_MAX holds RL_MAX_RULES rules of the buckets layout",
              redisconn_cmd_complete(&cmd));
}

/* The epoch the filter computes to name a rule's bucket hashes: the
 * window, or token-bucket's tolerance as src/lua/token_bucket_buckets.lua
 * computes it. */
static void test_bucket_epoch(void)
{
    test_cond("epoch: fixed-window and sliding-window, the window",
              algo_bucket_epoch_ms(RL_ALGO_FIXED_WINDOW, 3, 60000, 3) == 60000 &&
                  algo_bucket_epoch_ms(RL_ALGO_SLIDING_WINDOW, 7, 1000, 7) == 1000);
    test_cond("epoch: token-bucket, burst * window / limit rounded up",
              algo_bucket_epoch_ms(RL_ALGO_TOKEN_BUCKET, 5, 3600000, 5) == 3600000 &&
                  algo_bucket_epoch_ms(RL_ALGO_TOKEN_BUCKET, 3, 10000, 1) == 3334 &&
                  algo_bucket_epoch_ms(RL_ALGO_TOKEN_BUCKET, 7, 60000, 2) == 17143);
    test_cond("epoch: token-bucket, at least 1 s",
              algo_bucket_epoch_ms(RL_ALGO_TOKEN_BUCKET, 100, 1000, 1) == 1000 &&
                  algo_bucket_epoch_ms(RL_ALGO_TOKEN_BUCKET, 1000000000, 1, 1) == 1000);
    test_cond("epoch: token-bucket, beyond 10^15 ms capped (epoch 0 either way)",
              algo_bucket_epoch_ms(RL_ALGO_TOKEN_BUCKET, 1, 365LL * 86400000, 1000000000) ==
                  1000000000000000LL);
    test_cond("epoch: unknown algorithm, the window",
              algo_bucket_epoch_ms(99, 1, 5000, 1) == 5000 &&
                  algo_bucket_epoch_ms(-1, 1, 5000, 1) == 5000);
}

/* A key that is not PREFIX NAME ":{" 64 hex "}" cannot name bucket
 * hashes: a configuration error before any Redis is reached. */
static void test_check_bucket_key(void)
{
    struct rl_config cfg;
    struct rl_decision d;
    struct rl_err err;
    const char *keys[1] = {"ratelimit:r0:{short}"};

    cfg_init(&cfg, 1);
    cfg.store = RL_STORE_BUCKETS;
    rl_err_clear(&err);
    test_cond("buckets: a key not of the layout is a configuration error, no Redis",
              limiter_check(NULL, &cfg, keys, &d, &err) == RL_ERR && err.kind == RL_E_CONFIG &&
                  strstr(err.msg, "buckets layout") != NULL);
}

static void test_check_no_rule(void)
{
    struct rl_config cfg;
    struct rl_decision d;
    struct rl_err err;
    const char *keys[2] = {NULL, NULL};

    cfg_init(&cfg, 2);
    rl_err_clear(&err);
    /* No connection at all: a NULL redisconn must not be touched. */
    test_cond("no rule applies: allowed without Redis",
              limiter_check(NULL, &cfg, keys, &d, &err) == RL_OK && d.allowed && d.nrules == 2 &&
                  !d.r[0].applied && !d.r[1].applied && d.r[0].remaining == 10);
}

/* A target that cannot exist: the first call fails, the next ones fail
 * fast (breaker open) with no connect attempt. */
static void test_breaker(void)
{
    struct rl_config cfg;
    struct rl_decision d;
    struct rl_err err;
    struct redisconn *rc = redisconn_new();
    char path[] = "/nonexistent/fcgi-ratelimit-test.sock";
    char display[] = "unix:///nonexistent/fcgi-ratelimit-test.sock";
    const char *keys[1] = {"ratelimit:test:k"};
    long long t0;
    int r1, r2;

    cfg_init(&cfg, 1);
    cfg.redis.path = path;
    cfg.redis.display = display;
    log_set_level(RL_LOG_ERROR);
    rl_err_clear(&err);
    r1 = limiter_check(rc, &cfg, keys, &d, &err);
    test_cond("dead redis: RL_ERR kind REDIS", r1 == RL_ERR && err.kind == RL_E_REDIS);
    rl_err_clear(&err);
    t0 = now_ms();
    r2 = limiter_check(rc, &cfg, keys, &d, &err);
    test_cond("breaker open: fails fast", r2 == RL_ERR && err.kind == RL_E_REDIS &&
                                              strstr(err.msg, "next try") != NULL &&
                                              now_ms() - t0 < 50);
    test_cond("redisconn_check ignores the breaker and fails",
              redisconn_check(rc, &cfg, limiter_script(), &err) == RL_ERR);
    redisconn_close(rc);
    redisconn_free(rc);
    redisconn_free(NULL);
    test_cond("redisconn_free(NULL) is a no-op", 1);
}

int main(void)
{
    test_decode_one();
    test_decode_shadow();
    test_decode_three();
    test_decode_shapes();
    test_decode_values();
    test_algos();
    test_ttl();
    test_script();
    test_pick_script();
    test_cmd_format();
    test_cmd_capacity();
    test_cmd_capacity_buckets();
    test_bucket_epoch();
    test_check_bucket_key();
    test_check_no_rule();
    test_breaker();
    return test_report();
}
