/*
 * denycache.c - direct-mapped table of recent denials (see denycache.h).
 *
 * 64 slots indexed by a 64-bit FNV-1a hash of the keys and the rules'
 * parameters; the hash is stored and compared whole, so a slot collision
 * is a miss, never a wrong answer. No allocation: the table is part of
 * the worker (worker.h), which serves one request at a time.
 */
#include "denycache.h"

#include <string.h>

#include "util.h"

/* Identity of (keys, rules): what makes two requests the same check. */
static uint64_t entry_hash(const struct rl_config *cfg, const char *const *keys)
{
    uint64_t h = FNV1A_INIT;
    int store = cfg->store; /* the same key under another layout is another count */

    h = fnv1a(h, &store, sizeof(store));
    for (size_t i = 0; i < cfg->nrules; i++) {
        const struct rl_rule *r = &cfg->rules[i];
        /* shadow too: the same rule made real denies what it did not */
        long long params[5] = {r->limit, r->window_ms, r->algo, r->burst, r->shadow};

        h = fnv1a(h, params, sizeof(params));
        if (keys[i] != NULL)
            h = fnv1a(h, keys[i], strlen(keys[i]) + 1);
        else
            h = fnv1a(h, "", 1);
    }
    return h ? h : 1;
}

void denycache_clear(struct denycache *dc)
{
    memset(dc, 0, sizeof(*dc));
}

static long long shorten(long long ms, long long by)
{
    return ms > by ? ms - by : 0;
}

int denycache_lookup(struct denycache *dc, const struct rl_config *cfg, const char *const *keys,
                     long long now, struct rl_decision *out)
{
    uint64_t h = entry_hash(cfg, keys);
    struct denycache_entry *e = &dc->slots[h % DENYCACHE_SLOTS];
    long long elapsed;

    if (e->hash != h)
        return 0;
    elapsed = now - e->at;
    /* At retry a request would be admitted: from then on only Redis knows. */
    if (elapsed < 0 || elapsed >= e->d.r[e->d.worst].retry_ms) {
        e->hash = 0;
        return 0;
    }
    *out = e->d;
    for (size_t i = 0; i < out->nrules; i++) {
        out->r[i].reset_ms = shorten(out->r[i].reset_ms, elapsed);
        if (!out->r[i].allowed)
            out->r[i].retry_ms = shorten(out->r[i].retry_ms, elapsed);
    }
    return 1;
}

void denycache_store(struct denycache *dc, const struct rl_config *cfg, const char *const *keys,
                     long long now, const struct rl_decision *d)
{
    uint64_t h;
    struct denycache_entry *e;

    if (d->allowed || d->r[d->worst].retry_ms <= 0)
        return;
    h = entry_hash(cfg, keys);
    e = &dc->slots[h % DENYCACHE_SLOTS];
    e->hash = h;
    e->at = now;
    e->d = *d;
}
