/*
 * cgirelay.c - run the CGI script for an admitted request and relay its
 * answer (see cgirelay.h), on the model of OpenBSD slowcgi.
 *
 * One struct relay holds everything a request acquires (fds, child pid,
 * envp, buffers) and relay_cleanup() releases it in one place. The steps:
 * resolve the script (and refuse what must not run), prepare the body (a
 * pipe fed while the answer is read, or an unlinked spool file when there
 * is no CONTENT_LENGTH), build envp explicitly, posix_spawn the script
 * (fork + execve where glibc is too old) in its own process group, then
 * one poll() loop feeds stdin, reads stdout
 * through the cgiheader parser and passes stderr to the server's log.
 * While a request body is still coming, the answer is held (memory, then
 * an unlinked temp file) instead of written: mod_fcgid sends the whole
 * body before it reads any answer, so a blocking write there would
 * deadlock against a script that prints before it reads. Buffers have
 * fixed sizes, so memory stays bounded whatever the sizes of body and
 * answer. Every syscall here retries on EINTR (poll() is never restarted,
 * whatever SA_RESTART says). SIGPIPE must not be SIG_DFL in the caller
 * (main.c ignores it): a script that exits without reading its body then
 * gives EPIPE, not our death.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "cgiheader.h"
#include "cgirelay.h"
#include "log.h"
#include "rl.h"
#include "util.h"

#define RELAY_IO_SIZE 65536  /* one read of body or answer */
#define RELAY_ERR_SIZE 4096  /* one chunk of the script's stderr */
#define RELAY_HOLD_MEM 65536 /* held answer kept in memory, the rest on disk */
#define RELAY_GRACE_MS 1500  /* SIGTERM -> SIGKILL */
#define RELAY_DEFAULT_TIMEOUT_MS 30000
#define RELAY_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
#define RELAY_CLOSE_MAX 65536 /* fd scan bound when close_range is missing */

/* How the request ended when it did not end well; the first one wins. */
enum relay_outcome {
    RL_RELAY_OK = 0,
    RL_RELAY_TIMEOUT,     /* 504 */
    RL_RELAY_CLIENT_GONE, /* nobody to answer */
    RL_RELAY_BAD_HEADERS, /* 502 */
    RL_RELAY_NO_HEADERS,  /* 502: exit or EOF before the blank line */
    RL_RELAY_BODY_ERR,    /* request body failed mid-way: 400 */
    RL_RELAY_BODY_SLOW,   /* body not received by the deadline: 408 */
    RL_RELAY_INTERNAL     /* our own syscall failed: 500 */
};

/* posix_spawn can do all the child set-up (process group, signals, fds,
 * cwd) with glibc >= 2.34 (posix_spawn_file_actions_addclosefrom_np); it
 * spawns with CLONE_VFORK, so no page tables are copied and exec errors
 * come back as its return value. Elsewhere: fork + execve. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define RL_HAVE_SPAWN_CLOSEFROM 1
#else
/* What a child that could not exec reports through its CLOEXEC pipe. */
struct child_err {
    int stage; /* 0 chdir, 1 execve, 2 dup2 */
    int err;
};
#endif

/* The answer held back while the request body is still coming. */
struct held {
    char *mem;      /* the first RELAY_HOLD_MEM bytes; owned, lazily */
    size_t len;     /* bytes in mem */
    int fd;         /* the rest: unlinked temp file, -1 until mem is full */
    long long flen; /* bytes in fd */
};

struct relay {
    const struct rl_relay_req *req;
    char client[64]; /* REMOTE_ADDR, printable, for logs */
    char what[256];  /* the script, printable, for logs */
    char *script;    /* realpath of the script; owned */
    struct stat st;  /* stat of script, valid when st_err == 0 */
    int st_err;      /* errno of that stat */
    char *dir;       /* its folder (working directory); owned */
    char **envp;     /* owned, NULL-terminated, every entry owned */
    size_t envc, envcap;
    long long cl;       /* CONTENT_LENGTH as given, -1 when absent/invalid */
    long long to_child; /* body bytes the child still gets */
    int pipe_body;      /* body streamed through a pipe while running */
    int body_eof, body_err;
    int stdin_fd;           /* child's stdin: pipe end, spool or /dev/null */
    int in_w, out_r, err_r; /* parent's ends, non-blocking */
    int out_w, err_w;       /* child's ends, closed in the parent after fork */
    pid_t pid;
    int reaped, wstatus;
    long long started, deadline;
    int outcome;
    int dirty; /* answer bytes written since the last flush */
    /* 1 while the answer goes to held, not to the client: from the start
     * of a piped body until its EOF (see held_release). */
    int deferring;
    struct held held;
    char *in; /* body bytes waiting for the child */
    size_t in_len, in_off;
    char *io; /* answer chunk, spool chunk */
    struct cgihdr hdr;
};

/* ------------------------------------------------------------ helpers */

/* Copy s into out as printable ASCII (log lines must stay one line). */
static void printable(char *out, size_t outsz, const char *s)
{
    size_t i;

    for (i = 0; s != NULL && s[i] != '\0' && i + 1 < outsz; i++)
        out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    out[i] = '\0';
}

static void relay_log(const struct relay *r, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One log line naming the script and the client (STYLE 13). */
static void relay_log(const struct relay *r, int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rl_log(level, "cgi %s (client %s): %s", r->what, r->client, msg);
}

/* The JSON error answer, with the rate-limit headers; RL_ERR always, so
 * that callers can "return reply(...)". */
static int reply(struct relay *r, int status, const char *message)
{
    (void)response_error(r->req->out, status, message, 0, r->req->extra_headers);
    return RL_ERR;
}

/* pipe with both ends O_CLOEXEC; the parent's end (index mine) also
 * non-blocking, the child's end stays blocking as CGI scripts expect.
 * pipe2's O_NONBLOCK lands on both ends' open file descriptions, so one
 * F_SETFL clears it on the child's: its only status flag, so 0 is exact
 * (two syscalls a pipe, not three). */
static int make_pipe(int *rd, int *wr, int mine_is_read)
{
    int fds[2];

    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
        return RL_ERR;
    *rd = fds[0];
    *wr = fds[1];
    return fcntl(mine_is_read ? *wr : *rd, F_SETFL, 0) < 0 ? RL_ERR : RL_OK;
}

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

/* Signal the script's process group (its own: setpgid in both processes),
 * or the script alone if the group is already gone. */
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
 * children that outlived the script), then reap. */
