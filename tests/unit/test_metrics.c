/*
 * test_metrics.c - the shared counter file (src/metrics.c) and its
 * Prometheus text (src/metricsfmt.c), in a temp folder: creation, reopen
 * and read-only opening; the files it refuses (a symbolic link, a FIFO,
 * someone else's, group-writable, no magic, wrong size) and the one of an
 * older layout it replaces; forked processes creating the file at once
 * and adding concurrently give exact totals; forked processes registering
 * overlapping rule names get each name once; a full registry and bad
 * names count under "(other)"; a row left half-named by a dead process is
 * taken back; names from requests leave the last rows to configured
 * names; a file truncated under its mappings (SIGBUS: private memory
 * instead; any other SIGBUS reaches the handler found before); the
 * rendered text's shape, and `promtool check metrics` on it (Debian:
 * prometheus; skipped with a message when absent).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "metrics.h"
#include "metricsint.h"
#include "rl.h"
#include "testhelp.h"

static char dir[256];

/* dir/name in a static buffer of its own (two slots, for two at once). */
static const char *at(const char *name)
{
    static char p[2][PATH_MAX];
    static int k;

    k ^= 1;
    snprintf(p[k], sizeof(p[k]), "%s/%s", dir, name);
    return p[k];
}

static int files_in_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    while (d != NULL && (e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    if (d != NULL)
        closedir(d);
    return n;
}

static void clean_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlink(at(e->d_name));
    }
    if (d != NULL)
        closedir(d);
}

