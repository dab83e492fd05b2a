/*
 * test_redisurl.c - RATELIMIT_REDIS_URL on its own (src/redisurl.c): the
 * redis://, unix://, redis+sentinel:// and redis+cluster:// forms, userinfo with
 * percent-encoding, IPv6 hosts, ports and databases at and past their
 * bounds, the display (never the password), the mask for error messages,
 * that a refused URL leaves the target untouched, and target equality and
 * copy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redisurl.h"
#include "rl.h"
#include "testhelp.h"
#include "util.h"

static struct rl_redis_target t;
static const char *why;

/* Parse url into the (reset) target t: 1 when accepted. */
static int ok(const char *url)
{
    redisurl_target_free(&t);
    why = NULL;
    return redisurl_parse(url, &t, &why) == RL_OK;
}

/* 1 when url is refused with a reason and t stays empty. */
static int bad(const char *url)
{
    static const struct rl_redis_target zero;

    return !ok(url) && why != NULL && why[0] != '\0' && memcmp(&t, &zero, sizeof(t)) == 0;
}

static int str_is(const char *s, const char *want)
{
    return s != NULL && strcmp(s, want) == 0;
}

static void test_tcp(void)
{
    test_cond("host only: defaults", ok("redis://cache.example") && t.port == 6379 && t.db == 0 &&
                                         str_is(t.host, "cache.example") && t.path == NULL &&
                                         t.user == NULL && t.password == NULL &&
                                         t.mode == RL_REDIS_SERVER &&
                                         str_is(t.display, "redis://cache.example:6379/0"));
    test_cond("port and db", ok("redis://10.0.0.5:6380/2") && t.port == 6380 && t.db == 2 &&
                                 str_is(t.display, "redis://10.0.0.5:6380/2"));
    test_cond("port bounds",
              ok("redis://h:1") && t.port == 1 && ok("redis://h:65535") && t.port == 65535);
    test_cond("db bounds", ok("redis://h/0") && t.db == 0 && ok("redis://h/1000000") &&
                               t.db == 1000000 && ok("redis://h/") && t.db == 0);
    test_cond("scheme in any case", ok("ReDiS://h:7") && t.port == 7);
    test_cond("ipv6 in brackets", ok("redis://[::1]:7000/1") && str_is(t.host, "::1") &&
                                      str_is(t.display, "redis://[::1]:7000/1"));
}

static void test_userinfo(void)
{
    test_cond("password only", ok("redis://:s3cret@h") && t.user == NULL &&
                                   str_is(t.password, "s3cret") &&
                                   str_is(t.display, "redis://h:6379/0"));
    test_cond("user and password", ok("redis://app:pw@h:1/3") && str_is(t.user, "app") &&
                                       str_is(t.password, "pw") &&
                                       str_is(t.display, "redis://app@h:1/3"));
    test_cond("percent-decoded", ok("redis://a%40b:p%3Aw%25d@h") && str_is(t.user, "a@b") &&
                                     str_is(t.password, "p:w%d"));
    test_cond("display re-encodes the user, never shows the password",
              ok("redis://a%20b:topsecret@h") && str_is(t.display, "redis://a%20b@h:6379/0") &&
                  strstr(t.display, "topsecret") == NULL);
    test_cond("unencoded @ in the password: the last @ ends it",
              ok("redis://:p@ss/w@h:2") && str_is(t.password, "p@ss/w") && str_is(t.host, "h") &&
                  t.port == 2);
    test_cond("empty password: none",
              ok("redis://user:@h") && str_is(t.user, "user") && t.password == NULL);
    test_cond("bad userinfo", bad("redis://nocolon@h") && bad("redis://:%zz@h") &&
                                  bad("redis://:%4@h") && bad("redis://:%00@h") &&
                                  bad("redis://u%:p@h"));
}