static void child_terminate(struct relay *r)
{
    if (r->pid <= 0 || r->reaped)
        return;
    child_kill(r->pid, SIGTERM);
    (void)child_wait_until(r, now_ms() + RELAY_GRACE_MS, 0);
    child_kill(r->pid, SIGKILL);
    child_reap(r);
}

/* ------------------------------------------------------------ cleanup */

static void relay_init(struct relay *r, const struct rl_relay_req *req)
{
    long long t = req->cfg->backend_timeout_ms;

    memset(r, 0, sizeof *r);
    r->req = req;
    r->stdin_fd = r->in_w = r->out_r = r->err_r = r->out_w = r->err_w = -1;
    r->pid = -1;
    r->cl = -1;
    r->held.fd = -1;
    r->started = now_ms();
    r->deadline = r->started + (t > 0 ? t : RELAY_DEFAULT_TIMEOUT_MS);
    printable(r->client, sizeof r->client, env_get(req->params, "REMOTE_ADDR"));
    if (r->client[0] == '\0')
        (void)snprintf(r->client, sizeof r->client, "-");
    (void)snprintf(r->what, sizeof r->what, "-");
    cgihdr_init(&r->hdr);
    r->io = xmalloc(RELAY_IO_SIZE);
    r->in = xmalloc(RELAY_IO_SIZE);
}

/* Everything a request acquired, released in one place (slowcgi
 * cleanup_request): a child still running is killed and reaped. */
static void relay_cleanup(struct relay *r)
{
    size_t i;

    fd_close(&r->in_w);
    fd_close(&r->out_r);
    fd_close(&r->err_r);
    fd_close(&r->out_w);
    fd_close(&r->err_w);
    fd_close(&r->stdin_fd);
    fd_close(&r->held.fd);
    child_terminate(r);
    for (i = 0; i < r->envc; i++)
        free(r->envp[i]);
    free(r->envp);
    free(r->script);
    free(r->dir);
    free(r->in);
    free(r->io);
    free(r->held.mem);
    cgihdr_free(&r->hdr);
    memset(r, 0xff, sizeof *r); /* poison: no use after cleanup */
}

/* --------------------------------------------------- which script runs */

/* SCRIPT_FILENAME without mod_proxy_fcgi's "proxy:fcgi://HOST" prefix:
 * the path starts at the first '/' after the host; "//x" becomes "/x".
 * Caller owns; NULL when the prefix has no path. */
static char *strip_proxy_prefix(const char *v)
{
    const char *p = v;

    if (strncmp(v, "proxy:", 6) == 0) {
        p = strstr(v + 6, "://");
        if (p == NULL || (p = strchr(p + 3, '/')) == NULL)
            return NULL;
    }
    if (p[0] == '/' && p[1] == '/')
        p++;
    return xstrdup(p);
}

/* Apache Action's PATH_TRANSLATED carries the path-info: strip trailing
 * components until something exists. Landing on a folder after stripping
 * means the script is missing: the original is returned (then 404). */
static char *walk_up(const char *v)
{
    char *p = xstrdup(v), *slash;
    struct stat st;

    while (stat(p, &st) < 0 && (errno == ENOENT || errno == ENOTDIR)) {
        slash = strrchr(p, '/');
        if (slash == NULL || slash == p)
            break;
        *slash = '\0';
    }
    if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
        return p;
    free(p);
    return xstrdup(v);
}

/* stat(real) into r->st / r->st_err: the one stat of the script, shared
 * by is_self and check_script_or_reply. */
static void stat_script(struct relay *r, const char *real)
{
    r->st_err = stat(real, &r->st) < 0 ? errno : 0;
}

/* The identity of our own binary, stat'ed once per self_path (it is the
 * same string for the process's life; a process serves one request at a
 * time, so a static one-entry cache needs no lock). 0, or -1 when it
 * cannot be stat'ed (not cached: retried next time). */
static int self_id(const char *self, dev_t *dev, ino_t *ino)
{
    static char *key;
    static dev_t kdev;
    static ino_t kino;
    struct stat st;

    if (key == NULL || strcmp(key, self) != 0) {
        if (stat(self, &st) < 0)
            return -1;
        free(key);
        key = xstrdup(self);
        kdev = st.st_dev;
        kino = st.st_ino;
    }
    *dev = kdev;
    *ino = kino;
    return 0;
}

/* 1 when real (a realpath, stat'ed into r->st) is our own binary, by name
 * or by inode (a hard link would pass a name comparison). */
static int is_self(const struct relay *r, const char *real)
{
    const char *self = r->req->self_path;
    dev_t dev;
    ino_t ino;

    if (self == NULL || *self == '\0')
        return 0;
    if (strcmp(real, self) == 0)
        return 1;
    return r->st_err == 0 && self_id(self, &dev, &ino) == 0 && r->st.st_dev == dev &&
           r->st.st_ino == ino;
}

/* Candidate n (0..2) after the fixed backend: caller owns, NULL if unset. */
static char *candidate(const struct relay *r, int n)
{
    const char *v;

    if (n == 0 && (v = env_get(r->req->params, "SCRIPT_FILENAME")) != NULL && *v)
        return strip_proxy_prefix(v);
    if (n == 1 && (v = env_get(r->req->params, "PATH_TRANSLATED")) != NULL && *v)
        return walk_up(v);
    if (n == 2 && r->req->argv1 != NULL && *r->req->argv1)
        return xstrdup(r->req->argv1);
    return NULL;
}

/*
 * Pick the script: RATELIMIT_BACKEND, else the first of SCRIPT_FILENAME,
 * PATH_TRANSLATED, argv[1] that is set and is not ourselves (Apache Action
 * and FcgidWrapper name the wrapper in SCRIPT_FILENAME and the target in
 * PATH_TRANSLATED). Returns the path (caller owns) and *real (its realpath,
 * caller owns, NULL with *rp_errno when realpath failed), or NULL.
 */