static int contains(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

/* How many lines of text begin with prefix. */
static int lines_starting(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    int count = 0;

    for (; *text != '\0'; text = strchr(text, '\n') ? strchr(text, '\n') + 1 : "")
        count += strncmp(text, prefix, n) == 0;
    return count;
}

/* line (without its newline) is one whole line of text. */
static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    const char *p = text;

    while ((p = strstr(p, line)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return 1;
        p++;
    }
    return 0;
}

static char *render(const struct metrics *m)
{
    static struct buf b;

    buf_free(&b);
    buf_init(&b, 1 << 20);
    if (metrics_render(m, &b) != RL_OK)
        return NULL;
    return b.ptr ? b.ptr : (char *)"";
}

static int write_file(const char *path, const void *p, size_t n, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    int ok = fd >= 0 && write(fd, p, n) == (ssize_t)n;

    if (fd >= 0)
        close(fd);
    return ok && chmod(path, mode) == 0;
}

static int copy_file(const char *from, const char *to, mode_t mode)
{
    static char data[sizeof(struct metrics_shm) + 64];
    int fd = open(from, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, data, sizeof(data)) : -1;

    if (fd >= 0)
        close(fd);
    return n > 0 && write_file(to, data, (size_t)n, mode);
}

/* Open dir/name read-write for a test that needs it, or say why not. */
static struct metrics *open_rw(const char *name)
{
    struct rl_err err = {0};
    struct metrics *m = metrics_open(at(name), 0, &err);

    test_cond("opened", m != NULL);
    if (m == NULL)
        printf("# %s\n", err.msg);
    return m;
}

/* ------------------------------------------------------------ open */

static void test_create_reopen(void)
{
    struct rl_err err = {0};
    struct metrics *m = metrics_open(at("m"), 0, &err);
    struct stat st;
    char *text;
    int r;

    test_cond("a missing file is created", m != NULL);
    if (m == NULL) {
        printf("# %s\n", err.msg);
        return;
    }
    test_cond("created 0600, of the layout's size",
              stat(at("m"), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600 &&
                  st.st_size == (off_t)sizeof(struct metrics_shm));
    test_cond("no temp file left next to it", files_in_dir() == 1);
    r = metrics_rule(m, "per-ip", &err);
    test_cond("the first rule gets row 0", r == 0);
    metrics_decision(m, r, METRICS_DENIED);
    metrics_decision(m, r, METRICS_DENIED);
    metrics_decision(m, r, METRICS_DENIED);
    metrics_close(m);

    m = metrics_open(at("m"), 0, &err);
    test_cond("reopened", m != NULL);
    test_cond("a name keeps its row across opens", metrics_rule(m, "per-ip", &err) == 0);
    text = render(m);
    test_cond("counts survive a close and reopen",
              text && has_line(text, "fcgi_ratelimit_requests_total{rule=\"per-ip\","
                                     "decision=\"denied\"} 3"));
    metrics_close(m);

    m = metrics_open(at("m"), METRICS_READONLY, &err);
    test_cond("opened read-only", m != NULL);
    test_cond("read-only registers nothing", metrics_rule(m, "other", &err) == METRICS_RULE_OTHER);
    metrics_decision(m, 0, METRICS_DENIED); /* PROT_READ: must not write */
    metrics_observe(m, METRICS_H_REDIS, 10);
    text = render(m);
    test_cond("read-only renders the same counts",
              text && has_line(text, "fcgi_ratelimit_requests_total{rule=\"per-ip\","
                                     "decision=\"denied\"} 3"));
    metrics_close(m);

    test_cond("read-only never creates", metrics_open(at("none"), METRICS_READONLY, &err) == NULL &&
                                             access(at("none"), F_OK) != 0);
    test_cond("metrics_close(NULL) is fine", (metrics_close(NULL), 1));
}

/* metrics_open fails and its message holds what. */
static int refused(const char *path, int flags, const char *what)
{
    struct rl_err err = {0};
    struct metrics *m = metrics_open(path, flags, &err);

    if (m != NULL) {
        metrics_close(m);
        return 0;
    }
    if (!contains(err.msg, what))
        printf("# message: %s\n", err.msg);
    return contains(err.msg, what);
}

static void test_refused(void)
{
    static char junk[sizeof(struct metrics_shm)];
    struct rl_err err = {0};
    struct metrics *m;
    struct stat st;
    char first = 0;
    int fd;

    test_cond("a symbolic link is refused",
              symlink(at("m"), at("link")) == 0 && refused(at("link"), 0, "symbolic link") &&
                  refused(at("link"), METRICS_READONLY, "symbolic link"));
    test_cond("a FIFO is refused without hanging",
              mkfifo(at("fifo"), 0600) == 0 && refused(at("fifo"), 0, "not a regular file") &&
                  refused(at("fifo"), METRICS_READONLY, "not a regular file"));
    memset(junk, 'x', sizeof(junk));
    test_cond("a file without the magic is refused",
              write_file(at("junk"), junk, sizeof(junk), 0600) &&
                  refused(at("junk"), 0, "not an fcgi-ratelimit metrics file"));
    fd = open(at("junk"), O_RDONLY);
    test_cond("and left alone", fd >= 0 && read(fd, &first, 1) == 1 && first == 'x');
    close(fd);
    test_cond("an empty file is refused read-only",
              write_file(at("empty"), "", 0, 0600) &&
                  refused(at("empty"), METRICS_READONLY, "not an fcgi-ratelimit metrics file"));
    m = metrics_open(at("empty"), 0, &err);
    test_cond("an empty file of ours (truncated) is replaced read-write",
              m != NULL && stat(at("empty"), &st) == 0 &&
                  st.st_size == (off_t)sizeof(struct metrics_shm));
    metrics_close(m);
    m = NULL;
    test_cond("so is one holding only the start of our magic",
              copy_file(at("m"), at("short"), 0600) && truncate(at("short"), 5) == 0 &&
                  (m = metrics_open(at("short"), 0, &err)) != NULL && stat(at("short"), &st) == 0 &&
                  st.st_size == (off_t)sizeof(struct metrics_shm));
    metrics_close(m);
    test_cond("a short file of something else is refused",
              write_file(at("short2"), "hello", 5, 0600) &&
                  refused(at("short2"), 0, "not an fcgi-ratelimit metrics file"));
    test_cond("a group-writable file is refused",
              copy_file(at("m"), at("gw"), 0620) && refused(at("gw"), 0, "writable by group"));
    test_cond("a world-writable file is refused",
              copy_file(at("m"), at("ww"), 0602) && refused(at("ww"), 0, "writable by group"));
    test_cond("a file cut short is refused read-only",
              copy_file(at("m"), at("big"), 0600) &&
                  truncate(at("big"), sizeof(struct metrics_shm) / 2) == 0 &&
                  refused(at("big"), METRICS_READONLY, "wrong size"));
    m = metrics_open(at("big"), 0, &err);
    test_cond("and replaced read-write", m != NULL && stat(at("big"), &st) == 0 &&
                                             st.st_size == (off_t)sizeof(struct metrics_shm));
    metrics_close(m);
    test_cond("a file too long is refused",
              copy_file(at("m"), at("long"), 0600) &&
                  truncate(at("long"), 2 * sizeof(struct metrics_shm)) == 0 &&
                  refused(at("long"), 0, "wrong size"));
    if (geteuid() == 0) {
        test_cond("someone else's file is refused for writing",
                  copy_file(at("m"), at("theirs"), 0600) &&
                      chown(at("theirs"), 65534, 65534) == 0 &&
                      refused(at("theirs"), 0, "owned by uid 65534"));
        m = metrics_open(at("theirs"), METRICS_READONLY, &err);
        test_cond("root may read someone else's file", m != NULL);
        metrics_close(m);
    } else {
        test_cond("someone else's file is refused (root's /etc/passwd, read-only)",
                  refused("/etc/passwd", METRICS_READONLY, "owned by uid 0"));
    }
}

static void test_old_layout(void)
{
    uint32_t v = METRICS_LAYOUT_VERSION - 1, newer = 999;
    struct rl_err err = {0};
    struct stat before, after;
    struct metrics *m = open_rw("old");
    char *text;
    int fd;

    if (m == NULL)
        return;
    metrics_decision(m, metrics_rule(m, "gone", &err), METRICS_ALLOWED);
    metrics_close(m);
    fd = open(at("old"), O_WRONLY);
    test_cond("made an old layout",
              fd >= 0 && pwrite(fd, &v, sizeof(v), offsetof(struct metrics_hdr, version)) ==
                             (ssize_t)sizeof(v));
    close(fd);
    test_cond("read-only refuses another layout version",
              refused(at("old"), METRICS_READONLY, "layout version 1,"));
    stat(at("old"), &before);
    m = metrics_open(at("old"), 0, &err);
    test_cond("read-write replaces our file of another layout", m != NULL);
    stat(at("old"), &after);
    test_cond("with a new file", before.st_ino != after.st_ino);
    text = render(m);
    test_cond("whose counts start again", text && !contains(text, "gone"));
    test_cond("of this layout", m && m->shm->hdr.version == METRICS_LAYOUT_VERSION);
    metrics_close(m);
    /* A newer build's file is left to it. */
    fd = open(at("old"), O_WRONLY);
    test_cond("made a newer layout",
              fd >= 0 && pwrite(fd, &newer, sizeof(newer), offsetof(struct metrics_hdr, version)) ==
                             (ssize_t)sizeof(newer));
    close(fd);
    stat(at("old"), &before);
    test_cond("read-write refuses a newer layout", refused(at("old"), 0, "layout version 999"));
    stat(at("old"), &after);
    test_cond("and leaves it", before.st_ino == after.st_ino);
}

/* ------------------------------------------------------------ processes */

#define NPROC 4
#define ADDS 20000

/* Fork n children that wait on the returned pipe until the parent closes
 * its end, then run fn(i); the parent gets the write end in *go. */
static int spawn(int n, int (*fn)(int), pid_t *pids, int *go)
{
    int fds[2], i;
    char c;

    if (pipe(fds) != 0)
        return 0;
    for (i = 0; i < n; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            close(fds[1]);
            (void)!read(fds[0], &c, 1);
            _exit(fn(i));
        }
    }
    close(fds[0]);
    *go = fds[1];
    return 1;
}

/* Start the children at once and 1 when all exit 0. */
static int join(int n, const pid_t *pids, int go)
{
    int i, st, ok = 1;

    close(go);
    for (i = 0; i < n; i++)
        ok &= pids[i] > 0 && waitpid(pids[i], &st, 0) == pids[i] && WIFEXITED(st) &&
              WEXITSTATUS(st) == 0;
    return ok;
}

static int adder(int i)
{
    struct rl_err err = {0};
    struct metrics *m = metrics_open(at("race"), 0, &err); /* all create it at once */
    int r, k;

    (void)i;
    if (m == NULL) {
        printf("# child: %s\n", err.msg);
        return 1;
    }
    r = metrics_rule(m, "shared", &err);
    for (k = 0; k < ADDS; k++) {
        metrics_decision(m, r, METRICS_ALLOWED);
        metrics_count(m, METRICS_REDIS_TIMEOUT);
        metrics_observe(m, METRICS_H_REDIS, 700);
    }
    metrics_close(m);
    return r == 0 ? 0 : 1;
}

static void test_concurrent_adds(void)
{
    struct rl_err err = {0};
    struct metrics *m;
    pid_t pids[NPROC];
    char line[200];
    char *text;
    int go;

    test_cond("children created the file at once and counted",
              spawn(NPROC, adder, pids, &go) && join(NPROC, pids, go));
    test_cond("one file, no temp file left", files_in_dir() == 1);
    m = metrics_open(at("race"), METRICS_READONLY, &err);
    text = render(m);
    snprintf(line, sizeof(line),
             "fcgi_ratelimit_requests_total{rule=\"shared\",decision=\"allowed\"} %d",
             NPROC * ADDS);
    test_cond("exact per-rule total", text && has_line(text, line));
    snprintf(line, sizeof(line), "fcgi_ratelimit_redis_errors_total{kind=\"timeout\"} %d",
             NPROC * ADDS);
    test_cond("exact counter total", text && has_line(text, line));
    snprintf(line, sizeof(line), "fcgi_ratelimit_redis_duration_seconds_bucket{le=\"0.001\"} %d",
             NPROC * ADDS);
    test_cond("exact histogram bucket", text && has_line(text, line));
    snprintf(line, sizeof(line), "fcgi_ratelimit_redis_duration_seconds_sum %d.%06d",
             NPROC * ADDS * 700 / 1000000, NPROC * ADDS * 700 % 1000000);
    test_cond("exact histogram sum", text && has_line(text, line));
    metrics_close(m);
}

#define NREG 8
#define NAMES 40

static struct metrics *shared;

/* Register all NAMES names, starting at a different one in each child. */
static int registrar(int i)
{
    struct rl_err err = {0};
    char name[16];
    int k, r;

    for (k = 0; k < NAMES; k++) {
        snprintf(name, sizeof(name), "rule-%02d", (k + i * 5) % NAMES);
        r = metrics_rule(shared, name, &err);
        if (r < 0 || r >= METRICS_RULES || strcmp(shared->shm->row[r].name, name) != 0)
            return 1;
    }
    return 0;
}

static void test_concurrent_registry(void)
{
    struct rl_err err = {0};
    pid_t pids[NREG];
    char name[16];
    int go, k, i, once = 1, ready = 0;

    shared = metrics_open(at("reg"), 0, &err);
    test_cond("children registered overlapping names at once",
              shared && spawn(NREG, registrar, pids, &go) && join(NREG, pids, go));
    if (shared == NULL)
        return;
    for (k = 0; k < NAMES; k++) {
        int seen = 0;

        snprintf(name, sizeof(name), "rule-%02d", k);
        for (i = 0; i < METRICS_RULES; i++)
            seen += shared->shm->row[i].state == METRICS_ROW_READY &&
                    strcmp(shared->shm->row[i].name, name) == 0;
        once &= seen == 1;
    }
    for (i = 0; i < METRICS_RULES; i++)
        ready += shared->shm->row[i].state == METRICS_ROW_READY;
    test_cond("each name is in the registry once", once);
    test_cond("and nothing else is", ready == NAMES);
    metrics_close(shared);
}

static void test_registry_limits(void)
{
    struct rl_err err = {0};
    struct metrics *m = open_rw("full");
    char name[16], *text;
    int k, ok = 1;

    if (m == NULL)
        return;
    for (k = 0; k < METRICS_RULES; k++) {
        snprintf(name, sizeof(name), "r%03d", k);
        ok &= metrics_rule(m, name, &err) == k;
    }
    test_cond("128 names take rows 0..127", ok);
    rl_err_clear(&err);
    test_cond("the 129th counts as (other), saying so",
              metrics_rule(m, "r128", &err) == METRICS_RULE_OTHER &&
                  contains(err.msg, "all 128 rule rows are taken"));
    test_cond("a known name still finds its row", metrics_rule(m, "r005", &err) == 5);
    test_cond("bad names count as (other)",
              metrics_rule(m, "", &err) == METRICS_RULE_OTHER &&
                  metrics_rule(m, "a b", &err) == METRICS_RULE_OTHER &&
                  metrics_rule(m, "(other)", &err) == METRICS_RULE_OTHER &&
                  metrics_rule(m, NULL, &err) == METRICS_RULE_OTHER &&
                  metrics_rule(m,
                               "x123456789012345678901234567890123456789012345678901234567890123",
                               &err) == METRICS_RULE_OTHER);
    metrics_decision(m, METRICS_RULE_OTHER, METRICS_DENIED);
    metrics_decision(m, -1, METRICS_DENIED);
    metrics_decision(m, METRICS_RULE_OTHER + 1, METRICS_DENIED);
    text = render(m);
    test_cond("(other) is rendered once it counted",
              text && has_line(text, "fcgi_ratelimit_requests_total{rule=\"(other)\","
                                     "decision=\"denied\"} 1"));
    test_cond("out-of-range rows count nothing",
              text && lines_starting(text, "fcgi_ratelimit_requests_total{") ==
                          (METRICS_RULES + 1) * METRICS_DECISIONS);
    metrics_close(m);
    test_cond("metrics off (NULL) counts nothing, fine",
              (metrics_decision(NULL, 0, METRICS_ALLOWED), metrics_count(NULL, 0),
               metrics_observe(NULL, 0, 1), metrics_breaker(NULL, 1),
               metrics_rule(NULL, "a", &err) == METRICS_RULE_OTHER));
}

static void test_registry_reserved(void)
{
    struct rl_err err = {0};
    struct metrics *m = open_rw("reserved");
    int open_rows = METRICS_RULES - METRICS_RULES_OWN, k, ok = 1;
    char name[16];

    if (m == NULL)
        return;
    for (k = 0; k < 100; k++) {
        snprintf(name, sizeof(name), "q%03d", k);
        ok &= metrics_rule_request(m, name, &err) == (k < open_rows ? k : METRICS_RULE_OTHER);
    }
    test_cond("names from requests take rows 0..95, then count as (other)",
              ok && contains(err.msg, "the 96 rule rows open to names from requests are taken"));
    test_cond("a configured name still gets a row of its own",
              metrics_rule(m, "own", &err) == open_rows);
    test_cond("which a request naming it finds", metrics_rule_request(m, "own", &err) == open_rows);
    test_cond("a request's name seen before still finds its row",
              metrics_rule_request(m, "q005", &err) == 5);
    for (k = 1, ok = 1; k < METRICS_RULES_OWN; k++) {
        snprintf(name, sizeof(name), "own%02d", k);
        ok &= metrics_rule(m, name, &err) == open_rows + k;
    }
    test_cond("configured names fill the kept rows, then count as (other)",
              ok && metrics_rule(m, "own-last", &err) == METRICS_RULE_OTHER &&
                  contains(err.msg, "all 128 rule rows are taken"));
    metrics_close(m);
}

static void test_half_named(void)
{
    struct rl_err err = {0};
    struct metrics *m = open_rw("claim");
    pid_t dead;

    if (m == NULL)
        return;
    dead = fork();
    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    atomic_store(&m->shm->row[0].state, METRICS_ROW_CLAIM(dead));
    test_cond("a row a dead process claimed is taken back",
              metrics_rule(m, "late", &err) == 0 && strcmp(m->shm->row[0].name, "late") == 0);
    atomic_store(&m->shm->row[1].state, METRICS_ROW_CLAIM(getpid()));
    rl_err_clear(&err);
    test_cond("a row a live process keeps half-named: (other) after the wait",
              metrics_rule(m, "stuck", &err) == METRICS_RULE_OTHER &&
                  contains(err.msg, "half-registered"));
    test_cond("names before it are still found", metrics_rule(m, "late", &err) == 0);
    metrics_close(m);
}

/* ------------------------------------------------------------ truncation */

/* The handler a process had before metrics_open: a SIGBUS that is not
 * the guarded mapping's must reach it. */
static void on_bus_before(int sig)
{
    (void)sig;
    _exit(5);
}

/* The mapping a child opened: it leaves by _exit from a signal handler,
 * and valgrind (check-valgrind) would call a local's block definitely
 * lost. */
static struct metrics *child_m;

/* The exit status of a forked child that has on_bus_before for SIGBUS,
 * then runs fn. */
static int in_child(void (*fn)(void))
{
    struct sigaction sa;
    pid_t pid = fork();
    int status = -1;

    if (pid == 0) {
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_bus_before;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGBUS, &sa, NULL) != 0)
            _exit(3);
        fn();
        _exit(0);
    }
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A SIGBUS outside the guarded mapping: another truncated file's. */
static void fault_elsewhere(void)
{
    int fd = open(at("plain"), O_RDWR | O_CREAT, 0600);
    volatile char *p;

    child_m = metrics_open(at("guarded"), 0, NULL);
    if (child_m == NULL || fd < 0 || ftruncate(fd, 4096) != 0)
        _exit(3);
    p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED || ftruncate(fd, 0) != 0)
        _exit(3);
    p[0] = 1;
    _exit(4);
}

