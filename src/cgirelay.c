/*
 * cgirelay.c - run the CGI script for an admitted request and relay its
 * answer (see cgirelay.h), on the model of OpenBSD slowcgi.
 *
 * One struct relay (cgiint.h) holds everything a request acquires (fds,
 * child pid, envp, buffers); the request owns it and cgirelay_free()
 * releases it in one place. The steps: pick and check the script
 * (cgiscript.c), receive the whole body (cgibody.c), build envp and argv
 * (cgienv.c), start the script in its own process group (cgispawn.c);
 * every answer of ours is written here. Then one poll() loop reads stdout
 * through the cgiheader parser and passes stderr (capped) to the server's
 * log. The answer is kept (up to RELAY_ANSWER_MAX) until the script
 * closes its output, so that a small answer reaches the web server whole
 * and it can add Content-Length and serve Range and HEAD; it streams from
 * the moment the buffer fills or the script pauses for RELAY_IDLE_MS.
 * The answer ends when the script closes stdout and stderr: the script
 * may go on, and is reaped, or killed at its deadline, after the answer
 * was ended (req->end). Every syscall here retries on EINTR (poll() is
 * never restarted, whatever SA_RESTART says).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "cgienv.h"
#include "cgiheader.h"
#include "cgiint.h"
#include "cgirelay.h"
#include "deadline.h"
#include "log.h"
#include "metrics.h"
#include "rl.h"
#include "util.h"

#define RELAY_ERR_SIZE 4096    /* one chunk of the script's stderr */
#define RELAY_ERR_MAX 65536    /* script stderr relayed per request */
#define RELAY_ANSWER_MAX 65536 /* answer kept before it streams */
#define RELAY_IDLE_MS 150      /* a pause this long: stream what there is */
#define RELAY_GRACE_MS 1500    /* SIGTERM -> SIGKILL */
#define RELAY_DEFAULT_TIMEOUT_MS 30000
#define RELAY_LIMITS_MAX 8192 /* the rate-limit header lines */