static char *pick_script(struct relay *r, char **real, int *rp_errno, int *self_only)
{
    char *path;
    int n;

    *real = NULL;
    *rp_errno = 0;
    *self_only = 0;
    if (r->req->cfg->backend != NULL && *r->req->cfg->backend) {
        path = xstrdup(r->req->cfg->backend);
        if ((*real = realpath(path, NULL)) == NULL)
            *rp_errno = errno;
        else
            stat_script(r, *real);
        return path;
    }
    for (n = 0; n < 3; n++) {
        if ((path = candidate(r, n)) == NULL)
            continue;
        if ((*real = realpath(path, NULL)) == NULL) {
            *rp_errno = errno;
            return path;
        }
        stat_script(r, *real);
        if (!is_self(r, *real))
            return path;
        printable(r->what, sizeof r->what, path);
        *self_only = 1;
        free(*real);
        *real = NULL;
        free(path);
    }
    return NULL;
}

/* realpath(root), resolved once per root string and kept: it costs a
 * readlink per path component, on every request otherwise. A static
 * one-entry cache (one request at a time per process); failures are not
 * cached, so a root created later is found. Borrowed; NULL with errno. */
static const char *root_real(const char *root)
{
    static char *key, *val;
    char *rr;

    if (key != NULL && strcmp(key, root) == 0)
        return val;
    if ((rr = realpath(root, NULL)) == NULL)
        return NULL;
    free(key);
    free(val);
    key = xstrdup(root);
    val = rr;
    return val;
}

/* RATELIMIT_SCRIPT_ROOT: real must be inside realpath(root), on a '/'
 * boundary ("/srv/cgi" does not contain "/srv/cgi-evil/x"). */
static int inside_root(const struct relay *r, const char *real)
{
    const char *root = r->req->cfg->script_root, *rr;
    size_t n;

    if (root == NULL || *root == '\0')
        return 1;
    if ((rr = root_real(root)) == NULL) {
        rl_log(RL_LOG_ERROR, "RATELIMIT_SCRIPT_ROOT %s: %s", root, strerror(errno));
        return 0;
    }
    n = strlen(rr);
    return (n == 1 && rr[0] == '/') ||
           (strncmp(real, rr, n) == 0 && (real[n] == '/' || real[n] == '\0'));
}

/* The checks on the realpath (stat'ed into r->st): inside the root, a
 * regular file, executable. */
static int check_script_or_reply(struct relay *r, const char *real)
{
    if (!inside_root(r, real)) {
        relay_log(r, RL_LOG_WARN, "outside RATELIMIT_SCRIPT_ROOT, refused");
        return reply(r, 403, "script not allowed");
    }
    if (r->st_err != 0) {
        relay_log(r, RL_LOG_WARN, "not found: %s", strerror(r->st_err));
        return reply(r, 404, "script not found");
    }
    if (!S_ISREG(r->st.st_mode)) {
        relay_log(r, RL_LOG_WARN, "not a regular file, refused");
        return reply(r, 403, "script not executable");
    }
    if (faccessat(AT_FDCWD, real, X_OK, AT_EACCESS) < 0) {
        relay_log(r, RL_LOG_WARN, "not executable: %s", strerror(errno));
        return reply(r, 403, "script not executable");
    }
    return RL_OK;
}

/* Set r->script and r->dir, or answer 404/403. */
static int resolve_or_reply(struct relay *r)
{
    char *real, *path, *slash;
    int rp_errno, self_only, rc;

    path = pick_script(r, &real, &rp_errno, &self_only);
    if (path == NULL) {
        relay_log(r, RL_LOG_WARN, "%s",
                  self_only ? "the request names fcgi-ratelimit itself"
                            : "no script named (RATELIMIT_BACKEND, "
                              "SCRIPT_FILENAME, PATH_TRANSLATED)");
        return self_only ? reply(r, 403, "script not allowed") : reply(r, 404, "script not found");
    }
    printable(r->what, sizeof r->what, real != NULL ? real : path);
    free(path);
    if (real == NULL) {
        relay_log(r, RL_LOG_WARN, "cannot resolve: %s", strerror(rp_errno));
        return rp_errno == EACCES ? reply(r, 403, "script not allowed")
                                  : reply(r, 404, "script not found");
    }
    r->script = real;
    if (is_self(r, real)) {
        relay_log(r, RL_LOG_WARN, "RATELIMIT_BACKEND is fcgi-ratelimit itself, refused");
        return reply(r, 403, "script not allowed");
    }
    if ((rc = check_script_or_reply(r, real)) != RL_OK)
        return rc;
    slash = strrchr(real, '/');
    r->dir =
        (slash == NULL || slash == real) ? xstrdup("/") : xstrndup(real, (size_t)(slash - real));
    return RL_OK;
}

/* -------------------------------------------------------- environment */

/* Length of the name of "NAME=VALUE" when NAME is [A-Za-z_][A-Za-z0-9_]*,
 * else 0. */
