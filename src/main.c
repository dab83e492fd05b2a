/*
 * main.c - command line, signals, and the three ways fcgi-ratelimit runs:
 * a FastCGI accept loop on fd 0 (lighttpd bin-path, mod_fcgid, spawn-fcgi),
 * a FastCGI accept loop on a socket of our own (--listen, for
 * mod_proxy_fcgi), or one plain CGI request (libfcgi's FCGX_IsCGI()).
 *
 * Every request goes through handle_request(): configuration, client
 * identity, lists, one Redis check, then the denial, the Authorizer's 200,
 * or the relay to the legacy CGI script. Per-request state lives in struct
 * rl_request and is released by request_reset().
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fastcgi.h>
#include <fcgiapp.h>

#include "acceptor.h"
#include "buf.h"
#include "cgirelay.h"
#include "clientkey.h"
#include "deadline.h"
#include "denycache.h"
#include "limiter.h"
#include "listener.h"
#include "log.h"
#include "redisconn.h"
#include "rlconfig.h"
#include "response.h"
#include "util.h"

extern char **environ;

/* What lives as long as the process (or the worker). */
struct rl_app {
    struct config_cache *cc; /* NULL when the process configuration is invalid */
    struct rl_err cfg_err;   /* why cc is NULL */
    struct redisconn *rc;
    char self_path[PATH_MAX];
    const char *argv1;         /* script named on the command line, or NULL */
    struct rl_cidr_list peers; /* FCGI_WEB_SERVER_ADDRS: who may connect over TCP */
};

/* How long a FastCGI connection may take to send its request's head
 * (BEGIN_REQUEST and params) before it is dropped (acceptor.h). */
#define RL_HEAD_TIMEOUT_MS 5000

/* One request, whatever role it came in. */
struct rl_request {
    char *const *params; /* borrowed: FCGX envp or environ */
    int authorizer;      /* FastCGI role AUTHORIZER */
    struct rl_out out;
    struct rl_body_src body;
    FCGX_Request *fcgx; /* NULL in plain CGI */
    struct buf headers; /* rate-limit header lines for an allowed answer */
};

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t idle_in_accept;

/* SIGTERM/SIGINT: finish the request in flight, then exit 0. When idle in
 * accept() nothing is in flight, so leave at once: accept() would otherwise
 * block until the next connection. */
static void on_term(int sig)
{
    (void)sig;
    stop_requested = 1;
    if (idle_in_accept)
        _exit(0);
    FCGX_ShutdownPending();
}

static void install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* libfcgi's SIGUSR1 means "stop after this request", as SIGTERM. */
    sigaction(SIGUSR1, &sa, NULL);
    /* A client that goes away must be an EPIPE, never our death. libfcgi's
     * own no-op SIGPIPE handler has no SA_RESTART: a stray SIGPIPE would
     * make its blocking read of the request fail with EINTR, and the
     * request be dropped. Ignored, the signal is discarded instead. The
     * relay resets every disposition for scripts. */
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

/*
 * Scripts run with our uid. Not dumpable, another process of that uid
 * can neither read our memory or environment (/proc/PID/mem, environ, fd
 * are root's then) nor take our Redis socket (pidfd_getfd) nor ptrace us;
 * with a hard core limit of 0 it cannot raise the limit (prlimit) and
 * crash us for a core file full of the password. The flag survives fork
 * (the --listen workers) and is reset by the scripts' execve.
 */
static void secrets_protect(void)
{
    struct rlimit no_core = {0, 0};

    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    (void)setrlimit(RLIMIT_CORE, &no_core);
}

/* After the configuration copied them: overwrite the values that may hold
 * a password in the environment block itself (what /proc/PID/environ
 * shows, should it ever be readable) and drop them from environ. */
static void secrets_wipe_environ(void)
{
    static const char *const names[] = {
        "RATELIMIT_REDIS_PASSWORD=", "RATELIMIT_SENTINEL_PASSWORD=", "RATELIMIT_REDIS_URL="};
    size_t w = 0;

    for (size_t i = 0; environ != NULL && environ[i] != NULL; i++) {
        char *e = environ[i];
        size_t k;

        for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
            if (strncmp(e, names[k], strlen(names[k])) == 0)
                break;
        if (k < sizeof(names) / sizeof(names[0])) {
            explicit_bzero(e + strlen(names[k]), strlen(e + strlen(names[k])));
            continue;
        }
        environ[w++] = e;
    }
    if (environ != NULL)
        environ[w] = NULL;
}

