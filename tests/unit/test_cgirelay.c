/*
 * test_cgirelay.c - the relay with real scripts (small sh files in a temp
 * folder) and the body from a pipe fed by a forked writer: the whole body
 * is received before the script runs (filled pipe, spool file, exact
 * CONTENT_LENGTH), RATELIMIT_MAX_BODY gives 413 (without reading when
 * declared), a body that breaks off gives 400 and one that stalls past
 * the deadline 408; a small answer goes out in one write with no flush, a
 * slow one streams; a script that closes its output and goes on gets its
 * answer ended first, then is reaped; stderr is capped; Status 100 is 502.
 * The static functions are reached by including cgirelay.c (lighttpd's
 * src/t style).
 */
#include "../../src/cgirelay.c"

#include "deadline.h"
#include "testhelp.h"

struct mem_sink {
    struct buf b;
    int writes, flushes, ends;
    int ended_early;    /* the end came while the script still ran */
    const char *marker; /* the script creates it when done */
};

static int mem_write(void *ctx, const char *p, size_t n)
{
    struct mem_sink *m = ctx;

    m->writes++;
    return buf_append(&m->b, p, n);
}

static int mem_flush(void *ctx)
{
    ((struct mem_sink *)ctx)->flushes++;
    return RL_OK;
}

static int mem_end(void *ctx)
{
    struct mem_sink *m = ctx;

    m->ends++;
    m->ended_early = m->marker != NULL && access(m->marker, F_OK) != 0;
    return RL_OK;
}

static size_t err_bytes;

static void count_err(void *ctx, const char *p, size_t n)
{
    (void)ctx;
    (void)p;
    err_bytes += n;
}

struct pipe_body {
    int fd;
    int reads;
};

/* Blocking, as fcgxio.c's sources: -1 on EINTR too (the deadline). */
static ssize_t pipe_read(void *ctx, char *p, size_t n)
{
    struct pipe_body *pb = ctx;

    pb->reads++;
    return read(pb->fd, p, n);
}

/* A pipe whose write end a child fills with n bytes of 'b', holds open
 * for stall_ms, then closes (or, with die, kills itself: still EOF for a
 * pipe, so "breaks off" is a read error source below). Returns the read
 * end. */
static int body_pipe(size_t n, int stall_ms, pid_t *writer)
{
    static char chunk[65536];
    int fds[2];

    *writer = -1;
    if (pipe(fds) < 0)
        return -1;
    *writer = fork();
    if (*writer == 0) {
        close(fds[0]);
        memset(chunk, 'b', sizeof chunk);
        while (n > 0) {
            size_t k = n < sizeof chunk ? n : sizeof chunk;

            if (write_full(fds[1], chunk, k) != RL_OK)
                _exit(1);
            n -= k;
        }
        (void)poll(NULL, 0, stall_ms);
        _exit(0);
    }
    close(fds[1]);
    return fds[0];
}

/* Write an executable sh script into dir; returns its path (static). */
static const char *script(const char *dir, const char *name, const char *body)
{
    static char path[PATH_MAX];
    FILE *f;

    (void)snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "w");
    if (f == NULL)
        return NULL;
    fprintf(f, "#!/bin/sh\n%s", body);
    fclose(f);
    chmod(path, 0755);
    return path;
}

/* Run the relay once: script, CONTENT_LENGTH (NULL: none), body fd (-1:
 * none), a read source (NULL: the pipe's). Output in m. */
static int run_src(struct rl_config *cfg, const char *path, const char *cl, int fd,
                   ssize_t (*rd)(void *, char *, size_t), struct mem_sink *m, int *reads)
{
    static char method[] = "REQUEST_METHOD=POST", addr[] = "REMOTE_ADDR=127.0.0.1";
    char clv[64];
    char *params[] = {method, addr, clv, NULL};
    struct pipe_body pb = {fd, 0};
    struct rl_body_src body = {rd != NULL ? rd : pipe_read, fd, &pb};
    struct rl_out out = {mem_write, mem_flush, m, 0, 0, 0};
    struct rl_relay_req req;
    struct relay *r;
    int rc;

    (void)snprintf(clv, sizeof clv, "CONTENT_LENGTH=%s", cl != NULL ? cl : "");
    if (cl == NULL)
        params[2] = NULL;
    memset(&req, 0, sizeof req);
    req.params = params;
    req.cfg = cfg;
    req.body = &body;
    req.out = &out;
    req.errlog = count_err;
    req.end = mem_end;
    req.end_ctx = m;
    cfg->backend = (char *)path;
    buf_init(&m->b, 64 << 20);
    m->writes = m->flushes = m->ends = m->ended_early = 0;
    err_bytes = 0;
    r = cgirelay_new(&req);
    rc = cgirelay_run(r);
    cgirelay_free(r);
    if (reads != NULL)
        *reads = pb.reads;
    return rc;
}