static size_t env_name_len(const char *e)
{
    size_t i;

    if (!((e[0] >= 'A' && e[0] <= 'Z') || (e[0] >= 'a' && e[0] <= 'z') || e[0] == '_'))
        return 0;
    for (i = 1; e[i] != '=' && e[i] != '\0'; i++) {
        char c = e[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return e[i] == '=' ? i : 0;
}

static int name_is(const char *e, size_t n, const char *name)
{
    return strlen(name) == n && memcmp(e, name, n) == 0;
}

/*
 * 1 when a request param must not reach the script: httpoxy's HTTP_PROXY,
 * libfcgi's and Apache's role variables, our own configuration (also as
 * Apache's REDIRECT_ copies, any depth), and the variables we set ourselves.
 */
static int env_dropped(const char *e, size_t n)
{
    static const char *const ours[] = {"FCGI_ROLE", "FCGI_APACHE_ROLE", "GATEWAY_INTERFACE",
                                       "CONTENT_LENGTH", "SCRIPT_FILENAME"};
    size_t i;

    for (i = 0; i < sizeof ours / sizeof ours[0]; i++) {
        if (name_is(e, n, ours[i]))
            return 1;
    }
    while (n > 9 && memcmp(e, "REDIRECT_", 9) == 0)
        e += 9, n -= 9;
    /* curl and wget also honour a lower-case http_proxy. */
    return (n == 10 && ascii_ncaseeq(e, "HTTP_PROXY", 10)) ||
           (n >= 10 && memcmp(e, "RATELIMIT_", 10) == 0);
}

static void env_add(struct relay *r, char *entry)
{
    if (r->envc + 2 > r->envcap) {
        r->envcap = r->envcap ? r->envcap * 2 : 32;
        r->envp = xrealloc(r->envp, r->envcap * sizeof *r->envp);
    }
    r->envp[r->envc++] = entry;
    r->envp[r->envc] = NULL;
}

/* 1 when envp already has a variable named e[0..n) (first one wins, as
 * FCGX_GetParam finds it). */
static int env_has(const struct relay *r, const char *e, size_t n)
{
    size_t i;

    for (i = 0; i < r->envc; i++) {
        if (strncmp(r->envp[i], e, n) == 0 && r->envp[i][n] == '=')
            return 1;
    }
    return 0;
}

static void env_addf(struct relay *r, const char *name, const char *value)
{
    size_t a = strlen(name), b = strlen(value);
    char *e = xmalloc(a + b + 2);

    memcpy(e, name, a);
    e[a] = '=';
    memcpy(e + a + 1, value, b + 1);
    env_add(r, e);
}

/* The script's whole environment, from the request's params only (never
 * our own environment: RATELIMIT_REDIS_PASSWORD lives there). */
static void build_env(struct relay *r, long long content_length)
{
    const char *pw = r->req->cfg->redis.password;
    char *const *p;
    char num[32];

    for (p = r->req->params; p != NULL && *p != NULL; p++) {
        size_t n = env_name_len(*p);

        if (n == 0 || env_dropped(*p, n) || env_has(r, *p, n))
            continue;
        /* Defence in depth: a param that carries the password in any
         * place (an overriding RATELIMIT_REDIS_URL copied under another
         * name, say) never reaches the script. */
        if (pw != NULL && *pw != '\0' && strstr(*p, pw) != NULL)
            continue;
        env_add(r, xstrdup(*p));
    }
    env_addf(r, "GATEWAY_INTERFACE", "CGI/1.1");
    if (!env_has(r, "PATH", 4))
        env_addf(r, "PATH", RELAY_DEFAULT_PATH);
    if (content_length >= 0) {
        (void)snprintf(num, sizeof num, "%lld", content_length);
        env_addf(r, "CONTENT_LENGTH", num);
    }
    env_addf(r, "SCRIPT_FILENAME", r->script);
}

/* --------------------------------------------------------------- body */

/* 1 when the body can be read now, 0 at the deadline, -1 on poll error. */
static int body_wait(const struct rl_body_src *b, long long deadline)
{
    struct pollfd pfd;

    for (;;) {
        int rc;

        if (b->buffered != NULL && b->buffered(b->ctx))
            return 1;
        pfd.fd = b->fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        rc = poll(&pfd, 1, ms_left(deadline));
        if (rc > 0)
            return 1;
        if (rc == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

/* An unlinked temp file: O_TMPFILE, or mkostemp + unlink. -1 on error. */
static int spool_open(void)
{
    const char *dir = getenv("TMPDIR");
    char tmpl[PATH_MAX];
    int fd;

    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
#ifdef O_TMPFILE
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
#endif
    if ((size_t)snprintf(tmpl, sizeof tmpl, "%s/fcgi-ratelimit.XXXXXX", dir) >= sizeof tmpl)
        return -1;
    fd = mkostemp(tmpl, O_CLOEXEC);
    if (fd >= 0)
        (void)unlink(tmpl);
    return fd;
}

/* Copy the body into *fd until EOF, opening the spool file at the first
 * byte (a GET has none: no file then, *fd stays -1); the count, or -1
 * (answered). */
static long long spool_copy_or_reply(struct relay *r, int *fd)
{
    const struct rl_body_src *b = r->req->body;
    /* Receiving the body is not the script's run time: its own deadline. */
    long long until = now_ms() + (r->deadline - r->started), total = 0;

    for (;;) {
        int w = body_wait(b, until);
        ssize_t n;

        if (w <= 0) {
            relay_log(r, RL_LOG_WARN, "request body %s", w == 0 ? "timed out" : "poll failed");
            return reply(r, 408, "request body not received in time");
        }
        n = b->read(b->ctx, r->io, RELAY_IO_SIZE);
        if (n == 0)
            return total;
        if (n < 0) {
            r->body_err = 1;
            relay_log(r, RL_LOG_WARN, "request body ended early after %lld bytes", total);
            return reply(r, 400, "request body incomplete");
        }
        if (*fd < 0 && (*fd = spool_open()) < 0) {
            relay_log(r, RL_LOG_ERROR, "cannot create a spool file: %s", strerror(errno));
            return reply(r, 500, "cannot store the request body");
        }
        if (write_full(*fd, r->io, (size_t)n) != RL_OK) {
            relay_log(r, RL_LOG_ERROR, "cannot spool the request body: %s", strerror(errno));
            return reply(r, 500, "cannot store the request body");
        }
        total += n;
    }
}

/* No CONTENT_LENGTH (a chunked body): spool it so that the script gets an
 * exact one (RFC 3875 4.1.2). Sets r->stdin_fd when there was a body;
 * returns the count or -1. */
static long long spool_body_or_reply(struct relay *r)
{
    long long total;

    if ((total = spool_copy_or_reply(r, &r->stdin_fd)) < 0)
        return -1;
    r->body_eof = 1;
    if (total == 0)
        return 0;
    if (lseek(r->stdin_fd, 0, SEEK_SET) < 0) {
        relay_log(r, RL_LOG_ERROR, "cannot rewind the spool file: %s", strerror(errno));
        return reply(r, 500, "cannot store the request body");
    }
    relay_log(r, RL_LOG_DEBUG, "spooled a body of %lld bytes without CONTENT_LENGTH", total);
    return total;
}

/*
 * Decide how the body reaches the script and which CONTENT_LENGTH it
 * sees (-1: none). Streamed through a pipe when CONTENT_LENGTH is valid
 * and > 0, spooled when it is missing, /dev/null otherwise.
 */
static int prepare_body_or_reply(struct relay *r, long long *content_length)
{
    const char *v = env_get(r->req->params, "CONTENT_LENGTH");
    long long cl = -1;

    if (v != NULL && parse_ll(v, strlen(v), 0, LLONG_MAX, &cl) != RL_OK)
        cl = -1;
    r->cl = cl;
    *content_length = cl;
    if (r->req->body == NULL || r->req->body->fd < 0) {
        r->body_eof = 1;
    } else if (cl < 0) {
        if ((*content_length = spool_body_or_reply(r)) < 0)
            return RL_ERR;
        if (*content_length > 0)
            return RL_OK;
        /* No body at all (a GET through lighttpd or mod_proxy_fcgi): do
         * not invent a CONTENT_LENGTH (RFC 3875 4.1.2: set iff there is a
         * body); stdin is /dev/null as below. */
        *content_length = -1;
    } else if (cl > 0) {
        r->pipe_body = 1;
        r->to_child = cl;
        /* Hold the answer until the body's EOF: mod_fcgid reads no answer
         * before it has written the whole body. */
        r->deferring = 1;
        return RL_OK;
    }
    r->stdin_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (r->stdin_fd < 0) {
        relay_log(r, RL_LOG_ERROR, "cannot open /dev/null: %s", strerror(errno));
        return reply(r, 500, "cannot run the script");
    }
    return RL_OK;
}

/* -------------------------------------------------------------- spawn */

#ifdef RL_HAVE_SPAWN_CLOSEFROM

/* Why a posix_spawn failed: glibc (CLONE_VFORK) returns the child's errno
 * from its file actions or execve, and has reaped that child itself. */
static int spawn_fail_or_reply(struct relay *r, int err)
{
    relay_log(r, RL_LOG_ERROR, "cannot run: %s (a bad #! line?)", strerror(err));
    return reply(r, 502, "script could not be started");
}

/* The file actions for these fds and folder. glibc checks every fd an
 * add* names against getrlimit(RLIMIT_NOFILE), seven syscalls a build, so
 * the last one is kept: the fd numbers and folder repeat request after
 * request (a static one-entry cache; one request at a time per process).
 * Borrowed; NULL with *err on failure. */
static const posix_spawn_file_actions_t *spawn_actions(const struct relay *r, int *err)
{
    static posix_spawn_file_actions_t fa;
    static int valid, fds[3];
    static char *dir;

    if (valid && fds[0] == r->stdin_fd && fds[1] == r->out_w && fds[2] == r->err_w &&
        strcmp(dir, r->dir) == 0)
        return &fa;
    if (valid)
        (void)posix_spawn_file_actions_destroy(&fa);
    free(dir);
    dir = NULL;
    valid = 0;
    if ((*err = posix_spawn_file_actions_init(&fa)) != 0)
        return NULL;
    /* dup2 of an fd onto itself clears its CLOEXEC (glibc >= 2.29);
     * libfcgi's connection is not O_CLOEXEC, so close from 3. */
    if ((*err = posix_spawn_file_actions_adddup2(&fa, r->stdin_fd, 0)) != 0 ||
        (*err = posix_spawn_file_actions_adddup2(&fa, r->out_w, 1)) != 0 ||
        (*err = posix_spawn_file_actions_adddup2(&fa, r->err_w, 2)) != 0 ||
        (*err = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) != 0 ||
        (*err = posix_spawn_file_actions_addchdir_np(&fa, r->dir)) != 0) {
        (void)posix_spawn_file_actions_destroy(&fa);
        return NULL;
    }
    fds[0] = r->stdin_fd;
    fds[1] = r->out_w;
    fds[2] = r->err_w;
    dir = xstrdup(r->dir);
    valid = 1;
    return &fa;
}

/* posix_spawn with everything the fork path did by hand. RL_OK with the
 * child running, RL_ERR (answered) when it could not start. */
static int spawn_child_or_reply(struct relay *r)
{
    const posix_spawn_file_actions_t *fa;
    posix_spawnattr_t at;
    sigset_t all, none;
    char *argv[2];
    int err;

    argv[0] = r->script;
    argv[1] = NULL;
    sigfillset(&all);
    sigemptyset(&none);
    if ((fa = spawn_actions(r, &err)) == NULL)
        goto fail;
    if ((err = posix_spawnattr_init(&at)) != 0)
        goto fail;
    /* Own process group (kill(-pid) reaches its children too); every
     * signal back to SIG_DFL (our ignored SIGPIPE and SIGTERM/SIGINT/SIGUSR1
     * handlers), nothing blocked. */
    if ((err = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                                 POSIX_SPAWN_SETSIGMASK)) != 0 ||
        (err = posix_spawnattr_setpgroup(&at, 0)) != 0 ||
        (err = posix_spawnattr_setsigdefault(&at, &all)) != 0 ||
        (err = posix_spawnattr_setsigmask(&at, &none)) != 0)
        goto fail_at;
    err = posix_spawn(&r->pid, r->script, fa, &at, argv, r->envp);
    (void)posix_spawnattr_destroy(&at);
    fd_close(&r->stdin_fd);
    fd_close(&r->out_w);
    fd_close(&r->err_w);
    if (err != 0) {
        r->pid = -1;
        return spawn_fail_or_reply(r, err);
    }
    return RL_OK;
fail_at:
    (void)posix_spawnattr_destroy(&at);
fail:
    relay_log(r, RL_LOG_ERROR, "cannot start: %s", strerror(err));
    return reply(r, 500, "cannot run the script");
}

/* Pipes, then posix_spawn. RL_OK with the child running, or RL_ERR
 * (answered). */
static int spawn_or_reply(struct relay *r)
{
    if ((r->pipe_body && make_pipe(&r->stdin_fd, &r->in_w, 0) != RL_OK) ||
        make_pipe(&r->out_r, &r->out_w, 1) != RL_OK ||
        make_pipe(&r->err_r, &r->err_w, 1) != RL_OK) {
        relay_log(r, RL_LOG_ERROR, "cannot start: %s", strerror(errno));
        return reply(r, 500, "cannot run the script");
    }
    return spawn_child_or_reply(r);
}

#else /* fork + execve, reporting exec errors through a CLOEXEC pipe */

/* Close every fd from lo up (close_range when the kernel has it). */
static void close_from(int lo, int hi)
{
    long max;
    int fd;

    if (lo > hi)
        return;
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lo, (unsigned)hi, 0u) == 0)
        return;
#endif
    max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > RELAY_CLOSE_MAX)
        max = RELAY_CLOSE_MAX;
    for (fd = lo; fd <= hi && fd < max; fd++)
        (void)close(fd);
}

/* fd onto target, without CLOEXEC (dup2 of an fd onto itself keeps it). */
static int move_fd(int fd, int target)
{
    if (fd == target)
        return fcntl(fd, F_SETFD, 0);
    return dup2(fd, target) < 0 ? -1 : 0;
}

static void child_fail(int ep, int stage) __attribute__((noreturn));

/* Tell the parent why we could not exec, then die without output: the
 * parent sees no headers and answers 502 (RFC 3875 has no exec errors). */
static void child_fail(int ep, int stage)
{
    struct child_err ce;

    ce.stage = stage;
    ce.err = errno;
    if (write(ep, &ce, sizeof ce) < 0)
        _exit(127);
    _exit(127);
}

static void child_exec(const struct relay *r, int ep) __attribute__((noreturn));

/* In the child, between fork and execve: only async-signal-safe calls. */
static void child_exec(const struct relay *r, int ep)
{
    char *argv[2];
    struct sigaction sa;
    sigset_t none;
    int sig;

    (void)setpgid(0, 0);
    /* Our ignored SIGPIPE and SIGTERM/SIGINT/SIGUSR1 handlers: a script
     * must start with default dispositions and nothing blocked. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (sig = 1; sig < NSIG; sig++)
        (void)sigaction(sig, &sa, NULL);
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    if (move_fd(r->stdin_fd, 0) < 0 || move_fd(r->out_w, 1) < 0 || move_fd(r->err_w, 2) < 0)
        child_fail(ep, 2);
    /* libfcgi's connection is not O_CLOEXEC: close all but the error pipe. */
    close_from(3, ep - 1);
    close_from(ep + 1, INT_MAX);
    if (chdir(r->dir) < 0)
        child_fail(ep, 0);
    argv[0] = r->script;
    argv[1] = NULL;
    execve(r->script, argv, r->envp);
    child_fail(ep, 1);
}

/* After fork: the child's ends are not ours; the exec pipe tells whether
 * execve worked (EOF) or why it did not. RL_OK, or RL_ERR (answered). */
static int spawn_check_or_reply(struct relay *r, int *ep_r)
{
    static const char *const stage[] = {"chdir", "execve", "dup2"};
    struct child_err ce;
    ssize_t n;

    fd_close(&r->stdin_fd);
    fd_close(&r->out_w);
    fd_close(&r->err_w);
    do
        n = read(*ep_r, &ce, sizeof ce);
    while (n < 0 && errno == EINTR);
    fd_close(ep_r);
    if (n != (ssize_t)sizeof ce)
        return RL_OK;
    child_reap(r);
    relay_log(r, RL_LOG_ERROR, "cannot run: %s: %s (a bad #! line?)",
              stage[ce.stage >= 0 && ce.stage <= 2 ? ce.stage : 1], strerror(ce.err));
    return reply(r, 502, "script could not be started");
}

/* Pipes, fork, exec. RL_OK with the child running, or RL_ERR (answered). */
static int spawn_or_reply(struct relay *r)
{
    int ep[2] = {-1, -1};

    if ((r->pipe_body && make_pipe(&r->stdin_fd, &r->in_w, 0) != RL_OK) ||
        make_pipe(&r->out_r, &r->out_w, 1) != RL_OK ||
        make_pipe(&r->err_r, &r->err_w, 1) != RL_OK || pipe2(ep, O_CLOEXEC) != 0)
        goto fail;
    r->pid = fork();
    if (r->pid < 0)
        goto fail;
    if (r->pid == 0)
        child_exec(r, ep[1]);
    /* Both sides set the group: whichever runs first, a kill(-pid)
     * cannot miss it. EACCES after the child's execve is harmless. */
    (void)setpgid(r->pid, r->pid);
    fd_close(&ep[1]);
    return spawn_check_or_reply(r, &ep[0]);
fail:
    relay_log(r, RL_LOG_ERROR, "cannot start: %s", strerror(errno));
    fd_close(&ep[0]);
    fd_close(&ep[1]);
    return reply(r, 500, "cannot run the script");
}

#endif /* RL_HAVE_SPAWN_CLOSEFROM */

/* ----------------------------------------------------------- the loop */

/* The script's stdin gets exactly CONTENT_LENGTH bytes, then EOF. */
static void maybe_close_stdin(struct relay *r)
{
    if (r->in_w >= 0 && r->in_off == r->in_len && (r->to_child == 0 || r->body_eof))
        fd_close(&r->in_w);
}

/* ------------------------------------------------------ the answer */

/* Hold n answer bytes: the first RELAY_HOLD_MEM in memory, the rest in an
 * unlinked temp file, so that memory stays bounded whatever the answer's
 * size. RL_OK, or RL_ERR with the outcome set (500). */
static int held_add(struct relay *r, const char *p, size_t n)
{
    struct held *h = &r->held;
    size_t room;
    int err;

    if (h->mem == NULL)
        h->mem = xmalloc(RELAY_HOLD_MEM);
    /* Once the file is in use mem is full: the order of bytes is kept. */
    room = RELAY_HOLD_MEM - h->len < n ? RELAY_HOLD_MEM - h->len : n;
    memcpy(h->mem + h->len, p, room);
    h->len += room;
    if (room == n)
        return RL_OK;
    if ((h->fd < 0 && (h->fd = spool_open()) < 0) ||
        write_full(h->fd, p + room, n - room) != RL_OK) {
        err = errno;
        relay_log(r, RL_LOG_ERROR, "cannot hold the answer: %s", strerror(err));
        set_outcome(r, RL_RELAY_INTERNAL);
        return RL_ERR;
    }
    h->flen += (long long)(n - room);
    return RL_OK;
}

/* Drop what is held (nothing of it was sent). */
static void held_discard(struct relay *r)
{
    free(r->held.mem);
    r->held.mem = NULL;
    r->held.len = 0;
    fd_close(&r->held.fd);
    r->held.flen = 0;
}

/* Send the file part of the held answer, one r->io at a time. */
static void held_send_file(struct relay *r)
{
    long long off = 0;

    while (off < r->held.flen) {
        long long left = r->held.flen - off;
        ssize_t n = pread(r->held.fd, r->io, left < RELAY_IO_SIZE ? (size_t)left : RELAY_IO_SIZE,
                          (off_t)off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            relay_log(r, RL_LOG_ERROR, "cannot read the held answer: %s",
                      n < 0 ? strerror(errno) : "file shrank");
            set_outcome(r, RL_RELAY_INTERNAL);
            return;
        }
        if (out_write(r->req->out, r->io, (size_t)n) != RL_OK) {
            set_outcome(r, RL_RELAY_CLIENT_GONE);
            return;
        }
        off += n;
    }
}

/* Push what was written to the client (never while deferring). */
static void answer_flush(struct relay *r)
{
    if (r->deferring || !r->dirty || r->outcome != RL_RELAY_OK)
        return;
    if (out_flush(r->req->out) != RL_OK)
        set_outcome(r, RL_RELAY_CLIENT_GONE);
    r->dirty = 0;
}

/* The body reached EOF, so the server reads answers now: send what was
 * held (it starts with the header block, if any), then stream directly. */
static void held_release(struct relay *r)
{
    struct rl_out *o = r->req->out;

    r->deferring = 0;
    if (r->held.len > 0) {
        /* From the first byte on, no error answer may follow (STYLE 10). */
        o->headers_sent = 1;
        r->dirty = 1;
        if (out_write(o, r->held.mem, r->held.len) != RL_OK)
            set_outcome(r, RL_RELAY_CLIENT_GONE);
        else if (r->held.fd >= 0)
            held_send_file(r);
    }
    held_discard(r);
    answer_flush(r);
}

/* n answer bytes, in order: held while deferring, else to the client.
 * RL_OK, or RL_ERR with the outcome set. */
static int answer_write(struct relay *r, const char *p, size_t n)
{
    if (r->deferring)
        return held_add(r, p, n);
    /* From the first byte on, no error answer may follow (STYLE 10). */
    r->req->out->headers_sent = 1;
    r->dirty = 1;
    if (out_write(r->req->out, p, n) == RL_OK)
        return RL_OK;
    set_outcome(r, RL_RELAY_CLIENT_GONE);
    return RL_ERR;
}

/* Header block complete: "Status:" first, the script's fields, ours.
 * RL_OK, or RL_ERR with the outcome set. */
static int send_headers(struct relay *r)
{
    const char *extra = r->req->extra_headers;
    struct buf b;

    buf_init(&b, 2 * CGIHDR_BLOCK_MAX + CGIHDR_LINE_MAX + (extra ? strlen(extra) : 0));
    if (cgihdr_block(&r->hdr, extra, &b) != RL_OK) {
        relay_log(r, RL_LOG_ERROR, "cannot render the header block");
        set_outcome(r, RL_RELAY_INTERNAL);
    } else if (answer_write(r, b.ptr, b.len) == RL_OK) {
        answer_flush(r);
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
            relay_log(r, RL_LOG_WARN, "malformed headers: %s", r->hdr.errstr);
            set_outcome(r, RL_RELAY_BAD_HEADERS);
            return;
        }
        if (!r->hdr.done || send_headers(r) != RL_OK)
            return;
    }
    if (n > used && answer_write(r, r->io + used, n - used) != RL_OK)
        return;
    /* A short read means the pipe is empty for now: push what we have so
     * that streamed answers (progress output) reach the client. */
    if (n < RELAY_IO_SIZE)
        answer_flush(r);
}

