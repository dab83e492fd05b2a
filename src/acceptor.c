/*
 * acceptor.c - the pre-libfcgi accept loop of acceptor.h. The pending
 * table is small and fixed: when it is full the oldest connection is
 * dropped, so a flood of silent connections costs each of them at most
 * head_ms and never blocks a complete request for longer than that.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acceptor.h"
#include "fcgiwire.h"
#include "log.h"
#include "util.h"

#define PENDING_MAX 32
#define RECHECK_MS 20 /* how often a connection with part of a head is looked at */
#define PEEK_MAX (FCGIWIRE_PARAMS_MAX + 64 * 1024)

struct pending {
    int fd;
    long long deadline; /* now_ms() clock */
    int seen;           /* bytes waiting at the last look (FIONREAD) */
};

struct acceptor {
    int listen_fd;
    long long head_ms;
    const struct rl_cidr_list *peers;
    struct pending p[PENDING_MAX];
    int n;
    unsigned char *peek; /* PEEK_MAX bytes */
};

struct acceptor *acceptor_new(int listen_fd, long long head_ms, const struct rl_cidr_list *peers)
{
    struct acceptor *a = xcalloc(1, sizeof(*a));

    a->listen_fd = listen_fd;
    a->head_ms = head_ms;
    a->peers = peers;
    a->peek = xmalloc(PEEK_MAX);
    /* Several workers share the socket: one that lost the race for a
     * connection poll() announced must not block in accept(). Accepted
     * connections do not inherit the flag. */
    (void)fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
    return a;
}

void acceptor_free(struct acceptor *a)
{
    if (a == NULL)
        return;
    for (int i = 0; i < a->n; i++)
        close(a->p[i].fd);
    free(a->peek);
    free(a);
}

int acceptor_peers_parse(const char *value, struct rl_cidr_list *out, struct rl_err *err)
{
    if (value == NULL || value[0] == '\0')
        value = "127.0.0.0/8 ::1/128";
    return cidr_list_parse(value, out, err);
}

