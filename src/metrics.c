/*
 * metrics.c - the shared counter file: opening and creating it safely,
 * the rule registry, and the atomic adds of the request path (see
 * metrics.h; the layout is metricsint.h, the exposition metricsfmt.c).
 */
#include "metrics.h"
#include "metricsint.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

_Static_assert(sizeof(struct metrics_hdr) == 64, "metrics_hdr is 64 bytes");
_Static_assert(sizeof(struct metrics_row) == 128, "metrics_row is 128 bytes");
_Static_assert(sizeof(struct metrics_shm) == 49920,
               "the file's layout changed: bump METRICS_LAYOUT_VERSION, then this size");
_Static_assert(METRICS_COUNTERS <= METRICS_COUNTER_ROOM, "counter[] is full");

/* Another process's lock-free atomics work on shared memory; a lock-based
 * fallback (libatomic's) would lock in this process only. */
#if UINT64_MAX == ULONG_MAX
#define METRICS_LOCK_FREE (ATOMIC_LONG_LOCK_FREE == 2)
#else
#define METRICS_LOCK_FREE (ATOMIC_LLONG_LOCK_FREE == 2)
#endif

const uint64_t metrics_bound_us[METRICS_BUCKETS] = {500,     1000,    2500,    5000,    10000,
                                                    25000,   50000,   100000,  250000,  500000,
                                                    1000000, 2500000, 5000000, 10000000};
const char *const metrics_bound_le[METRICS_BUCKETS] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                                                       "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
                                                       "1",      "2.5",   "5",      "10"};

#define CLAIM_WAIT_MS 1000 /* how long a half-named row is waited for */
#define CLAIM_DEAD_MS 100  /* when its claimer may be declared dead */

enum { OPEN_DONE, OPEN_RETRY, OPEN_FAIL, OPEN_REPLACE };

/* ------------------------------------------------------------ creation */

/* Fill a new, zeroed file: the header with the magic last, the overflow row. */
static int init_file(int fd, const char *tmp, struct rl_err *err)
{
    struct metrics_shm *shm;
    int e = posix_fallocate(fd, 0, (off_t)sizeof(*shm));

    /* Allocated now, so a full tmpfs fails here and not as SIGBUS later. */
    if (e != 0) {
        rl_err_set(err, RL_E_IO, "metrics file %s: cannot allocate: %s", tmp, strerror(e));
        return RL_ERR;
    }
    shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (shm == MAP_FAILED) {
        e = errno;
        rl_err_set(err, RL_E_IO, "metrics file %s: mmap: %s", tmp, strerror(e));
        return RL_ERR;
    }
    shm->hdr.version = METRICS_LAYOUT_VERSION;
    shm->hdr.rules = METRICS_RULES;
    shm->hdr.size = sizeof(*shm);
    shm->hdr.created = (uint64_t)time(NULL);
    memcpy(shm->row[METRICS_RULE_OTHER].name, METRICS_OTHER_NAME, sizeof(METRICS_OTHER_NAME));
    atomic_store_explicit(&shm->row[METRICS_RULE_OTHER].state, METRICS_ROW_READY,
                          memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    shm->hdr.magic = METRICS_MAGIC;
    munmap(shm, sizeof(*shm));
    return RL_OK;
}

/* Publish tmp at path: link (fails when another process was first) for a
 * new file, rename over it to replace one. Either way the file at path
 * is complete from its first appearance. */
static int publish(const char *tmp, const char *path, int replace, struct rl_err *err)
{
    int e;

    if (replace) {
        if (rename(tmp, path) == 0)
            return OPEN_RETRY;
        e = errno;
        unlink(tmp);
        rl_err_set(err, RL_E_IO, "metrics file %s: cannot replace: %s", path, strerror(e));
        return OPEN_FAIL;
    }
    e = link(tmp, path) == 0 ? 0 : errno;
    unlink(tmp);
    if (e == 0 || e == EEXIST)
        return OPEN_RETRY; /* open what is there now */
    rl_err_set(err, RL_E_IO, "metrics file %s: cannot create: %s", path, strerror(e));
    return OPEN_FAIL;
}

/* Make a new file next to path and put it at path (see publish()).
 * OPEN_RETRY: open path again; OPEN_FAIL: err says why. */
static int create_file(const char *path, int replace, struct rl_err *err)
{
    char tmp[PATH_MAX];
    int fd, e;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= sizeof(tmp)) {
        rl_err_set(err, RL_E_IO, "metrics file %s: path too long", path);
        return OPEN_FAIL;
    }
    fd = mkostemp(tmp, O_CLOEXEC); /* O_EXCL, mode 0600 */
    if (fd < 0) {
        e = errno;
        rl_err_set(err, RL_E_IO, "metrics file %s: cannot create: %s", path, strerror(e));
        return OPEN_FAIL;
    }
    if (init_file(fd, tmp, err) != RL_OK) {
        unlink(tmp);
        fd_close(&fd);
        return OPEN_FAIL;
    }
    fd_close(&fd);
    return publish(tmp, path, replace, err);
}