/* fds 0-2 must be open, or the next open() lands on them (slowcgi). */
static void ensure_std_fds(void)
{
    struct stat st;

    for (int fd = 0; fd <= 2; fd++) {
        if (fstat(fd, &st) < 0 && errno == EBADF) {
            int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
            (void)n; /* lands on fd, the lowest free number */
        }
    }
}

/* ---------------------------------------------------------------- sinks */

static int fcgx_write(void *ctx, const char *p, size_t n)
{
    FCGX_Stream *s = ctx;

    while (n > 0) {
        int chunk = n > INT_MAX ? INT_MAX : (int)n;

        if (FCGX_PutStr(p, chunk, s) != chunk)
            return RL_ERR;
        p += chunk;
        n -= (size_t)chunk;
    }
    return RL_OK;
}

static int fcgx_flush(void *ctx)
{
    return FCGX_FFlush(ctx) == 0 ? RL_OK : RL_ERR;
}

/* A log line goes to the request's FCGI_STDERR (the web server's log).
 * Once the connection has failed (the server went away, or it broke off
 * the body) nothing sent there arrives: RL_ERR, and log.c writes it to the
 * process' stderr, which lighttpd and mod_fcgid also put in their log. */
static int fcgx_log(void *ctx, const char *line, int len)
{
    FCGX_Request *r = ctx;

    if (FCGX_GetError(r->in) != 0 || FCGX_GetError(r->out) != 0 ||
        FCGX_PutStr(line, len, r->err) != len)
        return RL_ERR;
    return RL_OK;
}

static void fcgx_errlog(void *ctx, const char *p, size_t n)
{
    (void)fcgx_write(ctx, p, n);
}

/* Read up to n bytes of the body: blocks until n bytes, the end of the
 * body (0) or an error (-1: the connection failed, or the request's
 * deadline broke a blocking read). An error after some bytes is reported
 * by the next call, never taken for the end of the body. */
static ssize_t fcgx_read(void *ctx, char *p, size_t n)
{
    FCGX_Stream *s = ctx;
    int got;

    if (n == 0)
        return 0;
    got = FCGX_GetStr(p, n > INT_MAX ? INT_MAX : (int)n, s);
    if (got > 0)
        return got;
    return FCGX_GetError(s) != 0 ? -1 : 0;
}

/* Read what is left of the body and throw it away: with nothing unread a
 * plain close sends no reset, so libfcgi's lingering close (shutdown, wait
 * for the server to close, read, close) can be skipped. Called only when
 * the acceptor saw the whole body arrive, so it cannot block. 1 when the
 * body was read to its end. */
static int fcgx_drain(FCGX_Stream *s)
{
    char scratch[4096];

    while (FCGX_GetStr(scratch, sizeof(scratch), s) > 0)
        ;
    return FCGX_HasSeenEOF(s) && FCGX_GetError(s) == 0;
}

/* The relay's end of the answer while the script goes on: closing both
 * streams sends their EOF records and FCGI_END_REQUEST (libfcgi sends it
 * when the last writer closes); FCGX_Finish_r's own FCGX_FClose calls are
 * then no-ops (wasFCloseCalled). */
static int fcgx_end(void *ctx)
{
    FCGX_Request *r = ctx;
    int e = FCGX_FClose(r->err), o = FCGX_FClose(r->out);

    return e == 0 && o == 0 ? RL_OK : RL_ERR;
}

static int fd_write(void *ctx, const char *p, size_t n)
{
    return write_full(*(int *)ctx, p, n);
}

static ssize_t fd_read(void *ctx, char *p, size_t n)
{
    int fd = *(int *)ctx;
    ssize_t r;

    /* EINTR is retried, but not past the request's deadline. */
    do
        r = read(fd, p, n);
    while (r < 0 && errno == EINTR && !deadline_expired());
    return r;
}

static void fd_errlog(void *ctx, const char *p, size_t n)
{
    (void)fd_write(ctx, p, n);
}

/* -------------------------------------------------------------- requests */

static void request_reset(struct rl_request *rq)
{
    buf_free(&rq->headers);
    log_set_sink(NULL, NULL);
}