/* A SIGBUS sent by a process. */
static void sigbus_sent(void)
{
    child_m = metrics_open(at("guarded"), 0, NULL);
    if (child_m == NULL)
        _exit(3);
    kill(getpid(), SIGBUS);
    _exit(4);
}

/* A SIGBUS sent by a process while it was ignored before us: still
 * ignored, and the guard still there for a truncation after it. */
static void sigbus_ignored(void)
{
    signal(SIGBUS, SIG_IGN);
    child_m = metrics_open(at("ignored"), 0, NULL);
    if (child_m == NULL)
        _exit(3);
    kill(getpid(), SIGBUS);
    if (truncate(at("ignored"), 0) != 0)
        _exit(3);
    metrics_count(child_m, METRICS_FAIL_OPEN);
    _exit(metrics_lost(child_m) ? 6 : 7);
}

static void test_truncated(void)
{
    struct rl_err err = {0};
    struct metrics *m, *ro;
    struct sigaction before, now;
    struct stat st;
    char *text;
    int r;

    sigaction(SIGBUS, NULL, &before); /* SIG_DFL, or a sanitizer's */
    m = open_rw("trunc");
    if (m == NULL)
        return;
    r = metrics_rule(m, "before", &err);
    metrics_decision(m, r, METRICS_ALLOWED);
    test_cond("not lost while the file is whole", !metrics_lost(m) && !metrics_lost(NULL));
    ro = metrics_open(at("trunc"), METRICS_READONLY, &err);
    test_cond("opened read-only", ro != NULL);
    test_cond("truncated to 0 bytes", truncate(at("trunc"), 0) == 0);
    text = render(ro);
    test_cond("rendering the read-only mapping (guarded: the one opened last) survives",
              text && metrics_lost(ro) && !metrics_lost(m));
    metrics_close(ro);
    test_cond("closing it gives SIGBUS back to what was there before",
              sigaction(SIGBUS, NULL, &now) == 0 && now.sa_handler == before.sa_handler);
    metrics_close(m);

    m = open_rw("trunc2");
    if (m == NULL)
        return;
    test_cond("truncated to 0 bytes", truncate(at("trunc2"), 0) == 0);
    r = metrics_rule(m, "after", &err);
    metrics_decision(m, r, METRICS_DENIED);
    metrics_count(m, METRICS_FAIL_OPEN);
    text = render(m);
    test_cond("adds go on, into private memory",
              metrics_lost(m) && r == 0 && text &&
                  has_line(text, "fcgi_ratelimit_requests_total{rule=\"after\","
                                 "decision=\"denied\"} 1") &&
                  has_line(text, "fcgi_ratelimit_fail_answers_total{mode=\"open\"} 1"));
    test_cond("the file is left as it was, empty", stat(at("trunc2"), &st) == 0 && st.st_size == 0);
    metrics_close(m);

    test_cond("a SIGBUS at another address goes to the handler found before",
              in_child(fault_elsewhere) == 5);
    test_cond("so does a SIGBUS sent by a process", in_child(sigbus_sent) == 5);
    test_cond("one sent while ignored before us is ignored, and the guard stays",
              in_child(sigbus_ignored) == 6);
}

