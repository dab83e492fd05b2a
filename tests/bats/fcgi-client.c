/*
 * fcgi-client.c - a tiny FastCGI client for the bats tests, in the manner
 * of lighttpd's tests/fcgi-responder.c, because cgi-fcgi can neither send an
 * AUTHORIZER request nor a body without CONTENT_LENGTH.
 *
 *   env -i NAME=VALUE... fcgi-client [-a] [-b] [-n] [-c BYTES] SOCKET < body
 *
 * Params are the client's environment (like cgi-fcgi). The body is stdin to
 * EOF, sent while the answer is read (one poll loop, so large bodies in
 * both directions cannot deadlock). FCGI_STDOUT goes to stdout, FCGI_STDERR
 * to stderr; the exit code is the app's appStatus. SOCKET is a unix path or
 * HOST:PORT. -a: AUTHORIZER role. -n: send no FCGI_STDIN at all (as Apache's
 * mod_authnz_fcgi does). -c BYTES: hang up after BYTES of answer (a client
 * that goes away). -b: hang up once stdin is sent, without the end-of-body
 * record (a web server whose client broke off an upload). -s BYTES: send
 * only the first BYTES of the request's head, print "stalled", then wait
 * (up to 60 s) for the app to close the connection: exit 0 when it did, 5
 * when not (a peer that stalls). -m: send a malformed params record (name and value lengths
 * of 2^31-1, whose sum overflows libfcgi's int: CVE-2025-23016) instead of
 * the params. -z: send the whole request, then read nothing for 60 s (a
 * peer that stops reading the answer); exit 0. -k N: N requests without a
 * body on one connection (FCGI_KEEP_CONN, as nginx's fastcgi_keep_conn
 * and mod_proxy_fcgi's enablereuse do), each answer printed in turn; exit
 * 0 when all N came back, 4 when the app closed first.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

#define REC_BEGIN 1
#define REC_END 3
#define REC_PARAMS 4
#define REC_STDIN 5
#define REC_STDOUT 6
#define REC_STDERR 7

static void die(const char *what)
{
    fprintf(stderr, "fcgi-client: %s: %s\n", what, strerror(errno));
    exit(2);
}

static int connect_to(const char *where)
{
    const char *colon = strrchr(where, ':');
    int fd;

    if (where[0] == '/') {
        struct sockaddr_un sun;

        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        if (strlen(where) >= sizeof(sun.sun_path))
            die("socket path too long");
        memcpy(sun.sun_path, where, strlen(where) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
            die(where);
        return fd;
    }
    if (colon == NULL)
        die("SOCKET must be a path or HOST:PORT");
    {
        struct addrinfo hints, *res;
        char host[256];
        size_t hl = (size_t)(colon - where);

        if (hl >= sizeof(host))
            die("host too long");
        memcpy(host, where, hl);
        host[hl] = '\0';
        if (host[0] == '[') { /* [::1]:port */
            memmove(host, host + 1, hl);
            host[strcspn(host, "]")] = '\0';
        }
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
            die("getaddrinfo");
        fd = socket(res->ai_family, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0)
            die(where);
        freeaddrinfo(res);
    }
    return fd;
}

/* Outgoing bytes, appended whole and drained as the socket allows. */
static unsigned char *obuf;
static size_t olen, ocap;

static void out_add(const void *p, size_t n)
{
    if (olen + n > ocap) {
        ocap = (olen + n) * 2;
        obuf = realloc(obuf, ocap);
        if (obuf == NULL)
            die("realloc");
    }
    memcpy(obuf + olen, p, n);
    olen += n;
}

static void record(int type, const void *p, size_t n)
{
    unsigned char h[8] = {
        1, (unsigned char)type, 0, 1, (unsigned char)(n >> 8), (unsigned char)(n & 0xff), 0, 0};

    out_add(h, 8);
    if (n > 0)
        out_add(p, n);
}

