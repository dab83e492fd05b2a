/*
 * cluster.h - Redis Cluster slot routing: the key's slot, the slot map and
 * the MOVED/ASK redirections. No I/O: the caller sends CLUSTER SLOTS and
 * the commands, this module only reads what came back.
 *
 * A key belongs to one of 16384 slots: CRC16 (the XMODEM variant:
 * polynomial 0x1021, initial value 0, neither input nor output reflected,
 * no final xor) of the key, modulo 16384. When the key holds a hash tag,
 * a '{' followed later by a '}' with at least one byte between them, only
 * the bytes between the first '{' and the first '}' after it are hashed,
 * so "{user1000}.following" and "{user1000}.followers" share a slot.
 *
 * The slot map is a plain struct the caller owns (about 33 KB); looking a
 * slot up is one array read, no allocation, no lock: build a new map
 * beside the old one and swap pointers to refresh it.
 */
#ifndef RL_CLUSTER_H
#define RL_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "rl.h"

#define CLUSTER_SLOTS 16384
/* Masters one map can hold; more is an error when the map is built. */
#define CLUSTER_NODES_MAX 64
/* The longest host name or address text kept (a DNS name is at most 253). */
#define CLUSTER_HOST_MAX 255
/* cluster_map.owner[] of a slot no master serves. */
#define CLUSTER_NO_NODE 0xff

struct cluster_node {
    char host[CLUSTER_HOST_MAX + 1]; /* an address or a name, never empty */
    int port;                        /* 1..65535 */
    int slots;                       /* slots it serves; 0: an unused entry */
};

struct cluster_map {
    unsigned char owner[CLUSTER_SLOTS]; /* index into node[], or CLUSTER_NO_NODE */
    struct cluster_node node[CLUSTER_NODES_MAX];
    int nodes;   /* entries of node[] in use, serving slots or not */
    int covered; /* slots with an owner: CLUSTER_SLOTS when complete */
};

enum cluster_redirect_kind {
    CLUSTER_MOVED = 1, /* the slot moved for good: update the map */
    CLUSTER_ASK = 2    /* this one command only: ASKING on host:port, then retry */
};

struct cluster_redirect {
    int kind;      /* enum cluster_redirect_kind */
    unsigned slot; /* 0..16383 */
    char host[CLUSTER_HOST_MAX + 1];
    int port; /* 1..65535 */
};

/* CRC16/XMODEM of p[0..len); cluster_crc16("123456789", 9) is 0x31C3. */
uint16_t cluster_crc16(const void *p, size_t len);

/*
 * The slot (0..16383) of key[0..len), hash tags as described above. Any
 * bytes, NUL included; key may be NULL when len is 0 (slot 0).
 */
unsigned cluster_key_slot(const char *key, size_t len);

/* Make *m an empty map: no nodes, no slot owned. */
void cluster_map_init(struct cluster_map *m);

/*
 * Build *m from a CLUSTER SLOTS reply (RESP2, as hiredis parses it): an
 * array of [START, END, MASTER, REPLICA...], each MASTER and REPLICA an
 * array [HOST, PORT, ID?, METADATA?...]. Only masters are kept, one node
 * entry per HOST:PORT. A NIL or empty HOST (the server's unknown endpoint,
 * or a node that does not know its own address yet) means the node the
 * reply came from: asked_host is used for it, and with asked_host NULL or
 * empty that is an error. A HOST of "?" (a name wanted but none set), a
 * port outside 1..65535, a range outside 0..16383 or backwards, a slot
 * claimed twice, more than CLUSTER_NODES_MAX masters or any other shape
 * is an error (RL_E_PROTO in *err, may be NULL) and leaves *m empty.
 * Slots nobody serves are not an error: see cluster_map_complete().
 */
int cluster_map_from_slots(struct cluster_map *m, const redisReply *r, const char *asked_host,
                           struct rl_err *err);

/* 1 when every slot has an owner, else 0. */
int cluster_map_complete(const struct cluster_map *m);

/* How many masters serve at least one slot. */
int cluster_map_masters(const struct cluster_map *m);

/*
 * The master that serves slot, or NULL when none does or slot is out of
 * range. The pointer is into *m, valid until *m changes.
 */
static inline const struct cluster_node *cluster_map_lookup(const struct cluster_map *m,
                                                            unsigned slot)
{
    unsigned i = slot < CLUSTER_SLOTS ? m->owner[slot] : CLUSTER_NO_NODE;

    return i == CLUSTER_NO_NODE ? NULL : &m->node[i];
}

/*
 * Record that host:port now serves slot (what a MOVED says), adding the
 * node when it is new. RL_OK, or RL_ERR (nothing changed) when slot, host
 * or port is invalid or the node table is full. A node left with no slot
 * keeps its entry (its index may be reused by a later new node).
 */
int cluster_map_assign(struct cluster_map *m, unsigned slot, const char *host, int port,
                       struct rl_err *err);

/*
 * Parse the text of a redirection error as hiredis gives it (without the
 * leading '-'): "MOVED SLOT HOST:PORT" or "ASK SLOT HOST:PORT", single
 * spaces, nothing after. The port follows the last ':', so an IPv6
 * address comes as Redis writes it ("::1:7000"); "[::1]:7000" is taken
 * too. An empty HOST (":7000", the server's unknown endpoint) means the
 * node that answered: from_host is used for it, an error when NULL or
 * empty. RL_OK with *out filled, or RL_ERR (*out undefined) for any other
 * text, a slot above 16383, a port outside 1..65535, a HOST of "?" or one
 * with blanks or control bytes. Reads s[0..len) only.
 */
int cluster_redirect_parse(const char *s, size_t len, const char *from_host,
                           struct cluster_redirect *out);

#endif
