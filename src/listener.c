/*
 * listener.c - `fcgi-ratelimit --listen`: our own listening socket and a
 * small pre-forking supervisor.
 *
 * listener_open() parses "unix:PATH", "HOST:PORT" or "[V6ADDR]:PORT" and
 * binds with getaddrinfo(), so errors come back to the caller instead of
 * FCGX_OpenSocket()'s exit() (and IPv6 works); "fd:N" adopts a socket that
 * systemd passed (StandardInput=socket). listener_run() forks the
 * workers, which share the listening fd and each run libfcgi's accept loop
 * (no accept lock: on Linux several processes may block in accept() on
 * one socket, and each connection goes to exactly one of them).
 *
 * The supervisor keeps SIGTERM, SIGINT, SIGHUP and SIGCHLD blocked and
 * takes them with sigtimedwait(): no async handler, no self-pipe, no lost
 * wake-up. The timeout doubles as the respawn throttle. Workers get the original signal
 * mask back and their own process group, so a terminal's Ctrl-C reaches the
 * supervisor only and shutdown is always the orderly SIGTERM path.
 */
#include "listener.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define LISTEN_BACKLOG 1024
/* A worker that dies sooner than this after its start is respawned only
 * after the same delay, so a worker that cannot start does not spin. */
#define RESPAWN_MIN_LIFE_MS 1000
#define RESPAWN_DELAY_MS 1000
#define UNIX_PREFIX "unix:"

/* ------------------------------------------------------------ opening */

/* The unix socket path of spec, or NULL when spec is not "unix:...". */
static const char *unix_path_of(const char *spec)
{
    if (strncmp(spec, UNIX_PREFIX, sizeof(UNIX_PREFIX) - 1) != 0)
        return NULL;
    return spec + sizeof(UNIX_PREFIX) - 1;
}

/* Fill *sun for path; RL_ERR when the path is empty or too long. */
static int unix_addr(const char *path, struct sockaddr_un *sun, struct rl_err *err)
{
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(sun->sun_path)) {
        rl_err_set(err, RL_E_CONFIG, "a unix socket path must be 1 to %zu bytes",
                   sizeof(sun->sun_path) - 1);
        return RL_ERR;
    }
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, len + 1);
    return RL_OK;
}

/*
 * Remove a leftover socket file at path (a previous run killed with
 * SIGKILL), but only when it is a socket and nobody accepts on it: never
 * delete a regular file, nor the socket of a running instance.
 */
static int unix_clear_stale(const struct sockaddr_un *sun, struct rl_err *err)
{
    struct stat st;
    int fd, rc, saved;

    if (lstat(sun->sun_path, &st) != 0)
        return RL_OK; /* nothing there (or bind() will say why) */
    if (!S_ISSOCK(st.st_mode)) {
        rl_err_set(err, RL_E_CONFIG, "%s exists and is not a socket", sun->sun_path);
        return RL_ERR;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        saved = errno;
        rl_err_set(err, RL_E_IO, "socket(AF_UNIX): %s", strerror(saved));
        return RL_ERR;
    }
    do
        rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
    while (rc != 0 && errno == EINTR);
    fd_close(&fd);
    if (rc == 0) {
        rl_err_set(err, RL_E_IO, "another process is listening on %s", sun->sun_path);
        return RL_ERR;
    }
    if (unlink(sun->sun_path) != 0 && errno != ENOENT) {
        saved = errno;
        rl_err_set(err, RL_E_IO, "cannot remove the stale socket %s: %s", sun->sun_path,
                   strerror(saved));
        return RL_ERR;
    }
    return RL_OK;
}

static int open_unix(const char *path, int mode, struct rl_err *err)
{
    struct sockaddr_un sun;
    int fd = -1, saved;
    const char *what = "socket";

    if (unix_addr(path, &sun, err) != RL_OK || unix_clear_stale(&sun, err) != RL_OK)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    what = "bind";
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
        goto fail;
    /* chmod before listen(): nobody can connect in between with the
     * umask's permissions. (fchmod on a socket fd does not reach the file.) */
    what = "chmod";
    if (mode >= 0 && chmod(path, (mode_t)mode) != 0)
        goto fail_unlink;
    what = "listen";
    if (listen(fd, LISTEN_BACKLOG) != 0)
        goto fail_unlink;
    return fd;

fail_unlink:
    saved = errno;
    (void)unlink(path);
    errno = saved;
fail:
    saved = errno;
    fd_close(&fd);
    rl_err_set(err, RL_E_IO, "%s %s: %s", what, path, strerror(saved));
    return -1;
}