static void on_stdout(struct relay *r)
{
    ssize_t n = read(r->out_r, r->io, RELAY_IO_SIZE);

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        if (n < 0)
            relay_log(r, RL_LOG_WARN, "reading stdout: %s", strerror(errno));
        fd_close(&r->out_r);
        return;
    }
    answer_bytes(r, (size_t)n);
}

/* stderr goes to the web server's log as it comes, and never near the
 * stdout parser (fcgiwrap mixed them). */
static void on_stderr(struct relay *r)
{
    char chunk[RELAY_ERR_SIZE];
    ssize_t n = read(r->err_r, chunk, sizeof chunk);

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        fd_close(&r->err_r);
        return;
    }
    if (r->req->errlog != NULL)
        r->req->errlog(r->req->errlog_ctx, chunk, (size_t)n);
}

static void on_stdin(struct relay *r)
{
    ssize_t w = write(r->in_w, r->in + r->in_off, r->in_len - r->in_off);

    if (w < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (w < 0) {
        /* EPIPE: the script stopped reading (it need not read the body,
         * RFC 3875 4.2); the rest of the body is drained, not an error. */
        fd_close(&r->in_w);
        r->in_len = r->in_off = 0;
        r->to_child = 0;
        return;
    }
    r->in_off += (size_t)w;
    if (r->in_off == r->in_len)
        r->in_len = r->in_off = 0;
    maybe_close_stdin(r);
}

static void on_body(struct relay *r)
{
    const struct rl_body_src *b = r->req->body;
    ssize_t n = b->read(b->ctx, r->in, RELAY_IO_SIZE);
    long long give;

    if (n < 0) {
        r->body_err = 1;
        relay_log(r, RL_LOG_WARN, "request body failed mid-way (client gone?)");
        set_outcome(r, RL_RELAY_BODY_ERR);
        return;
    }
    if (n == 0) {
        r->body_eof = 1;
        if (r->to_child > 0)
            relay_log(r, RL_LOG_INFO, "request body %lld bytes short of CONTENT_LENGTH %lld",
                      r->to_child, r->cl);
    } else {
        /* Past CONTENT_LENGTH the bytes are read and dropped: the script
         * must not read more (RFC 3875 4.2), but we read to EOF. */
        give = n < r->to_child ? n : r->to_child;
        r->to_child -= give;
        if (r->in_w >= 0) {
            r->in_len = (size_t)give;
            r->in_off = 0;
        }
    }
    maybe_close_stdin(r);
}

static int body_wanted(const struct relay *r)
{
    return r->pipe_body && !r->body_eof && !r->body_err && r->in_off == r->in_len;
}

static nfds_t add_pfd(struct pollfd *pfd, nfds_t n, int fd, short events, int *idx)
{
    pfd[n].fd = fd;
    pfd[n].events = events;
    pfd[n].revents = 0;
    *idx = (int)n;
    return n + 1;
}

/* One poll() round over body, stdin, stdout and stderr. */
static void relay_step(struct relay *r)
{
    const struct rl_body_src *b = r->req->body;
    struct pollfd pfd[4];
    int idx[4] = {-1, -1, -1, -1}, timeout = ms_left(r->deadline), body_now = 0, rc;
    nfds_t n = 0;

    if (body_wanted(r)) {
        /* libfcgi may hold body bytes the socket will not signal again. */
        if (b->buffered != NULL && b->buffered(b->ctx))
            body_now = 1, timeout = 0;
        else
            n = add_pfd(pfd, n, b->fd, POLLIN, &idx[0]);
    }
    if (r->in_w >= 0 && r->in_off < r->in_len)
        n = add_pfd(pfd, n, r->in_w, POLLOUT, &idx[1]);
    if (r->out_r >= 0)
        n = add_pfd(pfd, n, r->out_r, POLLIN, &idx[2]);
    if (r->err_r >= 0)
        n = add_pfd(pfd, n, r->err_r, POLLIN, &idx[3]);
    rc = poll(pfd, n, timeout);
    if (rc < 0 && errno != EINTR) {
        relay_log(r, RL_LOG_ERROR, "poll: %s", strerror(errno));
        set_outcome(r, RL_RELAY_INTERNAL);
    }
    if (rc <= 0 && !body_now)
        return;
    if (idx[3] >= 0 && pfd[idx[3]].revents != 0)
        on_stderr(r);
    if (idx[2] >= 0 && pfd[idx[2]].revents != 0 && r->outcome == RL_RELAY_OK)
        on_stdout(r);
    if (idx[1] >= 0 && pfd[idx[1]].revents != 0 && r->in_w >= 0)
        on_stdin(r);
    if ((body_now || (idx[0] >= 0 && pfd[idx[0]].revents != 0)) && r->outcome == RL_RELAY_OK)
        on_body(r);
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
        if (r->deferring && r->body_eof && r->outcome == RL_RELAY_OK)
            held_release(r);
    }
}

