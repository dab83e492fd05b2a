/*
 * metrics.h - host-wide counters for Prometheus in a shared memory file.
 *
 * Every worker process on a host (lighttpd's, mod_fcgid's, a --listen
 * supervisor's, a plain CGI run) maps the same file MAP_SHARED and adds
 * to arrays of C11 _Atomic uint64_t in it with memory_order_relaxed. So
 * the counts are the host's whatever started the process, a worker that
 * dies or restarts loses nothing already counted (the kernel keeps the
 * pages), and counting costs one atomic add: no Redis command, no lock,
 * no system call. The file lives as long as its directory's file system
 * (tmpfs: until reboot); Prometheus treats a reboot as a counter reset.
 *
 * Opening (once per process, never on the request path) does the system
 * calls and the checks, and returns NULL with a message on any failure:
 * the caller logs it once and runs without metrics, since every function
 * below accepts m == NULL and then does nothing. Metrics never fail a
 * request.
 *
 * Rules are identified by name in a bounded registry inside the file:
 * metrics_rule() finds or claims a name's row once (at configuration
 * time; the caller caches the index), and the request path adds at
 * rule index + decision. When the registry is full, or a name is not
 * [A-Za-z0-9_.-]{1,64}, counts go to an overflow row rendered as
 * rule="(other)", a value no rule name can take. No label ever holds a
 * client identity: labels are rule names and fixed words. A request may
 * name rules of its own (per-request RATELIMIT_NAME or RATELIMIT_RULES),
 * so such names (metrics_rule_request) cannot take the last
 * METRICS_RULES_OWN rows: requests cannot fill the registry for the
 * configured rules of processes started later.
 *
 * The file is the uid's, so a script of that uid can truncate it: the
 * mapping's pages then fault (SIGBUS) at their next access. metrics_open
 * installs a SIGBUS handler that maps zeroed private memory over the
 * mapping instead; the process counts on privately, and metrics_lost()
 * says so (the worker then closes and opens the file again, which
 * replaces the truncated file: worker_request_done).
 */
#ifndef RL_METRICS_H
#define RL_METRICS_H

#include <stdint.h>

#include "buf.h"
#include "rl.h"

/* Rows in the rule registry; one more row counts the overflow. */
#define METRICS_RULES 128
#define METRICS_RULE_OTHER METRICS_RULES
/* The last rows: only for names from a process's own configuration. */
#define METRICS_RULES_OWN 32
/* The longest rule name, as in the configuration (RL_NAME_MAX). */
#define METRICS_NAME_MAX 64

/* What one rule decided for one request; exactly one per (request, rule). */
enum metrics_decision {
    METRICS_ALLOWED = 0,
    METRICS_DENIED,       /* Redis said over the limit */
    METRICS_DENIED_CACHE, /* the worker's denial cache said it, no Redis call */
    METRICS_WOULD_DENY,   /* over the limit, allowed: dry run or shadow rule */
    METRICS_DECISIONS
};

/* Counters without a rule label; each is rendered from one table entry. */
enum metrics_counter {
    METRICS_REDIS_CONNECT = 0, /* connect or AUTH/SELECT failed */
    METRICS_REDIS_TIMEOUT,     /* a command ran past RATELIMIT_REDIS_TIMEOUT_MS */
    METRICS_REDIS_REPLY,       /* an error reply, or a reply of the wrong shape */
    METRICS_REDIS_NOSCRIPT,    /* NOSCRIPT: the script was loaded again */
    METRICS_BREAKER_OPENS,     /* counted by metrics_breaker(), not by hand */
    METRICS_FAIL_OPEN,         /* answered by RATELIMIT_FAIL=open */
    METRICS_FAIL_CLOSED,       /* answered by RATELIMIT_FAIL=closed */
    METRICS_SCRIPT_1XX,        /* METRICS_SCRIPT_*: metrics_script_status() */
    METRICS_SCRIPT_2XX,
    METRICS_SCRIPT_3XX,
    METRICS_SCRIPT_4XX,
    METRICS_SCRIPT_5XX,
    METRICS_OWN_400, /* METRICS_OWN_*: metrics_own_status(), in its order */
    METRICS_OWN_403,
    METRICS_OWN_404,
    METRICS_OWN_408,
    METRICS_OWN_413,
    METRICS_OWN_500,
    METRICS_OWN_502,
    METRICS_OWN_503,
    METRICS_OWN_504,
    METRICS_SCRIPT_TIMEOUTS, /* a script ran past its deadline */
    METRICS_SCRIPT_KILLS,    /* a script the filter stopped (SIGTERM, then SIGKILL) */
    METRICS_COUNTERS
};

enum metrics_breaker_state {
    METRICS_BREAKER_CLOSED = 0,
    METRICS_BREAKER_OPEN,
    METRICS_BREAKER_HALF_OPEN,
    METRICS_BREAKER_STATES
};

enum metrics_histogram {
    METRICS_H_REDIS = 0, /* one Redis round trip, send to full reply */
    METRICS_H_SCRIPT,    /* one relayed script, start to its last byte */
    METRICS_HISTOGRAMS
};

/* metrics_open() flags. */
#define METRICS_READONLY 1 /* map read-only and never create (--metrics) */

struct metrics;

