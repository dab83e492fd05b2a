/*
 * cgispawn.c - which script runs, and starting it (see cgiint.h).
 *
 * The script is picked (RATELIMIT_BACKEND, SCRIPT_FILENAME, PATH_TRANSLATED,
 * argv[1]; never ourselves), resolved with realpath() and checked (inside
 * RATELIMIT_SCRIPT_ROOT, a regular file, executable). Then its folder is
 * opened (O_PATH) and that fd is checked again, through its real path in
 * /proc/self/fd, against the root; the script is the entry of that folder
 * with the inode that was checked, not a symlink. The child changes into
 * the folder by the fd (fchdir) and runs "./name": whatever happens to
 * the path meanwhile (a folder swapped for a symlink), it runs inside the
 * folder that was checked. The one window left is the last component:
 * between the inode check and execve() it could be replaced by a symlink,
 * but only by someone who may write into a folder inside the root, who can
 * put any script there anyway.
 *
 * posix_spawn does all the child set-up (process group, signals, fds,
 * fchdir) with glibc >= 2.34; it spawns with CLONE_VFORK, so no page
 * tables are copied and exec errors come back as its return value.
 * Elsewhere: fork + execve.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgiint.h"
#include "log.h"
#include "rl.h"
#include "util.h"

#define RELAY_CLOSE_MAX 65536 /* fd scan bound when close_range is missing */

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

/* ------------------------------------------------- which script runs */

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
        cgirelay_printable(r->what, sizeof r->what, path);
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

/* RATELIMIT_SCRIPT_ROOT: real (a real path, of the script or a folder)
 * must be inside realpath(root), on a '/' boundary ("/srv/cgi" does not
 * contain "/srv/cgi-evil/x"). */
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
        cgirelay_log(r, RL_LOG_WARN, "outside RATELIMIT_SCRIPT_ROOT, refused");
        return cgirelay_reply(r, 403, "script not allowed");
    }
    if (r->st_err != 0) {
        cgirelay_log(r, RL_LOG_WARN, "not found: %s", strerror(r->st_err));
        return cgirelay_reply(r, 404, "script not found");
    }
    if (!S_ISREG(r->st.st_mode)) {
        cgirelay_log(r, RL_LOG_WARN, "not a regular file, refused");
        return cgirelay_reply(r, 403, "script not executable");
    }
    if (faccessat(AT_FDCWD, real, X_OK, AT_EACCESS) < 0) {
        cgirelay_log(r, RL_LOG_WARN, "not executable: %s", strerror(errno));
        return cgirelay_reply(r, 403, "script not executable");
    }
    return RL_OK;
}

/* 1 when the folder open as r->dir_fd is inside the root now: its real
 * path is what the kernel says the fd is (/proc/self/fd), not what the
 * path name resolves to after a swap. */
static int dir_inside_root(const struct relay *r)
{
    const char *root = r->req->cfg->script_root;
    char link[64], real[PATH_MAX];
    ssize_t n;

    if (root == NULL || *root == '\0')
        return 1;
    (void)snprintf(link, sizeof link, "/proc/self/fd/%d", r->dir_fd);
    n = readlink(link, real, sizeof real - 1);
    if (n < 0) {
        cgirelay_log(r, RL_LOG_ERROR, "readlink %s: %s (is /proc mounted?)", link, strerror(errno));
        return 0;
    }
    real[n] = '\0';
    return inside_root(r, real);
}

/*
 * Open the script's folder (O_PATH) as r->dir_fd, the one the child will
 * fchdir() into, and check that it is still inside the root and that the
 * script in it is still the regular file that was checked (same inode,
 * not a symlink). Sets r->name. RL_OK, or RL_ERR (answered 404/403).
 */
