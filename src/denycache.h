/*
 * denycache.h - a per-worker memory of recent denials, so that a client
 * far over its limit is answered without a Redis round trip.
 *
 * A denial with retry T is remembered until T has passed, never longer:
 * until then Redis would deny too (only admitted requests change a
 * client's state), and the answer's ttl and reset are the remembered ones
 * minus the time elapsed, so the headers stay exact. The entry is keyed by
 * the request's Redis keys, the layout (RATELIMIT_STORE) and every rule's
 * parameters, so two locations with different limits or layouts never
 * share an entry.
 */
#ifndef RL_DENYCACHE_H
#define RL_DENYCACHE_H

#include <stdint.h>

#include "decision.h"
#include "rlconfig.h"

#define DENYCACHE_SLOTS 64

struct denycache_entry {
    uint64_t hash; /* 0: empty */
    long long at;  /* monotonic ms when Redis denied */
    struct rl_decision d;
};

/* The table, owned by the worker (worker.h); all zero is empty. */
struct denycache {
    struct denycache_entry slots[DENYCACHE_SLOTS];
};

/* Forget every denial. */
void denycache_clear(struct denycache *dc);

/*
 * Look up the denial for keys (as passed to limiter_check) under cfg at
 * monotonic time now. On a hit fill *out with the remembered decision,
 * its delays shortened by the time elapsed, and return 1; else 0.
 */
int denycache_lookup(struct denycache *dc, const struct rl_config *cfg, const char *const *keys,
                     long long now, struct rl_decision *out);

/* Remember denial d (d->allowed == 0) for keys under cfg, decided at now. */
void denycache_store(struct denycache *dc, const struct rl_config *cfg, const char *const *keys,
                     long long now, const struct rl_decision *d);

#endif