/*
 * Map the counter file at path, creating it when missing (not with
 * METRICS_READONLY). Cost: a few system calls (open, fstat, pread, mmap;
 * on creation mkostemp, posix_fallocate, link, unlink; flock only to
 * replace a file of an older layout). Call once per process, before
 * serving; a forked child inherits the mapping.
 *
 * Installs a SIGBUS handler (sigaction; the disposition found is kept
 * for faults at other addresses, and restored by metrics_close) that
 * guards the mapping against the file being truncated: see
 * metrics_lost(). One mapping per process is guarded, the one opened
 * last.
 *
 * Creation is race-free among any number of processes starting at once:
 * the file is built and initialised under a temporary name in the same
 * directory (mode 0600) and published with link(), which fails if
 * another process published first (then its file is opened instead).
 *
 * Refused (NULL, err filled, RL_E_IO): a symbolic link or anything but a
 * regular file at path; a file not owned by the effective uid (with
 * METRICS_READONLY, root may read a file of another owner); a file
 * writable by group or others; a file without our magic (never touched:
 * it may be someone's data); a file of our magic and layout version that
 * is too long. All writers on a host must share one uid (or use one
 * path per uid). A file of another layout version is replaced when we
 * own it and may write (under flock, by rename() of a new file: the
 * counts restart, as after a reboot; processes of the old version keep
 * counting into the old, unlinked file until they exit); so is a file of
 * ours cut short (empty, or only the start of one of ours: truncated,
 * for we publish only whole files). Read-only, another layout version is
 * refused with a message naming both versions, and a file cut short too.
 */
struct metrics *metrics_open(const char *path, int flags, struct rl_err *err);

/* Unmap and free. m may be NULL. Cost: munmap (and sigaction). */
void metrics_close(struct metrics *m);

/*
 * 1 when the file was truncated under m (by anyone of our uid) and m's
 * mapping was replaced by zeroed private memory: the counts since are
 * this process's only (and gone when it exits), and a rendering is not
 * the host's. 0 otherwise, or m NULL. One load of a flag: for the end of
 * a request or a rendering, not for each add.
 */
int metrics_lost(const struct metrics *m);

/*
 * The row of rule name, claiming a free row when the name has none yet:
 * an atomic compare-and-swap on the row's state, so processes
 * registering the same or different names at once get each name once.
 * Call once per rule when the configuration is built and cache the
 * index; not for the request path (it scans up to 128 rows, and when
 * another process is between claiming a row and naming it, which takes
 * nanoseconds unless it is stopped or died there, waits for it with
 * nanosleep up to 1 s, taking the row over from a dead process).
 * Returns the index, or METRICS_RULE_OTHER with err filled when the name
 * is not [A-Za-z0-9_.-]{1,64}, the registry is full, the wait ran out,
 * or m is NULL/read-only (then err is left alone): counting at the
 * overflow row is still correct, the caller logs err once.
 *
 * For the rules of the process's own configuration (registered when it
 * opens the file), which may take any row.
 */
int metrics_rule(struct metrics *m, const char *name, struct rl_err *err);

/* metrics_rule() for a name first seen on the request path (a request's
 * override may choose it): finds the name in any row, but claims only a
 * row below METRICS_RULES - METRICS_RULES_OWN, else METRICS_RULE_OTHER. */
int metrics_rule_request(struct metrics *m, const char *name, struct rl_err *err);

/*
 * The request path: each is at most one relaxed atomic add (or store),
 * no system call, no lock, no allocation. An out-of-range argument or
 * m == NULL (metrics off) or a read-only m does nothing.
 */
void metrics_decision(struct metrics *m, int rule, enum metrics_decision d);
/* A request left rule at or past its near-limit fraction of the quota. */
void metrics_near_limit(struct metrics *m, int rule);
void metrics_count(struct metrics *m, enum metrics_counter c);
/*
 * A denial of a client by a rule (hash: a 64-bit hash of the two, e.g.
 * of the rule's Redis key) that the client's retry ends at until_s (Unix
 * seconds; now_s: now). 1 when it starts a denial episode host-wide, so
 * the caller logs it: no process on the host recorded that client and
 * rule as denied past now. 0 while the episode lasts. One relaxed load
 * and at most a few compare-and-swaps on one slot of a table of
 * METRICS_EPISODES in the file; two pairs on one slot take turns (each
 * may then be logged again: a line too many, never a start missed).
 * m == NULL or read-only: always 1.
 */
int metrics_episode(struct metrics *m, uint64_t hash, long long now_s, long long until_s);
/* A script's answer, counted by class: status 100..599, others ignored. */
void metrics_script_status(struct metrics *m, int status);
/* An error the filter answered itself: 400 403 404 408 413 500 502 503 504, others
 * ignored. Denials (429, or 503 by RATELIMIT_STATUS) are metrics_decision's. */
void metrics_own_status(struct metrics *m, int status);
/* The breaker changed state: remembered host-wide as the last state any
 * process wrote (each worker has its own breaker; during an outage they
 * all open); METRICS_BREAKER_OPEN also counts an open. Call on
 * transitions only. */
void metrics_breaker(struct metrics *m, enum metrics_breaker_state s);
/* One duration in microseconds (< 0 counts as 0): two atomic adds, the
 * bucket and the sum. */
void metrics_observe(struct metrics *m, enum metrics_histogram h, long long usec);

/*
 * Append every metric to out in Prometheus' text exposition format
 * 0.0.4 (Content-Type "text/plain; version=0.0.4"): # HELP and # TYPE
 * once per family, counters named *_total, histograms *_seconds with
 * cumulative _bucket{le=...}, _sum and _count. Reads with relaxed atomic
 * loads, no lock and no system call: a scrape during traffic may see one
 * counter a few counts ahead of another, never a torn value, and a
 * histogram's +Inf bucket always equals its _count. RL_OK, or RL_ERR
 * when out reached its cap (out then holds a truncated text: do not
 * serve it). m == NULL appends nothing and returns RL_OK.
 */
int metrics_render(const struct metrics *m, struct buf *out);

/* Append s as a label value: \ " and newline escaped as \\ \" \n. */
int metrics_label_escape(struct buf *out, const char *s);

#endif