static int open_dir_or_reply(struct relay *r)
{
    char *slash = strrchr(r->script, '/'), *dir;
    struct stat st;

    /* realpath() gives an absolute path: there is a slash. */
    dir = slash == r->script ? xstrdup("/") : xstrndup(r->script, (size_t)(slash - r->script));
    r->name = slash + 1;
    r->dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (r->dir_fd < 0) {
        cgirelay_log(r, RL_LOG_WARN, "cannot open its folder: %s", strerror(errno));
        return cgirelay_reply(r, 404, "script not found");
    }
    if (!dir_inside_root(r)) {
        cgirelay_log(r, RL_LOG_WARN, "folder outside RATELIMIT_SCRIPT_ROOT (moved?), refused");
        return cgirelay_reply(r, 403, "script not allowed");
    }
    if (fstatat(r->dir_fd, r->name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
        st.st_dev != r->st.st_dev || st.st_ino != r->st.st_ino) {
        cgirelay_log(r, RL_LOG_WARN, "changed while being checked, refused");
        return cgirelay_reply(r, 403, "script not allowed");
    }
    return RL_OK;
}

int cgispawn_resolve_or_reply(struct relay *r)
{
    char *real, *path;
    int rp_errno, self_only, rc;

    path = pick_script(r, &real, &rp_errno, &self_only);
    if (path == NULL) {
        cgirelay_log(r, RL_LOG_WARN, "%s",
                     self_only ? "the request names fcgi-ratelimit itself"
                               : "no script named (RATELIMIT_BACKEND, "
                                 "SCRIPT_FILENAME, PATH_TRANSLATED)");
        return self_only ? cgirelay_reply(r, 403, "script not allowed")
                         : cgirelay_reply(r, 404, "script not found");
    }
    cgirelay_printable(r->what, sizeof r->what, real != NULL ? real : path);
    free(path);
    if (real == NULL) {
        cgirelay_log(r, RL_LOG_WARN, "cannot resolve: %s", strerror(rp_errno));
        return rp_errno == EACCES ? cgirelay_reply(r, 403, "script not allowed")
                                  : cgirelay_reply(r, 404, "script not found");
    }
    r->script = real;
    if (is_self(r, real)) {
        cgirelay_log(r, RL_LOG_WARN, "RATELIMIT_BACKEND is fcgi-ratelimit itself, refused");
        return cgirelay_reply(r, 403, "script not allowed");
    }
    if ((rc = check_script_or_reply(r, real)) != RL_OK)
        return rc;
    return open_dir_or_reply(r);
}

/* -------------------------------------------------------------- spawn */

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

#ifdef RL_HAVE_SPAWN_CLOSEFROM

/* Why a posix_spawn failed: glibc (CLONE_VFORK) returns the child's errno
 * from its file actions or execve, and has reaped that child itself. */
static int spawn_fail_or_reply(struct relay *r, int err)
{
    cgirelay_log(r, RL_LOG_ERROR, "cannot run: %s (a bad #! line?)", strerror(err));
    return cgirelay_reply(r, 502, "script could not be started");
}

/* The file actions for these fds (the folder's too: fchdir by fd, see
 * the top of the file). glibc checks every fd an add* names against
 * getrlimit(RLIMIT_NOFILE), seven syscalls a build, so the last one is
 * kept: the fd numbers repeat request after request (a static one-entry cache; one request at a
 * time per process). Borrowed; NULL with *err on failure. */
static const posix_spawn_file_actions_t *spawn_actions(const struct relay *r, int *err)
{
    static posix_spawn_file_actions_t fa;
    static int valid, fds[4];

    if (valid && fds[0] == r->stdin_fd && fds[1] == r->out_w && fds[2] == r->err_w &&
        fds[3] == r->dir_fd)
        return &fa;
    if (valid)
        (void)posix_spawn_file_actions_destroy(&fa);
    valid = 0;
    if ((*err = posix_spawn_file_actions_init(&fa)) != 0)
        return NULL;
    /* dup2 of an fd onto itself clears its CLOEXEC (glibc >= 2.29);
     * libfcgi's connection is not O_CLOEXEC, so close from 3, after the
     * fchdir that needs the folder's fd. */
    if ((*err = posix_spawn_file_actions_adddup2(&fa, r->stdin_fd, 0)) != 0 ||
        (*err = posix_spawn_file_actions_adddup2(&fa, r->out_w, 1)) != 0 ||
        (*err = posix_spawn_file_actions_adddup2(&fa, r->err_w, 2)) != 0 ||
        (*err = posix_spawn_file_actions_addfchdir_np(&fa, r->dir_fd)) != 0 ||
        (*err = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) != 0) {
        (void)posix_spawn_file_actions_destroy(&fa);
        return NULL;
    }
    fds[0] = r->stdin_fd;
    fds[1] = r->out_w;
    fds[2] = r->err_w;
    fds[3] = r->dir_fd;
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
    char path[NAME_MAX + 3];
    int err;

    /* Relative to the folder the child fchdir()s into (NAME_MAX fits). */
    (void)snprintf(path, sizeof path, "./%s", r->name);
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
    err = posix_spawn(&r->pid, path, fa, &at, r->argv, r->envp);
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
    cgirelay_log(r, RL_LOG_ERROR, "cannot start: %s", strerror(err));
    return cgirelay_reply(r, 500, "cannot run the script");
}

int cgispawn_start_or_reply(struct relay *r)
{
    if (make_pipe(&r->out_r, &r->out_w, 1) != RL_OK ||
        make_pipe(&r->err_r, &r->err_w, 1) != RL_OK) {
        cgirelay_log(r, RL_LOG_ERROR, "cannot start: %s", strerror(errno));
        return cgirelay_reply(r, 500, "cannot run the script");
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

static void child_exec(const struct relay *r, const char *path, int ep) __attribute__((noreturn));

/* In the child, between fork and execve: only async-signal-safe calls. */
static void child_exec(const struct relay *r, const char *path, int ep)
{
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
    if (fchdir(r->dir_fd) < 0)
        child_fail(ep, 0);
    close_from(3, ep - 1);
    close_from(ep + 1, INT_MAX);
    execve(path, r->argv, r->envp);
    child_fail(ep, 1);
}

/* After fork: the child's ends are not ours; the exec pipe tells whether
 * execve worked (EOF) or why it did not. RL_OK, or RL_ERR (answered). */
static int spawn_check_or_reply(struct relay *r, int *ep_r)
{
    static const char *const stage[] = {"fchdir", "execve", "dup2"};
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
    while (waitpid(r->pid, &r->wstatus, 0) < 0 && errno == EINTR)
        ;
    r->reaped = 1;
    cgirelay_log(r, RL_LOG_ERROR, "cannot run: %s: %s (a bad #! line?)",
                 stage[ce.stage >= 0 && ce.stage <= 2 ? ce.stage : 1], strerror(ce.err));
    return cgirelay_reply(r, 502, "script could not be started");
}

int cgispawn_start_or_reply(struct relay *r)
{
    char path[NAME_MAX + 3];
    int ep[2] = {-1, -1};

    (void)snprintf(path, sizeof path, "./%s", r->name);
    if (make_pipe(&r->out_r, &r->out_w, 1) != RL_OK ||
        make_pipe(&r->err_r, &r->err_w, 1) != RL_OK || pipe2(ep, O_CLOEXEC) != 0)
        goto fail;
    r->pid = fork();
    if (r->pid < 0)
        goto fail;
    if (r->pid == 0)
        child_exec(r, path, ep[1]);
    /* Both sides set the group: whichever runs first, a kill(-pid)
     * cannot miss it. EACCES after the child's execve is harmless. */
    (void)setpgid(r->pid, r->pid);
    fd_close(&ep[1]);
    return spawn_check_or_reply(r, &ep[0]);
fail:
    cgirelay_log(r, RL_LOG_ERROR, "cannot start: %s", strerror(errno));
    fd_close(&ep[0]);
    fd_close(&ep[1]);
    return cgirelay_reply(r, 500, "cannot run the script");
}

#endif /* RL_HAVE_SPAWN_CLOSEFROM */