/* ------------------------------------------------------------ truncation */

/*
 * The file is our uid's, so a script of that uid can truncate it; every
 * page of a mapping past a file's end then faults with SIGBUS at its next
 * access, which would kill each process at its next add. So one mapping
 * (bus.addr, bus.len: the one opened last) is guarded: on a fault inside
 * it, on_sigbus() maps zeroed private memory over all of it and returns,
 * and the access is done again there. A SIGBUS anywhere else goes to the
 * disposition that was there before ours (bus.prev).
 */
static struct {
    void *addr; /* the guarded mapping; NULL: none */
    size_t len;
    int installed; /* on_sigbus is SIGBUS's handler, bus.prev the one before */
    struct sigaction prev;
} bus;
static volatile sig_atomic_t bus_lost; /* the guarded mapping is private now */

/* The SIGBUS handler: only async-signal-safe calls (mmap is a system
 * call), errno kept. A fault (si_code > 0) inside the guarded mapping:
 * private memory there, bus_lost set. A SIGBUS sent by a process while
 * the previous disposition ignored it: ignored, the guard kept.
 * Otherwise the previous disposition is put back (and the guard is off
 * until the next metrics_open): a fault then happens again under it as
 * we return, and a SIGBUS sent by a process is raised again (delivered
 * as we return). */
static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
    uintptr_t a = (uintptr_t)si->si_addr, start = (uintptr_t)bus.addr;
    int e = errno;

    (void)ctx;
    if (start != 0 && si->si_code > 0 && a >= start && a - start < bus.len &&
        mmap(bus.addr, bus.len, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1,
             0) != MAP_FAILED) {
        bus_lost = 1;
    } else if (si->si_code > 0 || (bus.prev.sa_flags & SA_SIGINFO) ||
               bus.prev.sa_handler != SIG_IGN) {
        (void)sigaction(SIGBUS, &bus.prev, NULL);
        bus.installed = 0;
        if (si->si_code <= 0)
            (void)raise(sig);
    }
    errno = e;
}

/* Guard shm (see above), installing on_sigbus once. Unguarded, should
 * sigaction fail: the file then works as before, with the risk. */
static void bus_guard(struct metrics_shm *shm)
{
    struct sigaction sa;

    bus.addr = shm;
    bus.len = sizeof(*shm);
    bus_lost = 0;
    atomic_signal_fence(memory_order_seq_cst); /* set before any access can fault */
    if (bus.installed)
        return;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO;
    bus.installed = sigaction(SIGBUS, &sa, &bus.prev) == 0;
}

/* shm is unmapped: guard nothing, and give SIGBUS back to the
 * disposition found before ours. */
static void bus_unguard(const struct metrics_shm *shm)
{
    if (bus.addr != shm)
        return;
    bus.addr = NULL;
    bus_lost = 0;
    if (bus.installed)
        (void)sigaction(SIGBUS, &bus.prev, NULL);
    bus.installed = 0;
}

