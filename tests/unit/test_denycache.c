/*
 * test_denycache.c - the worker's memory of recent denials: a denial is
 * found again with its delays shortened, until its retry passes; only
 * the same keys under the same rules and layout share an entry; a slot
 * taken by another denial is a miss; clearing forgets everything.
 */
#include <stdio.h>
#include <string.h>

#include "../../src/denycache.h"
#include "testhelp.h"

static void one_rule(struct rl_config *cfg, long long limit)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->nrules = 1;
    memcpy(cfg->rules[0].name, "default", 8);
    cfg->rules[0].key_kind = RL_KEY_IP;
    cfg->rules[0].limit = limit;
    cfg->rules[0].window_ms = 60000;
    cfg->rules[0].algo = RL_ALGO_FIXED_WINDOW;
}

/* Denied, 42 s to wait, the window resetting in 50 s. */
static void denial(struct rl_decision *d)
{
    memset(d, 0, sizeof(*d));
    d->nrules = 1;
    d->r[0].applied = 1;
    d->r[0].reset_ms = 50000;
    d->r[0].retry_ms = 42000;
}

static void store_lookup_expiry(void)
{
    static struct denycache dc;
    struct rl_config cfg;
    struct rl_decision d, got;
    const char *keys[1] = {"rl:ip:192.0.2.1"}, *other[1] = {"rl:ip:192.0.2.2"};

    one_rule(&cfg, 5);
    denial(&d);
    denycache_clear(&dc);
    test_cond("empty: a miss", denycache_lookup(&dc, &cfg, keys, 1000, &got) == 0);
    denycache_store(&dc, &cfg, keys, 1000, &d);
    test_cond("stored: a hit", denycache_lookup(&dc, &cfg, keys, 1000, &got) == 1);
    test_cond("hit 10 s later: delays shortened by 10 s",
              denycache_lookup(&dc, &cfg, keys, 11000, &got) == 1 && !got.allowed &&
                  got.r[0].retry_ms == 32000 && got.r[0].reset_ms == 40000);
    test_cond("other keys: a miss", denycache_lookup(&dc, &cfg, other, 11000, &got) == 0);
    one_rule(&cfg, 6);
    test_cond("same keys, another limit: a miss",
              denycache_lookup(&dc, &cfg, keys, 11000, &got) == 0);
    one_rule(&cfg, 5);
    cfg.store = 1;
    test_cond("same keys, another layout: a miss",
              denycache_lookup(&dc, &cfg, keys, 11000, &got) == 0);
    cfg.store = 0;
    cfg.rules[0].shadow = 1;
    test_cond("same keys, the rule made shadow: a miss",
              denycache_lookup(&dc, &cfg, keys, 11000, &got) == 0);
    cfg.rules[0].shadow = 0;
    test_cond("before retry: still a hit", denycache_lookup(&dc, &cfg, keys, 42999, &got) == 1);
    test_cond("at retry: a miss (only Redis knows now)",
              denycache_lookup(&dc, &cfg, keys, 43000, &got) == 0);
    test_cond("expired: forgotten", denycache_lookup(&dc, &cfg, keys, 1000, &got) == 0);
    denycache_store(&dc, &cfg, keys, 1000, &d);
    test_cond("a clock gone back: a miss", denycache_lookup(&dc, &cfg, keys, 999, &got) == 0);
}

static void not_stored(void)
{
    static struct denycache dc;
    struct rl_config cfg;
    struct rl_decision d, got;
    const char *keys[1] = {"k"};

    one_rule(&cfg, 5);
    denial(&d);
    d.allowed = 1;
    denycache_store(&dc, &cfg, keys, 0, &d);
    test_cond("an admission is not stored", denycache_lookup(&dc, &cfg, keys, 0, &got) == 0);
    denial(&d);
    d.r[0].retry_ms = 0;
    denycache_store(&dc, &cfg, keys, 0, &d);
    test_cond("a denial without a wait is not stored",
              denycache_lookup(&dc, &cfg, keys, 0, &got) == 0);
}

/* More denials than slots: some share a slot, and the later one wins;
 * the earlier one is then a miss, never the other's answer. */
static void eviction_and_clear(void)
{
    static struct denycache dc;
    struct rl_config cfg;
    struct rl_decision d, got;
    char names[DENYCACHE_SLOTS * 4][32];
    const char *keys[1];
    int hits = 0, wrong = 0;

    one_rule(&cfg, 5);
    for (int i = 0; i < DENYCACHE_SLOTS * 4; i++) {
        (void)snprintf(names[i], sizeof names[i], "rl:ip:10.0.0.%d", i);
        keys[0] = names[i];
        denial(&d);
        d.r[0].retry_ms = 10000 + i; /* tells the entries apart */
        denycache_store(&dc, &cfg, keys, 0, &d);
    }
    for (int i = 0; i < DENYCACHE_SLOTS * 4; i++) {
        keys[0] = names[i];
        if (denycache_lookup(&dc, &cfg, keys, 0, &got)) {
            hits++;
            wrong += got.r[0].retry_ms != 10000 + i;
        }
    }
    test_cond("more denials than slots: some evicted", hits > 0 && hits <= DENYCACHE_SLOTS);
    test_cond("an evicted entry is a miss, never another's answer", wrong == 0);
    keys[0] = names[DENYCACHE_SLOTS * 4 - 1];
    test_cond("the last one stored is found", denycache_lookup(&dc, &cfg, keys, 0, &got) == 1);
    denycache_clear(&dc);
    hits = 0;
    for (int i = 0; i < DENYCACHE_SLOTS * 4; i++) {
        keys[0] = names[i];
        hits += denycache_lookup(&dc, &cfg, keys, 0, &got);
    }
    test_cond("clear: everything forgotten", hits == 0);
}

int main(void)
{
    store_lookup_expiry();
    not_stored();
    eviction_and_clear();
    return test_report();
}