static size_t put_len(unsigned char *p, size_t n)
{
    if (n < 128) {
        p[0] = (unsigned char)n;
        return 1;
    }
    p[0] = (unsigned char)((n >> 24) | 0x80);
    p[1] = (unsigned char)(n >> 16);
    p[2] = (unsigned char)(n >> 8);
    p[3] = (unsigned char)n;
    return 4;
}

static void send_params(void)
{
    unsigned char *rec = malloc(65535);
    size_t used = 0;

    if (rec == NULL)
        die("malloc");
    for (char **e = environ; *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        size_t nl, vl, hl;
        unsigned char hdr[8];

        if (eq == NULL)
            continue;
        nl = (size_t)(eq - *e);
        vl = strlen(eq + 1);
        hl = put_len(hdr, nl);
        hl += put_len(hdr + hl, vl);
        if (hl + nl + vl > 65535) {
            fprintf(stderr, "fcgi-client: param %.*s too long\n", (int)nl, *e);
            exit(2);
        }
        if (used + hl + nl + vl > 65535) {
            record(REC_PARAMS, rec, used);
            used = 0;
        }
        memcpy(rec + used, hdr, hl);
        memcpy(rec + used + hl, *e, nl);
        memcpy(rec + used + hl + nl, eq + 1, vl);
        used += hl + nl + vl;
    }
    if (used > 0)
        record(REC_PARAMS, rec, used);
    record(REC_PARAMS, NULL, 0);
    free(rec);
}

static void write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            exit(3); /* our reader went away: nothing more to say */
        p += w;
        n -= (size_t)w;
    }
}

/* -k: read one answer (to END_REQUEST) from a blocking fd; 0, or 4. */
static int keep_answer(int fd)
{
    unsigned char h[8], body[65536 + 256];

    for (;;) {
        size_t clen, plen, got = 0;

        while (got < 8) {
            ssize_t r = read(fd, h + got, 8 - got);

            if (r <= 0)
                return 4;
            got += (size_t)r;
        }
        clen = ((size_t)h[4] << 8) | h[5];
        plen = h[6];
        for (got = 0; got < clen + plen;) {
            ssize_t r = read(fd, body + got, clen + plen - got);

            if (r <= 0)
                return 4;
            got += (size_t)r;
        }
        if (h[1] == REC_STDOUT)
            write_all(1, body, clen);
        else if (h[1] == REC_END)
            return 0;
    }
}

/* -k n: n requests on one kept connection. */
static int keep_loop(int fd, const unsigned char *begin, long long n)
{
    for (long long i = 0; i < n; i++) {
        olen = 0;
        record(REC_BEGIN, begin, 8);
        send_params();
        record(REC_STDIN, NULL, 0);
        write_all(fd, obuf, olen);
        if (keep_answer(fd) != 0)
            return 4;
    }
    return 0;
}

/* -s: send n bytes of the head, then wait for the app to hang up. */
static int stall(int fd, size_t n)
{
    struct pollfd p = {fd, POLLIN, 0};
    char b[512];

    if (n > olen)
        n = olen;
    if (n > 0 && write(fd, obuf, n) != (ssize_t)n)
        die("write");
    printf("stalled\n");
    fflush(stdout);
    for (;;) {
        int r = poll(&p, 1, 60000);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return 5;
        if (read(fd, b, sizeof(b)) <= 0)
            return 0;
    }
}