int metrics_lost(const struct metrics *m)
{
    return m != NULL && bus.addr == m->shm && bus_lost;
}

/* ------------------------------------------------------------ opening */

static int open_error(const char *path, int e, struct rl_err *err)
{
    if (e == ELOOP)
        rl_err_set(err, RL_E_IO, "metrics file %s: is a symbolic link: refused", path);
    else
        rl_err_set(err, RL_E_IO, "metrics file %s: %s", path, strerror(e));
    return OPEN_FAIL;
}

/* Whose file, what kind, who may write it. */
static int check_owner(int fd, const char *path, int ro, struct stat *st, struct rl_err *err)
{
    uid_t me = geteuid();
    int e;

    if (fstat(fd, st) != 0) {
        e = errno;
        rl_err_set(err, RL_E_IO, "metrics file %s: fstat: %s", path, strerror(e));
        return OPEN_FAIL;
    }
    if (!S_ISREG(st->st_mode)) {
        rl_err_set(err, RL_E_IO, "metrics file %s: not a regular file: refused", path);
        return OPEN_FAIL;
    }
    if (st->st_uid != me && !(ro && me == 0)) {
        rl_err_set(err, RL_E_IO, "metrics file %s: owned by uid %lu, not by uid %lu: refused", path,
                   (unsigned long)st->st_uid, (unsigned long)me);
        return OPEN_FAIL;
    }
    if (st->st_mode & (S_IWGRP | S_IWOTH)) {
        rl_err_set(err, RL_E_IO, "metrics file %s: writable by group or others: refused", path);
        return OPEN_FAIL;
    }
    return OPEN_DONE;
}

/* 1 when the file is shorter than a whole one and starts with our magic
 * (or what is left of it; nothing at all, say): a file of ours cut short,
 * for we only ever publish whole files. */
static int cut_short(int fd, const struct stat *st)
{
    static const uint64_t magic = METRICS_MAGIC;
    uint64_t got;
    size_t n = st->st_size < (off_t)sizeof(got) ? (size_t)st->st_size : sizeof(got);

    if (st->st_size >= (off_t)sizeof(struct metrics_shm) || pread(fd, &got, n, 0) != (ssize_t)n)
        return 0;
    return memcmp(&got, &magic, n) == 0;
}

/* Ours, of this layout, whole? OPEN_REPLACE, when we may write: ours but
 * of an older layout version, or cut short (truncated by someone of our
 * uid): replacing it brings the host's counts back for the processes that
 * open it from then on. */
static int check_header(int fd, const char *path, int ro, const struct stat *st, struct rl_err *err)
{
    struct metrics_hdr h;

    if (!ro && cut_short(fd, st))
        return OPEN_REPLACE;
    if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || h.magic != METRICS_MAGIC) {
        rl_err_set(err, RL_E_IO,
                   "metrics file %s: not an fcgi-ratelimit metrics file: refused, left alone",
                   path);
        return OPEN_FAIL;
    }
    if (h.version != METRICS_LAYOUT_VERSION) {
        /* An older layout is replaced; a newer one is a newer build's
         * (two versions on one host): replacing it would make the two
         * reset each other's counts, so this one goes without. */
        if (!ro && h.version < METRICS_LAYOUT_VERSION)
            return OPEN_REPLACE;
        rl_err_set(err, RL_E_IO,
                   "metrics file %s: layout version %lu, this program reads version %u: refused",
                   path, (unsigned long)h.version, METRICS_LAYOUT_VERSION);
        return OPEN_FAIL;
    }
    if (h.rules != METRICS_RULES || h.size != sizeof(struct metrics_shm) ||
        st->st_size != (off_t)sizeof(struct metrics_shm)) {
        rl_err_set(err, RL_E_IO, "metrics file %s: wrong size for layout version %u: refused", path,
                   METRICS_LAYOUT_VERSION);
        return OPEN_FAIL;
    }
    return OPEN_DONE;
}

