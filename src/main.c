/*
 * main.c - command line, signals, and the three ways fcgi-ratelimit runs:
 * a FastCGI accept loop on fd 0 (lighttpd bin-path, mod_fcgid, spawn-fcgi),
 * a FastCGI accept loop on a socket of our own (--listen, for
 * mod_proxy_fcgi), or one plain CGI request (libfcgi's FCGX_IsCGI()).
 * What a request goes through is request.c's; what a worker keeps
 * between requests, worker.c's.
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
#include "deadline.h"
#include "fcgxio.h"
#include "limiter.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "redisconn.h"
#include "request.h"
#include "rlconfig.h"
#include "util.h"

extern char **environ;

/* What lives as long as the process: the worker's state (each --listen
 * worker has its own copy after fork) and who may connect over TCP. */
struct rl_app {
    struct rl_worker w;
    struct rl_cidr_list peers; /* FCGI_WEB_SERVER_ADDRS */
    /* --check --verbose: config_list() of the environment as it was read,
     * before its secrets were wiped (secrets masked); owned, else NULL. */
    char *listing;
};

/* How long a FastCGI connection may take to send its request's head
 * (BEGIN_REQUEST and params) before it is dropped (acceptor.h). */
#define RL_HEAD_TIMEOUT_MS 5000

static volatile sig_atomic_t stop_requested;

/* SIGTERM/SIGINT/SIGUSR1: finish the request in flight, then exit 0. The
 * accept loop keeps them blocked but while it waits (acceptor_next), so
 * the handler runs only there and the loop ends at once. */
static void on_term(int sig)
{
    (void)sig;
    stop_requested = 1;
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

/* ----------------------------------------------------------------- loops */

/* Serve one request libfcgi has read the head of. */
static void fastcgi_serve(struct rl_app *app, FCGX_Request *r, int body_whole)
{
    struct rl_request rq;

    request_init_fastcgi(&rq, r);
    request_handle(&app->w, &rq);
    request_reset(&rq);
    worker_request_done(&app->w);
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
    sigset_t stops, saved, waitmask;
    FCGX_Request r;
    int rc = 0, body_whole = 0;

    if (FCGX_InitRequest(&r, -1, 0) != 0)
        return 1;
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGUSR1);
    sigprocmask(SIG_BLOCK, &stops, &saved);
    waitmask = saved;
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);
    sigdelset(&waitmask, SIGUSR1);
    acc = acceptor_new(listen_fd, RL_HEAD_TIMEOUT_MS, &app->peers);
    while (!stop_requested) {
        r.ipcFd = acceptor_next(acc, &stop_requested, &waitmask, &body_whole);
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
    sigprocmask(SIG_SETMASK, &saved, NULL);
    return rc < 0 ? 1 : 0;
}

/* Plain CGI: one request from the environment and stdin. */
static int cgi_once(struct rl_app *app)
{
    struct rl_request rq;

    request_init_cgi(&rq, environ);
    request_handle(&app->w, &rq);
    request_reset(&rq);
    worker_request_done(&app->w);
    deadline_disarm();
    return 0;
}

/* ------------------------------------------------------------------- CLI */

