/*
 * metricsint.h - the layout of the shared counter file, for metrics.c,
 * metricsfmt.c and the unit test only.
 *
 * The file is one struct metrics_shm, fixed-size fields only, in host
 * byte order (it never leaves the host). Change METRICS_LAYOUT_VERSION
 * whenever the layout or the meaning of a field changes: a process then
 * replaces a file of another version rather than misreading it. Adding
 * a counter to the spare room of counter[] (its end) needs no new
 * version: older processes neither write nor render it.
 */
#ifndef RL_METRICSINT_H
#define RL_METRICSINT_H

#include <stdatomic.h>
#include <stdint.h>

#include "metrics.h"

#define METRICS_MAGIC UINT64_C(0x31434d4c52494346) /* "FCIRLMC1" little-endian */
#define METRICS_LAYOUT_VERSION 2u

/* Histogram upper bounds in microseconds (le="0.0005" ... le="10"); one
 * more bucket counts what is above the last bound. */
#define METRICS_BUCKETS 14
#define METRICS_EPISODES 4096   /* slots of the denial-episode table */
#define METRICS_COUNTER_ROOM 32 /* counter[]: METRICS_COUNTERS used */
/* The overflow row's label value: outside the rule-name alphabet. */
#define METRICS_OTHER_NAME "(other)"

/* A row's state word: free, being named by process PID, or named. */
#define METRICS_ROW_FREE UINT64_C(0)
#define METRICS_ROW_READY UINT64_C(2)
#define METRICS_ROW_CLAIM(pid) (((uint64_t)(pid) << 8) | 1u)
#define METRICS_ROW_IS_CLAIM(s) ((s) % 256u == 1u)
#define METRICS_ROW_PID(s) ((long long)((s) >> 8))

/* Plain fields: a file is published complete (link or rename), and never
 * changes after, so the header needs no atomics. magic is written last. */
struct metrics_hdr {
    uint64_t magic;
    uint32_t version; /* METRICS_LAYOUT_VERSION */
    uint32_t rules;   /* METRICS_RULES */
    uint64_t size;    /* sizeof(struct metrics_shm) */
    uint64_t created; /* Unix time the file was made, for information */
    uint64_t spare[4];
};

/* One rule: 128 bytes, two cache lines of its own. */
struct metrics_row {
    _Atomic uint64_t state;
    char name[METRICS_NAME_MAX + 8]; /* NUL-terminated once READY */
    _Atomic uint64_t count[METRICS_DECISIONS];
    _Atomic uint64_t near_limit;
    uint64_t spare[1];
};

struct metrics_hist {
    _Atomic uint64_t bucket[METRICS_BUCKETS + 1]; /* not cumulative */
    _Atomic uint64_t sum_us;
};

struct metrics_shm {
    struct metrics_hdr hdr;
    _Atomic uint64_t counter[METRICS_COUNTER_ROOM];
    _Atomic uint64_t breaker_state; /* enum metrics_breaker_state */
    uint64_t spare[7];
    struct metrics_hist hist[METRICS_HISTOGRAMS];
    struct metrics_row row[METRICS_RULES + 1]; /* [METRICS_RULE_OTHER]: overflow */
    /* Denial episodes (metrics_episode): per slot, the high 32 bits of a
     * (client, rule) hash and, in the low 32, the Unix second until which
     * that client is denied. 0: free. */
    _Atomic uint64_t episode[METRICS_EPISODES];
};

/* The process's handle. */
struct metrics {
    struct metrics_shm *shm;
    int readonly;
};

/* The bucket bounds, in microseconds and as le label values. */
extern const uint64_t metrics_bound_us[METRICS_BUCKETS];
extern const char *const metrics_bound_le[METRICS_BUCKETS];

/* 1 when name[0..len) is [A-Za-z0-9_.-]{1,METRICS_NAME_MAX}. */
int metrics_name_ok(const char *name, size_t len);

#endif