/*
 * Split "HOST:PORT" or "[V6]:PORT" into host[] and port[]; *bracketed tells
 * an IPv6 literal. RL_ERR on anything else (an unbracketed IPv6 address is
 * refused: "::1:9000" is ambiguous).
 */
static int split_host_port(const char *spec, char *host, size_t hostsz, char *port, size_t portsz,
                           int *bracketed, struct rl_err *err)
{
    const char *h = spec, *colon, *end;
    long long pnum;

    *bracketed = spec[0] == '[';
    if (*bracketed) {
        h = spec + 1;
        end = strchr(h, ']');
        if (end == NULL || end[1] != ':')
            goto bad;
        colon = end + 1;
    } else {
        colon = strrchr(spec, ':');
        if (colon == NULL || memchr(spec, ':', (size_t)(colon - spec)) != NULL)
            goto bad;
        end = colon;
    }
    if (end == h || (size_t)(end - h) >= hostsz || strlen(colon + 1) >= portsz ||
        parse_ll(colon + 1, strlen(colon + 1), 1, 65535, &pnum) != RL_OK)
        goto bad;
    memcpy(host, h, (size_t)(end - h));
    host[end - h] = '\0';
    (void)snprintf(port, portsz, "%lld", pnum);
    return RL_OK;
bad:
    rl_err_set(err, RL_E_CONFIG, "expected unix:PATH, HOST:PORT or [IPV6]:PORT (port 1-65535)");
    return RL_ERR;
}