#define RL_WORKERS_DEFAULT 2
#define RL_WORKERS_MAX 1024
#define RL_SOCKET_MODE_DEFAULT 0660

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fcgi-ratelimit [--listen unix:PATH|HOST:PORT|[::1]:PORT|fd:N] [--workers N]\n"
            "                      [--socket-mode MODE] [SCRIPT]\n"
            "       fcgi-ratelimit --check [--verbose] | --metrics | --help | --version\n"
            "\n"
            "A FastCGI (or plain CGI) filter that limits each client's request rate with\n"
            "a count shared in Redis, then runs the legacy CGI script or answers 429.\n"
            "Started by a web server with a listening socket on fd 0 it is a FastCGI\n"
            "Responder or Authorizer; otherwise it serves one CGI request.\n"
            "\n"
            "  --listen ADDR       open ADDR (or adopt the listening socket fd:N, e.g.\n"
            "                      fd:0 under systemd) and serve FastCGI with\n"
            "                      pre-forked workers\n"
            "  --workers N         number of workers for --listen (default %d)\n"
            "  --socket-mode MODE  permissions of a unix socket, octal (default 0%o)\n"
            "  --check             validate the configuration, connect to Redis, load\n"
            "                      the scripts, print a summary; exit 0 or 1\n"
            "  -v, --verbose       with --check: first list every RATELIMIT_* variable,\n"
            "                      NAME=VALUE (default|environment), passwords as ***\n"
            "  --metrics           print the host's counters (RATELIMIT_METRICS_FILE) in\n"
            "                      Prometheus' text format\n"
            "  --help, --version\n"
            "\n"
            "Configuration is read from RATELIMIT_* environment variables; FastCGI\n"
            "request parameters of the same names may override the limit policy\n"
            "per request (never the Redis target, script root, backend or mode).\n"
            "Over TCP only peers in FCGI_WEB_SERVER_ADDRS (default: loopback) are served.\n"
            "\n"
            "RATELIMIT_REDIS_URL, where Redis is (default redis://127.0.0.1:6379/0):\n"
            "  redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]\n"
            "  unix:///PATH/redis.sock[?db=N]\n"
            "  redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB]\n"
            "                      (the sentinels; RATELIMIT_SENTINEL_PASSWORD if they\n"
            "                      require one)\n"
            "  redis+cluster://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]\n"
            "                      (seed nodes of a Redis Cluster)\n"
            "See fcgi-ratelimit(8).\n",
            RL_WORKERS_DEFAULT, RL_SOCKET_MODE_DEFAULT);
}

static int cmd_check(struct rl_app *app)
{
    char summary[1024];
    struct rl_err err;

    if (app->listing != NULL) {
        /* Even when what follows fails: the listing shows what was read. */
        fputs(app->listing, stdout);
        fflush(stdout);
    }
    if (app->w.cc == NULL) {
        fprintf(stderr, "fcgi-ratelimit: invalid configuration: %s\n", app->w.cfg_err.msg);
        return 1;
    }
    if (redisconn_check(app->w.rc, config_cache_base(app->w.cc), limiter_script(), &err) != RL_OK) {
        fprintf(stderr, "fcgi-ratelimit: redis: %s\n", err.msg);
        return 1;
    }
    config_summary(config_cache_base(app->w.cc), summary, sizeof(summary));
    printf("ok: %s\n", summary);
    redisconn_where(app->w.rc, summary, sizeof(summary));
    printf("redis: %s\n", summary);
    return 0;
}

/* --metrics: the counter file of the configuration (or of the
 * environment, when the configuration is otherwise invalid), read-only. */
static int cmd_metrics(struct rl_app *app)
{
    const char *path = app->w.cc != NULL ? config_cache_base(app->w.cc)->metrics_file
                                         : getenv("RATELIMIT_METRICS_FILE");
    struct metrics *m;
    struct rl_err err;
    struct buf b;
    int rc;

    if (path == NULL || path[0] == '\0')
        path = METRICS_FILE_DEFAULT;
    if ((m = metrics_open(path, METRICS_READONLY, &err)) == NULL) {
        fprintf(stderr, "fcgi-ratelimit: %s\n", err.msg);
        return 1;
    }
    buf_init(&b, 1024 * 1024);
    rc = metrics_render(m, &b) != RL_OK;
    if (rc == 0 && metrics_lost(m)) {
        /* by someone while we read it: what we have is not the host's */
        fprintf(stderr, "fcgi-ratelimit: metrics file %s: truncated while read: no counts\n", path);
        rc = 1;
    } else if (rc != 0 || fwrite(b.ptr, 1, b.len, stdout) != b.len || fflush(stdout) != 0) {
        fprintf(stderr, "fcgi-ratelimit: --metrics: cannot write the text\n");
        rc = 1;
    }
    buf_free(&b);
    metrics_close(m);
    return rc;
}

struct rl_cli {
    int check;
    int verbose; /* --verbose: only with --check */
    int metrics;
    const char *listen;
    long long workers;
    long long socket_mode;
    const char *argv1; /* the script named on the command line */
};

