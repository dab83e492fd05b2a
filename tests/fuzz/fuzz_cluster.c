/*
 * fuzz_cluster.c - libFuzzer target for the Redis Cluster routing code
 * (src/cluster.c), on three readings of the same bytes:
 *
 *   - a key: its slot is below 16384, and is the slot of its hash tag
 *     alone when it has one (a '{' and a later '}' with bytes between);
 *   - a redirection error text: one that parses has a slot below 16384, a
 *     port in 1..65535 and a printable host without blanks, and written
 *     back as "KIND SLOT HOST:PORT" parses to the same again;
 *   - RESP bytes for hiredis' reader: whatever reply comes out goes
 *     through the slot map builder, whose map must then be consistent
 *     (each node's count is the slots it owns, the total is covered) or,
 *     on an error, empty (inputs with huge counts are left out, see
 *     counts_small()).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cluster.h"
#include "rl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The tag rule, written the plain way: first '{', first '}' after it. */
static void fuzz_key(const char *k, size_t len)
{
    unsigned slot = cluster_key_slot(k, len);
    size_t open, close;

    if (slot >= CLUSTER_SLOTS)
        abort();
    for (open = 0; open < len && k[open] != '{'; open++)
        ;
    for (close = open + 1; close < len && k[close] != '}'; close++)
        ;
    if (open < len && close < len && close > open + 1) {
        if (slot != cluster_key_slot(k + open + 1, close - open - 1))
            abort(); /* the tag holds no '}': it hashes whole on its own */
        if (slot != (cluster_crc16(k + open + 1, close - open - 1) & (CLUSTER_SLOTS - 1)))
            abort();
    } else if (slot != (cluster_crc16(k, len) & (CLUSTER_SLOTS - 1))) {
        abort();
    }
}

static void fuzz_redirect(const char *s, size_t len)
{
    struct cluster_redirect r, again;
    char text[CLUSTER_HOST_MAX + 32];
    size_t i, n;
    int w;

    if (cluster_redirect_parse(s, len, "from.example", &r) != RL_OK)
        return;
    if ((r.kind != CLUSTER_MOVED && r.kind != CLUSTER_ASK) || r.slot >= CLUSTER_SLOTS ||
        r.port < 1 || r.port > 65535)
        abort();
    n = strlen(r.host);
    if (n == 0 || n > CLUSTER_HOST_MAX || (n == 1 && r.host[0] == '?'))
        abort();
    for (i = 0; i < n; i++) {
        if ((unsigned char)r.host[i] <= ' ' || (unsigned char)r.host[i] >= 0x7f)
            abort();
    }
    w = snprintf(text, sizeof(text), "%s %u %s:%d", r.kind == CLUSTER_ASK ? "ASK" : "MOVED", r.slot,
                 r.host, r.port);
    if (w < 0 || (size_t)w >= sizeof(text))
        abort();
    if (cluster_redirect_parse(text, (size_t)w, NULL, &again) != RL_OK || again.kind != r.kind ||
        again.slot != r.slot || again.port != r.port || strcmp(again.host, r.host) != 0)
        abort();
}

/* Each node's count is what it owns; covered is their sum. */
static void check_map(const struct cluster_map *m)
{
    int count[CLUSTER_NODES_MAX] = {0};
    int i, covered = 0;

    if (m->nodes < 0 || m->nodes > CLUSTER_NODES_MAX)
        abort();
    for (i = 0; i < CLUSTER_SLOTS; i++) {
        if (m->owner[i] == CLUSTER_NO_NODE)
            continue;
        if (m->owner[i] >= m->nodes)
            abort();
        count[m->owner[i]]++;
        covered++;
    }
    for (i = 0; i < m->nodes; i++) {
        if (count[i] != m->node[i].slots || m->node[i].host[0] == '\0')
            abort();
    }
    if (covered != m->covered || cluster_map_complete(m) != (covered == CLUSTER_SLOTS))
        abort();
}

/*
 * 1 when no "*N" or "$N" in data has N above 4096. hiredis 0.14 allocates
 * an array of N pointers as soon as it reads "*N" (its reader has no
 * element limit) and frees it one element at a time: huge counts only
 * time hiredis out, they reach none of our code.
 */
static int counts_small(const uint8_t *data, size_t size)
{
    size_t i, j;

    for (i = 0; i < size; i++) {
        unsigned long n = 0;

        if (data[i] != '*' && data[i] != '$')
            continue;
        for (j = i + 1; j < size && data[j] >= '0' && data[j] <= '9' && n <= 4096; j++)
            n = n * 10 + (data[j] - '0');
        if (n > 4096)
            return 0;
    }
    return 1;
}

static void fuzz_slots(const uint8_t *data, size_t size)
{
    static struct cluster_map map;
    redisReader *rd = redisReaderCreate();
    void *reply = NULL;
    struct rl_err err;

    if (rd == NULL)
        return;
    if (!counts_small(data, size)) {
        redisReaderFree(rd);
        return;
    }
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK &&
        redisReaderGetReply(rd, &reply) == REDIS_OK && reply != NULL) {
        if (cluster_map_from_slots(&map, reply, "asked.example", &err) == RL_OK)
            check_map(&map);
        else if (map.nodes != 0 || map.covered != 0 || err.kind != RL_E_PROTO)
            abort();
        freeReplyObject(reply);
    }
    redisReaderFree(rd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1); /* exact size: ASan sees overreads */

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    fuzz_key(copy, size);
    fuzz_redirect(copy, size);
    free(copy);
    fuzz_slots(data, size);
    return 0;
}
