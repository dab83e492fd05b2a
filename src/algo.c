/*
 * algo.c - the algorithm table of src/algorithms.def: names, and which
 * layouts each has.
 */
#include "algo.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

struct algo_row {
    const char *name;
    int has_buckets;
};

static const struct algo_row algo_table[] = {
#define RL_ALGO(id, name, keys, buckets) {name, sizeof(buckets) > 1},
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
