/*
 * listener.h - `fcgi-ratelimit --listen`: open the FastCGI socket ourselves
 * (unix path, IPv4 or IPv6; not FCGX_OpenSocket, which exits on error and
 * knows no IPv6), pre-fork N workers that each run the accept loop, respawn
 * a worker that dies, and on SIGTERM/SIGINT stop accepting, let in-flight
 * requests finish and exit 0.
 */
#ifndef RL_LISTENER_H
#define RL_LISTENER_H

#include "rl.h"

/*
 * Open a listening socket for spec: "unix:/path", "HOST:PORT" (IPv4 or a
 * name), "[::1]:PORT", or "fd:N" (an inherited listening socket, e.g. fd 0
 * from systemd's StandardInput=socket: checked, not opened). A stale unix
 * socket file is replaced only when it is a socket nobody listens on; mode
 * (e.g. 0660) is applied to a unix socket when >= 0. Returns the fd (>= 0,
 * close-on-exec when we opened it), or -1 with *err (message without the
 * spec: the caller names it).
 */
int listener_open(const char *spec, int mode, struct rl_err *err);

/*
 * Run the supervisor: fork workers children, each calling
 * worker_fn(listen_fd, ctx) and _exit()ing with its result; respawn any
 * that dies at once (only one that keeps dying within 1 s of its start
 * waits 1 s: a crash loop); on
 * SIGTERM, SIGINT or SIGHUP remove a unix socket file named in spec, send
 * SIGTERM to every worker, wait for all of them, and return 0 (a second
 * such signal sends SIGKILL instead). Workers get the caller's signal mask
 * and SIGCHLD disposition back, their own process group, and (Linux)
 * SIGTERM should the supervisor die. Returns 1 when it cannot start.
 */
int listener_run(const char *spec, int listen_fd, int workers,
                 int (*worker_fn)(int listen_fd, void *ctx), void *ctx);

#endif