/* Redis could not answer: RATELIMIT_FAIL decides. Returns 1 when the
 * request may go on (fail open), 0 when it was answered (503). */
static int redis_down_or_reply(struct rl_request *rq, const struct rl_config *cfg)
{
    if (cfg->fail == RL_FAIL_OPEN)
        return 1;
    response_error(&rq->out, 503, "rate limiter unavailable", 1, NULL);
    return 0;
}

/* The client is over a limit: log, and deny unless this is a dry run.
 * Returns 1 when the request may go on (dry run), 0 when answered. */
static int denied_or_reply(struct rl_request *rq, const struct rl_config *cfg,
                           const struct rl_client *client, const struct rl_decision *d)
{
    const struct rl_rule *rule = &cfg->rules[d->worst];
    long long ttl = limiter_ttl_seconds(d->r[d->worst].retry_ms);

    if (cfg->dry_run) {
        rl_log(RL_LOG_WARN, "dry-run: would deny client %s: rule %s (%lld/%lldms) ttl %llds",
               client->text, rule->name, rule->limit, rule->window_ms, ttl);
        return 1;
    }
    rl_log(RL_LOG_INFO, "denied client %s: rule %s ttl %llds", client->text, rule->name, ttl);
    response_deny(&rq->out, cfg, d);
    return 0;
}

/* Build every rule's key; RL_ERR (already answered 500) on failure. */
static int build_keys_or_reply(struct rl_request *rq, const struct rl_config *cfg,
                               const struct rl_client *client, char keys[][RL_KEY_MAX],
                               const char **keyp)
{
    struct rl_err err;

    for (size_t i = 0; i < cfg->nrules; i++) {
        int rc =
            clientkey_build(cfg, &cfg->rules[i], client, rq->params, keys[i], RL_KEY_MAX, &err);

        if (rc == RL_ERR) {
            rl_log(RL_LOG_ERROR, "client %s: rule %s: %s", client->text, cfg->rules[i].name,
                   err.msg);
            response_error(&rq->out, 500, "rate limiter error", 0, NULL);
            return RL_ERR;
        }
        keyp[i] = rc == RL_SKIP ? NULL : keys[i];
    }
    return RL_OK;
}

/* Allowed (or not limited): the Authorizer's 200, or run the script. */
static void admit(struct rl_app *app, struct rl_request *rq, const struct rl_config *cfg,
                  const struct rl_decision *d, int authorizer)
{
    struct rl_relay_req relay;

    if (authorizer) {
        response_authorizer_allow(&rq->out, cfg, d);
        return;
    }
    buf_init(&rq->headers, 8192);
    if (d != NULL && response_ratelimit_headers(&rq->headers, cfg, d) != RL_OK)
        buf_reset(&rq->headers);
    memset(&relay, 0, sizeof(relay));
    relay.params = rq->params;
    relay.cfg = cfg;
    relay.body = &rq->body;
    relay.out = &rq->out;
    if (rq->fcgx != NULL) {
        relay.errlog = fcgx_errlog;
        relay.errlog_ctx = rq->fcgx->err;
        relay.end = fcgx_end;
        relay.end_ctx = rq->fcgx;
    } else {
        static int err_fd = STDERR_FILENO;

        relay.errlog = fd_errlog;
        relay.errlog_ctx = &err_fd;
    }
    relay.extra_headers = buf_str(&rq->headers);
    relay.self_path = app->self_path[0] ? app->self_path : NULL;
    relay.argv1 = app->argv1;
    (void)cgirelay_run_or_reply(&relay);
}

/* An allowed decision for "not limited" (allow list, every rule skipped,
 * Redis down with fail open): no rule applied, so no rate-limit headers. */
static void decision_unlimited(struct rl_decision *d, const struct rl_config *cfg)
{
    memset(d, 0, sizeof(*d));
    d->allowed = 1;
    d->nrules = cfg->nrules;
}