static void test_unix(void)
{
    char url[200];

    test_cond("unix", ok("unix:///run/redis/r.sock") && t.host == NULL && t.db == 0 &&
                          str_is(t.path, "/run/redis/r.sock") && t.mode == RL_REDIS_SERVER &&
                          str_is(t.display, "unix:///run/redis/r.sock?db=0"));
    test_cond("unix db", ok("unix:///tmp/r.sock?db=3") && str_is(t.path, "/tmp/r.sock") &&
                             t.db == 3 && str_is(t.display, "unix:///tmp/r.sock?db=3"));
    test_cond("unix bad", bad("unix://rel.sock") && bad("unix:///p?db=x") && bad("unix:///p?x=1") &&
                              bad("unix:///p?db=1000001") && bad("unix:///p?db="));
    memcpy(url, "unix://", 7);
    url[7] = '/';
    memset(url + 8, 's', 106);
    url[8 + 106] = '\0';
    test_cond("unix path of 107 bytes", ok(url) && strlen(t.path) == 107);
    url[8 + 106] = 's';
    url[8 + 107] = '\0';
    test_cond("unix path of 108 bytes: too long", bad(url));
}

static void test_sentinel(void)
{
    char url[REDISURL_MAX];
    size_t o;
    int i;

    test_cond("sentinel: one, default port, no db",
              ok("redis+sentinel://s1/mymaster") && t.mode == RL_REDIS_SENTINEL && t.nnodes == 1 &&
                  str_is(t.nodes[0].host, "s1") && t.nodes[0].port == 26379 &&
                  str_is(t.master, "mymaster") && t.db == 0 && t.host == NULL && t.path == NULL &&
                  str_is(t.display, "redis+sentinel://s1:26379/mymaster/0"));
    test_cond(
        "sentinel: three, ports, ipv6, db",
        ok("redis+sentinel://10.0.0.1:26380,[::1]:5,s3/cache-1.a_b/4") && t.nnodes == 3 &&
            t.nodes[0].port == 26380 && str_is(t.nodes[1].host, "::1") && t.nodes[1].port == 5 &&
            str_is(t.nodes[2].host, "s3") && t.nodes[2].port == 26379 &&
            str_is(t.master, "cache-1.a_b") && t.db == 4 &&
            str_is(t.display, "redis+sentinel://10.0.0.1:26380,[::1]:5,s3:26379/cache-1.a_b/4"));
    test_cond("sentinel: the master's ACL user and password, never displayed",
              ok("redis+sentinel://app:pw%2F1@s1:1/m") && str_is(t.user, "app") &&
                  str_is(t.password, "pw/1") && str_is(t.display, "redis+sentinel://app@s1:1/m/0"));
    test_cond("sentinel: scheme in any case", ok("Redis+Sentinel://s/m") && t.nnodes == 1);
    test_cond("sentinel: bad forms",
              bad("redis+sentinel://s1") && bad("redis+sentinel://s1/") &&
                  bad("redis+sentinel:///m") && bad("redis+sentinel://s1,/m") &&
                  bad("redis+sentinel://s1:0/m") && bad("redis+sentinel://s1:x/m") &&
                  bad("redis+sentinel://s1/m/x") && bad("redis+sentinel://s1/m/1/2") &&
                  bad("redis+sentinel://s1/m!") && bad("redis+sentinel://,s1/m") &&
                  bad("redis+sentinel://s1/m?db=1") && bad("redis+sentinel://nocolon@s1/m"));
    o = (size_t)snprintf(url, sizeof(url), "redis+sentinel://");
    for (i = 0; i < REDISURL_NODES_MAX; i++)
        o += (size_t)snprintf(url + o, sizeof(url) - o, "%ss%d", i > 0 ? "," : "", i);
    (void)snprintf(url + o, sizeof(url) - o, "/m");
    test_cond("sentinel: 16 sentinels",
              ok(url) && t.nnodes == REDISURL_NODES_MAX && str_is(t.nodes[15].host, "s15"));
    (void)snprintf(url + o, sizeof(url) - o, ",s16/m");
    test_cond("sentinel: 17 refused", bad(url) && strstr(why, "16") != NULL);
    memset(url, 'm', 200);
    memcpy(url, "redis+sentinel://s/", 19);
    url[19 + REDISURL_NAME_MAX] = '\0';
    test_cond("sentinel: master name of 128", ok(url));
    url[19 + REDISURL_NAME_MAX] = 'm';
    url[20 + REDISURL_NAME_MAX] = '\0';
    test_cond("sentinel: master name of 129 refused", bad(url));
}

