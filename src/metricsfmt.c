/*
 * metricsfmt.c - the counter file in Prometheus' text exposition format
 * 0.0.4 (see metrics.h): every family is described once here, in the
 * order it is rendered, so its name, type, help and labels are in one
 * place.
 */
#include "metrics.h"
#include "metricsint.h"

#include <inttypes.h>
#include <string.h>

#define P "fcgi_ratelimit_"

/* Families of the counters without a rule label. */
enum fam { F_REDIS_ERR, F_BREAKER_OPENS, F_FAIL, F_SCRIPT, F_OWN, F_TIMEOUTS, F_KILLS };

static const struct family {
    const char *name;
    const char *help;
    const char *label; /* NULL: a single series */
} fam[] = {
    [F_REDIS_ERR] = {P "redis_errors_total",
                     "Redis failures by kind, and NOSCRIPT answers that made the worker load "
                     "the script again.",
                     "kind"},
    [F_BREAKER_OPENS] = {P "breaker_opens_total", "Times a worker's Redis circuit breaker opened.",
                         NULL},
    [F_FAIL] = {P "fail_answers_total",
                "Requests answered by RATELIMIT_FAIL because Redis could not decide.", "mode"},
    [F_SCRIPT] = {P "script_responses_total", "Answers of relayed scripts by status class.",
                  "class"},
    [F_OWN] = {P "error_responses_total",
               "Error answers the filter wrote itself instead of a script's (denials are "
               "in requests_total).",
               "status"},
    [F_TIMEOUTS] = {P "script_timeouts_total", "Relayed scripts that ran past their deadline.",
                    NULL},
    [F_KILLS] = {P "script_kills_total",
                 "Relayed scripts the filter stopped (SIGTERM, then SIGKILL for what was left).",
                 NULL},
};

/* Each enum metrics_counter: its family and label value. */
static const struct counter {
    enum fam fam;
    const char *value;
} counter[METRICS_COUNTERS] = {
    [METRICS_REDIS_CONNECT] = {F_REDIS_ERR, "connect"},
    [METRICS_REDIS_TIMEOUT] = {F_REDIS_ERR, "timeout"},
    [METRICS_REDIS_REPLY] = {F_REDIS_ERR, "reply"},
    [METRICS_REDIS_NOSCRIPT] = {F_REDIS_ERR, "noscript_reload"},
    [METRICS_BREAKER_OPENS] = {F_BREAKER_OPENS, NULL},
    [METRICS_FAIL_OPEN] = {F_FAIL, "open"},
    [METRICS_FAIL_CLOSED] = {F_FAIL, "closed"},
    [METRICS_SCRIPT_1XX] = {F_SCRIPT, "1xx"},
    [METRICS_SCRIPT_2XX] = {F_SCRIPT, "2xx"},
    [METRICS_SCRIPT_3XX] = {F_SCRIPT, "3xx"},
    [METRICS_SCRIPT_4XX] = {F_SCRIPT, "4xx"},
    [METRICS_SCRIPT_5XX] = {F_SCRIPT, "5xx"},
    [METRICS_OWN_400] = {F_OWN, "400"},
    [METRICS_OWN_403] = {F_OWN, "403"},
    [METRICS_OWN_404] = {F_OWN, "404"},
    [METRICS_OWN_408] = {F_OWN, "408"},
    [METRICS_OWN_413] = {F_OWN, "413"},
    [METRICS_OWN_500] = {F_OWN, "500"},
    [METRICS_OWN_502] = {F_OWN, "502"},
    [METRICS_OWN_503] = {F_OWN, "503"},
    [METRICS_OWN_504] = {F_OWN, "504"},
    [METRICS_SCRIPT_TIMEOUTS] = {F_TIMEOUTS, NULL},
    [METRICS_SCRIPT_KILLS] = {F_KILLS, NULL},
};

static const char *const decision_name[METRICS_DECISIONS] = {
    [METRICS_ALLOWED] = "allowed",
    [METRICS_DENIED] = "denied",
    [METRICS_DENIED_CACHE] = "denied_cache",
    [METRICS_WOULD_DENY] = "would_deny",
};