/* The configuration for this request, or NULL after answering 500. */
static const struct rl_config *config_or_reply(struct rl_app *app, struct rl_request *rq)
{
    const struct rl_config *cfg;
    struct rl_err err;

    if (app->cc == NULL) {
        rl_log(RL_LOG_ERROR, "invalid configuration: %s", app->cfg_err.msg);
        response_error(&rq->out, 500, "rate limiter misconfigured; see the server error log", 0,
                       NULL);
        return NULL;
    }
    /* Plain CGI: the environment is the process's own, not overrides. */
    cfg = rq->fcgx == NULL ? config_cache_base(app->cc)
                           : config_for_request(app->cc, rq->params, &err);
    if (cfg == NULL) {
        rl_log(RL_LOG_ERROR, "invalid configuration: %s", err.msg);
        response_error(&rq->out, 500, "rate limiter misconfigured; see the server error log", 0,
                       NULL);
    }
    return cfg;
}

static void handle_request(struct rl_app *app, struct rl_request *rq)
{
    const struct rl_config *cfg = config_or_reply(app, rq);
    char keys[RL_MAX_RULES][RL_KEY_MAX];
    const char *keyp[RL_MAX_RULES];
    struct rl_client client;
    struct rl_decision d;
    struct rl_err err;
    int authorizer;

    if (cfg == NULL)
        return;
    /* One deadline for the whole request: a body that stops arriving, a
     * script that runs too long and a peer that stops reading the answer
     * all end there (deadline.h). */
    deadline_arm(cfg->backend_timeout_ms);
    log_set_level(cfg->log_level);
    authorizer = rq->authorizer || cfg->mode == RL_MODE_AUTHORIZER;
    clientkey_resolve(cfg, rq->params, &client);
    if (client.has_addr && cidr_list_match(&cfg->deny, &client.addr)) {
        rl_log(RL_LOG_INFO, "client %s is in RATELIMIT_DENY", client.text);
        response_error(&rq->out, 403, "forbidden", 0, NULL);
        return;
    }
    decision_unlimited(&d, cfg);
    if (!(client.has_addr && cidr_list_match(&cfg->allow, &client.addr))) {
        if (build_keys_or_reply(rq, cfg, &client, keys, keyp) != RL_OK)
            return;
        /* A client still inside a denial this worker saw: no Redis trip. */
        if (!cfg->dry_run && denycache_lookup(cfg, keyp, now_ms(), &d)) {
            denied_or_reply(rq, cfg, &client, &d);
            return;
        }
        if (limiter_check(app->rc, cfg, keyp, &d, &err) != RL_OK) {
            rl_log(RL_LOG_DEBUG, "client %s: %s", client.text, err.msg);
            if (!redis_down_or_reply(rq, cfg))
                return;
            decision_unlimited(&d, cfg);
        } else if (!d.allowed) {
            if (!cfg->dry_run)
                denycache_store(cfg, keyp, now_ms(), &d);
            if (!denied_or_reply(rq, cfg, &client, &d))
                return;
        }
    }
    admit(app, rq, cfg, &d, authorizer);
}

/* ----------------------------------------------------------------- loops */

/* Serve one request libfcgi has read the head of. */
static void fastcgi_serve(struct rl_app *app, FCGX_Request *r, int body_whole)
{
    struct rl_request rq;

    memset(&rq, 0, sizeof(rq));
    rq.params = r->envp;
    rq.fcgx = r;
    rq.authorizer = r->role == FCGI_AUTHORIZER;
    rq.out.write = fcgx_write;
    rq.out.flush = fcgx_flush;
    rq.out.ctx = r->out;
    rq.body.read = fcgx_read;
    rq.body.fd = rq.authorizer ? -1 : r->ipcFd;
    rq.body.ctx = r->in;
    log_set_sink(fcgx_log, r);
    handle_request(app, &rq);
    request_reset(&rq);
    /* Detached, libfcgi closes without lingering (see fcgx_drain); a kept
     * connection is not closed at all. */
    if (body_whole && !r->keepConnection && fcgx_drain(r->in))
        (void)FCGX_Detach(r);
}

/*
 * Serve FastCGI requests on listen_fd until SIGTERM or an accept error.
 * The acceptor (not libfcgi) accepts: it hands over a connection only once
 * its head is whole and well-formed, from an allowed peer. libfcgi is then
 * given the connection (ipcFd, with keepConnection so that its own
 * FCGX_Finish_r at the top of FCGX_Accept_r leaves it open) and never
 * accepts itself: its listen_sock is -1, so should the connection fail
 * while it reads, FCGX_Accept_r returns an error instead of accepting.
 */