static int run(struct rl_config *cfg, const char *path, const char *cl, int fd, struct mem_sink *m)
{
    return run_src(cfg, path, cl, fd, NULL, m, NULL);
}

static int starts(const struct mem_sink *m, const char *s)
{
    return m->b.ptr != NULL && strncmp(m->b.ptr, s, strlen(s)) == 0;
}

/* A POST of n bytes (declared or not) to the echo script: its answer. */
static int post(struct rl_config *cfg, const char *s, size_t n, int declare, struct mem_sink *m)
{
    char cl[32];
    pid_t w;
    int fd, rc;

    (void)snprintf(cl, sizeof cl, "%zu", n);
    fd = body_pipe(n, 0, &w);
    rc = run(cfg, s, declare ? cl : NULL, fd, m);
    close(fd);
    (void)waitpid(w, NULL, 0);
    return rc;
}

static void test_bodies(const char *dir)
{
    struct rl_config cfg;
    struct mem_sink m = {{0}, 0, 0, 0, 0, NULL};
    const char *s;
    char want[128];
    int rc, reads;
    pid_t w;
    int fd;

    memset(&cfg, 0, sizeof cfg);
    cfg.backend_timeout_ms = 10000;
    s = script(dir, "echo.sh",
               "printf 'Content-Type: text/plain\\r\\n\\r\\n'\n"
               "echo \"cl=$CONTENT_LENGTH len=$(wc -c | tr -d ' ')\"\n"
               "[ -p /dev/stdin ] && echo pipe; [ -f /dev/stdin ] && echo file; true\n");
    rc = post(&cfg, s, 1000, 1, &m);
    test_cond("small body: a filled pipe, exact length",
              rc == RL_OK && strstr(m.b.ptr, "cl=1000 len=1000\npipe\n") != NULL);
    buf_free(&m.b);
    rc = post(&cfg, s, 1048576, 0, &m);
    test_cond("1 MB without CONTENT_LENGTH: a file, exact length",
              rc == RL_OK && strstr(m.b.ptr, "cl=1048576 len=1048576\nfile\n") != NULL);
    buf_free(&m.b);
    rc = post(&cfg, s, 70000, 1, &m);
    test_cond("a body past the memory part: a file",
              rc == RL_OK && strstr(m.b.ptr, "cl=70000 len=70000\nfile\n") != NULL);
    buf_free(&m.b);
    rc = run(&cfg, s, NULL, -1, &m);
    (void)snprintf(want, sizeof want, "cl= len=0\n");
    test_cond("no body: /dev/null, no CONTENT_LENGTH", rc == RL_OK && strstr(m.b.ptr, want));
    buf_free(&m.b);

    cfg.max_body = 4096;
    fd = body_pipe(5000, 0, &w);
    rc = run_src(&cfg, s, "5000", fd, NULL, &m, &reads);
    close(fd);
    (void)waitpid(w, NULL, 0);
    test_cond("declared over RATELIMIT_MAX_BODY: 413, nothing read",
              rc == RL_ERR && starts(&m, "Status: 413") && reads == 0);
    buf_free(&m.b);
    rc = post(&cfg, s, 5000, 0, &m);
    test_cond("undeclared body growing past it: 413", rc == RL_ERR && starts(&m, "Status: 413"));
    buf_free(&m.b);
    cfg.max_body = 0;
}

static ssize_t broken_read(void *ctx, char *p, size_t n)
{
    struct pipe_body *pb = ctx;

    (void)p;
    (void)n;
    return pb->reads++ == 0 ? 10 : -1;
}