/* Milliseconds left before deadline, clamped for poll(). */
static int ms_left(long long deadline)
{
    long long left = deadline - now_ms();

    if (left <= 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

/* First outcome wins: a timeout stays a timeout after the kill. */
static void set_outcome(struct relay *r, int outcome)
{
    if (r->outcome == RL_RELAY_OK)
        r->outcome = outcome;
}

/* ------------------------------------------------------ the child group */

/* Signal the script's process group (its own), or the script alone if
 * the group is already gone. */
static void child_kill(pid_t pid, int sig)
{
    if (pid <= 0)
        return;
    if (kill(-pid, sig) < 0 && errno == ESRCH)
        (void)kill(pid, sig);
}

/* 1 once the child has exited, else 0. With reap it is also reaped (one
 * waitpid, the common end of a request); without, it is not: WNOWAIT
 * keeps its pid, and so its process group id, ours for a later kill. */
static int child_exited(struct relay *r, int reap)
{
    siginfo_t si;
    pid_t got;
    int rc;

    if (r->pid <= 0 || r->reaped)
        return 1;
    if (reap) {
        do
            got = waitpid(r->pid, &r->wstatus, WNOHANG);
        while (got < 0 && errno == EINTR);
        if (got == 0)
            return 0;
        r->reaped = 1; /* also on error (ECHILD): nothing left to reap */
        return 1;
    }
    memset(&si, 0, sizeof si);
    do
        rc = waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOHANG | WNOWAIT);
    while (rc < 0 && errno == EINTR);
    return rc < 0 || si.si_pid == r->pid;
}

static void child_reap(struct relay *r)
{
    pid_t got;

    if (r->pid <= 0 || r->reaped)
        return;
    do
        got = waitpid(r->pid, &r->wstatus, 0);
    while (got < 0 && errno == EINTR);
    r->reaped = 1;
}

/* Wait until the child exits (reaping it if reap) or until; 1 if it did.
 * Sleeps in poll(), starting short: most scripts are gone when their
 * stdout closes. */
static int child_wait_until(struct relay *r, long long until, int reap)
{
    int delay = 1;

    while (!child_exited(r, reap)) {
        int left = ms_left(until);

        if (left == 0)
            return 0;
        (void)poll(NULL, 0, delay < left ? delay : left);
        if (delay < 50)
            delay *= 2;
    }
    return 1;
}

/* SIGTERM the group, give it RELAY_GRACE_MS, SIGKILL what is left (also
 * children that outlived the script), then reap. A kill is counted when
 * our signal ended the script, not when it had already exited (its output
 * closes a moment before it can be seen to have exited). */
static void child_terminate(struct relay *r)
{
    if (r->pid <= 0 || r->reaped)
        return;
    child_kill(r->pid, SIGTERM);
    (void)child_wait_until(r, now_ms() + RELAY_GRACE_MS, 0);
    child_kill(r->pid, SIGKILL);
    child_reap(r);
    if (WIFSIGNALED(r->wstatus) &&
        (WTERMSIG(r->wstatus) == SIGTERM || WTERMSIG(r->wstatus) == SIGKILL))
        metrics_count(r->req->out->metrics, METRICS_SCRIPT_KILLS);
}

/* ------------------------------------------------------------ cleanup */

void cgirelay_cache_free(struct cgirelay_cache *c)
{
    if (c == NULL)
        return;
    cgispawn_cache_free(c);
    free(c->self_path);
    free(c->root);
    free(c->root_real);
    memset(c, 0, sizeof *c);
}

struct relay *cgirelay_new(const struct rl_relay_req *req)
{
    long long t = req->cfg->backend_timeout_ms;
    struct relay *r = xmalloc(sizeof *r);

    memset(r, 0, sizeof *r);
    r->req = req;
    r->cache = req->cache != NULL ? req->cache : &r->own;
    /* Asked for once: every answer, the script's or an error, has them. */
    buf_init(&r->limits, RELAY_LIMITS_MAX);
    if (req->decision != NULL &&
        response_ratelimit_headers(&r->limits, req->cfg, req->decision) != RL_OK)
        buf_reset(&r->limits);
    r->dir_fd = r->stdin_fd = r->out_r = r->err_r = r->out_w = r->err_w = r->spool.fd = -1;
    r->pid = -1;
    r->content_length = -1;
    r->started = now_ms();
    r->deadline = r->started + (t > 0 ? t : RELAY_DEFAULT_TIMEOUT_MS);
    cgirelay_printable(r->client, sizeof r->client, env_get(req->params, "REMOTE_ADDR"));
    if (r->client[0] == '\0')
        (void)snprintf(r->client, sizeof r->client, "-");
    (void)snprintf(r->what, sizeof r->what, "-");
    cgihdr_init(&r->hdr);
    buf_init(&r->ans, RELAY_ANSWER_MAX);
    r->io = xmalloc(RELAY_IO_SIZE);
    return r;
}

/* Everything a request acquired, released in one place (as slowcgi's
 * cleanup_request): a child still running is killed and reaped. */
void cgirelay_free(struct relay *r)
{
    if (r == NULL)
        return;
    fd_close(&r->out_r);
    fd_close(&r->err_r);
    fd_close(&r->out_w);
    fd_close(&r->err_w);
    fd_close(&r->stdin_fd);
    fd_close(&r->dir_fd);
    fd_close(&r->spool.fd);
    free(r->spool.mem);
    child_terminate(r);
    cgienv_free(r->envp);
    cgienv_free(r->argv);
    free(r->script);
    free(r->io);
    buf_free(&r->ans);
    buf_free(&r->limits);
    cgihdr_free(&r->hdr);
    cgirelay_cache_free(&r->own);
    free(r);
}

/* ------------------------------------------------------ the answer */

/* Push what was written to the client. */
static void answer_flush(struct relay *r)
{
    if (!r->dirty || r->outcome != RL_RELAY_OK)
        return;
    if (out_flush(r->req->out) != RL_OK)
        set_outcome(r, RL_RELAY_CLIENT_GONE);
    r->dirty = 0;
}

/* n bytes to the client. RL_OK, or RL_ERR with the outcome set. */
static int answer_out(struct relay *r, const char *p, size_t n)
{
    /* From the first byte on, no error answer may follow: it would land
     * inside the script's answer. */
    r->req->out->headers_sent = 1;
    r->sent = 1;
    r->dirty = 1;
    if (out_write(r->req->out, p, n) == RL_OK)
        return RL_OK;
    set_outcome(r, RL_RELAY_CLIENT_GONE);
    return RL_ERR;
}

/* Stream from now on: what was kept goes out first. */
static void answer_stream(struct relay *r)
{
    r->streaming = 1;
    if (r->ans.len > 0 && answer_out(r, r->ans.ptr, r->ans.len) == RL_OK)
        answer_flush(r);
    buf_reset(&r->ans);
}

/* n answer bytes, in order: kept while they fit (nothing of them is sent,
 * so an error can still be answered cleanly), else streamed. */
static int answer_write(struct relay *r, const char *p, size_t n)
{
    if (!r->streaming && buf_append(&r->ans, p, n) == RL_OK)
        return RL_OK;
    if (!r->streaming)
        answer_stream(r);
    return r->outcome == RL_RELAY_OK ? answer_out(r, p, n) : RL_ERR;
}

/* 1 when mod_proxy_fcgi sent the request (its "proxy:" SCRIPT_FILENAME). */
static int proxied(const struct relay *r)
{
    const char *sf = env_get(r->req->params, "SCRIPT_FILENAME");

    return sf != NULL && strncmp(sf, "proxy:", 6) == 0;
}

/* Header block complete: "Status:" first, the script's fields, ours. */
static int send_headers(struct relay *r)
{
    const char *extra = buf_str(&r->limits);
    struct buf b;

    buf_init(&b, 2 * CGIHDR_BLOCK_MAX + CGIHDR_LINE_MAX + r->limits.len);
    if (r->hdr.local_redirect && proxied(r)) {
        /* Apache's mod_proxy_fcgi (2.4.71 tried) does not serve a local
         * redirect: without a status line the client would get an empty
         * 200. It is given the 302 the header parser settled on. */
        r->hdr.local_redirect = 0;
    }
    if (cgihdr_block(&r->hdr, extra, &b) != RL_OK) {
        cgirelay_log(r, RL_LOG_ERROR, "cannot render the header block");
        set_outcome(r, RL_RELAY_INTERNAL);
    } else {
        (void)answer_write(r, b.ptr, b.len);
    }
    buf_free(&b);
    return r->outcome == RL_RELAY_OK ? RL_OK : RL_ERR;
}

/* Relay n bytes of the script's stdout at r->io. */
static void answer_bytes(struct relay *r, size_t n)
{
    size_t used = 0;

    if (!r->hdr.done) {
        if (cgihdr_feed(&r->hdr, r->io, n, &used) != RL_OK) {
            cgirelay_log(r, RL_LOG_WARN, "malformed headers: %s", r->hdr.errstr);
            set_outcome(r, RL_RELAY_BAD_HEADERS);
            return;
        }
        if (!r->hdr.done || send_headers(r) != RL_OK)
            return;
    }
    if (n > used && answer_write(r, r->io + used, n - used) != RL_OK)
        return;
    /* Streaming, a short read means the pipe is empty for now: push what
     * we have so that progress output reaches the client. */
    if (r->streaming && n < RELAY_IO_SIZE)
        answer_flush(r);
}

/* ----------------------------------------------------------- the loop */

static void on_stdout(struct relay *r)
{
    ssize_t n = read(r->out_r, r->io, RELAY_IO_SIZE);

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        if (n < 0)
            cgirelay_log(r, RL_LOG_WARN, "reading stdout: %s", strerror(errno));
        fd_close(&r->out_r);
        return;
    }
    r->last_out = now_ms();
    answer_bytes(r, (size_t)n);
}