static int fastcgi_loop(int listen_fd, void *ctx)
{
    struct rl_app *app = ctx;
    struct acceptor *acc;
    FCGX_Request r;
    int rc = 0, body_whole = 0;

    if (FCGX_InitRequest(&r, -1, 0) != 0)
        return 1;
    acc = acceptor_new(listen_fd, RL_HEAD_TIMEOUT_MS, &app->peers);
    while (!stop_requested) {
        r.ipcFd = acceptor_next(acc, &idle_in_accept, &stop_requested, &body_whole);
        if (r.ipcFd < 0) {
            rc = stop_requested ? 0 : -1;
            break;
        }
        r.keepConnection = 1;
        /* The head is whole, so libfcgi's read of it cannot block; the
         * deadline is there should it disagree with fcgiwire.c. */
        deadline_arm(RL_HEAD_TIMEOUT_MS);
        if (FCGX_Accept_r(&r) == 0)
            fastcgi_serve(app, &r, body_whole);
        FCGX_Finish_r(&r);
        if (r.ipcFd >= 0) {
            /* libfcgi left it open: the server keeps the connection
             * (FCGI_KEEP_CONN) for its next request. The acceptor awaits
             * and checks that head like a new connection's, so an idle
             * kept connection holds no worker. */
            acceptor_add(acc, r.ipcFd);
            r.ipcFd = -1;
            r.detached = 0;
        }
        deadline_disarm();
    }
    if (rc < 0)
        rl_log(RL_LOG_ERROR, "FastCGI accept failed: %s", strerror(errno));
    FCGX_Free(&r, 1);
    acceptor_free(acc);
    return rc < 0 ? 1 : 0;
}

/* Plain CGI: one request from the environment and stdin. */
static int cgi_once(struct rl_app *app)
{
    static int in_fd = STDIN_FILENO, out_fd = STDOUT_FILENO;
    struct rl_request rq;

    memset(&rq, 0, sizeof(rq));
    rq.params = environ;
    rq.out.write = fd_write;
    rq.out.ctx = &out_fd;
    rq.body.read = fd_read;
    rq.body.fd = STDIN_FILENO;
    rq.body.ctx = &in_fd;
    handle_request(app, &rq);
    request_reset(&rq);
    deadline_disarm();
    return 0;
}

/* ------------------------------------------------------------------- CLI */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fcgi-ratelimit [--listen unix:PATH|HOST:PORT|[::1]:PORT|fd:N] [--workers N]\n"
            "                      [--socket-mode MODE] [SCRIPT]\n"
            "       fcgi-ratelimit --check | --help | --version\n"
            "\n"
            "A FastCGI (or plain CGI) filter that limits each client's request rate with\n"
            "a count shared in Redis, then runs the legacy CGI script or answers 429.\n"
            "Started by a web server with a listening socket on fd 0 it is a FastCGI\n"
            "Responder or Authorizer; otherwise it serves one CGI request.\n"
            "\n"
            "  --listen ADDR       open ADDR (or adopt the listening socket fd:N, e.g.\n"
            "                      fd:0 under systemd) and serve FastCGI with\n"
            "                      pre-forked workers\n"
            "  --workers N         number of workers for --listen (default 2)\n"
            "  --socket-mode MODE  permissions of a unix socket, octal (default 0660)\n"
            "  --check             validate the configuration, connect to Redis, load\n"
            "                      the scripts, print a summary; exit 0 or 1\n"
            "  --help, --version\n"
            "\n"
            "Configuration is read from RATELIMIT_* environment variables; FastCGI\n"
            "request parameters of the same names may override the limit policy\n"
            "per request (never the Redis target, script root, backend or mode).\n"
            "Over TCP only peers in FCGI_WEB_SERVER_ADDRS (default: loopback) are served.\n"
            "See fcgi-ratelimit(8).\n");
}

static int cmd_check(struct rl_app *app)
{
    char summary[1024];
    struct rl_err err;

    if (app->cc == NULL) {
        fprintf(stderr, "fcgi-ratelimit: invalid configuration: %s\n", app->cfg_err.msg);
        return 1;
    }
    if (redisconn_check(app->rc, config_cache_base(app->cc), limiter_script(), &err) != RL_OK) {
        fprintf(stderr, "fcgi-ratelimit: redis: %s\n", err.msg);
        return 1;
    }
    config_summary(config_cache_base(app->cc), summary, sizeof(summary));
    printf("ok: %s\n", summary);
    return 0;
}