/* Parse argv into *cli; exits for --help/--version and usage errors. */
static void parse_cli(int argc, char **argv, struct rl_cli *cli)
{
    static const struct option opts[] = {{"check", no_argument, NULL, 'c'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"metrics", no_argument, NULL, 'M'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"workers", required_argument, NULL, 'w'},
                                         {"socket-mode", required_argument, NULL, 'm'},
                                         {NULL, 0, NULL, 0}};
    int c;

    cli->workers = RL_WORKERS_DEFAULT;
    cli->socket_mode = RL_SOCKET_MODE_DEFAULT;
    while ((c = getopt_long(argc, argv, "hVv", opts, NULL)) != -1) {
        const char *a = optarg;

        if (c == 'c') {
            cli->check = 1;
        } else if (c == 'v') {
            cli->verbose = 1;
        } else if (c == 'M') {
            cli->metrics = 1;
        } else if (c == 'h') {
            usage(stdout);
            exit(0);
        } else if (c == 'V') {
            printf("fcgi-ratelimit %s\n", PACKAGE_VERSION);
            exit(0);
        } else if (c == 'l') {
            cli->listen = a;
        } else if (c == 'w' && parse_ll(a, strlen(a), 1, RL_WORKERS_MAX, &cli->workers) == RL_OK) {
            continue;
        } else if (c == 'm' && a[0] == '0' && strspn(a, "01234567") == strlen(a) &&
                   strlen(a) <= 5) {
            cli->socket_mode = strtoll(a, NULL, 8);
        } else {
            if (c == 'w')
                fprintf(stderr, "fcgi-ratelimit: invalid value '%s' for --workers (1..%d)\n", a,
                        RL_WORKERS_MAX);
            else if (c == 'm')
                fprintf(stderr,
                        "fcgi-ratelimit: invalid value '%s' for --socket-mode (octal, e.g. 0%o)\n",
                        a, RL_SOCKET_MODE_DEFAULT);
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc)
        cli->argv1 = argv[optind];
    if (cli->verbose && !cli->check) {
        /* A server has nothing to be verbose about: RATELIMIT_LOG is its
         * verbosity. Refused rather than ignored, so that a unit file
         * with it does not seem to do something. */
        fprintf(stderr, "fcgi-ratelimit: --verbose goes with --check\n");
        usage(stderr);
        exit(2);
    }
}

/* The worker's state from the environment (and, when list, the listing
 * of --check --verbose), which is then wiped of secrets; exits when
 * FCGI_WEB_SERVER_ADDRS is invalid. */
static void app_init(struct rl_app *app, const char *argv1, int list)
{
    struct rl_err err;

    memset(app, 0, sizeof(*app));
    worker_init(&app->w, environ, argv1);
    /* Now, from the environment the configuration was read from: the
     * sources of the passwords vanish with them just below. */
    if (list)
        app->listing = config_list(environ);
    config_warn_unknown(environ);
    secrets_wipe_environ();
    if (acceptor_peers_parse(getenv("FCGI_WEB_SERVER_ADDRS"), &app->peers, &err) != RL_OK) {
        rl_log(RL_LOG_ERROR, "FCGI_WEB_SERVER_ADDRS: %s", err.msg);
        worker_free(&app->w);
        free(app->listing);
        exit(1);
    }
}

static void app_free(struct rl_app *app)
{
    worker_free(&app->w);
    cidr_list_free(&app->peers);
    free(app->listing);
    app->listing = NULL;
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
    parse_cli(argc, argv, &cli);
    app_init(&app, cli.argv1, cli.verbose);
    if (app.w.cc == NULL && !cli.check && !cli.metrics)
        rl_log(RL_LOG_ERROR, "invalid configuration: %s", app.w.cfg_err.msg);
    if (FCGX_Init() != 0) {
        rl_log(RL_LOG_ERROR, "FCGX_Init failed");
        app_free(&app);
        return 1;
    }
    /* After FCGX_Init, which installs its SIGPIPE, SIGTERM and SIGUSR1
     * handlers (without SA_RESTART) whatever was there before. */
    install_signals();
    deadline_init();
    if (!cli.check && !cli.metrics)
        worker_open_metrics(&app.w); /* before --listen forks its workers */
    if (cli.check)
        rc = cmd_check(&app);
    else if (cli.metrics)
        rc = cmd_metrics(&app);
    else if (cli.listen != NULL)
        rc = serve_listen(&app, &cli);
    else if (FCGX_IsCGI())
        rc = cgi_once(&app);
    else
        rc = fastcgi_loop(0, &app);
    app_free(&app);
    return rc;
}
