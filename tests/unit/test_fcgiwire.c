/*
 * test_fcgiwire.c - the FastCGI head check: complete, still arriving,
 * malformed (among them the params that make libfcgi abort), and whether
 * the body came along.
 */
#include <string.h>

#include "../../src/fcgiwire.h"
#include "testhelp.h"

static unsigned char buf[300000];
static size_t len;

static void rec(int type, int id, const void *content, size_t clen, int pad)
{
    unsigned char *h = buf + len;

    h[0] = 1;
    h[1] = (unsigned char)type;
    h[2] = (unsigned char)(id >> 8);
    h[3] = (unsigned char)id;
    h[4] = (unsigned char)(clen >> 8);
    h[5] = (unsigned char)clen;
    h[6] = (unsigned char)pad;
    h[7] = 0;
    memcpy(h + 8, content, clen);
    memset(h + 8 + clen, 0, (size_t)pad);
    len += 8 + clen + (size_t)pad;
}

static void begin(void)
{
    static const unsigned char b[8] = {0, 1, 0, 0, 0, 0, 0, 0};

    len = 0;
    rec(1, 1, b, 8, 0);
}

static int scan(size_t n, struct fcgiwire_head *h)
{
    return fcgiwire_scan(buf, n, h);
}

/* "\x0eREQUEST_METHOD\x03GET" style pair with 1-byte lengths. */
static size_t pair(unsigned char *p, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);

    p[0] = (unsigned char)nl;
    p[1] = (unsigned char)vl;
    memcpy(p + 2, name, nl);
    memcpy(p + 2 + nl, value, vl);
    return 2 + nl + vl;
}

static int prefixes_incomplete(void)
{
    struct fcgiwire_head h;

    for (size_t n = 0; n < len; n++)
        if (scan(n, &h) != FCGIWIRE_INCOMPLETE && !(n >= len - 8 && h.body_whole == 0))
            return 0;
    return 1;
}

static void test_complete(void)
{
    unsigned char p[64];
    size_t pl = pair(p, "REQUEST_METHOD", "GET");
    struct fcgiwire_head h;

    begin();
    rec(4, 1, p, pl, 3);
    test_cond("params not ended: incomplete", scan(len, &h) == FCGIWIRE_INCOMPLETE);
    rec(4, 1, "", 0, 0);
    test_cond("empty PARAMS: complete", scan(len, &h) == FCGIWIRE_COMPLETE && !h.body_whole);
    rec(5, 1, "", 0, 0);
    test_cond("empty STDIN too: body whole", scan(len, &h) == FCGIWIRE_COMPLETE && h.body_whole);
    test_cond("every prefix is incomplete, never bad", prefixes_incomplete());
}

static void test_body(void)
{
    unsigned char p[64];
    size_t pl = pair(p, "CONTENT_LENGTH", "5");
    struct fcgiwire_head h;

    begin();
    rec(4, 1, p, pl, 0);
    rec(4, 1, "", 0, 0);
    rec(5, 1, "hello", 5, 3);
    test_cond("body under way: not whole", scan(len, &h) == FCGIWIRE_COMPLETE && !h.body_whole);
    rec(5, 1, "", 0, 0);
    test_cond("body and its end: whole", scan(len, &h) == FCGIWIRE_COMPLETE && h.body_whole);
}

static void test_split_pair(void)
{
    unsigned char p[64];
    size_t pl = pair(p, "QUERY_STRING", "a=1");
    struct fcgiwire_head h;

    begin();
    rec(4, 1, p, 5, 0); /* a pair across two records (FastCGI allows it) */
    rec(4, 1, p + 5, pl - 5, 0);
    rec(4, 1, "", 0, 0);
    test_cond("a pair across records is fine", scan(len, &h) == FCGIWIRE_COMPLETE);
    begin();
    rec(4, 1, p, 5, 0);
    rec(4, 1, "", 0, 0);
    test_cond("params ending inside a pair: bad", scan(len, &h) == FCGIWIRE_BAD);
}

static void test_bad(void)
{
    /* CVE-2025-23016: lengths whose int sum is negative. */
    static const unsigned char huge[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char big[8] = {0x80, 0x02, 0x00, 0x00, 0x01, 'x', 'y', 'z'};
    struct fcgiwire_head h;

    begin();
    rec(4, 1, huge, 8, 0);
    test_cond("lengths that overflow libfcgi: bad", scan(len, &h) == FCGIWIRE_BAD && h.why);
    test_cond("seen before the rest arrives", scan(len - 2, &h) == FCGIWIRE_BAD);
    begin();
    rec(4, 1, big, 8, 0);
    test_cond("a 128 KiB name: bad", scan(len, &h) == FCGIWIRE_BAD);
    len = 0;
    rec(4, 1, "", 0, 0);
    test_cond("PARAMS before BEGIN_REQUEST: bad", scan(len, &h) == FCGIWIRE_BAD);
    begin();
    buf[0] = 2;
    test_cond("version 2: bad", scan(len, &h) == FCGIWIRE_BAD);
    begin();
    rec(5, 1, "", 0, 0);
    test_cond("STDIN before the params ended: bad", scan(len, &h) == FCGIWIRE_BAD);
    memcpy(buf, "GET / HTTP/1.1\r\n\r\n", 18);
    test_cond("HTTP on a FastCGI socket: bad", scan(18, &h) == FCGIWIRE_BAD);
}

static void test_large(void)
{
    static unsigned char p[60000];
    struct fcgiwire_head h;
    size_t i;

    begin();
    for (i = 0; i < 3; i++) { /* 180 000 bytes of params: over the cap */
        memset(p, 'a', sizeof(p));
        p[0] = 0x80;
        p[1] = 0;
        p[2] = 0xea;
        p[3] = 0x5a; /* name length 59994, value length 0 */
        p[4] = 0;
        rec(4, 1, p, sizeof(p), 0);
    }
    test_cond("params over FCGIWIRE_PARAMS_MAX: bad", scan(len, &h) == FCGIWIRE_BAD);
}

static void test_management(void)
{
    struct fcgiwire_head h;

    len = 0;
    rec(9, 0, "", 0, 0); /* FCGI_GET_VALUES: libfcgi answers it unbounded */
    test_cond("a management record: bad", scan(len, &h) == FCGIWIRE_BAD);
}

static void test_other_id(void)
{
    unsigned char p[64];
    size_t pl = pair(p, "REQUEST_METHOD", "GET");
    struct fcgiwire_head h;

    begin();
    rec(4, 1, p, pl, 0);
    rec(4, 2, "", 0, 0); /* libfcgi skips it and waits forever */
    test_cond("the end of params under another id: bad", scan(len, &h) == FCGIWIRE_BAD);
    begin();
    rec(4, 1, p, pl, 0);
    rec(4, 1, "", 0, 0);
    rec(5, 2, "", 0, 0);
    test_cond("another id's STDIN: complete, body not whole",
              scan(len, &h) == FCGIWIRE_COMPLETE && !h.body_whole);
}

int main(void)
{
    test_complete();
    test_body();
    test_split_pair();
    test_bad();
    test_large();
    test_management();
    test_other_id();
    return test_report();
}