/* ------------------------------------------------------------- finish */

static void log_exit(const struct relay *r)
{
    if (!r->reaped)
        return;
    if (WIFEXITED(r->wstatus) && WEXITSTATUS(r->wstatus) != 0)
        relay_log(r, RL_LOG_INFO, "exited with status %d", WEXITSTATUS(r->wstatus));
    else if (WIFSIGNALED(r->wstatus))
        relay_log(r, RL_LOG_INFO, "killed by signal %d", WTERMSIG(r->wstatus));
}

/* Log why the script is being stopped, then stop it. */
static void stop_child(struct relay *r)
{
    if (r->outcome == RL_RELAY_TIMEOUT)
        relay_log(r, RL_LOG_WARN,
                  "still running after %lld ms (RATELIMIT_BACKEND_TIMEOUT), killing "
                  "process group %ld",
                  r->deadline - r->started, (long)r->pid);
    else if (r->outcome == RL_RELAY_CLIENT_GONE)
        relay_log(r, RL_LOG_INFO, "client went away, killing process group %ld", (long)r->pid);
    child_terminate(r);
}

/* The error answer for the outcome, if nothing was sent yet. */
static void answer_outcome(struct relay *r)
{
    switch (r->outcome) {
    case RL_RELAY_TIMEOUT:
        (void)reply(r, 504, "script timed out");
        break;
    case RL_RELAY_BAD_HEADERS:
        (void)reply(r, 502, "script sent malformed headers");
        break;
    case RL_RELAY_NO_HEADERS:
        relay_log(r, RL_LOG_WARN, "%s",
                  r->hdr.total == 0 ? "no output (no header block)"
                                    : "output ended inside the header block");
        (void)reply(r, 502, "script sent no headers");
        break;
    case RL_RELAY_BODY_ERR:
        (void)reply(r, 400, "request body incomplete");
        break;
    case RL_RELAY_BODY_SLOW:
        (void)reply(r, 408, "request body not received in time");
        break;
    case RL_RELAY_INTERNAL:
        (void)reply(r, 500, "cannot run the script");
        break;
    default:
        break;
    }
}

