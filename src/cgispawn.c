/*
 * cgispawn.c - start a process (see cgiint.h): from fds, argv, envp and
 * a folder fd to a pid or an errno; it knows nothing of requests.
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

#include "cgirelay.h"
#include "cgiint.h"
#include "log.h"
#include "rl.h"
#include "util.h"

#define RELAY_CLOSE_MAX 65536 /* fd scan bound when close_range is missing */

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define RL_HAVE_SPAWN_CLOSEFROM 1 /* posix_spawn_file_actions_addclosefrom_np */
#endif

/* pipe with both ends O_CLOEXEC; the parent's end also non-blocking, the
 * child's end stays blocking as CGI scripts expect. pipe2's O_NONBLOCK
 * lands on both ends' open file descriptions, so one F_SETFL clears it on
 * the child's: its only status flag, so 0 is exact (two syscalls a pipe,
 * not three). */
int cgispawn_pipe(int *rd, int *wr, int mine_is_read)
{
    int fds[2];

    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
        return RL_ERR;
    *rd = fds[0];
    *wr = fds[1];
    return fcntl(mine_is_read ? *wr : *rd, F_SETFL, 0) < 0 ? RL_ERR : RL_OK;
}

#ifdef RL_HAVE_SPAWN_CLOSEFROM

void cgispawn_cache_free(struct cgirelay_cache *c)
{
    if (c->actions != NULL) {
        (void)posix_spawn_file_actions_destroy(c->actions);
        free(c->actions);
        c->actions = NULL;
    }
}

/* Fill a with the file actions for these fds: dup2 onto 0-2, fchdir to
 * the folder, close the rest. 0 or an errno (a then destroyed). */
static int build_actions(posix_spawn_file_actions_t *a, int dir_fd, const int fds[3])
{
    int err;

    if ((err = posix_spawn_file_actions_init(a)) != 0)
        return err;
    /* dup2 of an fd onto itself clears its CLOEXEC (glibc >= 2.29);
     * libfcgi's connection is not O_CLOEXEC, so close from 3, after the
     * fchdir that needs the folder's fd. */
    if ((err = posix_spawn_file_actions_adddup2(a, fds[0], 0)) != 0 ||
        (err = posix_spawn_file_actions_adddup2(a, fds[1], 1)) != 0 ||
        (err = posix_spawn_file_actions_adddup2(a, fds[2], 2)) != 0 ||
        (err = posix_spawn_file_actions_addfchdir_np(a, dir_fd)) != 0 ||
        (err = posix_spawn_file_actions_addclosefrom_np(a, 3)) != 0)
        (void)posix_spawn_file_actions_destroy(a);
    return err;
}

/* The file actions for these fds into *fa. glibc checks every fd an add*
 * names against getrlimit(RLIMIT_NOFILE), seven syscalls a build, so the
 * last one is kept in the cache (c not NULL): the fd numbers repeat
 * request after request. Without a cache they are built into mine, which
 * the caller destroys. 0 or an errno. */
static int spawn_actions(struct cgirelay_cache *c, int dir_fd, const int fds[3],
                         posix_spawn_file_actions_t *mine, posix_spawn_file_actions_t **fa)
{
    const int want[4] = {fds[0], fds[1], fds[2], dir_fd};
    posix_spawn_file_actions_t *a = mine;
    int err;

    if (c != NULL && c->actions != NULL && memcmp(c->action_fds, want, sizeof want) == 0) {
        *fa = c->actions;
        return 0;
    }
    if (c != NULL) {
        cgispawn_cache_free(c);
        a = xmalloc(sizeof *a);
    }
    if ((err = build_actions(a, dir_fd, fds)) != 0) {
        if (a != mine)
            free(a);
        return err;
    }
    if (a != mine) {
        c->actions = a;
        memcpy(c->action_fds, want, sizeof want);
    }
    *fa = a;
    return 0;
}

/* Own process group (kill(-pid) reaches its children too); every signal
 * back to SIG_DFL (our ignored SIGPIPE and SIGTERM/SIGINT/SIGUSR1
 * handlers), nothing blocked. 0 or an errno. */