struct rl_cli {
    int check;
    const char *listen;
    long long workers;
    long long socket_mode;
};

/* Parse argv into *cli; exits for --help/--version and usage errors. */
static void parse_cli(int argc, char **argv, struct rl_cli *cli, struct rl_app *app)
{
    static const struct option opts[] = {{"check", no_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"workers", required_argument, NULL, 'w'},
                                         {"socket-mode", required_argument, NULL, 'm'},
                                         {NULL, 0, NULL, 0}};
    int c;

    cli->workers = 2;
    cli->socket_mode = 0660;
    while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        const char *a = optarg;

        if (c == 'c') {
            cli->check = 1;
        } else if (c == 'h') {
            usage(stdout);
            exit(0);
        } else if (c == 'V') {
            printf("fcgi-ratelimit %s\n", PACKAGE_VERSION);
            exit(0);
        } else if (c == 'l') {
            cli->listen = a;
        } else if (c == 'w' && parse_ll(a, strlen(a), 1, 1024, &cli->workers) == RL_OK) {
            continue;
        } else if (c == 'm' && a[0] == '0' && strspn(a, "01234567") == strlen(a) &&
                   strlen(a) <= 5) {
            cli->socket_mode = strtoll(a, NULL, 8);
        } else {
            if (c == 'w' || c == 'm')
                fprintf(stderr, "fcgi-ratelimit: invalid value '%s' for --%s\n", a,
                        c == 'w' ? "workers (1..1024)" : "socket-mode (octal, e.g. 0660)");
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc)
        app->argv1 = argv[optind];
}

static void app_init(struct rl_app *app)
{
    struct rl_err err;
    ssize_t n;

    memset(app, 0, sizeof(*app));
    app->cc = config_cache_new(environ, &app->cfg_err);
    if (app->cc != NULL)
        log_set_level(config_cache_base(app->cc)->log_level);
    config_warn_unknown(environ);
    secrets_wipe_environ();
    if (acceptor_peers_parse(getenv("FCGI_WEB_SERVER_ADDRS"), &app->peers, &err) != RL_OK) {
        rl_log(RL_LOG_ERROR, "FCGI_WEB_SERVER_ADDRS: %s", err.msg);
        exit(1);
    }
    app->rc = redisconn_new();
    n = readlink("/proc/self/exe", app->self_path, sizeof(app->self_path) - 1);
    app->self_path[n > 0 ? n : 0] = '\0';
}

static void app_free(struct rl_app *app)
{
    redisconn_free(app->rc);
    config_cache_free(app->cc);
    cidr_list_free(&app->peers);
}

static int serve_listen(struct rl_app *app, const struct rl_cli *cli)
{
    struct rl_err err;
    int fd = listener_open(cli->listen, (int)cli->socket_mode, &err);

    if (fd < 0) {
        fprintf(stderr, "fcgi-ratelimit: --listen %s: %s\n", cli->listen, err.msg);
        return 1;
    }
    return listener_run(cli->listen, fd, (int)cli->workers, fastcgi_loop, app);
}

int main(int argc, char **argv)
{
    struct rl_app app;
    struct rl_cli cli;
    int rc;

    secrets_protect();
    ensure_std_fds();
    memset(&cli, 0, sizeof(cli));
    memset(&app, 0, sizeof(app));
    parse_cli(argc, argv, &cli, &app);
    {
        const char *argv1 = app.argv1;

        app_init(&app);
        app.argv1 = argv1;
    }
    if (app.cc == NULL && !cli.check)
        rl_log(RL_LOG_ERROR, "invalid configuration: %s", app.cfg_err.msg);
    if (FCGX_Init() != 0) {
        rl_log(RL_LOG_ERROR, "FCGX_Init failed");
        return 1;
    }
    /* After FCGX_Init, which installs its SIGPIPE, SIGTERM and SIGUSR1
     * handlers (without SA_RESTART) whatever was there before. */
    install_signals();
    deadline_init();
    if (cli.check)
        rc = cmd_check(&app);
    else if (cli.listen != NULL)
        rc = serve_listen(&app, &cli);
    else if (FCGX_IsCGI())
        rc = cgi_once(&app);
    else
        rc = fastcgi_loop(0, &app);
    app_free(&app);
    return rc;
}