static void test_body_errors(const char *dir)
{
    struct rl_config cfg;
    struct mem_sink m = {{0}, 0, 0, 0, 0, NULL};
    const char *s = script(dir, "never.sh", "echo ran >never.ran\n");
    char ran[PATH_MAX];
    pid_t w;
    int fd, rc;

    memset(&cfg, 0, sizeof cfg);
    cfg.backend_timeout_ms = 10000;
    (void)snprintf(ran, sizeof ran, "%s/never.ran", dir);
    fd = body_pipe(100, 0, &w);
    rc = run_src(&cfg, s, "1000", fd, broken_read, &m, NULL);
    close(fd);
    (void)waitpid(w, NULL, 0);
    test_cond("a body that breaks off: 400", rc == RL_ERR && starts(&m, "Status: 400"));
    buf_free(&m.b);

    /* The request's deadline breaks the blocked read with EINTR. */
    deadline_init();
    fd = body_pipe(1000, 3000, &w);
    deadline_arm(300);
    rc = run(&cfg, s, "100000", fd, &m);
    deadline_disarm();
    close(fd);
    (void)kill(w, SIGKILL);
    (void)waitpid(w, NULL, 0);
    test_cond("a body that stalls past the deadline: 408",
              rc == RL_ERR && starts(&m, "Status: 408"));
    test_cond("the script never ran without its body", access(ran, F_OK) != 0);
    buf_free(&m.b);
}

static void test_answers(const char *dir)
{
    struct rl_config cfg;
    struct mem_sink m = {{0}, 0, 0, 0, 0, NULL};
    char marker[PATH_MAX];
    const char *s;
    int rc;

    memset(&cfg, 0, sizeof cfg);
    cfg.backend_timeout_ms = 10000;
    s = script(dir, "small.sh", "echo 'Content-Type: text/plain'; echo; echo hello\n");
    rc = run(&cfg, s, NULL, -1, &m);
    test_cond("small answer: one write, no flush (it goes out whole)",
              rc == RL_OK && m.writes == 1 && m.flushes == 0 && starts(&m, "Status: 200 OK\r\n") &&
                  strstr(m.b.ptr, "\r\n\r\nhello\n") != NULL);
    buf_free(&m.b);

    s = script(dir, "stream.sh",
               "printf 'Content-Type: text/plain\\r\\n\\r\\n'\n"
               "echo one; sleep 0.4; echo two; sleep 0.4; echo three\n");
    rc = run(&cfg, s, NULL, -1, &m);
    test_cond("slow answer: streamed as it comes",
              rc == RL_OK && m.flushes >= 2 && strstr(m.b.ptr, "one\ntwo\nthree\n") != NULL);
    buf_free(&m.b);

    s = script(dir, "big.sh",
               "printf 'Content-Type: text/plain\\r\\n\\r\\n'\n"
               "head -c 300000 /dev/zero | tr '\\0' x\n");
    rc = run(&cfg, s, NULL, -1, &m);
    test_cond("large answer: relayed whole", rc == RL_OK && m.b.len > 300000 && m.writes > 1);
    buf_free(&m.b);

    s = script(dir, "continue.sh", "printf 'Status: 100 Continue\\r\\n\\r\\n'\n");
    rc = run(&cfg, s, NULL, -1, &m);
    test_cond("Status 100: 502", rc == RL_ERR && starts(&m, "Status: 502"));
    buf_free(&m.b);

    s = script(dir, "chatty.sh",
               "echo 'Content-Type: text/plain'; echo; echo ok\n"
               "head -c 200000 /dev/zero >&2\n");
    rc = run(&cfg, s, NULL, -1, &m);
    test_cond("stderr capped at 64 KiB", rc == RL_OK && err_bytes == 65536);
    buf_free(&m.b);

    (void)snprintf(marker, sizeof marker, "%s/linger.done", dir);
    s = script(dir, "linger.sh",
               "echo 'Content-Type: text/plain'; echo; echo early\n"
               "exec >&- 2>&-\nsleep 1; : >linger.done\n");
    m.marker = marker;
    rc = run(&cfg, s, NULL, -1, &m);
    test_cond("script going on after its output: answer ended before it finished",
              rc == RL_OK && m.ends == 1 && m.ended_early && strstr(m.b.ptr, "early\n") != NULL);
    test_cond("then waited for and reaped",
              access(marker, F_OK) == 0 && waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
    m.marker = NULL;
    buf_free(&m.b);
    (void)unlink(marker);
}

int main(void)
{
    static const char *const names[] = {"echo.sh", "never.sh",    "small.sh",  "stream.sh",
                                        "big.sh",  "continue.sh", "chatty.sh", "linger.sh"};
    char dir[] = "/tmp/test_cgirelay.XXXXXX";
    char path[PATH_MAX];
    size_t i;

    /* As the binary does: a script that stops reading gives EPIPE, not death. */
    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(dir) == NULL)
        return 1;
    test_bodies(dir);
    test_body_errors(dir);
    test_answers(dir);
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        (void)snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        (void)unlink(path);
    }
    (void)snprintf(path, sizeof path, "%s/never.ran", dir);
    (void)unlink(path);
    (void)rmdir(dir);
    return test_report();
}