int main(int argc, char **argv)
{
    int role = 1, no_stdin = 0, cut_body = 0, opt, fd, in_open = 1, app_status = 0, bad = 0;
    long long hangup_after = -1, got = 0, stall_after = -1;
    int deaf = 0;
    long long keep = 0;
    unsigned char begin[8] = {0, 1, 0, 0, 0, 0, 0, 0};
    unsigned char ibuf[65536 + 8];
    size_t ilen = 0;

    while ((opt = getopt(argc, argv, "abnmzc:s:k:")) != -1) {
        if (opt == 'k')
            keep = strtoll(optarg, NULL, 10);
        else if (opt == 'z')
            deaf = 1;
        else if (opt == 'm')
            bad = 1;
        else if (opt == 's')
            stall_after = strtoll(optarg, NULL, 10);
        else if (opt == 'a')
            role = 2;
        else if (opt == 'b')
            cut_body = 1;
        else if (opt == 'n')
            no_stdin = 1;
        else if (opt == 'c')
            hangup_after = strtoll(optarg, NULL, 10);
        else
            return 2;
    }
    if (optind != argc - 1) {
        fprintf(stderr,
                "usage: fcgi-client [-a] [-b] [-n] [-m] [-c BYTES] [-s BYTES] SOCKET < body\n");
        return 2;
    }
    fd = connect_to(argv[optind]);
    begin[1] = (unsigned char)role;
    if (keep > 0) {
        begin[2] = 1; /* FCGI_KEEP_CONN */
        return keep_loop(fd, begin, keep);
    }
    record(REC_BEGIN, begin, 8);
    if (bad) {
        static const unsigned char overflow[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

        record(REC_PARAMS, overflow, 8);
        record(REC_PARAMS, NULL, 0);
    } else {
        send_params();
    }
    if (stall_after >= 0)
        return stall(fd, (size_t)stall_after);
    if (deaf) {
        record(REC_STDIN, NULL, 0);
        write_all(fd, obuf, olen);
        sleep(60);
        return 0;
    }
    if (no_stdin)
        in_open = 0;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    for (;;) {
        struct pollfd p[2] = {{fd, POLLIN | (olen ? POLLOUT : 0), 0}, {0, POLLIN, 0}};
        int np = (in_open && olen < 262144) ? 2 : 1;

        if (cut_body && !in_open && olen == 0) {
            close(fd);
            return 0;
        }

        if (poll(p, (nfds_t)np, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        if (np == 2 && (p[1].revents & (POLLIN | POLLHUP))) {
            char b[32768];
            ssize_t r = read(0, b, sizeof(b));

            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0 && cut_body) {
                in_open = 0; /* no end-of-body record: hang up once sent */
            } else if (r <= 0) {
                record(REC_STDIN, NULL, 0);
                in_open = 0;
            } else {
                record(REC_STDIN, b, (size_t)r);
            }
        }
        if (olen && (p[0].revents & POLLOUT)) {
            ssize_t w = write(fd, obuf, olen);

            if (w > 0) {
                memmove(obuf, obuf + w, olen - (size_t)w);
                olen -= (size_t)w;
            } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                olen = 0; /* the app closed: keep reading what it said */
                in_open = 0;
            }
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = read(fd, ibuf + ilen, sizeof(ibuf) - ilen);

            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r <= 0) {
                fprintf(stderr, "fcgi-client: connection closed before END_REQUEST\n");
                return 4;
            }
            ilen += (size_t)r;
            for (;;) {
                size_t clen, plen;

                if (ilen < 8)
                    break;
                clen = ((size_t)ibuf[4] << 8) | ibuf[5];
                plen = ibuf[6];
                if (ilen < 8 + clen + plen)
                    break;
                if (ibuf[1] == REC_STDOUT) {
                    write_all(1, ibuf + 8, clen);
                    got += (long long)clen;
                    if (hangup_after >= 0 && got >= hangup_after)
                        return 0;
                } else if (ibuf[1] == REC_STDERR) {
                    write_all(2, ibuf + 8, clen);
                } else if (ibuf[1] == REC_END) {
                    app_status = (ibuf[8] << 24) | (ibuf[9] << 16) | (ibuf[10] << 8) | ibuf[11];
                    return app_status & 0xff;
                }
                memmove(ibuf, ibuf + 8 + clen + plen, ilen - 8 - clen - plen);
                ilen -= 8 + clen + plen;
            }
        }
    }
}