/* ------------------------------------------------------------ text */

static const char *const families[] = {
    "requests_total",         "near_limit_total",       "redis_errors_total",
    "redis_duration_seconds", "breaker_opens_total",    "breaker_state",
    "fail_answers_total",     "script_responses_total", "error_responses_total",
    "script_timeouts_total",  "script_kills_total",     "script_duration_seconds"};

static void fill(struct metrics *m)
{
    struct rl_err err = {0};
    int r = metrics_rule(m, "per-ip", &err), k;

    for (k = 0; k < 5; k++)
        metrics_decision(m, r, METRICS_ALLOWED);
    metrics_decision(m, r, METRICS_DENIED_CACHE);
    metrics_decision(m, r, METRICS_WOULD_DENY);
    metrics_near_limit(m, r);
    metrics_decision(m, metrics_rule(m, "api.key_v2", &err), METRICS_DENIED);
    metrics_count(m, METRICS_REDIS_NOSCRIPT);
    metrics_count(m, METRICS_FAIL_CLOSED);
    metrics_breaker(m, METRICS_BREAKER_OPEN);
    metrics_breaker(m, METRICS_BREAKER_HALF_OPEN);
    metrics_observe(m, METRICS_H_REDIS, 400);
    metrics_observe(m, METRICS_H_REDIS, 1000); /* le is inclusive */
    metrics_observe(m, METRICS_H_REDIS, 20000000);
    metrics_observe(m, METRICS_H_SCRIPT, -5);
    metrics_script_status(m, 200);
    metrics_script_status(m, 204);
    metrics_script_status(m, 302);
    metrics_script_status(m, 99);
    metrics_script_status(m, 600);
    metrics_own_status(m, 504);
    metrics_own_status(m, 413);
    metrics_own_status(m, 418);
    metrics_count(m, METRICS_SCRIPT_KILLS);
}