/* socket + SO_REUSEADDR + bind + listen on one address; fd or -1 (errno). */
static int bind_one(const struct addrinfo *ai)
{
    int fd, one = 1, saved;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        saved = errno;
        fd_close(&fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* A name with several addresses binds the first that works (localhost may
 * give ::1 and 127.0.0.1; FCGX_OpenSocket refused such names). */
static int open_inet(const char *spec, struct rl_err *err)
{
    char host[256], port[8];
    struct addrinfo hints, *res = NULL, *ai;
    int bracketed, rc, fd = -1, saved = 0;

    if (split_host_port(spec, host, sizeof(host), port, sizeof(port), &bracketed, err) != RL_OK)
        return -1;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = bracketed ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | (bracketed ? AI_NUMERICHOST : 0);
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        rl_err_set(err, RL_E_CONFIG, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = bind_one(ai);
        if (fd < 0)
            saved = errno;
    }
    freeaddrinfo(res);
    if (fd < 0)
        rl_err_set(err, RL_E_IO, "bind %s port %s: %s", host, port, strerror(saved));
    return fd;
}

/*
 * "fd:N": a listening socket we inherited (systemd StandardInput=socket puts
 * it on fd 0). Checked, not opened; mode does not apply.
 */
static int open_inherited(const char *num, struct rl_err *err)
{
    long long fd;
    int listening = 0, saved;
    socklen_t len = sizeof(listening);

    if (parse_ll(num, strlen(num), 0, 65535, &fd) != RL_OK) {
        rl_err_set(err, RL_E_CONFIG, "fd:%s: not a file descriptor number", num);
        return -1;
    }
    if (getsockopt((int)fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0) {
        saved = errno;
        rl_err_set(err, RL_E_CONFIG, "fd %lld is not a socket: %s", fd, strerror(saved));
        return -1;
    }
    if (!listening) {
        rl_err_set(err, RL_E_CONFIG, "fd %lld is not a listening socket", fd);
        return -1;
    }
    return (int)fd;
}

int listener_open(const char *spec, int mode, struct rl_err *err)
{
    const char *path;

    if (spec == NULL || spec[0] == '\0') {
        rl_err_set(err, RL_E_CONFIG, "expected unix:PATH, HOST:PORT or [IPV6]:PORT");
        return -1;
    }
    path = unix_path_of(spec);
    if (path != NULL)
        return open_unix(path, mode, err);
    if (strncmp(spec, "fd:", 3) == 0)
        return open_inherited(spec + 3, err);
    return open_inet(spec, err);
}

/* ------------------------------------------------------------ supervising */

struct worker_slot {
    pid_t pid;               /* 0: not running */
    long long started_ms;    /* when it was forked */
    long long respawn_at_ms; /* earliest time to fork it again */
    int young_deaths;        /* deaths in a row within RESPAWN_MIN_LIFE_MS of the start */
};

struct supervisor {
    int listen_fd;
    int (*worker_fn)(int listen_fd, void *ctx);
    void *ctx;
    struct worker_slot *slots;
    int nslots;
    int alive;        /* slots with pid != 0 */
    int stopping;     /* 0, or the number of stop signals received */
    pid_t self;       /* the supervisor's PID */
    sigset_t waitset; /* SIGTERM, SIGINT, SIGHUP, SIGCHLD: taken by sigtimedwait */
    sigset_t oldmask; /* what the caller had; workers get it back */
    struct sigaction old_chld;
    const char *path; /* unix socket file, or NULL; borrowed from spec */
    struct stat own;  /* its identity when we started */
    int have_own;
};

/* In the child: the worker's life. Never returns. */
static void worker_main(struct supervisor *s)
{
    int rc;

    /* The caller's SIGCHLD disposition and mask: the worker reaps its own
     * CGI children and must receive SIGTERM from the supervisor. */
    (void)sigaction(SIGCHLD, &s->old_chld, NULL);
    (void)sigprocmask(SIG_SETMASK, &s->oldmask, NULL);
    /* Own process group: Ctrl-C on a terminal signals the supervisor only,
     * which then stops the workers in order (SIGTERM, finish, exit). */
    (void)setpgid(0, 0);
#ifdef __linux__
    /* A supervisor killed with SIGKILL must not leave workers serving on
     * (fcgiwrap issue #19): they get the orderly SIGTERM instead. */
    (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != s->self)
        _exit(0); /* it died before prctl() took effect */
#endif
    rc = s->worker_fn(s->listen_fd, s->ctx);
    _exit(rc & 0xff);
}

/* Fork the worker of slot i. RL_ERR when fork() fails (retried later). */
static int spawn_worker(struct supervisor *s, int i, long long now)
{
    pid_t pid = fork();

    if (pid < 0) {
        int saved = errno;
        rl_log(RL_LOG_ERROR, "listener: cannot fork a worker: %s", strerror(saved));
        s->slots[i].respawn_at_ms = now + RESPAWN_DELAY_MS;
        return RL_ERR;
    }
    if (pid == 0)
        worker_main(s);
    s->slots[i].pid = pid;
    s->slots[i].started_ms = now;
    s->alive++;
    rl_log(RL_LOG_DEBUG, "listener: worker %d started (pid %ld)", i, (long)pid);
    return RL_OK;
}

/* Fork every missing worker whose respawn time has come. */
static void spawn_due(struct supervisor *s)
{
    long long now = now_ms();
    int i;

    for (i = 0; i < s->nslots; i++)
        if (s->slots[i].pid == 0 && now >= s->slots[i].respawn_at_ms)
            (void)spawn_worker(s, i, now);
}

/* Log how a worker ended; quiet for the exits we asked for. */
static void log_exit(const struct supervisor *s, pid_t pid, int status)
{
    if (WIFSIGNALED(status))
        rl_log(s->stopping && WTERMSIG(status) == SIGTERM ? RL_LOG_DEBUG : RL_LOG_WARN,
               "listener: worker %ld killed by signal %d%s", (long)pid, WTERMSIG(status),
               WTERMSIG(status) == SIGABRT ? " (libfcgi aborts on some malformed FastCGI records)"
                                           : "");
    else if (WIFEXITED(status) && (WEXITSTATUS(status) != 0 || !s->stopping))
        rl_log(s->stopping ? RL_LOG_INFO : RL_LOG_WARN, "listener: worker %ld exited with %d",
               (long)pid, WEXITSTATUS(status));
}

/* Collect every dead worker; schedule its respawn (delayed if it died young). */
static void reap_workers(struct supervisor *s)
{
    int status, i;
    pid_t pid;

    for (;;) {
        pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0)
            return; /* 0: none ready; ECHILD: none left */
        for (i = 0; i < s->nslots; i++) {
            long long now;

            if (s->slots[i].pid != pid)
                continue;
            log_exit(s, pid, status);
            now = now_ms();
            s->slots[i].pid = 0;
            s->alive--;
            s->slots[i].respawn_at_ms = now;
            /* One early death (a malformed record that made libfcgi
             * abort) is replaced at once; only a worker that keeps dying
             * young (a crash loop) waits. */
            if (now - s->slots[i].started_ms >= RESPAWN_MIN_LIFE_MS)
                s->slots[i].young_deaths = 0;
            else if (++s->slots[i].young_deaths > 1)
                s->slots[i].respawn_at_ms = now + RESPAWN_DELAY_MS;
            break;
        }
    }
}

/* Send sig to every live worker. */
static void signal_workers(const struct supervisor *s, int sig)
{
    int i;

    for (i = 0; i < s->nslots; i++)
        if (s->slots[i].pid > 0)
            (void)kill(s->slots[i].pid, sig);
}

/* Remove our unix socket file, unless it was meanwhile replaced. */
static void unlink_own_socket(const struct supervisor *s)
{
    struct stat st;

    if (!s->have_own || lstat(s->path, &st) != 0)
        return;
    if (st.st_dev == s->own.st_dev && st.st_ino == s->own.st_ino)
        (void)unlink(s->path);
}

/*
 * SIGTERM/SIGINT/SIGHUP: the first asks every worker to finish its request
 * and exit (its wait for a connection returns, its loop ends) and removes a unix
 * socket file at once, so that new connections fail fast instead of waiting
 * in a backlog nobody will accept from; a second signal, for an impatient
 * operator, kills the workers.
 */
static void begin_stop(struct supervisor *s, int sig)
{
    s->stopping++;
    if (s->stopping == 1) {
        unlink_own_socket(s);
        rl_log(RL_LOG_INFO, "listener: signal %d: stopping %d worker(s)", sig, s->alive);
        signal_workers(s, SIGTERM);
    } else {
        rl_log(RL_LOG_WARN, "listener: signal %d again: killing %d worker(s)", sig, s->alive);
        signal_workers(s, SIGKILL);
    }
}

/* How long sigtimedwait may sleep: until the next due respawn, else 1 s. */
static void wait_timeout(const struct supervisor *s, struct timespec *ts)
{
    long long now = now_ms(), wait = 1000, left;
    int i;

    for (i = 0; i < s->nslots && !s->stopping; i++) {
        if (s->slots[i].pid != 0)
            continue;
        left = s->slots[i].respawn_at_ms - now;
        if (left < wait)
            wait = left < 1 ? 1 : left;
    }
    ts->tv_sec = (time_t)(wait / 1000);
    ts->tv_nsec = (long)(wait % 1000) * 1000000L;
}

/* The main loop: keep nslots workers until stopped and all are gone. */
static void supervise(struct supervisor *s)
{
    struct timespec ts;
    int sig;

    for (;;) {
        reap_workers(s);
        if (s->stopping && s->alive == 0)
            return;
        if (!s->stopping)
            spawn_due(s);
        wait_timeout(s, &ts);
        sig = sigtimedwait(&s->waitset, NULL, &ts);
        /* SIGHUP: the terminal went away; stop rather than orphan. */
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
            begin_stop(s, sig);
        /* SIGCHLD, a timeout (EAGAIN) or EINTR: reap and respawn above. */
    }
}

/* Block the supervisor's signals and make sure SIGCHLD is not ignored
 * (SIG_IGN would auto-reap and hide the workers' deaths). */
static int setup_signals(struct supervisor *s)
{
    struct sigaction sa;

    sigemptyset(&s->waitset);
    sigaddset(&s->waitset, SIGTERM);
    sigaddset(&s->waitset, SIGINT);
    sigaddset(&s->waitset, SIGHUP);
    sigaddset(&s->waitset, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &s->waitset, &s->oldmask) != 0)
        return RL_ERR;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGCHLD, &sa, &s->old_chld) != 0) {
        (void)sigprocmask(SIG_SETMASK, &s->oldmask, NULL);
        return RL_ERR;
    }
    return RL_OK;
}

