/*
 * test_fcgxio.c - the libfcgi stream adapters over a real FCGX_Request:
 * the test plays the web server on one end of a socketpair and hands the
 * other end to libfcgi, as the accept loop does (ipcFd, keepConnection).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fastcgi.h>
#include <fcgiapp.h>

#include "../../src/fcgxio.h"
#include "../../src/rl.h"
#include "testhelp.h"

static unsigned char wire[70000];
static size_t wlen;

static void rec(int type, const void *content, size_t clen)
{
    unsigned char *h = wire + wlen;

    h[0] = FCGI_VERSION_1;
    h[1] = (unsigned char)type;
    h[2] = 0;
    h[3] = 1; /* request id 1 */
    h[4] = (unsigned char)(clen >> 8);
    h[5] = (unsigned char)clen;
    h[6] = 0;
    h[7] = 0;
    memcpy(h + FCGI_HEADER_LEN, content, clen);
    wlen += FCGI_HEADER_LEN + clen;
}

/* BEGIN_REQUEST (responder), one param, the end of the params. */
static void head(void)
{
    static const unsigned char begin[8] = {0, FCGI_RESPONDER, 0, 0, 0, 0, 0, 0};
    static const char pair[] = "\x0e\x04REQUEST_METHOD"
                               "POST";

    wlen = 0;
    rec(FCGI_BEGIN_REQUEST, begin, sizeof begin);
    rec(FCGI_PARAMS, pair, sizeof pair - 1);
    rec(FCGI_PARAMS, "", 0);
}

struct conn {
    int server; /* the test's end */
    FCGX_Request r;
};

/* Send what is in wire (closing our write side if eof) and accept. The
 * set-up cannot fail but for a broken machine: then abort. */
static int conn_open(struct conn *c, int eof)
{
    int sv[2];

    memset(c, 0, sizeof(*c));
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || write(sv[1], wire, wlen) != (ssize_t)wlen ||
        FCGX_InitRequest(&c->r, -1, 0) != 0)
        abort();
    c->server = sv[1];
    if (eof)
        (void)shutdown(c->server, SHUT_WR);
    c->r.ipcFd = sv[0];
    c->r.keepConnection = 1;
    return FCGX_Accept_r(&c->r);
}

static void conn_close(struct conn *c)
{
    c->r.keepConnection = 0;
    FCGX_Finish_r(&c->r);
    FCGX_Free(&c->r, 1);
    close(c->server);
}

/* Everything the other end sent until it shut its side, at most cap. */
static size_t drain_server(int fd, unsigned char *p, size_t cap)
{
    size_t n = 0;
    ssize_t k;

    while (n < cap && (k = read(fd, p + n, cap - n)) > 0)
        n += (size_t)k;
    return n;
}

/* 1 when p[0..n) holds a record of type whose content is c ("": an
 * empty record, the end of a stream) or, c not empty, contains c. */
static int has_record(const unsigned char *p, size_t n, int type, const char *c)
{
    size_t off = 0, cl = strlen(c);

    while (off + FCGI_HEADER_LEN <= n) {
        size_t len = ((size_t)p[off + 4] << 8) | p[off + 5];

        if (p[off + 1] == type && off + FCGI_HEADER_LEN + len <= n &&
            (cl == 0 ? len == 0
                     : len >= cl && memmem(p + off + FCGI_HEADER_LEN, len, c, cl) != NULL))
            return 1;
        off += FCGI_HEADER_LEN + len + p[off + 6];
    }
    return 0;
}

static void read_whole_body(void)
{
    struct conn c;
    char buf[100];
    ssize_t a, b;

    head();
    rec(FCGI_STDIN, "hello", 5);
    rec(FCGI_STDIN, " world", 6);
    rec(FCGI_STDIN, "", 0);
    test_cond("accept a request over a socketpair", conn_open(&c, 1) == 0);
    a = fcgx_read(c.r.in, buf, 3);
    b = fcgx_read(c.r.in, buf + 3, sizeof buf - 3);
    test_cond("read: exactly n while the body lasts", a == 3);
    test_cond("read: across records up to the end", b == 8 && memcmp(buf, "hello world", 11) == 0);
    test_cond("read: 0 at the end of the body", fcgx_read(c.r.in, buf, sizeof buf) == 0);
    test_cond("read: n == 0 reads nothing", fcgx_read(c.r.in, buf, 0) == 0);
    conn_close(&c);
}

/* The server breaks off after some bytes: no end-of-body record. The
 * bytes that came are returned, every one, and then -1: never 0, which
 * would pass a cut body for a whole shorter one. */
