/*
 * acceptor.h - a worker's accept loop in front of libfcgi: hand libfcgi
 * only connections that come from an allowed peer and whose FastCGI head
 * (BEGIN_REQUEST and every PARAMS record) has arrived whole and
 * well-formed, so that no peer can hold a worker by sending a few bytes,
 * or nothing, or crash it with a malformed params record.
 *
 * Connections still sending their head wait in a small table, each with a
 * deadline, and are watched together with the listening socket in one
 * poll(); a connection past its deadline, malformed, or from a peer outside
 * the allow list is closed (and logged). The listening socket is made
 * non-blocking (workers share it); a head that came in one piece costs a
 * poll() and a recv(MSG_PEEK) more than libfcgi's own accept.
 */
#ifndef RL_ACCEPTOR_H
#define RL_ACCEPTOR_H

#include <signal.h>

#include "cidr.h"

struct acceptor;

/*
 * New acceptor on listen_fd (borrowed). head_ms: how long a connection
 * may take to send its head. peers (borrowed; may be NULL = everyone):
 * the addresses allowed on a TCP listening socket; unix sockets are
 * guarded by their file permissions and are not checked.
 */
struct acceptor *acceptor_new(int listen_fd, long long head_ms, const struct rl_cidr_list *peers);

/* Close every pending connection and free; NULL is a no-op. */
void acceptor_free(struct acceptor *a);

/*
 * The next connection ready for FCGX_Accept_r: a blocking, close-on-exec
 * fd the caller owns. *body_whole is set to 1 when the request's body is
 * in too (fcgiwire.h). It waits with the signal mask waitmask (ppoll):
 * the caller keeps the signals that set *stop blocked everywhere else, so
 * that one sent while a request is served is taken here, before the
 * next connection is taken even when one is waiting, and none can
 * slip in between the check of *stop and the wait. Returns -1 with errno
 * when *stop became set (EINTR) or accept() failed for good (EBADF,
 * EINVAL: not a listening socket).
 */
int acceptor_next(struct acceptor *a, volatile sig_atomic_t *stop, const sigset_t *waitmask,
                  int *body_whole);

/*
 * Give back a connection the web server keeps open for its next request
 * (FCGI_KEEP_CONN), owned by the acceptor from now on: its next head is
 * awaited and checked like a new connection's, within a fresh deadline.
 */
void acceptor_add(struct acceptor *a, int fd);

/*
 * The peer allow list of FCGI_WEB_SERVER_ADDRS (libfcgi's convention:
 * addresses separated by commas; CIDR blocks accepted too), or loopback
 * (127.0.0.0/8, ::1) when value is NULL or empty. RL_OK, or RL_ERR with
 * *err naming the bad entry.
 */
int acceptor_peers_parse(const char *value, struct rl_cidr_list *out, struct rl_err *err);

#endif