int listener_run(const char *spec, int listen_fd, int workers,
                 int (*worker_fn)(int listen_fd, void *ctx), void *ctx)
{
    struct supervisor s;

    if (listen_fd < 0 || workers < 1 || worker_fn == NULL) {
        rl_log(RL_LOG_ERROR, "listener: bad arguments (fd %d, %d workers)", listen_fd, workers);
        return 1;
    }
    memset(&s, 0, sizeof(s));
    s.listen_fd = listen_fd;
    s.worker_fn = worker_fn;
    s.ctx = ctx;
    s.nslots = workers;
    s.self = getpid();
    if (setup_signals(&s) != RL_OK) {
        int saved = errno;
        rl_log(RL_LOG_ERROR, "listener: cannot set up signals: %s", strerror(saved));
        return 1;
    }
    s.slots = xcalloc((size_t)workers, sizeof(*s.slots));
    s.path = spec != NULL ? unix_path_of(spec) : NULL;
    s.have_own = s.path != NULL && lstat(s.path, &s.own) == 0;
    rl_log(RL_LOG_INFO, "listener: %s with %d worker(s)", spec != NULL ? spec : "?", workers);

    supervise(&s);

    unlink_own_socket(&s);
    free(s.slots);
    (void)sigaction(SIGCHLD, &s.old_chld, NULL);
    (void)sigprocmask(SIG_SETMASK, &s.oldmask, NULL);
    rl_log(RL_LOG_INFO, "listener: all workers stopped");
    return 0;
}
