/*
 * cluster.c - Redis Cluster slot routing: CRC16 key slots with hash tags,
 * the slot map from a CLUSTER SLOTS reply, MOVED/ASK parsing. No I/O and
 * no allocation: every result lands in a struct the caller owns.
 *
 * What the servers send was checked against redis-server 7.0: a master's
 * HOST in CLUSTER SLOTS is its address, "" on a node that has not met
 * any other yet, NIL with cluster-preferred-endpoint-type unknown-endpoint
 * and "?" with type hostname but no hostname set; a redirection reads
 * "MOVED 12182 ::1:27102" (IPv6 unbracketed), ":27102" for an unknown
 * endpoint, "?:27102" for a missing hostname. The RESP2 reply carries a
 * fourth element per node (a map flattened to an array) that is ignored.
 */
#include "cluster.h"

#include <string.h>

#include "util.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/* CLUSTER_NO_NODE must never be a real index. */
_Static_assert(CLUSTER_NODES_MAX < CLUSTER_NO_NODE, "node index fits in owner[]");

/*
 * CRC16/XMODEM of each nibble value, the nibble at the top of the
 * register: two lookups per byte instead of eight shift-and-xor steps.
 * tests/unit/test_cluster.c checks it against the bit-by-bit definition.
 */
static const uint16_t crc16_nibble[16] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7,
    0x8108, 0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef,
};

uint16_t cluster_crc16(const void *p, size_t len)
{
    const unsigned char *b = p;
    unsigned crc = 0;
    size_t i;

    for (i = 0; i < len; i++) {
        crc = (crc << 4) ^ crc16_nibble[((crc >> 12) ^ (b[i] >> 4)) & 0x0f];
        crc = (crc << 4) ^ crc16_nibble[((crc >> 12) ^ b[i]) & 0x0f];
        crc &= 0xffff;
    }
    return (uint16_t)crc;
}

unsigned cluster_key_slot(const char *key, size_t len)
{
    const char *tag, *tag_end;

    if (len == 0)
        return 0; /* CRC16 of nothing; key may be NULL */
    tag = memchr(key, '{', len);
    if (tag != NULL) {
        tag++; /* the first byte after the '{' */
        tag_end = memchr(tag, '}', len - (size_t)(tag - key));
        if (tag_end != NULL && tag_end > tag)
            return cluster_crc16(tag, (size_t)(tag_end - tag)) & (CLUSTER_SLOTS - 1);
    }
    return cluster_crc16(key, len) & (CLUSTER_SLOTS - 1);
}

void cluster_map_init(struct cluster_map *m)
{
    memset(m->owner, CLUSTER_NO_NODE, sizeof(m->owner));
    memset(m->node, 0, sizeof(m->node));
    m->nodes = 0;
    m->covered = 0;
}

int cluster_map_complete(const struct cluster_map *m)
{
    return m->covered == CLUSTER_SLOTS;
}

int cluster_map_masters(const struct cluster_map *m)
{
    int i, n = 0;

    for (i = 0; i < m->nodes; i++)
        n += m->node[i].slots > 0;
    return n;
}

/*
 * 1 when h[0..len) is a host we would connect to: 1..CLUSTER_HOST_MAX
 * printable bytes, no blank, not "?" (the server's "no hostname").
 */
static int host_ok(const char *h, size_t len)
{
    size_t i;

    if (len == 0 || len > CLUSTER_HOST_MAX || (len == 1 && h[0] == '?'))
        return 0;
    for (i = 0; i < len; i++) {
        if ((unsigned char)h[i] <= ' ' || (unsigned char)h[i] >= 0x7f)
            return 0;
    }
    return 1;
}

/*
 * Resolve a HOST as sent (NULL/empty: the node that answered, which is
 * fallback) into out[CLUSTER_HOST_MAX + 1]. RL_OK or RL_ERR.
 */
