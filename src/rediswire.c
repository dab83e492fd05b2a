/*
 * rediswire.c - one hiredis context's I/O under a deadline: the RESP
 * builder, connect, send, read, and what an error reply means. See
 * rediswire.h; the policy (which server, retries, the breaker, logging)
 * is the caller's.
 */
#include "rediswire.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "deadline.h"
#include "util.h"

#define CONNECT_ATTEMPTS 3 /* only a signal (EINTR) makes us try again */

/* ------------------------------------------------------------ RESP */

/* Append n bytes, or mark the command overflowed. */
static void cmd_put(struct redisconn_cmd *cmd, const char *p, size_t n)
{
    if (cmd->overflow || n > sizeof(cmd->buf) - cmd->len) {
        cmd->overflow = 1;
        return;
    }
    memcpy(cmd->buf + cmd->len, p, n);
    cmd->len += n;
}

/* Write v in decimal ending just before end; the first digit's address. */
static char *dec_rev(char *end, unsigned long long v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return end;
}

/* Append tag ('*' or '$'), n in decimal and CRLF: a RESP header. */
static void cmd_put_header(struct redisconn_cmd *cmd, char tag, unsigned long long n)
{
    char tmp[24];
    char *p;

    tmp[22] = '\r';
    tmp[23] = '\n';
    p = dec_rev(tmp + 22, n);
    *--p = tag;
    cmd_put(cmd, p, (size_t)(tmp + sizeof(tmp) - p));
}

void redisconn_cmd_init(struct redisconn_cmd *cmd, int argc)
{
    cmd->len = 0;
    cmd->overflow = argc < 0;
    cmd->left = argc < 0 ? 0 : argc;
    cmd_put_header(cmd, '*', (unsigned long long)cmd->left);
}

void redisconn_cmd_str_header(struct redisconn_cmd *cmd, size_t len)
{
    if (cmd->left-- <= 0)
        cmd->overflow = 1;
    cmd_put_header(cmd, '$', len);
}

void redisconn_cmd_str(struct redisconn_cmd *cmd, const char *s, size_t len)
{
    redisconn_cmd_str_header(cmd, len);
    cmd_put(cmd, s, len);
    cmd_put(cmd, "\r\n", 2);
}

void redisconn_cmd_ll(struct redisconn_cmd *cmd, long long v)
{
    char tmp[24];
    /* The magnitude through unsigned arithmetic: LLONG_MIN has no positive
     * long long. */
    char *p =
        dec_rev(tmp + sizeof(tmp), v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v);

    if (v < 0)
        *--p = '-';
    redisconn_cmd_str(cmd, p, (size_t)(tmp + sizeof(tmp) - p));
}

int redisconn_cmd_complete(const struct redisconn_cmd *cmd)
{
    return !cmd->overflow && cmd->left == 0;
}

/* ------------------------------------------------------------ I/O */

/* Dead context or failed read: say why. */
static void set_ctx_err(struct rl_err *err, const redisContext *c, const char *what)
{
    rl_err_set(err, RL_E_REDIS, "%s: %s", what, c->err ? c->errstr : "no reply");
}

/* Say why a system call failed; saved is its errno. EINTR reaches here
 * only when the request's deadline (deadline.h) fired. */
static void set_errno_err(struct rl_err *err, int saved, const char *what)
{
    rl_err_set(err, RL_E_REDIS, "%s: %s", what,
               saved == EINTR ? "interrupted by the request deadline" : strerror(saved));
}

/* Wait until fd is ready for events (POLLIN or POLLOUT) before deadline
 * (now_ms() clock). RL_OK, or RL_ERR with *err: time is up, poll failed,
 * or a signal was the request deadline's (any other signal: wait on).
 * POLLERR and POLLHUP count as ready: the read or write that follows
 * reports them. */
static int wait_fd(int fd, short events, long long deadline, const char *what, struct rl_err *err)
{
    struct pollfd pfd;

    pfd.fd = fd;
    pfd.events = events;
    for (;;) {
        long long left = deadline - now_ms();
        int n, saved;

        if (left <= 0) {
            rl_err_set(err, RL_E_REDIS, "%s: timed out", what);
            return RL_ERR;
        }
        pfd.revents = 0;
        n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
        saved = errno;
        if (n > 0)
            return RL_OK;
        if (n < 0 && (saved != EINTR || deadline_expired())) {
            set_errno_err(err, saved, what);
            return RL_ERR;
        }
    }
}

/* Send p[0..n) on the non-blocking fd before deadline. A full socket
 * buffer waits for POLLOUT; MSG_NOSIGNAL: a closed peer is EPIPE, not a
 * signal. RL_OK, or RL_ERR with *err. */
static int send_all(int fd, const char *p, size_t n, long long deadline, const char *what,
                    struct rl_err *err)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        int saved = errno;

        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && saved != EAGAIN && saved != EWOULDBLOCK &&
                   (saved != EINTR || deadline_expired())) {
            set_errno_err(err, saved, what);
            return RL_ERR;
        } else if (wait_fd(fd, POLLOUT, deadline, what, err) != RL_OK) {
            return RL_ERR;
        }
    }
    return RL_OK;
}

