/*
 * cgiscript.c - which script runs (see cgiint.h): picked, resolved and
 * checked; a refusal is a status and a message for the caller to answer.
 *
 * The script is picked (RATELIMIT_BACKEND, SCRIPT_FILENAME, PATH_TRANSLATED,
 * argv[1]; never ourselves), resolved with realpath() and checked (inside
 * RATELIMIT_SCRIPT_ROOT, a regular file, executable). Then its folder is
 * opened (O_PATH) and that fd is checked again, through its real path in
 * /proc/self/fd, against the root; the script is the entry of that folder
 * with the inode that was checked, not a symlink. The child changes into
 * the folder by the fd (fchdir) and runs "./name" (cgispawn.c): whatever
 * happens to the path meanwhile (a folder swapped for a symlink), it runs
 * inside the folder that was checked. The one window left is the last
 * component: between the inode check and execve() it could be replaced
 * by a symlink, but only by someone who may write into a folder inside
 * the root, who can put any script there anyway.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "cgirelay.h"
#include "cgiint.h"
#include "log.h"
#include "rl.h"
#include "util.h"

/* What the client is told (the log says why). */
#define MSG_NOT_FOUND "script not found"
#define MSG_NOT_ALLOWED "script not allowed"
#define MSG_NOT_EXECUTABLE "script not executable"

/* A refusal: err's kind gives the status (rl_err_status), msg is what
 * the client is told. RL_ERR, so that callers can return it. */
static int refuse(struct rl_err *err, int kind, const char *msg)
{
    rl_err_set(err, kind, "%s", msg);
    return RL_ERR;
}

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
 * by is_self and check_script. */
static void stat_script(struct relay *r, const char *real)
{
    r->st_err = stat(real, &r->st) < 0 ? errno : 0;
}

/* The identity of our own binary, stat'ed once per self_path (it is the
 * same string for the process's life) and kept in the cache. 0, or -1
 * when it cannot be stat'ed (not kept: retried next time). */
static int self_id(struct cgirelay_cache *c, const char *self, dev_t *dev, ino_t *ino)
{
    struct stat st;

    if (c->self_path == NULL || strcmp(c->self_path, self) != 0) {
        if (stat(self, &st) < 0)
            return -1;
        free(c->self_path);
        c->self_path = xstrdup(self);
        c->self_dev = st.st_dev;
        c->self_ino = st.st_ino;
    }
    *dev = c->self_dev;
    *ino = c->self_ino;
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
    return r->st_err == 0 && self_id(r->cache, self, &dev, &ino) == 0 && r->st.st_dev == dev &&
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

/* realpath(root), resolved once per root string and kept in the cache:
 * it costs a readlink per path component, on every request otherwise.
 * Failures are not kept, so a root created later is found. Borrowed;
 * NULL with errno. */
static const char *root_real(struct cgirelay_cache *c, const char *root)
{
    char *rr;

    if (c->root != NULL && strcmp(c->root, root) == 0)
        return c->root_real;
    if ((rr = realpath(root, NULL)) == NULL)
        return NULL;
    free(c->root);
    free(c->root_real);
    c->root = xstrdup(root);
    c->root_real = rr;
    return rr;
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
    if ((rr = root_real(r->cache, root)) == NULL) {
        rl_log(RL_LOG_ERROR, "RATELIMIT_SCRIPT_ROOT %s: %s", root, strerror(errno));
        return 0;
    }
    n = strlen(rr);
    return (n == 1 && rr[0] == '/') ||
           (strncmp(real, rr, n) == 0 && (real[n] == '/' || real[n] == '\0'));
}

/* The checks on the realpath (stat'ed into r->st): inside the root, a
 * regular file, executable. RL_OK, or RL_ERR with err set. */
static int check_script(struct relay *r, const char *real, struct rl_err *err)
{
    if (!inside_root(r, real)) {
        cgirelay_log(r, RL_LOG_WARN, "outside RATELIMIT_SCRIPT_ROOT, refused");
        return refuse(err, RL_E_DENIED, MSG_NOT_ALLOWED);
    }
    if (r->st_err != 0) {
        cgirelay_log(r, RL_LOG_WARN, "not found: %s", strerror(r->st_err));
        return refuse(err, RL_E_NOTFOUND, MSG_NOT_FOUND);
    }
    if (!S_ISREG(r->st.st_mode)) {
        cgirelay_log(r, RL_LOG_WARN, "not a regular file, refused");
        return refuse(err, RL_E_DENIED, MSG_NOT_EXECUTABLE);
    }
    if (faccessat(AT_FDCWD, real, X_OK, AT_EACCESS) < 0) {
        cgirelay_log(r, RL_LOG_WARN, "not executable: %s", strerror(errno));
        return refuse(err, RL_E_DENIED, MSG_NOT_EXECUTABLE);
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
 * not a symlink). Sets r->name. RL_OK, or RL_ERR with err set.
 */
static int open_dir(struct relay *r, struct rl_err *err)
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
        return refuse(err, RL_E_NOTFOUND, MSG_NOT_FOUND);
    }
    if (!dir_inside_root(r)) {
        cgirelay_log(r, RL_LOG_WARN, "folder outside RATELIMIT_SCRIPT_ROOT (moved?), refused");
        return refuse(err, RL_E_DENIED, MSG_NOT_ALLOWED);
    }
    if (fstatat(r->dir_fd, r->name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
        st.st_dev != r->st.st_dev || st.st_ino != r->st.st_ino) {
        cgirelay_log(r, RL_LOG_WARN, "changed while being checked, refused");
        return refuse(err, RL_E_DENIED, MSG_NOT_ALLOWED);
    }
    return RL_OK;
}

int cgiscript_resolve(struct relay *r, struct rl_err *err)
{
    char *real, *path;
    int rp_errno, self_only;

    path = pick_script(r, &real, &rp_errno, &self_only);
    if (path == NULL) {
        cgirelay_log(r, RL_LOG_WARN, "%s",
                     self_only ? "the request names fcgi-ratelimit itself"
                               : "no script named (RATELIMIT_BACKEND, "
                                 "SCRIPT_FILENAME, PATH_TRANSLATED)");
        return self_only ? refuse(err, RL_E_DENIED, MSG_NOT_ALLOWED)
                         : refuse(err, RL_E_NOTFOUND, MSG_NOT_FOUND);
    }
    cgirelay_printable(r->what, sizeof r->what, real != NULL ? real : path);
    free(path);
    if (real == NULL) {
        cgirelay_log(r, RL_LOG_WARN, "cannot resolve: %s", strerror(rp_errno));
        return rp_errno == EACCES ? refuse(err, RL_E_DENIED, MSG_NOT_ALLOWED)
                                  : refuse(err, RL_E_NOTFOUND, MSG_NOT_FOUND);
    }
    r->script = real;
    if (is_self(r, real)) {
        cgirelay_log(r, RL_LOG_WARN, "RATELIMIT_BACKEND is fcgi-ratelimit itself, refused");
        return refuse(err, RL_E_DENIED, MSG_NOT_ALLOWED);
    }
    if (check_script(r, real, err) != RL_OK)
        return RL_ERR;
    return open_dir(r, err);
}