/* 1 when the peer of a TCP connection may be served. */
static int peer_ok(const struct acceptor *a, const struct sockaddr_storage *ss, char *text,
                   size_t textsz)
{
    struct rl_addr addr;

    text[0] = '\0';
    memset(&addr, 0, sizeof(addr));
    if (ss->ss_family == AF_INET) {
        addr.family = AF_INET;
        memcpy(addr.a, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

        addr.family = AF_INET6;
        memcpy(addr.a, &s6->sin6_addr, 16);
        if (memcmp(addr.a, mapped, 12) == 0) { /* stored as the IPv4 it carries */
            addr.family = AF_INET;
            memmove(addr.a, addr.a + 12, 4);
            memset(addr.a + 4, 0, 12);
        }
    } else {
        return 1; /* unix socket: its permissions decide */
    }
    (void)cidr_format(&addr, text, textsz);
    return a->peers == NULL || cidr_list_match(a->peers, &addr);
}

/* Drop pending connection i (the table stays dense). */
static void drop(struct acceptor *a, int i, const char *why)
{
    rl_log(RL_LOG_INFO, "FastCGI connection dropped: %s", why);
    close(a->p[i].fd);
    a->p[i] = a->p[--a->n];
}

static int is_inet(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET || ss->ss_family == AF_INET6;
}

/* Put fd in the table with a fresh deadline; when the table is full the
 * connection nearest its deadline (the oldest) makes room. */
static void pending_add(struct acceptor *a, int fd)
{
    if (a->n == PENDING_MAX) {
        int oldest = 0;

        for (int i = 1; i < a->n; i++)
            if (a->p[i].deadline < a->p[oldest].deadline)
                oldest = i;
        drop(a, oldest, "too many connections still sending their request");
    }
    a->p[a->n].fd = fd;
    a->p[a->n].deadline = now_ms() + a->head_ms;
    a->p[a->n].seen = 0;
    a->n++;
}

void acceptor_add(struct acceptor *a, int fd)
{
    pending_add(a, fd);
}

/* Accept one connection if the (non-blocking) listening socket has one.
 * Returns 0, or -1 with errno when accept() failed for good. */
static int take_new(struct acceptor *a)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char text[64];
    int fd;

    memset(&ss, 0, sizeof(ss));
    fd = accept4(a->listen_fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);

    if (fd < 0) {
        /* Another worker took it, it went away, or the network had a
         * hiccup (accept(2): retry on these): not our failure. */
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EPROTO ||
            errno == EINTR || errno == ENETDOWN || errno == ENETUNREACH || errno == EHOSTUNREACH ||
            errno == EHOSTDOWN || errno == ENONET || errno == ENOPROTOOPT || errno == EOPNOTSUPP ||
            errno == ECONNRESET || errno == ETIMEDOUT || errno == EPERM)
            return 0;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* Out of fds or memory: a pause, not the worker's end. */
            rl_log(RL_LOG_ERROR, "accept: %s", strerror(errno));
            (void)poll(NULL, 0, 100);
            return 0;
        }
        return -1;
    }
    if (!peer_ok(a, &ss, text, sizeof(text))) {
        rl_log(RL_LOG_WARN, "FastCGI connection from %s refused: not in FCGI_WEB_SERVER_ADDRS",
               text);
        close(fd);
        return 0;
    }
    if (is_inet(&ss)) {
        int one = 1;

        /* What libfcgi's accept did: answers are small writes, and Nagle
         * with delayed ACKs would hold them back. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    pending_add(a, fd);
    return 0;
}

/* Look at pending connection i: its fd when its head is whole (it leaves
 * the table), -1 otherwise (still arriving, or dropped). */
static int check(struct acceptor *a, int i, long long now, int *body_whole)
{
    struct fcgiwire_head head = {"no request before the deadline", 0};
    ssize_t r;
    int st, avail = -1;

    /* Nothing new since the last look: no copy, no scan (a head that
     * trickles in must not cost a peek of everything each time). */
    if (a->p[i].seen > 0 && ioctl(a->p[i].fd, FIONREAD, &avail) == 0 && avail == a->p[i].seen) {
        if (now >= a->p[i].deadline)
            drop(a, i, "no request before the deadline");
        return -1;
    }
    do
        r = recv(a->p[i].fd, a->peek, PEEK_MAX, MSG_PEEK | MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        drop(a, i, "closed before its request was complete");
        return -1;
    }
    a->p[i].seen = r > 0 ? (int)r : 0;
    st = r > 0 ? fcgiwire_scan(a->peek, (size_t)r, &head) : FCGIWIRE_INCOMPLETE;
    if (st == FCGIWIRE_COMPLETE) {
        int fd = a->p[i].fd;

        *body_whole = head.body_whole;
        a->p[i] = a->p[--a->n];
        return fd;
    }
    if (st == FCGIWIRE_BAD) {
        rl_log(RL_LOG_WARN, "FastCGI connection dropped: %s", head.why);
        close(a->p[i].fd);
        a->p[i] = a->p[--a->n];
    } else if (now >= a->p[i].deadline || (size_t)r == PEEK_MAX) {
        drop(a, i,
             (size_t)r == PEEK_MAX ? "request head too large" : "no request before the deadline");
    }
    return -1;
}

/* ppoll() the listening socket and every pending connection until the
 * earliest deadline, with the signal mask waitmask. Returns poll's
 * result, 0 when a signal broke the wait. */
static int wait_any(struct acceptor *a, struct pollfd *pfd, const sigset_t *waitmask)
{
    long long now = now_ms(), until = -1, ms;
    struct timespec ts;
    int r;

    pfd[0].fd = a->listen_fd;
    pfd[0].events = POLLIN;
    pfd[0].revents = 0;
    for (int i = 0; i < a->n; i++) {
        long long due = a->p[i].deadline;

        /* Bytes already waiting keep POLLIN set: such a connection is
         * looked at again on a short timer instead, not in a busy loop. */
        pfd[i + 1].fd = a->p[i].seen > 0 ? -1 : a->p[i].fd;
        pfd[i + 1].events = POLLIN;
        pfd[i + 1].revents = 0;
        if (a->p[i].seen > 0 && now + RECHECK_MS < due)
            due = now + RECHECK_MS;
        if (until < 0 || due < until)
            until = due;
    }
    ms = until > now ? until - now : 0;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    r = ppoll(pfd, (nfds_t)a->n + 1, until < 0 ? NULL : &ts, waitmask);
    return r < 0 && errno == EINTR ? 0 : r;
}

/* Let in a signal that waitmask unblocks and that is pending (it came
 * while a request was served): ppoll() returns at once without taking it
 * whenever an fd is ready, which on a busy socket is every time. */
static void take_pending(const sigset_t *waitmask)
{
    sigset_t pending, cur;

    if (sigpending(&pending) != 0)
        return;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sigismember(&pending, sig) == 1 && sigismember(waitmask, sig) == 0) {
            (void)sigprocmask(SIG_SETMASK, waitmask, &cur); /* its handler runs */
            (void)sigprocmask(SIG_SETMASK, &cur, NULL);
            return;
        }
    }
}

int acceptor_next(struct acceptor *a, volatile sig_atomic_t *stop, const sigset_t *waitmask,
                  int *body_whole)
{
    struct pollfd pfd[PENDING_MAX + 1];

    for (;;) {
        long long now;
        int r;

        take_pending(waitmask);
        if (*stop)
            break;
        r = wait_any(a, pfd, waitmask);
        if (r < 0 || ((pfd[0].revents & POLLIN) && take_new(a) != 0))
            return -1;
        now = now_ms();
        for (int i = a->n - 1; i >= 0; i--) {
            int fd = check(a, i, now, body_whole);

            if (fd >= 0)
                return fd;
        }
    }
    errno = EINTR;
    return -1;
}