/* Replace a file of another layout version (or cut short), if path still
 * names it: under flock, so of several processes finding it at once only
 * one replaces it and the others then open the new one. The lock goes
 * with the fd. */
static int replace_file(int fd, const char *path, const struct stat *st, struct rl_err *err)
{
    struct stat now;
    int e;

    while (flock(fd, LOCK_EX) != 0) {
        e = errno;
        if (e != EINTR) {
            rl_err_set(err, RL_E_IO, "metrics file %s: flock: %s", path, strerror(e));
            return OPEN_FAIL;
        }
    }
    if (lstat(path, &now) != 0 || now.st_dev != st->st_dev || now.st_ino != st->st_ino)
        return OPEN_RETRY; /* replaced by another process meanwhile */
    return create_file(path, 1, err);
}

static int open_once(const char *path, int ro, struct metrics_shm **shm, struct rl_err *err)
{
    /* O_NONBLOCK: a FIFO planted at path must not hang the open. */
    int fd = open(path, (ro ? O_RDONLY : O_RDWR) | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    int r, e;

    if (fd < 0) {
        e = errno;
        return e == ENOENT && !ro ? create_file(path, 0, err) : open_error(path, e, err);
    }
    r = check_owner(fd, path, ro, &st, err);
    if (r == OPEN_DONE)
        r = check_header(fd, path, ro, &st, err);
    if (r == OPEN_REPLACE)
        r = replace_file(fd, path, &st, err);
    if (r == OPEN_DONE) {
        *shm =
            mmap(NULL, sizeof(**shm), ro ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (*shm == MAP_FAILED) {
            e = errno;
            rl_err_set(err, RL_E_IO, "metrics file %s: mmap: %s", path, strerror(e));
            r = OPEN_FAIL;
        }
    }
    fd_close(&fd);
    return r;
}

struct metrics *metrics_open(const char *path, int flags, struct rl_err *err)
{
    struct metrics_shm *shm = NULL;
    struct metrics *m;
    int ro = (flags & METRICS_READONLY) != 0;
    int i, r = OPEN_RETRY;

    if (!METRICS_LOCK_FREE) {
        rl_err_set(err, RL_E_IO, "metrics: 64-bit atomics are not lock-free on this platform");
        return NULL;
    }
    if (path == NULL || *path == '\0') {
        rl_err_set(err, RL_E_IO, "metrics: no file name");
        return NULL;
    }
    /* Each retry follows a change by another process (a file published,
     * or replaced); a few in a row mean something keeps fighting us. */
    for (i = 0; i < 5 && r == OPEN_RETRY; i++)
        r = open_once(path, ro, &shm, err);
    if (r == OPEN_RETRY)
        rl_err_set(err, RL_E_IO, "metrics file %s: keeps changing while opened", path);
    if (r != OPEN_DONE)
        return NULL;
    m = xcalloc(1, sizeof(*m));
    m->shm = shm;
    m->readonly = ro;
    bus_guard(shm);
    return m;
}

void metrics_close(struct metrics *m)
{
    if (m == NULL)
        return;
    bus_unguard(m->shm);
    munmap(m->shm, sizeof(*m->shm));
    free(m);
}

/* ------------------------------------------------------------ registry */

int metrics_name_ok(const char *name, size_t len)
{
    size_t i;

    if (len == 0 || len > METRICS_NAME_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static int row_is(const struct metrics_row *r, const char *name, size_t len)
{
    return strnlen(r->name, sizeof(r->name)) == len && memcmp(r->name, name, len) == 0;
}

static int pid_dead(long long pid)
{
    return pid > 0 && pid <= INT_MAX && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* A row another process claimed and is naming: wait until it is named.
 * A claimer gone for good (dead after CLAIM_DEAD_MS) has its claim taken
 * back. Returns the row's new state, or claim itself when the wait ran
 * out. */
static uint64_t row_wait(struct metrics_row *r, uint64_t claim)
{
    struct timespec ms = {0, 1000000};
    uint64_t s = claim;
    int i;

    for (i = 0; i < CLAIM_WAIT_MS && s == claim; i++) {
        nanosleep(&ms, NULL);
        s = atomic_load_explicit(&r->state, memory_order_acquire);
        if (s == claim && i >= CLAIM_DEAD_MS && pid_dead(METRICS_ROW_PID(claim))) {
            /* On failure s gets the state that beat us to it. */
            if (atomic_compare_exchange_strong_explicit(&r->state, &s, METRICS_ROW_FREE,
                                                        memory_order_acq_rel, memory_order_acquire))
                s = METRICS_ROW_FREE;
        }
    }
    return s;
}

/* Name a row we claimed, then publish it. */
static void row_name(struct metrics_row *r, const char *name, size_t len)
{
    memset(r->name, 0, sizeof(r->name));
    memcpy(r->name, name, len);
    atomic_store_explicit(&r->state, METRICS_ROW_READY, memory_order_release);
}

/* One row of the scan: 1 the name is (now) here, 0 another name is (or
 * the row is free and we may not claim it), -1 it stayed half-named too
 * long. A name is only ever claimed at a row once every row before it
 * was seen named otherwise, so it is never twice. */
static int row_try(struct metrics_row *r, const char *name, size_t len, uint64_t me, int may_claim)
{
    uint64_t s = atomic_load_explicit(&r->state, memory_order_acquire), was;

    for (;;) {
        if (s == METRICS_ROW_READY)
            return row_is(r, name, len);
        if (s == METRICS_ROW_FREE) {
            if (!may_claim)
                return 0;
            if (atomic_compare_exchange_strong_explicit(&r->state, &s, me, memory_order_acq_rel,
                                                        memory_order_acquire)) {
                row_name(r, name, len);
                return 1;
            }
            continue; /* s is what beat us */
        }
        if (!METRICS_ROW_IS_CLAIM(s))
            return 0; /* a state we do not know: skip the row */
        was = s;
        if ((s = row_wait(r, was)) == was)
            return -1;
    }
}

/* metrics_rule() and metrics_rule_request(): a new name may take a row
 * below claim_end only; a known one is found in any row. */
static int rule_row(struct metrics *m, const char *name, int claim_end, struct rl_err *err)
{
    size_t len = name ? strnlen(name, METRICS_NAME_MAX + 1) : 0;
    uint64_t me = METRICS_ROW_CLAIM(getpid());
    int i, r;

    if (m == NULL || m->readonly)
        return METRICS_RULE_OTHER;
    if (!metrics_name_ok(name, len)) {
        rl_err_set(err, RL_E_CONFIG, "metrics: rule name not [A-Za-z0-9_.-]{1,%d}: counted as %s",
                   METRICS_NAME_MAX, METRICS_OTHER_NAME);
        return METRICS_RULE_OTHER;
    }
    for (i = 0; i < METRICS_RULES; i++) {
        r = row_try(&m->shm->row[i], name, len, me, i < claim_end);
        if (r == 1)
            return i;
        if (r < 0) {
            rl_err_set(err, RL_E_IO,
                       "metrics: row %d stayed half-registered by process %lld: rule %s counted "
                       "as %s",
                       i, METRICS_ROW_PID(atomic_load(&m->shm->row[i].state)), name,
                       METRICS_OTHER_NAME);
            return METRICS_RULE_OTHER;
        }
    }
    if (claim_end < METRICS_RULES)
        rl_err_set(err, RL_E_IO,
                   "metrics: the %d rule rows open to names from requests are taken: rule %s "
                   "counted as %s",
                   claim_end, name, METRICS_OTHER_NAME);
    else
        rl_err_set(err, RL_E_IO, "metrics: all %d rule rows are taken: rule %s counted as %s",
                   METRICS_RULES, name, METRICS_OTHER_NAME);
    return METRICS_RULE_OTHER;
}

int metrics_rule(struct metrics *m, const char *name, struct rl_err *err)
{
    return rule_row(m, name, METRICS_RULES, err);
}

int metrics_rule_request(struct metrics *m, const char *name, struct rl_err *err)
{
    return rule_row(m, name, METRICS_RULES - METRICS_RULES_OWN, err);
}

/* ------------------------------------------------------------ counting */

static inline void add(_Atomic uint64_t *p, uint64_t n)
{
    atomic_fetch_add_explicit(p, n, memory_order_relaxed);
}

static inline int writable(const struct metrics *m)
{
    return m != NULL && !m->readonly;
}

void metrics_decision(struct metrics *m, int rule, enum metrics_decision d)
{
    if (writable(m) && rule >= 0 && rule <= METRICS_RULE_OTHER && (unsigned)d < METRICS_DECISIONS)
        add(&m->shm->row[rule].count[d], 1);
}

void metrics_near_limit(struct metrics *m, int rule)
{
    if (writable(m) && rule >= 0 && rule <= METRICS_RULE_OTHER)
        add(&m->shm->row[rule].near_limit, 1);
}

int metrics_episode(struct metrics *m, uint64_t hash, long long now_s, long long until_s)
{
    _Atomic uint64_t *slot;
    uint64_t tag = hash & UINT64_C(0xffffffff00000000), want, seen;
    int tries;

    if (!writable(m))
        return 1;
    if (until_s <= now_s)
        until_s = now_s + 1;
    want = tag | ((uint64_t)until_s & UINT64_C(0xffffffff));
    slot = &m->shm->episode[hash % METRICS_EPISODES];
    seen = atomic_load_explicit(slot, memory_order_relaxed);
    for (tries = 0; tries < 4; tries++) {
        if ((seen & UINT64_C(0xffffffff00000000)) == tag &&
            (long long)(seen & UINT64_C(0xffffffff)) > (now_s & 0xffffffffLL))
            return 0; /* an episode some process logged goes on */
        if (atomic_compare_exchange_weak_explicit(slot, &seen, want, memory_order_relaxed,
                                                  memory_order_relaxed))
            return 1;
    }
    return 1; /* contended: rather one line too many than a start not logged */
}

void metrics_count(struct metrics *m, enum metrics_counter c)
{
    if (writable(m) && (unsigned)c < METRICS_COUNTERS)
        add(&m->shm->counter[c], 1);
}

void metrics_script_status(struct metrics *m, int status)
{
    if (status >= 100 && status <= 599)
        metrics_count(m, (enum metrics_counter)(METRICS_SCRIPT_1XX + status / 100 - 1));
}

void metrics_own_status(struct metrics *m, int status)
{
    static const int own[] = {400, 403, 404, 408, 413, 500, 502, 503, 504};
    size_t i;

    for (i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        if (own[i] == status)
            metrics_count(m, (enum metrics_counter)(METRICS_OWN_400 + i));
    }
}

void metrics_breaker(struct metrics *m, enum metrics_breaker_state s)
{
    if (!writable(m) || (unsigned)s >= METRICS_BREAKER_STATES)
        return;
    atomic_store_explicit(&m->shm->breaker_state, (uint64_t)s, memory_order_relaxed);
    if (s == METRICS_BREAKER_OPEN)
        add(&m->shm->counter[METRICS_BREAKER_OPENS], 1);
}

void metrics_observe(struct metrics *m, enum metrics_histogram h, long long usec)
{
    uint64_t us = usec < 0 ? 0 : (uint64_t)usec;
    int i = 0;

    if (!writable(m) || (unsigned)h >= METRICS_HISTOGRAMS)
        return;
    while (i < METRICS_BUCKETS && us > metrics_bound_us[i])
        i++;
    add(&m->shm->hist[h].bucket[i], 1);
    add(&m->shm->hist[h].sum_us, us);
}