static const char *const breaker_name[METRICS_BREAKER_STATES] = {
    [METRICS_BREAKER_CLOSED] = "closed",
    [METRICS_BREAKER_OPEN] = "open",
    [METRICS_BREAKER_HALF_OPEN] = "half_open",
};

static uint64_t load(const _Atomic uint64_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

int metrics_label_escape(struct buf *out, const char *s)
{
    int rc = RL_OK;
    size_t n;

    while (*s != '\0' && rc == RL_OK) {
        n = strcspn(s, "\\\"\n");
        rc = buf_append(out, s, n);
        s += n;
        if (*s != '\0' && rc == RL_OK) {
            rc = buf_append(out, *s == '\n' ? "\\n" : *s == '"' ? "\\\"" : "\\\\", 2);
            s++;
        }
    }
    return rc;
}

static int head(struct buf *out, const char *name, const char *type, const char *help)
{
    return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One label pair: ,k="v" (the comma when not first). */
static int label(struct buf *out, int first, const char *k, const char *v)
{
    int rc = buf_printf(out, "%s%s=\"", first ? "" : ",", k);

    rc |= metrics_label_escape(out, v);
    rc |= buf_append(out, "\"", 1);
    return rc;
}

/* name[suffix][{k1="v1"[,k2="v2"]}] value: k1 and k2 may be NULL. */
static int sample(struct buf *out, const char *name, const char *suffix, const char *k1,
                  const char *v1, const char *k2, const char *v2, uint64_t v)
{
    int rc = buf_printf(out, "%s%s", name, suffix);

    if (k1 != NULL) {
        rc |= buf_append(out, "{", 1);
        rc |= label(out, 1, k1, v1);
        if (k2 != NULL)
            rc |= label(out, 0, k2, v2);
        rc |= buf_append(out, "}", 1);
    }
    rc |= buf_printf(out, " %" PRIu64 "\n", v);
    return rc ? RL_ERR : RL_OK;
}

/* Room for a copy of a row's name and its NUL. */
#define ROW_NAME_SIZE (sizeof(((struct metrics_row *)0)->name) + 1)

/* The name of row i, or NULL when it is not (validly) named: the
 * overflow row's is fixed; the others' are copied out of the shared file
 * first and then checked, so a process writing the file meanwhile can
 * never slip a malformed label past the check. */
static const char *row_label(const struct metrics_shm *shm, int i, char name[ROW_NAME_SIZE])
{
    const struct metrics_row *r = &shm->row[i];
    size_t len;
    int d, any = 0;

    if (i == METRICS_RULE_OTHER) {
        for (d = 0; d < METRICS_DECISIONS; d++)
            any |= load(&r->count[d]) != 0;
        return any || load(&r->near_limit) != 0 ? METRICS_OTHER_NAME : NULL;
    }
    if (atomic_load_explicit(&r->state, memory_order_acquire) != METRICS_ROW_READY)
        return NULL;
    memcpy(name, r->name, ROW_NAME_SIZE - 1);
    name[ROW_NAME_SIZE - 1] = '\0';
    len = strnlen(name, ROW_NAME_SIZE - 1);
    return metrics_name_ok(name, len) ? name : NULL;
}

/* The labels of every row (NULL: not shown), read once for both families.
 * A name already taken by an earlier row (only a damaged file has one) is
 * not shown again: a duplicate series makes Prometheus drop the scrape. */
static void row_labels(const struct metrics_shm *shm, char names[][ROW_NAME_SIZE], const char **lab)
{
    int i, j;

    for (i = 0; i <= METRICS_RULE_OTHER; i++) {
        lab[i] = row_label(shm, i, names[i]);
        for (j = 0; lab[i] != NULL && j < i; j++) {
            if (lab[j] != NULL && strcmp(lab[j], lab[i]) == 0)
                lab[i] = NULL;
        }
    }
}

static int render_rules(struct buf *out, const struct metrics_shm *shm)
{
    char names[METRICS_RULE_OTHER + 1][ROW_NAME_SIZE];
    const char *lab[METRICS_RULE_OTHER + 1];
    int i, d, rc;

    row_labels(shm, names, lab);
    rc = head(out, P "requests_total", "counter",
              "Requests checked against a rule, by its decision: would_deny is over the limit "
              "but let through (dry run or shadow rule); denied_cache was denied by the "
              "worker's cache of recent denials.");
    for (i = 0; i <= METRICS_RULE_OTHER; i++) {
        for (d = 0; lab[i] != NULL && d < METRICS_DECISIONS; d++)
            rc |= sample(out, P "requests_total", "", "rule", lab[i], "decision", decision_name[d],
                         load(&shm->row[i].count[d]));
    }
    rc |= head(out, P "near_limit_total", "counter",
               "Requests that left a rule at or past its near-limit share of the quota.");
    for (i = 0; i <= METRICS_RULE_OTHER; i++) {
        if (lab[i] != NULL)
            rc |= sample(out, P "near_limit_total", "", "rule", lab[i], NULL, NULL,
                         load(&shm->row[i].near_limit));
    }
    return rc;
}

static int render_family(struct buf *out, const struct metrics_shm *shm, enum fam f)
{
    int c, rc = head(out, fam[f].name, "counter", fam[f].help);

    for (c = 0; c < METRICS_COUNTERS; c++) {
        if (counter[c].fam == f)
            rc |= sample(out, fam[f].name, "", fam[f].label, counter[c].value, NULL, NULL,
                         load(&shm->counter[c]));
    }
    return rc;
}

static int render_breaker(struct buf *out, const struct metrics_shm *shm)
{
    uint64_t now = load(&shm->breaker_state);
    int s, rc = render_family(out, shm, F_BREAKER_OPENS);

    rc |= head(out, P "breaker_state", "gauge",
               "The Redis circuit breaker state a worker reported last: 1 for that state.");
    for (s = 0; s < METRICS_BREAKER_STATES; s++)
        rc |= sample(out, P "breaker_state", "", "state", breaker_name[s], NULL, NULL,
                     now == (uint64_t)s);
    return rc;
}

/* Cumulative buckets; _count is the +Inf bucket, so they always agree. */
static int render_hist(struct buf *out, const struct metrics_hist *h, const char *name,
                       const char *help)
{
    uint64_t cum = 0, sum = load(&h->sum_us);
    int i, rc = head(out, name, "histogram", help);

    for (i = 0; i < METRICS_BUCKETS; i++) {
        cum += load(&h->bucket[i]);
        rc |= sample(out, name, "_bucket", "le", metrics_bound_le[i], NULL, NULL, cum);
    }
    cum += load(&h->bucket[METRICS_BUCKETS]);
    rc |= sample(out, name, "_bucket", "le", "+Inf", NULL, NULL, cum);
    rc |= buf_printf(out, "%s_sum %" PRIu64 ".%06" PRIu64 "\n", name, sum / 1000000, sum % 1000000);
    rc |= sample(out, name, "_count", NULL, NULL, NULL, NULL, cum);
    return rc;
}

int metrics_render(const struct metrics *m, struct buf *out)
{
    const struct metrics_shm *shm;
    int rc;

    if (m == NULL)
        return RL_OK;
    shm = m->shm;
    rc = render_rules(out, shm);
    rc |= render_family(out, shm, F_REDIS_ERR);
    rc |= render_hist(out, &shm->hist[METRICS_H_REDIS], P "redis_duration_seconds",
                      "Redis round trips, from sending the command to its whole reply.");
    rc |= render_breaker(out, shm);
    rc |= render_family(out, shm, F_FAIL);
    rc |= render_family(out, shm, F_SCRIPT);
    rc |= render_family(out, shm, F_OWN);
    rc |= render_family(out, shm, F_TIMEOUTS);
    rc |= render_family(out, shm, F_KILLS);
    rc |= render_hist(out, &shm->hist[METRICS_H_SCRIPT], P "script_duration_seconds",
                      "Relayed scripts, from their start to the last byte of their answer.");
    return rc ? RL_ERR : RL_OK;
}
