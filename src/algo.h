/*
 * algo.h - the rate-limit algorithms by name and number, from the one list
 * in src/algorithms.def (no Redis, no configuration: the configuration
 * parser and the limiter both read it).
 */
#ifndef RL_ALGO_H
#define RL_ALGO_H

#include <stddef.h>

/* RL_ALGO_<ID> for each row of algorithms.def, numbered in row order. */
enum rl_algo {
#define RL_ALGO(id, name, keys, buckets, epoch) RL_ALGO_##id,
#include "algorithms.def"
#undef RL_ALGO
    RL_ALGO_COUNT
};

/* The enum rl_algo for name[0..len) (any case), or -1 when unknown. */
int algo_parse(const char *name, size_t len);

/* The configuration name of algo; "unknown" when out of range. Static. */
const char *algo_name(int algo);

/* 1 when algo has a RATELIMIT_STORE=buckets layout, else 0. */
int algo_has_buckets(int algo);

/* The shortest buckets epoch, ms: the filter names a client's hashes by its
 * own clock, which must stay within half an epoch of the server's
 * (src/lua/buckets.lua; token_bucket_buckets.lua's tbb_epoch has it too). */
#define ALGO_BUCKET_EPOCH_MIN_MS 1000

/* The length in ms of algo's buckets epochs (src/lua/buckets.lua) for a
 * rule of limit requests per window_ms with burst (all >= 1). */
long long algo_bucket_epoch_ms(int algo, long long limit, long long window_ms, long long burst);

/*
 * The algorithms' names joined by ", ", the last two by last (e.g. " or "),
 * into out (cut at outsz, always terminated): error messages list what is
 * accepted from the table, never by hand.
 */
void algo_names(char *out, size_t outsz, const char *last);

#endif