/* stderr goes to the web server's log as it comes, never near the stdout
 * parser (fcgiwrap mixed them), and at most RELAY_ERR_MAX bytes of it: a
 * chatty script must not fill the server's log. The rest is read and
 * dropped, so that the script never blocks on it. */
static void on_stderr(struct relay *r)
{
    char chunk[RELAY_ERR_SIZE];
    ssize_t n = read(r->err_r, chunk, sizeof chunk);
    size_t before = r->err_bytes, room = RELAY_ERR_MAX - before;

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        fd_close(&r->err_r);
        return;
    }
    r->err_bytes += (size_t)n;
    if (before < RELAY_ERR_MAX && r->req->errlog != NULL)
        r->req->errlog(r->req->errlog_ctx, chunk, (size_t)n < room ? (size_t)n : room);
    if (before <= RELAY_ERR_MAX && r->err_bytes > RELAY_ERR_MAX)
        cgirelay_log(r, RL_LOG_WARN, "script stderr cut after %d bytes", RELAY_ERR_MAX);
}

static nfds_t add_pfd(struct pollfd *pfd, nfds_t n, int fd, int *idx)
{
    pfd[n].fd = fd;
    pfd[n].events = POLLIN;
    pfd[n].revents = 0;
    *idx = (int)n;
    return n + 1;
}

/* Milliseconds poll() may sleep: to the deadline, or, while an answer is
 * kept, to the end of the pause that makes it stream. */