static int spawn_attr(posix_spawnattr_t *at)
{
    sigset_t all, none;
    int err;

    sigfillset(&all);
    sigemptyset(&none);
    if ((err = posix_spawnattr_init(at)) != 0)
        return err;
    if ((err = posix_spawnattr_setflags(at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                                POSIX_SPAWN_SETSIGMASK)) != 0 ||
        (err = posix_spawnattr_setpgroup(at, 0)) != 0 ||
        (err = posix_spawnattr_setsigdefault(at, &all)) != 0 ||
        (err = posix_spawnattr_setsigmask(at, &none)) != 0)
        (void)posix_spawnattr_destroy(at);
    return err;
}

int cgispawn(struct cgirelay_cache *cache, int dir_fd, const char *name, const int fds[3],
             char *const argv[], char *const envp[], pid_t *pid)
{
    posix_spawn_file_actions_t mine, *fa;
    posix_spawnattr_t at;
    char path[NAME_MAX + 3];
    int err;

    *pid = -1;
    /* Relative to the folder the child fchdir()s into (NAME_MAX fits). */
    (void)snprintf(path, sizeof path, "./%s", name);
    if ((err = spawn_actions(cache, dir_fd, fds, &mine, &fa)) != 0)
        return err;
    if ((err = spawn_attr(&at)) == 0) {
        /* glibc (CLONE_VFORK) returns the child's errno from its file
         * actions or execve, and has reaped that child itself. */
        err = posix_spawn(pid, path, fa, &at, argv, envp);
        (void)posix_spawnattr_destroy(&at);
    }
    if (fa == &mine)
        (void)posix_spawn_file_actions_destroy(&mine);
    if (err != 0)
        *pid = -1;
    return err;
}

#else /* fork + execve, reporting exec errors through a CLOEXEC pipe */

#define RELAY_CLOSE_MAX 65536 /* fd scan bound when close_range is missing */

void cgispawn_cache_free(struct cgirelay_cache *c)
{
    (void)c; /* nothing kept */
}

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

static void child_fail(int ep) __attribute__((noreturn));

/* Tell the parent why we could not exec (errno), then die. */
static void child_fail(int ep)
{
    int e = errno;

    if (write(ep, &e, sizeof e) < 0)
        _exit(127);
    _exit(127);
}

static void child_exec(int dir_fd, const char *path, const int fds[3], char *const argv[],
                       char *const envp[], int ep) __attribute__((noreturn));

/* In the child, between fork and execve: only async-signal-safe calls. */
static void child_exec(int dir_fd, const char *path, const int fds[3], char *const argv[],
                       char *const envp[], int ep)
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
    if (move_fd(fds[0], 0) < 0 || move_fd(fds[1], 1) < 0 || move_fd(fds[2], 2) < 0)
        child_fail(ep);
    /* libfcgi's connection is not O_CLOEXEC: close all but the error pipe. */
    if (fchdir(dir_fd) < 0)
        child_fail(ep);
    close_from(3, ep - 1);
    close_from(ep + 1, INT_MAX);
    execve(path, argv, envp);
    child_fail(ep);
}

/* After fork: the exec pipe tells whether execve worked (EOF) or why it
 * did not (then the child is reaped). 0 or an errno. */
static int spawn_check(pid_t *pid, int ep_r)
{
    ssize_t n;
    int e, st;

    do
        n = read(ep_r, &e, sizeof e);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof e)
        return 0;
    while (waitpid(*pid, &st, 0) < 0 && errno == EINTR)
        ;
    *pid = -1;
    return e != 0 ? e : ENOEXEC;
}

int cgispawn(struct cgirelay_cache *cache, int dir_fd, const char *name, const int fds[3],
             char *const argv[], char *const envp[], pid_t *pid)
{
    char path[NAME_MAX + 3];
    int ep[2] = {-1, -1}, err;

    (void)cache;
    (void)snprintf(path, sizeof path, "./%s", name);
    if (pipe2(ep, O_CLOEXEC) != 0)
        return errno;
    *pid = fork();
    if (*pid == 0)
        child_exec(dir_fd, path, fds, argv, envp, ep[1]);
    err = *pid < 0 ? errno : 0;
    fd_close(&ep[1]);
    if (*pid > 0) {
        /* Both sides set the group: whichever runs first, a kill(-pid)
         * cannot miss it. EACCES after the child's execve is harmless. */
        (void)setpgid(*pid, *pid);
        err = spawn_check(pid, ep[0]);
    }
    fd_close(&ep[0]);
    return err;
}

#endif /* RL_HAVE_SPAWN_CLOSEFROM */