int rediswire_send(redisContext *c, const struct rediswire_part *parts, size_t nparts,
                   long long deadline, const char *what, struct rl_err *err)
{
    size_t i;

    for (i = 0; i < nparts; i++) {
        if (send_all(c->fd, parts[i].p, parts[i].n, deadline, what, err) != RL_OK)
            return RL_ERR;
    }
    return RL_OK;
}

/* The reader is tried first (no system call); then each poll() that says
 * POLLIN is followed by one read (redisBufferRead), so the fd never
 * blocks. */
redisReply *rediswire_read(redisContext *c, long long deadline, const char *what,
                           struct rl_err *err)
{
    for (;;) {
        void *r = NULL;

        if (redisGetReplyFromReader(c, &r) != REDIS_OK) {
            set_ctx_err(err, c, what);
            return NULL;
        }
        if (r != NULL)
            return r;
        if (wait_fd(c->fd, POLLIN, deadline, what, err) != RL_OK)
            return NULL;
        if (redisBufferRead(c) != REDIS_OK) {
            set_ctx_err(err, c, what);
            return NULL;
        }
    }
}

redisReply *rediswire_roundtrip(redisContext *c, const struct rediswire_part *parts, size_t nparts,
                                long long deadline, const char *what, struct rl_err *err)
{
    if (rediswire_send(c, parts, nparts, deadline, what, err) != RL_OK)
        return NULL;
    return rediswire_read(c, deadline, what, err);
}

redisReply *rediswire_command(redisContext *c, const struct redisconn_cmd *cmd, long long deadline,
                              const char *what, struct rl_err *err)
{
    struct rediswire_part part = {cmd->buf, cmd->len};

    return rediswire_roundtrip(c, &part, 1, deadline, what, err);
}

/* ------------------------------------------------------------ connecting */

static struct timeval timeout_tv(int ms)
{
    struct timeval tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

static redisContext *connect_once(const char *host, int port, const char *path, int timeout_ms)
{
    struct timeval tv = timeout_tv(timeout_ms);

    if (path != NULL)
        return redisConnectUnixWithTimeout(path, tv);
    return redisConnectWithTimeout(host != NULL ? host : "127.0.0.1", port, tv);
}

/* Non-blocking (rediswire_read() polls) and close-on-exec: hiredis 0.14
 * opens the socket without SOCK_CLOEXEC. RL_OK, or RL_ERR with errno. */
static int fd_setup(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return RL_ERR;
    return RL_OK;
}

/* A signal during hiredis' connect poll() fails the connect (libfcgi's
 * handlers have no SA_RESTART): that is no outage, so try again a few
 * times. */
redisContext *rediswire_connect(const char *host, int port, const char *path, int timeout_ms,
                                struct rl_err *err)
{
    redisContext *c = NULL;
    int attempt, saved = 0;

    for (attempt = 0; attempt < CONNECT_ATTEMPTS; attempt++) {
        errno = 0;
        c = connect_once(host, port, path, timeout_ms);
        saved = errno;
        if (c == NULL || !c->err || saved != EINTR || deadline_expired())
            break;
        redisFree(c);
        c = NULL;
    }
    if (c == NULL) {
        rl_err_set(err, RL_E_REDIS, "connect: %s",
                   saved == EINTR ? "interrupted" : "out of memory");
        return NULL;
    }
    if (c->err) {
        rl_err_set(err, RL_E_REDIS, "connect: %s", c->errstr);
        redisFree(c);
        return NULL;
    }
    if (fd_setup(c->fd) != RL_OK) {
        set_errno_err(err, errno, "connect: fcntl");
        redisFree(c);
        return NULL;
    }
    /* TCP: hiredis sets TCP_NODELAY itself; keepalive finds a peer that
     * vanished while the connection sat idle between requests. */
    if (path == NULL)
        (void)redisEnableKeepAlive(c);
    return c;
}

/* ------------------------------------------------------------ error replies */

int rediswire_error_is(const redisReply *r, const char *code)
{
    size_t n = strlen(code);

    return r->type == REDIS_REPLY_ERROR && r->len >= n && memcmp(r->str, code, n) == 0 &&
           (r->len == n || r->str[n] == ' ');
}

int rediswire_error_is_server_state(const redisReply *r)
{
    static const char *const codes[] = {"LOADING", "BUSY",        "MASTERDOWN", "READONLY", "OOM",
                                        "MISCONF", "CLUSTERDOWN", "NOREPLICAS", "TRYAGAIN"};
    size_t i;

    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (rediswire_error_is(r, codes[i]))
            return 1;
    }
    return 0;
}

int rediswire_conf_of(const redisReply *r, int refused)
{
    if (r->type != REDIS_REPLY_ERROR)
        return RW_CONF_NONE;
    if (rediswire_error_is(r, "NOAUTH"))
        return RW_CONF_AUTH;
    if (refused != RW_CONF_NONE)
        return refused;
    if (rediswire_error_is(r, "WRONGPASS"))
        return RW_CONF_AUTH;
    if (strstr(r->str, "NOPERM") != NULL || strstr(r->str, "no permissions") != NULL ||
        strstr(r->str, "can't run this command") != NULL)
        return RW_CONF_NOPERM;
    return RW_CONF_NONE;
}

const char *rediswire_conf_name(int kind)
{
    static const char *const names[RW_CONF_KINDS] = {"", "authentication refused",
                                                     "database refused", "ACL permission missing"};

    return kind > RW_CONF_NONE && kind < RW_CONF_KINDS ? names[kind] : "";
}
