/*
 * test_cgirelay.c - the relay's held answer (cgirelay.c): while a request
 * body is still coming no answer byte reaches the client (mod_fcgid reads
 * no answer before it has written the whole body), the held bytes keep
 * their order across the memory/file boundary, and a GET is never held.
 * The static functions are reached by including cgirelay.c (lighttpd's
 * src/t style); real scripts are small sh files written to a temp folder,
 * and the body comes from a pipe fed by a forked writer.
 */
#include "../../src/cgirelay.c"

#include "testhelp.h"

struct mem_sink {
    struct buf b;
    int writes, flushes;
    int early; /* writes made before the body's EOF was read */
    const int *body_eof;
};

static int mem_write(void *ctx, const char *p, size_t n)
{
    struct mem_sink *m = ctx;

    m->writes++;
    if (m->body_eof != NULL && !*m->body_eof)
        m->early++;
    return buf_append(&m->b, p, n);
}

static int mem_flush(void *ctx)
{
    ((struct mem_sink *)ctx)->flushes++;
    return RL_OK;
}

struct pipe_body {
    int fd;
    int eof;
};

static ssize_t pipe_read(void *ctx, char *p, size_t n)
{
    struct pipe_body *pb = ctx;
    ssize_t got;

    do
        got = read(pb->fd, p, n);
    while (got < 0 && errno == EINTR);
    if (got == 0)
        pb->eof = 1;
    return got;
}

/* A pipe whose write end a child fills with n bytes of 'b', then holds
 * open for stall_ms, then closes. Returns the read end. */
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
 * none). Output in m. */
static int run(struct rl_config *cfg, const char *path, const char *cl, int fd, struct mem_sink *m)
{
    static char method[] = "REQUEST_METHOD=POST", addr[] = "REMOTE_ADDR=127.0.0.1";
    char clv[64];
    char *params[] = {method, addr, clv, NULL};
    struct pipe_body pb = {fd, 0};
    struct rl_body_src body = {pipe_read, NULL, fd, &pb};
    struct rl_out out = {mem_write, mem_flush, m, 0, 0};
    struct rl_relay_req req;

    (void)snprintf(clv, sizeof clv, "CONTENT_LENGTH=%s", cl != NULL ? cl : "");
    if (cl == NULL)
        params[2] = NULL;
    memset(&req, 0, sizeof req);
    req.params = params;
    req.cfg = cfg;
    req.body = &body;
    req.out = &out;
    cfg->backend = (char *)path;
    buf_init(&m->b, 64 << 20);
    m->writes = m->flushes = m->early = 0;
    m->body_eof = fd >= 0 ? &pb.eof : NULL;
    return cgirelay_run_or_reply(&req);
}

/* The held buffer alone: order across the memory/file boundary. */
static void test_held(void)
{
    struct rl_config cfg;
    struct mem_sink m = {{0}, 0, 0, 0, NULL};
    struct rl_out out = {mem_write, mem_flush, &m, 0, 0};
    struct rl_relay_req req;
    struct relay r;
    char chunk[7000];
    size_t i, total = 0, bad = 0;

    memset(&cfg, 0, sizeof cfg);
    memset(&req, 0, sizeof req);
    req.cfg = &cfg;
    req.out = &out;
    buf_init(&m.b, 1 << 20);
    relay_init(&r, &req);
    r.deferring = 1;
    for (i = 0; i < 30; i++) {
        size_t k;

        for (k = 0; k < sizeof chunk; k++)
            chunk[k] = (char)((total + k) % 251);
        if (answer_write(&r, chunk, sizeof chunk) != RL_OK)
            bad++;
        total += sizeof chunk;
    }
    test_cond("held: nothing written while deferring",
              bad == 0 && m.writes == 0 && !out.headers_sent);
    test_cond("held: memory part full, the rest in a file",
              r.held.len == RELAY_HOLD_MEM && r.held.fd >= 0 &&
                  r.held.flen == (long long)(total - RELAY_HOLD_MEM));
    held_release(&r);
    for (i = 0, bad = 0; i < m.b.len; i++)
        bad += (unsigned char)m.b.ptr[i] != i % 251;
    test_cond("held: released whole and in order", m.b.len == total && bad == 0);
    test_cond("held: headers_sent, flushed, file closed",
              out.headers_sent && m.flushes == 1 && r.held.fd == -1 && r.held.mem == NULL);
    test_cond("held: later bytes go straight out",
              answer_write(&r, "z", 1) == RL_OK && m.b.len == total + 1);
    relay_cleanup(&r);
    buf_free(&m.b);
}

static void test_runs(const char *dir)
{
    struct rl_config cfg;
    struct mem_sink m;
    const char *s;
    pid_t w;
    int fd, rc;

    memset(&cfg, 0, sizeof cfg);
    cfg.backend_timeout_ms = 10000;
    s = script(dir, "echo.sh",
               "printf 'Content-Type: text/plain\\r\\n\\r\\n'\n"
               "head -c 204800 /dev/zero | tr '\\0' x\necho\n"
               "echo \"len=$(head -c $CONTENT_LENGTH | wc -c)\"\n");
    fd = body_pipe(1048576, 0, &w);
    rc = run(&cfg, s, "1048576", fd, &m);
    close(fd);
    (void)waitpid(w, NULL, 0);
    test_cond("post: 200 KB before reading a 1 MB body, relayed whole",
              rc == RL_OK && strstr(m.b.ptr, "Status: 200") == m.b.ptr &&
                  strstr(m.b.ptr, "len=1048576\n") != NULL && m.b.len > 204800);
    test_cond("post: no answer byte before the body's EOF", m.writes > 0 && m.early == 0);
    buf_free(&m.b);

    /* The body stalls: the script times out while its answer is held. */
    cfg.backend_timeout_ms = 700;
    fd = body_pipe(1000, 2000, &w);
    rc = run(&cfg, s, "100000", fd, &m);
    close(fd);
    (void)waitpid(w, NULL, 0);
    test_cond("post: a timeout with the answer held is a clean 504",
              rc == RL_ERR && strstr(m.b.ptr, "Status: 504") == m.b.ptr &&
                  strstr(m.b.ptr, "xxxx") == NULL);
    buf_free(&m.b);

    cfg.backend_timeout_ms = 10000;
    s = script(dir, "stream.sh",
               "printf 'Content-Type: text/plain\\r\\n\\r\\n'\n"
               "echo one; sleep 0.2; echo two; sleep 0.2; echo three\n");
    rc = run(&cfg, s, NULL, -1, &m);
    test_cond("get: not held, streamed as it comes",
              rc == RL_OK && m.flushes >= 3 && strstr(m.b.ptr, "one\ntwo\nthree\n") != NULL);
    buf_free(&m.b);
}

int main(void)
{
    char dir[] = "/tmp/test_cgirelay.XXXXXX";

    /* As main.c does: a script that stops reading gives EPIPE, not death. */
    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(dir) == NULL)
        return 1;
    test_held();
    test_runs(dir);
    (void)unlink(script(dir, "echo.sh", ""));
    (void)unlink(script(dir, "stream.sh", ""));
    (void)rmdir(dir);
    return test_report();
}