static int step_timeout(const struct relay *r)
{
    int t = ms_left(r->deadline), idle;

    if (!r->streaming && r->ans.len > 0 && (idle = ms_left(r->last_out + RELAY_IDLE_MS)) < t)
        t = idle;
    return t;
}

/* One poll() round over stdout and stderr. */
static void relay_step(struct relay *r)
{
    struct pollfd pfd[2];
    int idx[2] = {-1, -1}, rc;
    nfds_t n = 0;

    if (r->out_r >= 0)
        n = add_pfd(pfd, n, r->out_r, &idx[0]);
    if (r->err_r >= 0)
        n = add_pfd(pfd, n, r->err_r, &idx[1]);
    rc = poll(pfd, n, step_timeout(r));
    if (rc < 0 && errno != EINTR) {
        cgirelay_log(r, RL_LOG_ERROR, "poll: %s", strerror(errno));
        set_outcome(r, RL_RELAY_INTERNAL);
    }
    if (rc > 0 && idx[1] >= 0 && pfd[idx[1]].revents != 0)
        on_stderr(r);
    if (rc > 0 && idx[0] >= 0 && pfd[idx[0]].revents != 0 && r->outcome == RL_RELAY_OK)
        on_stdout(r);
    /* A pause: the script is slow or streams; what it said goes out. */
    if (!r->streaming && r->ans.len > 0 && r->outcome == RL_RELAY_OK &&
        now_ms() - r->last_out >= RELAY_IDLE_MS)
        answer_stream(r);
}

/* Until the script closed stdout and stderr, or something went wrong. */
static void relay_loop(struct relay *r)
{
    while (r->outcome == RL_RELAY_OK && (r->out_r >= 0 || r->err_r >= 0)) {
        if (now_ms() >= r->deadline) {
            set_outcome(r, RL_RELAY_TIMEOUT);
            break;
        }
        relay_step(r);
    }
}

/* ------------------------------------------------------------- finish */

static void log_exit(const struct relay *r)
{
    if (!r->reaped)
        return;
    if (WIFEXITED(r->wstatus) && WEXITSTATUS(r->wstatus) != 0)
        cgirelay_log(r, RL_LOG_INFO, "exited with status %d", WEXITSTATUS(r->wstatus));
    else if (WIFSIGNALED(r->wstatus))
        cgirelay_log(r, RL_LOG_INFO, "killed by signal %d", WTERMSIG(r->wstatus));
}

/* Log why the script is being stopped, then stop it. */
static void stop_child(struct relay *r)
{
    if (r->outcome == RL_RELAY_TIMEOUT)
        metrics_count(r->req->out->metrics, METRICS_SCRIPT_TIMEOUTS);
    if (r->outcome == RL_RELAY_TIMEOUT)
        cgirelay_log(r, RL_LOG_WARN,
                     "still running after %lld ms (RATELIMIT_BACKEND_TIMEOUT), killing "
                     "process group %ld",
                     r->deadline - r->started, (long)r->pid);
    else if (r->outcome == RL_RELAY_CLIENT_GONE)
        cgirelay_log(r, RL_LOG_INFO, "client went away, killing process group %ld", (long)r->pid);
    child_terminate(r);
}

/* The error answer for the outcome, if nothing was sent yet. */
static void answer_outcome(struct relay *r)
{
    switch (r->outcome) {
    case RL_RELAY_TIMEOUT:
        (void)cgirelay_reply(r, 504, "script timed out");
        break;
    case RL_RELAY_BAD_HEADERS:
        (void)cgirelay_reply(r, 502, "script sent malformed headers");
        break;
    case RL_RELAY_NO_HEADERS:
        cgirelay_log(r, RL_LOG_WARN, "%s",
                     r->hdr.total == 0 ? "no output (no header block)"
                                       : "output ended inside the header block");
        (void)cgirelay_reply(r, 502, "script sent no headers");
        break;
    case RL_RELAY_INTERNAL:
        (void)cgirelay_reply(r, 500, RELAY_MSG_CANNOT_RUN);
        break;
    default:
        break;
    }
}

/*
 * The script closed its output with a whole answer: send what is kept,
 * and if the script goes on running, end the answer (req->end) so that
 * the client has it now, then give the script until its deadline.
 */
static void finish_answer(struct relay *r)
{
    const struct rl_relay_req *q = r->req;

    if (r->ans.len > 0)
        (void)answer_out(r, r->ans.ptr, r->ans.len);
    buf_reset(&r->ans);
    if (child_exited(r, 1) || r->outcome != RL_RELAY_OK)
        return;
    /* No flush before: the answer and its end go out in one write. */
    if (q->end != NULL && q->end(q->end_ctx) != RL_OK)
        set_outcome(r, RL_RELAY_CLIENT_GONE);
    else if (q->end == NULL)
        answer_flush(r);
    r->dirty = 0;
    if (r->outcome == RL_RELAY_OK && !child_wait_until(r, r->deadline, 1))
        set_outcome(r, RL_RELAY_TIMEOUT);
}