static void test_cluster(void)
{
    test_cond("cluster: seeds, default port",
              ok("redis+cluster://10.0.0.1:7000,10.0.0.2,[::1]:7002") &&
                  t.mode == RL_REDIS_CLUSTER && t.nnodes == 3 && t.nodes[0].port == 7000 &&
                  t.nodes[1].port == 6379 && str_is(t.nodes[2].host, "::1") && t.host == NULL &&
                  t.db == 0 && t.master == NULL &&
                  str_is(t.display, "redis+cluster://10.0.0.1:7000,10.0.0.2:6379,[::1]:7002"));
    test_cond("cluster: user and password, db 0 or a slash",
              ok("redis+cluster://app:pw@h:1/0") && str_is(t.user, "app") &&
                  str_is(t.password, "pw") && str_is(t.display, "redis+cluster://app@h:1") &&
                  ok("redis+cluster://h/") && t.nnodes == 1);
    test_cond("cluster: bad forms", bad("redis+cluster://") && bad("redis+cluster://h/1") &&
                                        bad("redis+cluster://h/m") && bad("redis+cluster://h,") &&
                                        bad("redis+cluster://h:0") && bad("redis+cluster://h?x"));
}

static void test_eq_copy(void)
{
    struct rl_redis_target a, b, c;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&c, 0, sizeof(c));
    test_cond("eq: parsed twice",
              redisurl_parse("redis+sentinel://u:p@s1,s2:7/m/1", &a, &why) == RL_OK &&
                  redisurl_parse("redis+sentinel://u:p@s1,s2:7/m/1", &b, &why) == RL_OK &&
                  redisurl_target_eq(&a, &b));
    redisurl_target_copy(&c, &a);
    test_cond("copy: equal, own strings",
              redisurl_target_eq(&a, &c) && c.nodes[1].host != a.nodes[1].host &&
                  c.master != a.master && str_is(c.nodes[1].host, "s2"));
    redisurl_target_free(&b);
    test_cond("eq: another sentinel",
              redisurl_parse("redis+sentinel://u:p@s1,s3:7/m/1", &b, &why) == RL_OK &&
                  !redisurl_target_eq(&a, &b));
    redisurl_target_free(&b);
    test_cond("eq: another master",
              redisurl_parse("redis+sentinel://u:p@s1,s2:7/n/1", &b, &why) == RL_OK &&
                  !redisurl_target_eq(&a, &b));
    redisurl_target_free(&b);
    test_cond("eq: another password",
              redisurl_parse("redis+sentinel://u:q@s1,s2:7/m/1", &b, &why) == RL_OK &&
                  !redisurl_target_eq(&a, &b));
    redisurl_target_free(&b);
    test_cond("eq: another mode", redisurl_parse("redis://u:p@s1:7/1", &b, &why) == RL_OK &&
                                      !redisurl_target_eq(&a, &b));
    redisurl_target_free(&a);
    redisurl_target_free(&b);
    redisurl_target_free(&c);
}

