/*
 * test_cluster.c - Redis Cluster slot routing (src/cluster.c): CRC16, key
 * slots with hash tags, the slot map from CLUSTER SLOTS replies built by
 * hand (and one parsed by hiredis from the bytes a server sends), the map
 * after a MOVED, and the MOVED/ASK parser with good and bad forms.
 *
 * The expected slots were read from a real redis-server 7.0 started with
 * --cluster-enabled yes, one CLUSTER KEYSLOT per key (binary keys sent
 * through redis-cli's quoted "\x00" form).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cluster.h"
#include "rl.h"
#include "testhelp.h"

/* ------------------------------------------------------------ replies */

static redisReply *r_new(int type)
{
    redisReply *r = calloc(1, sizeof(*r));

    if (r == NULL)
        abort();
    r->type = type;
    return r;
}

static redisReply *r_int(long long v)
{
    redisReply *r = r_new(REDIS_REPLY_INTEGER);

    r->integer = v;
    return r;
}

/* A string reply of s[0..len). */
static redisReply *r_strn(const char *s, size_t len)
{
    redisReply *r = r_new(REDIS_REPLY_STRING);

    r->str = malloc(len + 1);
    if (r->str == NULL)
        abort();
    memcpy(r->str, s, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static redisReply *r_str(const char *s)
{
    return r_strn(s, strlen(s));
}

static redisReply *r_nil(void)
{
    return r_new(REDIS_REPLY_NIL);
}

/* An array of the n replies that follow. */
static redisReply *r_arr(size_t n, ...)
{
    redisReply *r = r_new(REDIS_REPLY_ARRAY);
    va_list ap;
    size_t i;

    r->elements = n;
    r->element = calloc(n ? n : 1, sizeof(*r->element));
    if (r->element == NULL)
        abort();
    va_start(ap, n);
    for (i = 0; i < n; i++)
        r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

static void r_free(redisReply *r)
{
    size_t i;

    if (r == NULL)
        return;
    for (i = 0; i < r->elements; i++)
        r_free(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

/* [HOST, PORT, ID, {}]: a node as Redis 7 sends it (host NULL: NIL). */
static redisReply *r_node(const char *host, long long port)
{
    return r_arr(4, host ? r_str(host) : r_nil(), r_int(port),
                 r_str("239c13b152c38e8f33a7735cf5ea09842778e807"), r_arr(0));
}

/* [START, END, MASTER, REPLICA]. */
static redisReply *r_range(long long start, long long end, const char *host, long long port)
{
    return r_arr(4, r_int(start), r_int(end), r_node(host, port), r_node("10.9.9.9", 7999));
}

/* The reply hiredis reads from the RESP bytes (all of one reply). */
static redisReply *parse_resp(const char *bytes)
{
    redisReader *rd = redisReaderCreate();
    void *reply = NULL;

    if (rd == NULL || redisReaderFeed(rd, bytes, strlen(bytes)) != REDIS_OK ||
        redisReaderGetReply(rd, &reply) != REDIS_OK || reply == NULL)
        abort();
    redisReaderFree(rd);
    return reply;
}

/* ------------------------------------------------------------ CRC16 */

/* CRC16/XMODEM bit by bit, straight from its definition. */
static uint16_t crc16_ref(const unsigned char *p, size_t len)
{
    uint16_t crc = 0;
    size_t i;
    int bit;

    for (i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (bit = 0; bit < 8; bit++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

static void test_crc16(void)
{
    unsigned char buf[80];
    uint32_t x = 2463534242u;
    int i, same = 1;
    size_t j, n;

    test_cond("crc16 123456789 = 0x31C3", cluster_crc16("123456789", 9) == 0x31C3);
    test_cond("crc16 of nothing", cluster_crc16("", 0) == 0);
    for (i = 0; i < 256; i++) {
        unsigned char c = (unsigned char)i;

        same &= cluster_crc16(&c, 1) == crc16_ref(&c, 1);
    }
    test_cond("crc16 every single byte", same);
    for (i = 0; i < 2000; i++) {
        n = (size_t)i % sizeof(buf);
        for (j = 0; j < n; j++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf[j] = (unsigned char)x;
        }
        same &= cluster_crc16(buf, n) == crc16_ref(buf, n);
    }
    test_cond("crc16 2000 random strings", same);
}

/* ------------------------------------------------------------ key slots */

static unsigned slot(const char *k)
{
    return cluster_key_slot(k, strlen(k));
}

/* Each key's CLUSTER KEYSLOT on redis-server 7.0.15. */
static const struct {
    const char *key;
    size_t len;
    unsigned slot;
} keyslots[] = {
    {"123456789", 9, 12739},
    {"foo", 3, 12182},
    {"bar", 3, 5061},
    {"{user1000}.following", 20, 3443},
    {"{user1000}.followers", 20, 3443},
    {"foo{}{bar}", 10, 8363},
    {"foo{{bar}}zap", 13, 4015},
    {"{bar", 4, 4015},
    {"foo{bar}{zap}", 13, 5061},
    {"", 0, 0},
    {"{}", 2, 15257},
    {"}{", 2, 12793},
    {"{a}", 3, 15495},
    {"a", 1, 15495},
    {"a{b", 3, 13340},
    {"user:42", 7, 15880},
    {"rl:api:{0123456789abcdef}", 25, 10405},
    {"somekey", 7, 11058},
    {"{user1}.a", 9, 8106},
    {"a\0b", 3, 8383},
    {"\xffx", 2, 15456},
    {"{\0}x", 4, 0},
    {"x{\0\xff}", 5, 7920},
};

static void test_key_slot(void)
{
    size_t i;
    int ok = 1;

    for (i = 0; i < sizeof(keyslots) / sizeof(keyslots[0]); i++) {
        unsigned got = cluster_key_slot(keyslots[i].key, keyslots[i].len);

        if (got != keyslots[i].slot) {
            printf("# key %zu: slot %u, the server said %u\n", i, got, keyslots[i].slot);
            ok = 0;
        }
    }
    test_cond("slots as redis-server computes them", ok);
    test_cond("same tag, same slot", slot("{user1000}.following") == slot("{user1000}.followers"));
    test_cond("tag hashed alone", slot("{user1000}.following") == slot("user1000"));
    test_cond("empty tag: the whole key",
              slot("foo{}{bar}") == cluster_crc16("foo{}{bar}", 10) % 16384);
    test_cond("first { to next }", slot("foo{{bar}}zap") == slot("{bar"));
    test_cond("first tag only", slot("foo{bar}{zap}") == slot("bar"));
    test_cond("no closing brace", slot("foo{bar") == cluster_crc16("foo{bar", 7) % 16384);
    test_cond("NULL key of length 0", cluster_key_slot(NULL, 0) == 0);
    test_cond("len bounds the tag", cluster_key_slot("{bar}", 4) == slot("{bar"));
    test_cond("len bounds the key", cluster_key_slot("foo{bar}", 4) == slot("foo{"));
}

/* ------------------------------------------------------------ slot map */

static struct cluster_map map, map2;

/* host:port of slot s's master, "-" for none. */
static const char *owner(const struct cluster_map *m, unsigned s)
{
    static char out[CLUSTER_HOST_MAX + 16];
    const struct cluster_node *n = cluster_map_lookup(m, s);

    if (n == NULL)
        return "-";
    snprintf(out, sizeof(out), "%s:%d", n->host, n->port);
    return out;
}

static int build(redisReply *r, const char *asked, struct rl_err *err)
{
    int rc = cluster_map_from_slots(&map, r, asked, err);

    r_free(r);
    return rc;
}

static int map_empty(const struct cluster_map *m)
{
    return m->nodes == 0 && m->covered == 0 && cluster_map_lookup(m, 0) == NULL &&
           cluster_map_lookup(m, 16383) == NULL;
}

static void test_map_good(void)
{
    struct rl_err err;
    int rc;

    rc = build(r_arr(3, r_range(0, 5460, "127.0.0.1", 7000),
                     r_range(10923, 16383, "127.0.0.1", 7002),
                     r_range(5461, 10922, "redis-b.example", 7001)),
               "127.0.0.1", &err);
    test_cond("three masters: ok", rc == RL_OK);
    test_cond("three masters: complete", cluster_map_complete(&map) && map.covered == 16384);
    test_cond("three masters: counted", cluster_map_masters(&map) == 3 && map.nodes == 3);
    test_cond("slot 0", strcmp(owner(&map, 0), "127.0.0.1:7000") == 0);
    test_cond("slot 5460", strcmp(owner(&map, 5460), "127.0.0.1:7000") == 0);
    test_cond("slot 5461 by name", strcmp(owner(&map, 5461), "redis-b.example:7001") == 0);
    test_cond("slot 16383", strcmp(owner(&map, 16383), "127.0.0.1:7002") == 0);
    test_cond("slot 16384 is nobody's", cluster_map_lookup(&map, 16384) == NULL);
    test_cond("replicas are not masters", strcmp(owner(&map, 100), "10.9.9.9:7999") != 0);

    rc = build(r_arr(3, r_range(0, 99, "::1", 7000), r_range(100, 16000, "::1", 7001),
                     r_range(16001, 16383, "::1", 7000)),
               NULL, NULL);
    test_cond("a master in two ranges is one node", rc == RL_OK && map.nodes == 2 &&
                                                        cluster_map_masters(&map) == 2 &&
                                                        map.node[0].slots == 100 + 383);
    test_cond("two ranges: complete", cluster_map_complete(&map));

    rc = build(r_arr(1, r_arr(3, r_int(0), r_int(16383), r_arr(2, r_str("10.0.0.1"), r_int(6379)))),
               NULL, NULL);
    test_cond("old form [HOST, PORT], no replica",
              rc == RL_OK && cluster_map_complete(&map) && map.node[0].port == 6379);

    rc = build(r_arr(1, r_range(5, 5, "h", 1)), NULL, NULL);
    test_cond("one slot, port 1",
              rc == RL_OK && map.covered == 1 && strcmp(owner(&map, 5), "h:1") == 0);
}

static void test_map_gaps(void)
{
    int rc;

    rc = build(r_arr(2, r_range(0, 100, "a", 7000), r_range(200, 16383, "b", 7001)), NULL, NULL);
    test_cond("gap: ok", rc == RL_OK);
    test_cond("gap: not complete", !cluster_map_complete(&map) && map.covered == 16384 - 99);
    test_cond("gap: 101..199 have no owner", cluster_map_lookup(&map, 101) == NULL &&
                                                 cluster_map_lookup(&map, 199) == NULL &&
                                                 strcmp(owner(&map, 200), "b:7001") == 0);
    rc = build(r_arr(0), NULL, NULL);
    test_cond("no slot assigned: ok, empty", rc == RL_OK && map_empty(&map) &&
                                                 cluster_map_masters(&map) == 0 &&
                                                 !cluster_map_complete(&map));
}

/* Empty and NIL hosts: the node the reply came from. */
static void test_map_asked(void)
{
    struct rl_err err;
    int rc;

    rc = build(r_arr(1, r_range(0, 16383, "", 7000)), "10.0.0.5", NULL);
    test_cond("empty host is the asked node",
              rc == RL_OK && strcmp(owner(&map, 9), "10.0.0.5:7000") == 0);
    rc = build(r_arr(2, r_range(0, 8191, NULL, 7000), r_range(8192, 16383, NULL, 7001)),
               "seed.example", NULL);
    test_cond("NIL host is the asked node, port kept",
              rc == RL_OK && strcmp(owner(&map, 0), "seed.example:7000") == 0 &&
                  strcmp(owner(&map, 8192), "seed.example:7001") == 0 && map.nodes == 2);
    rc = build(r_arr(1, r_range(0, 16383, "", 7000)), NULL, &err);
    test_cond("empty host, asked host unknown", rc == RL_ERR && map_empty(&map) &&
                                                    err.kind == RL_E_PROTO &&
                                                    strstr(err.msg, "entry 1") != NULL);
    rc = build(r_arr(1, r_range(0, 16383, NULL, 7000)), "", NULL);
    test_cond("NIL host, asked host empty", rc == RL_ERR && map_empty(&map));
    rc = build(r_arr(1, r_range(0, 16383, NULL, 7000)), "bad host", NULL);
    test_cond("NIL host, asked host with a blank", rc == RL_ERR && map_empty(&map));
}

static void test_map_overlap(void)
{
    struct rl_err err;
    int rc;

    rc = build(r_arr(2, r_range(0, 100, "a", 1), r_range(100, 16383, "b", 2)), NULL, &err);
    test_cond("overlap: refused", rc == RL_ERR && map_empty(&map));
    test_cond("overlap: says so", err.kind == RL_E_PROTO && strstr(err.msg, "entry 2") != NULL &&
                                      strstr(err.msg, "claimed twice") != NULL);
    rc = build(r_arr(2, r_range(0, 16383, "a", 1), r_range(0, 16383, "a", 1)), NULL, NULL);
    test_cond("same range twice: refused", rc == RL_ERR && map_empty(&map));
    rc = build(r_arr(2, r_range(7, 7, "a", 1), r_range(0, 16383, "b", 2)), NULL, NULL);
    test_cond("range over an earlier one: refused", rc == RL_ERR && map_empty(&map));
}

/* Prefix of a one-entry reply for slots 0..1 and its master's array. */
#define ONE "*1\r\n*3\r\n:0\r\n:1\r\n"

/* Each reply must be refused, leaving the map empty (RESP2 bytes, read
 * by hiredis; the comment says what is wrong when it is not plain). */
static const char *const bad_replies[] = {
    "+OK\r\n",
    "-ERR This instance has cluster support disabled\r\n",
    "$3\r\nfoo\r\n",
    ":5\r\n",
    "*-1\r\n",
    "*1\r\n:0\r\n",                                         /* entry not an array */
    "*1\r\n*2\r\n:0\r\n:1\r\n",                             /* no master */
    "*1\r\n*3\r\n$1\r\n0\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n", /* START a string */
    "*1\r\n*3\r\n:5\r\n:4\r\n*2\r\n$1\r\nh\r\n:1\r\n",      /* backwards */
    "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n",  /* past 16383 */
    "*1\r\n*3\r\n:-1\r\n:3\r\n*2\r\n$1\r\nh\r\n:1\r\n",     /* negative */
    ONE "$3\r\nh:1\r\n",                                    /* master a string */
    ONE "$-1\r\n",                                          /* master NIL */
    ONE "*1\r\n$1\r\nh\r\n",                                /* no port */
    ONE "*2\r\n:7\r\n:1\r\n",                               /* host an integer */
    ONE "*2\r\n+h\r\n:1\r\n",                               /* host a status */
    ONE "*2\r\n*0\r\n:1\r\n",                               /* host an array */
    ONE "*2\r\n$1\r\nh\r\n$1\r\n1\r\n",                     /* port a string */
    ONE "*2\r\n$1\r\nh\r\n:0\r\n",
    ONE "*2\r\n$1\r\nh\r\n:65536\r\n",
    ONE "*2\r\n$1\r\nh\r\n:-7000\r\n",
    ONE "*2\r\n$1\r\n?\r\n:7000\r\n", /* no hostname set */
    ONE "*2\r\n$3\r\na b\r\n:7000\r\n",
    ONE "*2\r\n$3\r\na\tb\r\n:7000\r\n",
    ONE "*2\r\n$2\r\na\x7f\r\n:7000\r\n",
    ONE "*2\r\n$2\r\na\xc3\r\n:7000\r\n",
    "*2\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n$-1\r\n", /* a NIL entry */
};

static void test_map_bad(void)
{
    struct rl_err err;
    size_t i;
    int rc, all = 1;

    for (i = 0; i < sizeof(bad_replies) / sizeof(bad_replies[0]); i++) {
        redisReply *r = parse_resp(bad_replies[i]);

        /* a good map first, so "left empty" is seen to happen */
        build(r_arr(1, r_range(0, 16383, "good", 1)), NULL, NULL);
        err.kind = RL_E_NONE;
        rc = cluster_map_from_slots(&map, r, "asked", &err);
        freeReplyObject(r);
        if (rc != RL_ERR || !map_empty(&map) || err.kind != RL_E_PROTO) {
            printf("# bad reply %zu: rc %d, nodes %d, covered %d\n", i, rc, map.nodes, map.covered);
            all = 0;
        }
    }
    test_cond("bad shapes refused, map left empty", all);
    rc = build(r_arr(1, r_arr(3, r_int(0), r_int(1), r_arr(2, r_strn("a\0b", 3), r_int(1)))), NULL,
               NULL);
    test_cond("NUL in a host refused", rc == RL_ERR && map_empty(&map));
    test_cond("NULL reply refused", cluster_map_from_slots(&map, NULL, NULL, NULL) == RL_ERR);
}

/* A host of CLUSTER_HOST_MAX bytes is kept whole; one more is refused. */
static void test_map_host_max(void)
{
    char host[CLUSTER_HOST_MAX + 2];
    int rc;

    memset(host, 'h', sizeof(host) - 1);
    host[CLUSTER_HOST_MAX] = '\0';
    rc = build(r_arr(1, r_range(0, 1, host, 1)), NULL, NULL);
    test_cond("host of 255 bytes kept",
              rc == RL_OK && strlen(map.node[0].host) == CLUSTER_HOST_MAX);
    host[CLUSTER_HOST_MAX] = 'h';
    host[CLUSTER_HOST_MAX + 1] = '\0';
    rc = build(r_arr(1, r_range(0, 1, host, 1)), NULL, NULL);
    test_cond("host of 256 bytes refused", rc == RL_ERR && map_empty(&map));
    rc = build(r_arr(1, r_range(0, 1, NULL, 1)), host, NULL);
    test_cond("asked host of 256 bytes refused", rc == RL_ERR && map_empty(&map));
}

/* CLUSTER_NODES_MAX masters fit; one more does not. */
static void test_map_full(void)
{
    redisReply *r = r_new(REDIS_REPLY_ARRAY);
    int i, rc;

    r->elements = CLUSTER_NODES_MAX + 1;
    r->element = calloc(r->elements, sizeof(*r->element));
    if (r->element == NULL)
        abort();
    for (i = 0; i <= CLUSTER_NODES_MAX; i++)
        r->element[i] = r_range(i * 10, i * 10 + 9, "10.0.0.1", 7000 + i);
    r->elements = CLUSTER_NODES_MAX; /* the last one hidden for now */
    rc = cluster_map_from_slots(&map, r, NULL, NULL);
    test_cond("64 masters fit", rc == RL_OK && cluster_map_masters(&map) == CLUSTER_NODES_MAX);
    r->elements = CLUSTER_NODES_MAX + 1;
    rc = cluster_map_from_slots(&map, r, NULL, NULL);
    test_cond("65 masters do not", rc == RL_ERR && map_empty(&map));
    r_free(r);
}

/*
 * The bytes redis-server 7.0 sends for CLUSTER SLOTS over RESP2, parsed by
 * hiredis: two masters on ::1, each with its id and an empty metadata map,
 * then the same with cluster-preferred-endpoint-type unknown-endpoint (NIL
 * host, the address in the metadata).
 */
static void test_map_resp(void)
{
    static const char ip[] = "*2\r\n"
                             "*3\r\n:0\r\n:8191\r\n"
                             "*4\r\n$3\r\n::1\r\n:27101\r\n$40\r\n"
                             "239c13b152c38e8f33a7735cf5ea09842778e807\r\n*0\r\n"
                             "*3\r\n:8192\r\n:16383\r\n"
                             "*4\r\n$3\r\n::1\r\n:27102\r\n$40\r\n"
                             "93144a8b201feedece9a96a73eb3d8dd3517d541\r\n*0\r\n";
    static const char unknown[] = "*2\r\n"
                                  "*3\r\n:0\r\n:8191\r\n"
                                  "*4\r\n$-1\r\n:27101\r\n$40\r\n"
                                  "239c13b152c38e8f33a7735cf5ea09842778e807\r\n"
                                  "*2\r\n$2\r\nip\r\n$3\r\n::1\r\n"
                                  "*3\r\n:8192\r\n:16383\r\n"
                                  "*4\r\n$-1\r\n:27102\r\n$40\r\n"
                                  "93144a8b201feedece9a96a73eb3d8dd3517d541\r\n"
                                  "*2\r\n$2\r\nip\r\n$3\r\n::1\r\n";
    redisReply *r = parse_resp(ip);
    int rc;

    rc = cluster_map_from_slots(&map, r, "127.0.0.1", NULL);
    freeReplyObject(r);
    test_cond("server's reply: complete",
              rc == RL_OK && cluster_map_complete(&map) && cluster_map_masters(&map) == 2);
    test_cond("server's reply: IPv6 hosts", strcmp(owner(&map, 12182), "::1:27102") == 0 &&
                                                strcmp(owner(&map, 3443), "::1:27101") == 0);
    r = parse_resp(unknown);
    rc = cluster_map_from_slots(&map, r, "127.0.0.1", NULL);
    freeReplyObject(r);
    test_cond("unknown endpoint: the asked host",
              rc == RL_OK && cluster_map_complete(&map) &&
                  strcmp(owner(&map, 0), "127.0.0.1:27101") == 0 &&
                  strcmp(owner(&map, 16383), "127.0.0.1:27102") == 0);
}

/* ------------------------------------------------------------ MOVED */

static void test_assign(void)
{
    struct rl_err err;
    int rc;

    build(r_arr(2, r_range(0, 8191, "a", 1), r_range(8192, 16000, "b", 2)), NULL, NULL);
    rc = cluster_map_assign(&map, 0, "b", 2, &err);
    test_cond("assign to a known node",
              rc == RL_OK && strcmp(owner(&map, 0), "b:2") == 0 && map.node[0].slots == 8191 &&
                  map.node[1].slots == 7810 && map.nodes == 2 && map.covered == 16000 - 0 + 1);
    rc = cluster_map_assign(&map, 16383, "c", 3, NULL);
    test_cond("assign an unowned slot to a new node", rc == RL_OK && map.nodes == 3 &&
                                                          cluster_map_masters(&map) == 3 &&
                                                          map.covered == 16002);
    rc = cluster_map_assign(&map, 16383, "a", 1, NULL);
    test_cond("a node left with no slot is no master",
              rc == RL_OK && cluster_map_masters(&map) == 2 && map.nodes == 3 &&
                  map.node[2].slots == 0 && map.covered == 16002);
    rc = cluster_map_assign(&map, 16382, "d", 4, NULL);
    test_cond("its entry is reused", rc == RL_OK && map.nodes == 3 &&
                                         strcmp(map.node[2].host, "d") == 0 &&
                                         strcmp(owner(&map, 16382), "d:4") == 0);
    rc = cluster_map_assign(&map, 16382, "d", 4, NULL);
    test_cond("assign to the owner changes nothing",
              rc == RL_OK && map.node[2].slots == 1 && map.covered == 16003);
    memcpy(&map2, &map, sizeof(map));
    test_cond("slot 16384 refused",
              cluster_map_assign(&map, 16384, "a", 1, &err) == RL_ERR && err.kind == RL_E_PROTO);
    test_cond("port 0 refused", cluster_map_assign(&map, 1, "a", 0, NULL) == RL_ERR);
    test_cond("port 65536 refused", cluster_map_assign(&map, 1, "a", 65536, NULL) == RL_ERR);
    test_cond("host ? refused", cluster_map_assign(&map, 1, "?", 1, NULL) == RL_ERR);
    test_cond("empty host refused", cluster_map_assign(&map, 1, "", 1, NULL) == RL_ERR);
    test_cond("NULL host refused", cluster_map_assign(&map, 1, NULL, 1, NULL) == RL_ERR);
    test_cond("refusals change nothing", memcmp(&map, &map2, sizeof(map)) == 0);
}

static void test_assign_full(void)
{
    int i, ok = 1;

    cluster_map_init(&map);
    for (i = 0; i < CLUSTER_NODES_MAX; i++)
        ok &= cluster_map_assign(&map, (unsigned)i, "n", 1000 + i, NULL) == RL_OK;
    test_cond("64 nodes by assign", ok && cluster_map_masters(&map) == CLUSTER_NODES_MAX);
    memcpy(&map2, &map, sizeof(map));
    test_cond("a 65th refused", cluster_map_assign(&map, 100, "n", 2000, NULL) == RL_ERR &&
                                    memcmp(&map, &map2, sizeof(map)) == 0);
    test_cond("a known one still fine", cluster_map_assign(&map, 100, "n", 1000, NULL) == RL_OK);
}

/* ------------------------------------------------------------ redirects */

static int redirect(const char *s, const char *from, struct cluster_redirect *out)
{
    return cluster_redirect_parse(s, strlen(s), from, out);
}

static int redirect_is(const char *s, const char *from, int kind, unsigned slot, const char *host,
                       int port)
{
    struct cluster_redirect r;

    return redirect(s, from, &r) == RL_OK && r.kind == kind && r.slot == slot &&
           strcmp(r.host, host) == 0 && r.port == port;
}

static void test_redirect_good(void)
{
    struct cluster_redirect r;

    test_cond("MOVED", redirect_is("MOVED 3999 127.0.0.1:6381", NULL, CLUSTER_MOVED, 3999,
                                   "127.0.0.1", 6381));
    test_cond("ASK",
              redirect_is("ASK 3999 127.0.0.1:6381", NULL, CLUSTER_ASK, 3999, "127.0.0.1", 6381));
    test_cond("IPv6 as Redis writes it",
              redirect_is("MOVED 12182 ::1:27102", NULL, CLUSTER_MOVED, 12182, "::1", 27102));
    test_cond("IPv6 full",
              redirect_is("ASK 1 2001:db8::7:6379", NULL, CLUSTER_ASK, 1, "2001:db8::7", 6379));
    test_cond("IPv6 in brackets",
              redirect_is("MOVED 15495 [::1]:7000", NULL, CLUSTER_MOVED, 15495, "::1", 7000));
    test_cond(
        "unknown endpoint: the answering node",
        redirect_is("MOVED 15495 :27102", "10.0.0.1", CLUSTER_MOVED, 15495, "10.0.0.1", 27102));
    test_cond("unknown endpoint in ASK",
              redirect_is("ASK 15495 :27101", "::1", CLUSTER_ASK, 15495, "::1", 27101));
    test_cond("hostname", redirect_is("MOVED 16383 redis-2.example.org:65535", "x", CLUSTER_MOVED,
                                      16383, "redis-2.example.org", 65535));
    test_cond("slot 0, port 1", redirect_is("MOVED 0 h:1", NULL, CLUSTER_MOVED, 0, "h", 1));
    test_cond("len bounds the text",
              cluster_redirect_parse("ASK 7 h:12345678", 12, NULL, &r) == RL_OK && r.port == 1234 &&
                  r.slot == 7 && r.kind == CLUSTER_ASK);
}

/* Each must be refused by cluster_redirect_parse() (from_host "f" unless
 * the case says otherwise). */
static const char *const bad_redirects[] = {
    "",
    "MOVED",
    "MOVED ",
    "MOVED 3999",
    "MOVED 3999 ",
    "MOVED 3999 127.0.0.1",
    "MOVED 3999 127.0.0.1:",
    "MOVED 3999 127.0.0.1:0",
    "MOVED 3999 127.0.0.1:65536",
    "MOVED 3999 127.0.0.1:-1",
    "MOVED 3999 127.0.0.1:+1",
    "MOVED 3999 127.0.0.1:1x",
    "MOVED 3999 127.0.0.1:99999999999999999999",
    "MOVED 16384 h:1",
    "MOVED -1 h:1",
    "MOVED +1 h:1",
    "MOVED x h:1",
    "MOVED 99999999999999999999 h:1",
    "MOVED  3999 h:1",
    "MOVED 3999  h:1",
    "MOVED 3999 h:1 ",
    "MOVED 3999 h:1\r\n",
    " MOVED 3999 h:1",
    "-MOVED 3999 h:1",
    "moved 3999 h:1",
    "MOVED\t3999 h:1",
    "ASKING 3999 h:1",
    "ASK3999 h:1",
    "NOSCRIPT No matching script. Please use EVAL.",
    "MOVED 3999 ?:27102",
    "MOVED 3999 []:1",
    "MOVED 3999 [::1:1",
    "MOVED 3999 ::1]:1",
    "MOVED 3999 [[::1]]:1",
    "MOVED 3999 h\tx:1",
    "MOVED 3999 h x:1",
    "MOVED 3999 h\x7f:1",
    "MOVED 3999 h\x80:1",
    "MOVED 3999 "
    "h123456789h123456789h123456789h123456789h123456789h123456789h123456789h123456789"
    "h123456789h123456789h123456789h123456789h123456789h123456789h123456789h123456789"
    "h123456789h123456789h123456789h123456789h123456789h123456789h123456789h123456789"
    "h123456789h123456789:1",
};

static void test_redirect_bad(void)
{
    struct cluster_redirect r;
    size_t i;
    int all = 1;

    for (i = 0; i < sizeof(bad_redirects) / sizeof(bad_redirects[0]); i++) {
        if (redirect(bad_redirects[i], "f", &r) != RL_ERR) {
            printf("# accepted: \"%s\"\n", bad_redirects[i]);
            all = 0;
        }
    }
    test_cond("bad forms refused", all);
    test_cond("empty host, no answering node", redirect("MOVED 1 :7000", NULL, &r) == RL_ERR);
    test_cond("empty host, empty answering node", redirect("MOVED 1 :7000", "", &r) == RL_ERR);
    test_cond("empty host, bad answering node", redirect("MOVED 1 :7000", "a b", &r) == RL_ERR);
    test_cond("NUL inside", cluster_redirect_parse("MOVED 1 h\0x:1", 13, NULL, &r) == RL_ERR);
    test_cond("NULL text", cluster_redirect_parse(NULL, 0, NULL, &r) == RL_ERR);
    test_cond("cut before the port", cluster_redirect_parse("MOVED 1 h:1", 10, NULL, &r) == RL_ERR);
}

int main(void)
{
    test_crc16();
    test_key_slot();
    test_map_good();
    test_map_gaps();
    test_map_asked();
    test_map_overlap();
    test_map_bad();
    test_map_host_max();
    test_map_full();
    test_map_resp();
    test_assign();
    test_assign_full();
    test_redirect_good();
    test_redirect_bad();
    return test_report();
}