static void relay_finish(struct relay *r)
{
    fd_close(&r->stdin_fd);
    if (r->outcome == RL_RELAY_OK && !r->hdr.done)
        r->outcome = RL_RELAY_NO_HEADERS;
    if (r->outcome == RL_RELAY_OK)
        finish_answer(r);
    if (r->outcome != RL_RELAY_OK) {
        /* Nothing of a kept answer was sent: the error answer replaces it. */
        buf_reset(&r->ans);
        stop_child(r);
    } else if (!r->reaped) {
        child_reap(r);
    }
    log_exit(r);
    /* No flush: the end of the request (FCGX_Finish_r in the accept
     * loop) sends the rest of the answer and its end in one write, so
     * that the server sees a small answer whole. */
    answer_outcome(r);
}

/* The script picked and checked, or RL_ANSWERED with the refusal. */
static enum rl_step resolve_or_reply(struct relay *r)
{
    struct rl_err err;

    if (cgiscript_resolve(r, &err) == RL_OK)
        return RL_GO_ON;
    return cgirelay_reply(r, rl_err_status(&err), err.msg);
}

/* An errno of ours (no memory, no fds, no processes left): 500; any
 * other failure to start is the script's (a bad #! line): 502. */
static int spawn_status(int err)
{
    return err == ENOMEM || err == EAGAIN || err == EMFILE || err == ENFILE ? 500 : 502;
}

/* Start the script with the body as stdin, its output into two pipes:
 * RL_GO_ON with the child running, or RL_ANSWERED. */
static enum rl_step spawn_or_reply(struct relay *r)
{
    int fds[3], err;

    if (cgispawn_pipe(&r->out_r, &r->out_w, 1) != RL_OK ||
        cgispawn_pipe(&r->err_r, &r->err_w, 1) != RL_OK) {
        cgirelay_log(r, RL_LOG_ERROR, "cannot start: %s", strerror(errno));
        return cgirelay_reply(r, 500, RELAY_MSG_CANNOT_RUN);
    }
    fds[0] = r->stdin_fd;
    fds[1] = r->out_w;
    fds[2] = r->err_w;
    err = cgispawn(r->cache, r->dir_fd, r->name, fds, r->argv, r->envp, &r->pid);
    /* The child's ends are the child's now (or nobody's). */
    fd_close(&r->stdin_fd);
    fd_close(&r->out_w);
    fd_close(&r->err_w);
    if (err == 0)
        return RL_GO_ON;
    cgirelay_log(r, RL_LOG_ERROR, "cannot run: %s%s", strerror(err),
                 spawn_status(err) == 502 ? " (a bad #! line?)" : "");
    return spawn_status(err) == 502 ? cgirelay_reply(r, 502, "script could not be started")
                                    : cgirelay_reply(r, 500, RELAY_MSG_CANNOT_RUN);
}

int cgirelay_run(struct relay *r)
{
    const struct rl_relay_req *req = r->req;

    if (resolve_or_reply(r) == RL_ANSWERED || cgibody_receive_or_reply(r) == RL_ANSWERED)
        return RL_ERR;
    /* Receiving the body is not the script's run time. */
    r->deadline += now_ms() - r->started;
    r->started = now_ms();
    r->started_us = now_us();
    /* From here the process timer is the script's deadline too: a write
     * to a web server that stopped reading fails then. */
    deadline_arm(r->deadline - r->started);
    r->envp = cgienv_build(req->params, r->script, r->content_length);
    r->argv = cgienv_argv(r->script, env_get(req->params, "QUERY_STRING"));
    if (spawn_or_reply(r) == RL_ANSWERED)
        return RL_ERR;
    relay_loop(r);
    relay_finish(r);
    /* The script's answer by class, when it reached the client (even if
     * the script then ran too long: ours, when it failed before, were
     * counted as they were written), and how long it ran. */
    if (r->sent && r->hdr.done)
        metrics_script_status(req->out->metrics, r->hdr.status);
    metrics_observe(req->out->metrics, METRICS_H_SCRIPT, now_us() - r->started_us);
    return r->outcome == RL_RELAY_OK ? RL_OK : RL_ERR;
}
