/*
 * algo.c - the algorithm table of src/algorithms.def: names, and which
 * layouts each has.
 */
#include "algo.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

/* How a row's buckets epoch is measured (its EPOCH column). */
enum algo_epoch { EPOCH_WINDOW, EPOCH_TOLERANCE };

struct algo_row {
    const char *name;
    int has_buckets;
    enum algo_epoch epoch;
};

static const struct algo_row algo_table[] = {
#define RL_ALGO(id, name, keys, buckets, epoch) {name, sizeof(buckets) > 1, EPOCH_##epoch},
#include "algorithms.def"
#undef RL_ALGO
};

_Static_assert(sizeof(algo_table) / sizeof(algo_table[0]) == RL_ALGO_COUNT,
               "one row per algorithm");

int algo_parse(const char *name, size_t len)
{
    int i;

    if (name == NULL)
        return -1;
    for (i = 0; i < RL_ALGO_COUNT; i++) {
        if (strlen(algo_table[i].name) == len && ascii_ncaseeq(algo_table[i].name, name, len))
            return i;
    }
    return -1;
}

const char *algo_name(int algo)
{
    return algo >= 0 && algo < RL_ALGO_COUNT ? algo_table[algo].name : "unknown";
}

int algo_has_buckets(int algo)
{
    return algo >= 0 && algo < RL_ALGO_COUNT && algo_table[algo].has_buckets;
}

long long algo_bucket_epoch_ms(int algo, long long limit, long long window_ms, long long burst)
{
    double q;
    long long t;

    if (algo < 0 || algo >= RL_ALGO_COUNT || algo_table[algo].epoch == EPOCH_WINDOW || limit < 1 ||
        burst < 1)
        return window_ms;
    /* The script's tbb_epoch, in the same doubles: ceil(burst * window_ms
     * / limit), at least ALGO_BUCKET_EPOCH_MIN_MS. Past 10^15 ms every
     * clock is in epoch 0 on both sides, so that is as good as the exact
     * value. */
    q = (double)burst * (double)window_ms / (double)limit;
    if (q >= 1e15)
        return 1000000000000000LL;
    t = (long long)q;
    if ((double)t < q)
        t++;
    return t < ALGO_BUCKET_EPOCH_MIN_MS ? ALGO_BUCKET_EPOCH_MIN_MS : t;
}

void algo_names(char *out, size_t outsz, const char *last)
{
    size_t len = 0;
    int i, n;

    if (outsz == 0)
        return;
    out[0] = '\0';
    for (i = 0; i < RL_ALGO_COUNT; i++) {
        const char *sep = i == 0 ? "" : i == RL_ALGO_COUNT - 1 ? last : ", ";

        n = snprintf(out + len, outsz - len, "%s%s", sep, algo_table[i].name);
        if (n < 0 || (size_t)n >= outsz - len)
            return; /* cut: the message is merely shorter */
        len += (size_t)n;
    }
}