static void read_broken_body(void)
{
    struct conn c;
    char buf[100];
    ssize_t n, m, total = 0;

    head();
    rec(FCGI_STDIN, "0123456789", 10);
    test_cond("accept (body to break off)", conn_open(&c, 1) == 0);
    n = fcgx_read(c.r.in, buf, sizeof buf);
    m = fcgx_read(c.r.in, buf + 10, sizeof buf - 10);
    test_cond("read: a failure after some bytes returns them all",
              n == 10 && memcmp(buf, "0123456789", 10) == 0);
    test_cond("read: then -1, not 0", m == -1);
    test_cond("read: -1 again after that", fcgx_read(c.r.in, buf, sizeof buf) == -1);
    conn_close(&c);

    /* The loop a caller runs (cgibody.c): every byte, then an error. */
    test_cond("accept (body to break off, read in a loop)", conn_open(&c, 1) == 0);
    while ((n = fcgx_read(c.r.in, buf, 4)) > 0)
        total += n;
    test_cond("read loop: ends with -1, never with 0", n == -1);
    test_cond("read loop: every byte before the failure counted", total == 10);
    conn_close(&c);

    /* A record of one byte, then the failure: a read that took the byte
     * and then met the failure once returned 1 + -1, the end of the body,
     * and lost the byte. */
    head();
    rec(FCGI_STDIN, "abc", 3);
    rec(FCGI_STDIN, "d", 1);
    test_cond("accept (one byte, then the failure)", conn_open(&c, 1) == 0);
    n = fcgx_read(c.r.in, buf, 3);
    m = fcgx_read(c.r.in, buf + 3, sizeof buf - 3);
    test_cond("read: the last byte before a failure is kept", n == 3 && m == 1 && buf[3] == 'd');
    test_cond("read: and the failure is -1", fcgx_read(c.r.in, buf, sizeof buf) == -1);
    conn_close(&c);
}

static void write_flush_end(void)
{
    static unsigned char got[4096];
    struct conn c;
    size_t n;

    head();
    rec(FCGI_STDIN, "", 0);
    test_cond("accept (answer)", conn_open(&c, 1) == 0);
    test_cond("write", fcgx_write(c.r.out, "Status: 200\r\n\r\nok", 17) == RL_OK);
    test_cond("flush", fcgx_flush(c.r.out) == RL_OK);
    test_cond("log line", fcgx_log(&c.r, "a line\n", 7) == RL_OK);
    fcgx_errlog(c.r.err, "script says\n", 12);
    test_cond("drain: the body read to its end", fcgx_drain(c.r.in) == 1);
    test_cond("end", fcgx_end(&c.r) == RL_OK);
    (void)shutdown(c.r.ipcFd, SHUT_WR); /* all is sent: let the read below end */
    n = drain_server(c.server, got, sizeof got);
    test_cond("the answer arrived as FCGI_STDOUT",
              has_record(got, n, FCGI_STDOUT, "Status: 200\r\n\r\nok"));
    test_cond("the log line as FCGI_STDERR", has_record(got, n, FCGI_STDERR, "a line\n"));
    test_cond("the script's stderr as FCGI_STDERR",
              has_record(got, n, FCGI_STDERR, "script says\n"));
    test_cond("end: both streams closed",
              has_record(got, n, FCGI_STDOUT, "") && has_record(got, n, FCGI_STDERR, ""));
    test_cond("end: FCGI_END_REQUEST sent", n >= 16 && got[n - 16 + 1] == FCGI_END_REQUEST);
    conn_close(&c);
}

static void dead_connection(void)
{
    struct conn c;
    char buf[16];

    head();
    rec(FCGI_STDIN, "abc", 3);
    test_cond("accept (dead connection)", conn_open(&c, 1) == 0);
    (void)fcgx_read(c.r.in, buf, sizeof buf);
    test_cond("log: RL_ERR once the connection failed", fcgx_log(&c.r, "x\n", 2) == RL_ERR);
    test_cond("drain: not read to its end", fcgx_drain(c.r.in) == 0);
    conn_close(&c);
}

static void fd_adapters(void)
{
    int sv[2], rd, wr;
    char buf[16];

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    rd = sv[0];
    wr = sv[1];
    test_cond("fd_write", fd_write(&wr, "abc", 3) == RL_OK);
    fd_errlog(&wr, "de", 2);
    close(wr);
    test_cond("fd_read", fd_read(&rd, buf, sizeof buf) == 5 && memcmp(buf, "abcde", 5) == 0);
    test_cond("fd_read: 0 at EOF", fd_read(&rd, buf, sizeof buf) == 0);
    close(rd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (FCGX_Init() != 0)
        abort();
    read_whole_body();
    read_broken_body();
    write_flush_end();
    dead_connection();
    fd_adapters();
    return test_report();
}