static int shape_ok(const char *text)
{
    char h[128], t[128];
    size_t i;
    int ok = 1;

    for (i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        snprintf(h, sizeof(h), "# HELP fcgi_ratelimit_%s ", families[i]);
        snprintf(t, sizeof(t), "# TYPE fcgi_ratelimit_%s ", families[i]);
        if (lines_starting(text, h) != 1 || lines_starting(text, t) != 1) {
            printf("# family %s: %d HELP, %d TYPE\n", families[i], lines_starting(text, h),
                   lines_starting(text, t));
            ok = 0;
        }
    }
    ok &= lines_starting(text, "# ") == 2 * (int)(sizeof(families) / sizeof(families[0]));
    ok &= lines_starting(text, "fcgi_ratelimit_") + lines_starting(text, "# ") ==
          lines_starting(text, "");
    return ok && text[strlen(text) - 1] == '\n';
}

/* Lines the text of fill() holds. */
static const char *const want[] = {
    "# TYPE fcgi_ratelimit_requests_total counter",
    "fcgi_ratelimit_requests_total{rule=\"per-ip\",decision=\"allowed\"} 5",
    "fcgi_ratelimit_requests_total{rule=\"per-ip\",decision=\"denied\"} 0",
    "fcgi_ratelimit_requests_total{rule=\"per-ip\",decision=\"denied_cache\"} 1",
    "fcgi_ratelimit_requests_total{rule=\"per-ip\",decision=\"would_deny\"} 1",
    "fcgi_ratelimit_requests_total{rule=\"api.key_v2\",decision=\"denied\"} 1",
    "fcgi_ratelimit_near_limit_total{rule=\"per-ip\"} 1",
    "fcgi_ratelimit_error_responses_total{status=\"413\"} 1",
    "fcgi_ratelimit_redis_errors_total{kind=\"noscript_reload\"} 1",
    "fcgi_ratelimit_redis_errors_total{kind=\"connect\"} 0",
    "fcgi_ratelimit_fail_answers_total{mode=\"closed\"} 1",
    "fcgi_ratelimit_breaker_opens_total 1",
    "fcgi_ratelimit_breaker_state{state=\"half_open\"} 1",
    "fcgi_ratelimit_breaker_state{state=\"open\"} 0",
    "# TYPE fcgi_ratelimit_redis_duration_seconds histogram",
    "fcgi_ratelimit_redis_duration_seconds_bucket{le=\"0.0005\"} 1",
    "fcgi_ratelimit_redis_duration_seconds_bucket{le=\"0.001\"} 2",
    "fcgi_ratelimit_redis_duration_seconds_bucket{le=\"10\"} 2",
    "fcgi_ratelimit_redis_duration_seconds_bucket{le=\"+Inf\"} 3",
    "fcgi_ratelimit_redis_duration_seconds_sum 20.001400",
    "fcgi_ratelimit_redis_duration_seconds_count 3",
    "fcgi_ratelimit_script_duration_seconds_bucket{le=\"0.0005\"} 1",
    "fcgi_ratelimit_script_duration_seconds_sum 0.000000",
    "fcgi_ratelimit_script_responses_total{class=\"2xx\"} 2",
    "fcgi_ratelimit_script_responses_total{class=\"3xx\"} 1",
    "fcgi_ratelimit_script_responses_total{class=\"1xx\"} 0",
    "fcgi_ratelimit_error_responses_total{status=\"504\"} 1",
    "fcgi_ratelimit_script_kills_total 1",
    "fcgi_ratelimit_script_timeouts_total 0"};