/* Read the rest of the body and drop it (the script may not want it). */
static void drain_body(struct relay *r)
{
    const struct rl_body_src *b = r->req->body;

    while (b != NULL && b->fd >= 0 && !r->body_eof && !r->body_err &&
           r->outcome != RL_RELAY_CLIENT_GONE && body_wait(b, r->deadline) > 0) {
        ssize_t n = b->read(b->ctx, r->io, RELAY_IO_SIZE);

        if (n <= 0) {
            r->body_eof = n == 0;
            r->body_err = n < 0;
        }
    }
}

/*
 * The script is done while its answer is still held: receive the rest of
 * the body first (the server reads no answer before it has sent it all),
 * then send the answer. Any error drops it instead, so that the error
 * answer can go out: the client has seen nothing yet.
 */
static void finish_held(struct relay *r)
{
    if (r->outcome == RL_RELAY_OK)
        drain_body(r);
    if (r->outcome == RL_RELAY_OK && !r->body_eof) {
        relay_log(r, RL_LOG_WARN, "request body %s",
                  r->body_err ? "failed mid-way (client gone?)" : "not received in time");
        set_outcome(r, r->body_err ? RL_RELAY_BODY_ERR : RL_RELAY_BODY_SLOW);
    }
    if (r->outcome == RL_RELAY_OK) {
        held_release(r);
    } else {
        r->deferring = 0;
        held_discard(r);
    }
}