static int host_take(const char *h, size_t len, const char *fallback, char *out)
{
    if (h == NULL || len == 0) {
        if (fallback == NULL)
            return RL_ERR;
        h = fallback;
        len = strlen(fallback);
    }
    if (!host_ok(h, len))
        return RL_ERR;
    memcpy(out, h, len);
    out[len] = '\0';
    return RL_OK;
}

/* The index of host:port in m->node[], adding it (in a free entry) when
 * new; -1 when the table is full. */
static int node_index(struct cluster_map *m, const char *host, int port)
{
    int i, free_i = -1;

    for (i = 0; i < m->nodes; i++) {
        if (m->node[i].port == port && strcmp(m->node[i].host, host) == 0)
            return i;
        if (free_i < 0 && m->node[i].slots == 0)
            free_i = i;
    }
    if (free_i < 0) {
        if (m->nodes == CLUSTER_NODES_MAX)
            return -1;
        free_i = m->nodes++;
    }
    memcpy(m->node[free_i].host, host, strlen(host) + 1);
    m->node[free_i].port = port;
    m->node[free_i].slots = 0;
    return free_i;
}

/* An integer reply within [min, max] into *out: 1, else 0. */
static int reply_int(const redisReply *r, long long min, long long max, long long *out)
{
    if (r == NULL || r->type != REDIS_REPLY_INTEGER || r->integer < min || r->integer > max)
        return 0;
    *out = r->integer;
    return 1;
}

/*
 * A master's [HOST, PORT, ...] into host and *port; NULL, or why it is
 * refused. Elements after PORT (the node id, metadata) are not read.
 */
static const char *slots_master(const redisReply *r, const char *asked_host, char *host, int *port)
{
    const redisReply *h;
    long long p;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 2)
        return "the master is not an array [HOST, PORT, ...]";
    h = r->element[0];
    if (h == NULL || (h->type != REDIS_REPLY_STRING && h->type != REDIS_REPLY_NIL))
        return "the master's host is not a string";
    if (!reply_int(r->element[1], 1, 65535, &p))
        return "the master's port is not an integer in 1..65535";
    if (h->type == REDIS_REPLY_STRING && h->len == 1 && h->str[0] == '?')
        return "the master's host is \"?\" (a hostname is preferred but none is set)";
    if (h->type == REDIS_REPLY_NIL || h->len == 0) {
        if (asked_host == NULL || asked_host[0] == '\0')
            return "the master's host is empty and the asked node's is unknown";
        if (host_take(NULL, 0, asked_host, host) != RL_OK)
            return "the asked node's host is not usable";
    } else if (host_take(h->str, h->len, NULL, host) != RL_OK) {
        return "the master's host is too long or holds blanks or control bytes";
    }
    *port = (int)p;
    return NULL;
}

/* One [START, END, MASTER, REPLICA...] entry into *m; NULL, or why not. */
static const char *slots_entry(struct cluster_map *m, const redisReply *r, const char *asked_host)
{
    char host[CLUSTER_HOST_MAX + 1];
    long long start, end, s;
    const char *why;
    int port, i;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
        return "not an array [START, END, MASTER, ...]";
    if (!reply_int(r->element[0], 0, CLUSTER_SLOTS - 1, &start) ||
        !reply_int(r->element[1], 0, CLUSTER_SLOTS - 1, &end) || start > end)
        return "the slot range is not START <= END within 0..16383";
    why = slots_master(r->element[2], asked_host, host, &port);
    if (why != NULL)
        return why;
    for (s = start; s <= end; s++) {
        if (m->owner[s] != CLUSTER_NO_NODE)
            return "a slot of the range is claimed twice";
    }
    i = node_index(m, host, port);
    if (i < 0)
        return "more masters than " STR(CLUSTER_NODES_MAX);
    memset(m->owner + start, i, (size_t)(end - start + 1));
    m->node[i].slots += (int)(end - start + 1);
    m->covered += (int)(end - start + 1);
    return NULL;
}

int cluster_map_from_slots(struct cluster_map *m, const redisReply *r, const char *asked_host,
                           struct rl_err *err)
{
    size_t i;