static void test_text(void)
{
    struct metrics *m = open_rw("text");
    struct buf b, small;
    const char *text;
    size_t i;
    int ok = 1;

    if (m == NULL)
        return;
    fill(m);
    text = render(m);
    for (i = 0; text && i < sizeof(want) / sizeof(want[0]); i++) {
        if (!has_line(text, want[i])) {
            printf("# missing: %s\n", want[i]);
            ok = 0;
        }
    }
    test_cond("the rendered lines", text && ok);
    test_cond("HELP and TYPE once per family, every other line a sample", text && shape_ok(text));
    test_cond("no (other) row while it counted nothing", text && !contains(text, "(other)"));
    test_cond("ignored statuses count nothing",
              text && has_line(text, "fcgi_ratelimit_script_responses_total{class=\"5xx\"} 0") &&
                  lines_starting(text, "fcgi_ratelimit_error_responses_total{") == 9);
    buf_init(&small, 100);
    test_cond("a full buffer is an error", metrics_render(m, &small) == RL_ERR);
    buf_free(&small);
    buf_init(&b, 100);
    test_cond("metrics off renders nothing", metrics_render(NULL, &b) == RL_OK && b.len == 0);
    test_cond("label values are escaped", metrics_label_escape(&b, "a\\b\"c\nd") == RL_OK &&
                                              strcmp(buf_str(&b), "a\\\\b\\\"c\\nd") == 0);
    buf_free(&b);
    metrics_close(m);
}