static void test_bad(void)
{
    static const char *const urls[] = {
        "http://h",          "redis://",       "redis://h:0",
        "redis://h:65536",   "redis://h:",     "redis://h:ab",
        "redis://h:-1",      "redis://h/x",    "redis://h/-1",
        "redis://h/1000001", "redis://h/0/1",  "redis://[::1",
        "redis://[zz]:1",    "redis://h h",    "redis://h?db=1",
        "redis://[::1]x",    "127.0.0.1:6379", "",
        "redis:/h",          "unix:/p",
    };
    char big[REDISURL_MAX + 16];
    size_t i;
    int all = 1;

    for (i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
        all = all && bad(urls[i]);
    test_cond("bad forms refused, target untouched", all);
    test_cond("NULL refused", bad(NULL));
    memcpy(big, "redis://", 8);
    memset(big + 8, 'h', REDISURL_MAX);
    big[8 + REDISURL_MAX] = '\0';
    test_cond("longer than REDISURL_MAX refused", bad(big));
    test_cond("port reason", !ok("redis://h:99999") && strstr(why, "1..65535") != NULL);
}

static void test_keeps_sentinel_password(void)
{
    struct rl_redis_target s;

    memset(&s, 0, sizeof(s));
    s.sentinel_password = xstrdup("sp");
    test_cond("sentinel password kept on success",
              redisurl_parse("redis://h", &s, &why) == RL_OK && str_is(s.sentinel_password, "sp"));
    redisurl_target_free(&s);
    test_cond("free zeroes", s.host == NULL && s.sentinel_password == NULL && s.port == 0);
    redisurl_target_free(NULL);
}

static void test_mask(void)
{
    char out[128];

    redisurl_mask("redis://u:secret@h:1/2", out, sizeof(out));
    test_cond("mask userinfo", strcmp(out, "redis://***@h:1/2") == 0);
    redisurl_mask("redis://:secret@h", out, sizeof(out));
    test_cond("mask password only", strcmp(out, "redis://:***@h") == 0);
    redisurl_mask("redis://:secret", out, sizeof(out));
    test_cond("mask a colon without @", strcmp(out, "redis://***") == 0);
    redisurl_mask("secret-pasted", out, sizeof(out));
    test_cond("mask no scheme", strcmp(out, "***") == 0);
    redisurl_mask("redis://h/2", out, sizeof(out));
    test_cond("no secret: shown whole", strcmp(out, "redis://h/2") == 0);
    redisurl_mask("redis://h:1/2", out, sizeof(out));
    test_cond("a colon may be a password that lost its @", strcmp(out, "redis://***") == 0);
    redisurl_mask("x@y:z://a:b@c", out, sizeof(out));
    test_cond("a scheme must be a scheme", strstr(out, "b") == NULL);
}

/* --check --verbose: only the password goes, and only from a valid URL. */
static void test_mask_password(void)
{
    char out[128];

    redisurl_mask_password("redis://u:secret@h:1/2", out, sizeof(out));
    test_cond("mask password: user kept", strcmp(out, "redis://u:***@h:1/2") == 0);
    redisurl_mask_password("redis://:secret@h", out, sizeof(out));
    test_cond("mask password: no user", strcmp(out, "redis://:***@h") == 0);
    redisurl_mask_password("redis+cluster://u:se:c@ret@a:1,b:2", out, sizeof(out));
    test_cond("mask password: ':' and '@' in it",
              strcmp(out, "redis+cluster://u:***@a:1,b:2") == 0);
    redisurl_mask_password("redis://h:1/2", out, sizeof(out));
    test_cond("mask password: host:port shown", strcmp(out, "redis://h:1/2") == 0);
    redisurl_mask_password("unix:///r@d/redis.sock", out, sizeof(out));
    test_cond("mask password: '@' in a path", strstr(out, "r@d") == NULL);
    redisurl_mask_password("redis://:secret", out, sizeof(out));
    test_cond("mask password: invalid as redisurl_mask", strcmp(out, "redis://***") == 0);
    redisurl_mask_password("secret-pasted", out, sizeof(out));
    test_cond("mask password: no scheme", strcmp(out, "***") == 0);
    redisurl_mask_password("redis://u:secret@h:1/2", out, 12);
    test_cond("mask password: cut", strcmp(out, "redis://u:*") == 0);
}

int main(void)
{
    test_tcp();
    test_userinfo();
    test_unix();
    test_sentinel();
    test_cluster();
    test_eq_copy();
    test_bad();
    test_keeps_sentinel_password();
    test_mask();
    test_mask_password();
    redisurl_target_free(&t);
    return test_report();
}