static void relay_finish(struct relay *r)
{
    fd_close(&r->in_w);
    /* Reaped as soon as seen gone: its group is not signalled after that
     * (nothing is killed on success, as before). */
    if (r->outcome == RL_RELAY_OK && !child_wait_until(r, r->deadline, 1))
        set_outcome(r, RL_RELAY_TIMEOUT);
    if (r->outcome != RL_RELAY_OK)
        stop_child(r);
    log_exit(r);
    if (r->outcome == RL_RELAY_OK && !r->hdr.done)
        r->outcome = RL_RELAY_NO_HEADERS;
    if (r->deferring)
        finish_held(r);
    answer_flush(r);
    answer_outcome(r);
    drain_body(r);
}

int cgirelay_run_or_reply(const struct rl_relay_req *req)
{
    struct relay r;
    long long cl = -1;
    int rc = RL_ERR;

    relay_init(&r, req);
    if (resolve_or_reply(&r) == RL_OK && prepare_body_or_reply(&r, &cl) == RL_OK) {
        build_env(&r, cl);
        if (spawn_or_reply(&r) == RL_OK) {
            relay_loop(&r);
            relay_finish(&r);
            rc = r.outcome == RL_RELAY_OK ? RL_OK : RL_ERR;
        }
    }
    relay_cleanup(&r);
    return rc;
}