/* A file written by someone else (a script of the same user): a second row
 * named like the first, and a name without its NUL. Neither reaches the
 * text: a duplicate series would make Prometheus drop the whole scrape. */
static void test_damaged_rows(void)
{
    struct rl_err err = {0};
    struct metrics *m = open_rw("damaged");
    const char *text;
    int r;

    if (m == NULL)
        return;
    r = metrics_rule(m, "api", &err);
    metrics_decision(m, r, METRICS_ALLOWED);
    memcpy(m->shm->row[r + 1].name, "api", 4);
    atomic_store(&m->shm->row[r + 1].state, METRICS_ROW_READY);
    memset(m->shm->row[r + 2].name, 'x', sizeof(m->shm->row[r + 2].name));
    atomic_store(&m->shm->row[r + 2].state, METRICS_ROW_READY);
    text = render(m);
    test_cond("a duplicate name is shown once",
              text && lines_starting(text, "fcgi_ratelimit_requests_total{rule=\"api\",") == 4 &&
                  has_line(text, "fcgi_ratelimit_requests_total{rule=\"api\","
                                 "decision=\"allowed\"} 1"));
    test_cond("a name without its NUL is not shown", text && !contains(text, "xxxxxxxx"));
    metrics_close(m);
}

/* promtool check metrics on the text, read from its stdin. */
static void test_promtool(void)
{
    struct rl_err err = {0};
    struct metrics *m = metrics_open(at("text"), METRICS_READONLY, &err);
    const char *text = render(m);
    char cmd[PATH_MAX + 64];

    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        printf("ok %d - promtool check metrics # SKIP promtool not found (Debian: prometheus)\n",
               ++test_n);
        metrics_close(m);
        return;
    }
    test_cond("wrote the text", text && write_file(at("out.prom"), text, strlen(text), 0600));
    snprintf(cmd, sizeof(cmd), "promtool check metrics <'%s' >&2", at("out.prom"));
    test_cond("promtool check metrics accepts it", system(cmd) == 0);
    metrics_close(m);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(dir, sizeof(dir), "%s/test_metrics.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_create_reopen();
    test_refused();
    test_old_layout();
    clean_dir();
    test_concurrent_adds();
    clean_dir();
    test_concurrent_registry();
    test_registry_limits();
    test_registry_reserved();
    test_half_named();
    clean_dir();
    test_truncated();
    test_text();
    test_promtool();
    test_damaged_rows();
    clean_dir();
    rmdir(dir);
    render(NULL); /* frees the render buffer */
    return test_report();
}