    cluster_map_init(m);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        rl_err_set(err, RL_E_PROTO, "CLUSTER SLOTS: the reply is not an array");
        return RL_ERR;
    }
    for (i = 0; i < r->elements; i++) {
        const char *why = slots_entry(m, r->element[i], asked_host);

        if (why != NULL) {
            cluster_map_init(m);
            rl_err_set(err, RL_E_PROTO, "CLUSTER SLOTS: entry %zu: %s", i + 1, why);
            return RL_ERR;
        }
    }
    return RL_OK;
}

int cluster_map_assign(struct cluster_map *m, unsigned slot, const char *host, int port,
                       struct rl_err *err)
{
    int i, old;

    if (slot >= CLUSTER_SLOTS || port < 1 || port > 65535 || host == NULL ||
        !host_ok(host, strlen(host))) {
        rl_err_set(err, RL_E_PROTO, "cluster: bad slot, host or port for slot %u", slot);
        return RL_ERR;
    }
    i = node_index(m, host, port);
    if (i < 0) {
        rl_err_set(err, RL_E_PROTO, "cluster: more masters than %d", CLUSTER_NODES_MAX);
        return RL_ERR;
    }
    old = m->owner[slot];
    if (old == i)
        return RL_OK;
    if (old == CLUSTER_NO_NODE)
        m->covered++;
    else
        m->node[old].slots--;
    m->owner[slot] = (unsigned char)i;
    m->node[i].slots++;
    return RL_OK;
}

/* s[0..len) as a decimal in [0, max] (digits only) into *out: 1, else 0. */
static int parse_num(const char *s, size_t len, long long max, long long *out)
{
    if (len == 0 || s[0] < '0' || s[0] > '9')
        return 0;
    return parse_ll(s, len, 0, max, out) == RL_OK;
}

/*
 * "HOST:PORT" (the port after the last ':', "[HOST]:PORT" too) into
 * out->host and out->port; an empty HOST is from_host. RL_OK or RL_ERR.
 */
static int parse_addr(const char *s, size_t len, const char *from_host,
                      struct cluster_redirect *out)
{
    const char *colon = NULL;
    long long port;
    size_t i, hlen;

    for (i = 0; i < len; i++) {
        if (s[i] == ':')
            colon = s + i;
    }
    if (colon == NULL)
        return RL_ERR;
    hlen = (size_t)(colon - s);
    if (!parse_num(colon + 1, len - hlen - 1, 65535, &port) || port == 0)
        return RL_ERR;
    if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
        s++;
        hlen -= 2;
        if (hlen == 0)
            return RL_ERR; /* "[]" is no host */
    }
    if (hlen > 0 && (memchr(s, '[', hlen) != NULL || memchr(s, ']', hlen) != NULL))
        return RL_ERR;
    if (host_take(hlen > 0 ? s : NULL, hlen, from_host, out->host) != RL_OK)
        return RL_ERR;
    out->port = (int)port;
    return RL_OK;
}

int cluster_redirect_parse(const char *s, size_t len, const char *from_host,
                           struct cluster_redirect *out)
{
    const char *slot, *sp;
    long long n;
    size_t rest;

    if (s == NULL)
        return RL_ERR;
    if (len > 6 && memcmp(s, "MOVED ", 6) == 0) {
        out->kind = CLUSTER_MOVED;
        slot = s + 6;
    } else if (len > 4 && memcmp(s, "ASK ", 4) == 0) {
        out->kind = CLUSTER_ASK;
        slot = s + 4;
    } else {
        return RL_ERR;
    }
    rest = len - (size_t)(slot - s);
    sp = memchr(slot, ' ', rest);
    if (sp == NULL || !parse_num(slot, (size_t)(sp - slot), CLUSTER_SLOTS - 1, &n))
        return RL_ERR;
    out->slot = (unsigned)n;
    rest -= (size_t)(sp - slot) + 1;
    return parse_addr(sp + 1, rest, from_host, out);
}
