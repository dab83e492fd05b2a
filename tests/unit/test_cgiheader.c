/*
 * test_cgiheader.c - the CGI response header parser, fed canned answers
 * with no process: every sample is cut at every split point (and fed one
 * byte at a time) and must give the same status, kept fields, header
 * length and body; then the limits and each malformed block.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cgiheader.h"
#include "rl.h"
#include "testhelp.h"

struct sample {
    const char *name;
    const char *in; /* the script's stdout */
    int status;
    const char *reason;
    const char *kept; /* expected kept fields */
    const char *body; /* what follows the header block */
};

static const struct sample samples[] = {
    {"CRLF document", "Content-Type: text/html\r\nX-A: 1\r\n\r\n<p>hi</p>", 200, "OK",
     "Content-Type: text/html\r\nX-A: 1\r\n", "<p>hi</p>"},
    {"LF document", "Content-Type: text/plain\nX-B:   spaced  \n\nbody\r\n\r\nmore", 200, "OK",
     "Content-Type: text/plain\r\nX-B: spaced\r\n", "body\r\n\r\nmore"},
    {"mixed endings", "Content-Type: a/b\r\nX-C: c\n\r\nZ", 200, "OK",
     "Content-Type: a/b\r\nX-C: c\r\n", "Z"},
    {"Status with reason", "Status: 404 Not Here\r\nContent-Type: text/plain\r\n\r\nnope", 404,
     "Not Here", "Content-Type: text/plain\r\n", "nope"},
    {"Status without reason", "status:201\nContent-Type: x/y\n\n", 201, "Created",
     "Content-Type: x/y\r\n", ""},
    {"Status with trailing space", "Status: 418 \nContent-Type: x/y\n\n", 418, "Client Error",
     "Content-Type: x/y\r\n", ""},
    {"Location alone", "Location: http://example.org/x?a=b\r\n\r\n", 302, "Found",
     "Location: http://example.org/x?a=b\r\n", ""},
    {"Location with Status 301", "Location: /new\nStatus: 301\nContent-Type: t/h\n\nmoved", 301,
     "Moved Permanently", "Location: /new\r\nContent-Type: t/h\r\n", "moved"},
    {"hop-by-hop dropped",
     "Connection: close\r\nContent-Type: t/p\r\nTransfer-Encoding: chunked\r\nkeep-alive: "
     "x\r\nTE: y\r\nUpgrade: h2c\r\nX-Kept: Connection\r\n\r\nB",
     200, "OK", "Content-Type: t/p\r\nX-Kept: Connection\r\n", "B"},
    {"many headers and colons in values",
     "Content-Type: text/html; charset=utf-8\nSet-Cookie: a=1\nSet-Cookie: b=2\nX-Time: "
     "12:34:56\nX-Empty:\nX-Tab:\tv\tw\t\nCache-Control: no-store\n\n\nbody",
     200, "OK",
     "Content-Type: text/html; charset=utf-8\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Time: "
     "12:34:56\r\nX-Empty:\r\nX-Tab: v\tw\r\nCache-Control: no-store\r\n",
     "\nbody"},
    {"UTF-8 value", "Content-Type: t/p\nX-U: caf\xc3\xa9\n\n", 200, "OK",
     "Content-Type: t/p\r\nX-U: caf\xc3\xa9\r\n", ""},
    {"2xx bound", "Status: 200\nX: y\n\n", 200, "OK", "X: y\r\n", ""},
    {"network-path Location is a 302", "Location: //example.org/x\n\n", 302, "Found",
     "Location: //example.org/x\r\n", ""},
    {"5xx bound", "Status: 599 Whatever It Is\nX: y\n\n", 599, "Whatever It Is", "X: y\r\n", ""},
};

/* Parse in with cuts at a and b (a <= b <= len): three feeds. Returns the
 * header length, or (size_t)-1 on a parse error or an unfinished block. */
static size_t parse3(struct cgihdr *h, const char *in, size_t len, size_t a, size_t b)
{
    size_t cuts[4] = {0, a, b, len}, hdr = 0, used, i;

    cgihdr_init(h);
    for (i = 0; i < 3; i++) {
        if (h->done)
            break;
        if (cgihdr_feed(h, in + cuts[i], cuts[i + 1] - cuts[i], &used) != RL_OK)
            return (size_t)-1;
        hdr += used;
    }
    return h->done ? hdr : (size_t)-1;
}

static int same_result(const struct cgihdr *h, size_t hdr, const struct sample *s)
{
    size_t len = strlen(s->in);

    return hdr != (size_t)-1 && h->status == s->status &&
           strcmp(buf_str(&h->reason), s->reason) == 0 && strcmp(buf_str(&h->kept), s->kept) == 0 &&
           h->total == hdr && strcmp(s->in + hdr, s->body) == 0 && len - hdr == strlen(s->body);
}

static void test_samples(void)
{
    size_t i, k, j, len, hdr;
    struct cgihdr h;
    char d[96];

    for (i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        const struct sample *s = &samples[i];
        int ok_split = 1, ok_bytes = 1;

        len = strlen(s->in);
        hdr = parse3(&h, s->in, len, len, len);
        (void)snprintf(d, sizeof d, "%s: whole", s->name);
        test_cond(d, same_result(&h, hdr, s));
        cgihdr_free(&h);
        for (k = 1; k <= len; k++) {
            hdr = parse3(&h, s->in, len, k, len);
            ok_split = ok_split && same_result(&h, hdr, s);
            cgihdr_free(&h);
        }
        (void)snprintf(d, sizeof d, "%s: every split point", s->name);
        test_cond(d, ok_split);
        /* One byte at a time. */
        cgihdr_init(&h);
        for (j = 0, hdr = 0; j < len && !h.done; j++) {
            size_t used = 0;

            ok_bytes = ok_bytes && cgihdr_feed(&h, s->in + j, 1, &used) == RL_OK;
            hdr += used;
        }
        (void)snprintf(d, sizeof d, "%s: byte by byte", s->name);
        test_cond(d, ok_bytes && h.done && same_result(&h, hdr, s));
        cgihdr_free(&h);
    }
}

/* The error must be found, and found the same way at every split point. */
static int rejects(const char *in, const char *errpart)
{
    size_t len = strlen(in), k;
    struct cgihdr h;
    int ok = 1;

    for (k = 0; k <= len && ok; k++) {
        ok = parse3(&h, in, len, k, len) == (size_t)-1 && h.failed &&
             strstr(h.errstr, errpart) != NULL;
        if (!ok)
            printf("# split %zu: failed=%d errstr='%s'\n", k, h.failed, h.errstr);
        cgihdr_free(&h);
    }
    return ok;
}

static void test_malformed(void)
{
    test_cond("Status abc", rejects("Status: abc\n\n", "invalid Status"));
    test_cond("Status 99", rejects("Status: 99\n\n", "invalid Status"));
    test_cond("Status 600", rejects("Status: 600 X\n\n", "invalid Status"));
    test_cond("Status 2000", rejects("Status: 2000\n\n", "invalid Status"));
    test_cond("Status 20x", rejects("Status: 20x\n\n", "invalid Status"));
    test_cond("Status empty", rejects("Status:\r\n\r\n", "invalid Status"));
    test_cond("Status 200OK", rejects("Status: 200OK\n\n", "invalid Status"));
    test_cond("Status 099", rejects("Status: 099\n\n", "invalid Status"));
    /* A 1xx is not a final answer: the server would wait for another. */
    test_cond("Status 100 Continue", rejects("Status: 100 Continue\n\n", "invalid Status"));
    test_cond("Status 199", rejects("Status: 199\nContent-Type: t/p\n\n", "invalid Status"));
    test_cond("Status repeated", rejects("Status: 200\nStatus: 200\n\n", "repeated Status"));
    test_cond("line without colon", rejects("Content-Type: t/p\nhello world\n\n", "without ':'"));
    test_cond("bare word line", rejects("hello\n\n", "without ':'"));
    test_cond("text with CRLF", rejects("Hello world\r\n", "without ':'"));
    test_cond("whitespace then colon", rejects("X-A\t:b\n\n", "before ':'"));
    test_cond("space before colon", rejects("X-A : b\n\n", "before ':'"));
    test_cond("Content-Type repeated",
              rejects("Content-Type: a/b\ncontent-type: a/b\n\n", "repeated Content-Type"));
    test_cond("Location repeated", rejects("Location: /a\nLocation: /b\n\n", "repeated Location"));
    test_cond("empty Location", rejects("Location:  \n\n", "empty Location"));
    test_cond("empty block", rejects("\r\nbody", "no header block"));
    test_cond("empty block LF", rejects("\nbody", "no header block"));
    test_cond("NPH status line", rejects("HTTP/1.1 200 OK\r\n\r\n", "header name"));
    test_cond("folding", rejects("X-A: b\n c\n\n", "continuation"));
    test_cond("no name", rejects(": v\n\n", "without a name"));
    test_cond("bare CR in value", rejects("X-A: b\rc\n\n", "CR not followed"));
    test_cond("bare CR on blank line", rejects("X-A: b\n\rx", "CR not followed"));
    test_cond("control char in value", rejects("X-A: b\001c\n\n", "control character"));
}

static void test_nul_and_sticky(void)
{
    static const char in[] = "X-A: b\0c\n\n";
    struct cgihdr h;
    size_t used = 99;

    cgihdr_init(&h);
    test_cond("NUL byte in value rejected",
              cgihdr_feed(&h, in, sizeof in - 1, &used) == RL_ERR && h.failed &&
                  strstr(h.errstr, "control character") != NULL && used == 7);
    test_cond("error is sticky", cgihdr_feed(&h, "\n", 1, &used) == RL_ERR && used == 0 && !h.done);
    cgihdr_free(&h);
    cgihdr_free(&h);
    cgihdr_free(NULL);
    test_cond("free twice and NULL", h.kept.ptr == NULL && h.line.ptr == NULL);
}

/* "X-L: " + filler up to a line of exactly total bytes with ending eol. */
static char *long_line(size_t total, const char *eol)
{
    size_t e = strlen(eol), n = total - e;
    char *p = malloc(total + 32);

    memcpy(p, "X-L: ", 5);
    memset(p + 5, 'a', n - 5);
    memcpy(p + n, eol, e);
    memcpy(p + total, "\r\nbody", 7);
    return p;
}

/* A header block of exactly size bytes (100-byte lines, one longer last
 * line, the blank line) followed by "BODY". Caller frees. */
static char *block_of(size_t size)
{
    char *p = malloc(size + 5);
    size_t off = 0, r;

    while (size - 1 - off > 200) {
        memcpy(p + off, "X-F: ", 5);
        memset(p + off + 5, 'b', 94);
        p[off + 99] = '\n';
        off += 100;
    }
    r = size - 1 - off;
    memcpy(p + off, "X-G: ", 5);
    memset(p + off + 5, 'c', r - 6);
    p[off + r - 1] = '\n';
    memcpy(p + size - 1, "\nBODY", 6);
    return p;
}

static void test_line_limits(void)
{
    struct cgihdr h;
    char *p;
    size_t hdr;

    p = long_line(CGIHDR_LINE_MAX, "\r\n");
    test_cond("line of exactly 8192 bytes (CRLF) accepted",
              (hdr = parse3(&h, p, strlen(p), 100, strlen(p))) == CGIHDR_LINE_MAX + 2 &&
                  h.kept.len == CGIHDR_LINE_MAX);
    cgihdr_free(&h);
    free(p);
    p = long_line(CGIHDR_LINE_MAX + 1, "\r\n");
    test_cond("line of 8193 bytes (CRLF) rejected",
              parse3(&h, p, strlen(p), 4000, strlen(p)) == (size_t)-1 &&
                  strstr(h.errstr, "longer than 8192") != NULL);
    cgihdr_free(&h);
    free(p);
    p = long_line(CGIHDR_LINE_MAX + 1, "\n");
    test_cond("line of 8193 bytes (LF) rejected",
              parse3(&h, p, strlen(p), 1, 2) == (size_t)-1 && strstr(h.errstr, "longer") != NULL);
    cgihdr_free(&h);
    free(p);
}

static void test_block_limits(void)
{
    struct cgihdr h;
    char *p;
    size_t i, n, used;
    int rc = RL_OK;

    /* A block of exactly 64 KiB passes, one byte more fails. */
    p = block_of(CGIHDR_BLOCK_MAX);
    n = CGIHDR_BLOCK_MAX;
    test_cond("block of exactly 64 KiB accepted", parse3(&h, p, n + 4, n / 2, n + 1) == n &&
                                                      h.done && h.total == n &&
                                                      strcmp(p + n, "BODY") == 0);
    cgihdr_free(&h);
    free(p);
    p = block_of(CGIHDR_BLOCK_MAX + 1);
    test_cond("block of 64 KiB + 1 rejected", parse3(&h, p, n + 5, 3, n) == (size_t)-1 &&
                                                  strstr(h.errstr, "larger than 65536") != NULL);
    cgihdr_free(&h);
    free(p);

    /* A script that never ends its header block: stops at the cap. */
    cgihdr_init(&h);
    for (i = 0; i < 10000 && rc == RL_OK; i++)
        rc = cgihdr_feed(&h, "X-Endless: yes\n", 15, &used);
    test_cond("endless block stops at the cap", rc == RL_ERR && h.total == CGIHDR_BLOCK_MAX + 1);
    cgihdr_free(&h);
}

static void test_block(void)
{
    static const char in[] = "Location: /x\nContent-Type: t/h\n\nbody";
    struct cgihdr h;
    struct buf out;
    size_t used;

    buf_init(&out, 4096);
    cgihdr_init(&h);
    test_cond("block refused before done", cgihdr_block(&h, NULL, &out) == RL_ERR);
    test_cond("feed redirect", cgihdr_feed(&h, in, sizeof in - 1, &used) == RL_OK && used == 32);
    test_cond("feed after done consumes nothing",
              cgihdr_feed(&h, "X: y\n", 5, &used) == RL_OK && used == 0);
    /* A local path and no Status: a local redirect (RFC 3875 6.2.2), no
     * status line, so that Apache serves /x itself. */
    test_cond("local redirect", h.local_redirect == 1 && h.status == 302);
    test_cond("block with extra headers",
              cgihdr_block(&h, "RateLimit: \"default\";r=4;t=60\r\n", &out) == RL_OK &&
                  strcmp(buf_str(&out), "Location: /x\r\nContent-Type: "
                                        "t/h\r\nRateLimit: \"default\";r=4;t=60\r\n\r\n") == 0);
    buf_reset(&out);
    test_cond("block without extra", cgihdr_block(&h, NULL, &out) == RL_OK &&
                                         strcmp(buf_str(&out), "Location: /x\r\nContent-Type: "
                                                               "t/h\r\n\r\n") == 0);
    buf_free(&out);
    buf_init(&out, 10);
    test_cond("block past the buffer cap", cgihdr_block(&h, NULL, &out) == RL_ERR);
    buf_free(&out);
    cgihdr_free(&h);
}

/* The block rendered for in: "" on a parse error. Static. */
static const char *rendered(const char *in)
{
    static char res[512];
    struct cgihdr h;
    struct buf out;

    res[0] = '\0';
    buf_init(&out, sizeof res - 1);
    cgihdr_init(&h);
    if (cgihdr_feed(&h, in, strlen(in), NULL) == RL_OK && cgihdr_block(&h, NULL, &out) == RL_OK)
        memcpy(res, out.ptr, out.len + 1);
    cgihdr_free(&h);
    buf_free(&out);
    return res;
}

static void test_redirects(void)
{
    test_cond("local redirect with a query: no status line",
              strcmp(rendered("Location: /a/b?c=d\n\n"), "Location: /a/b?c=d\r\n\r\n") == 0);
    test_cond("local path with a Status: kept as given",
              strcmp(rendered("Status: 301\nLocation: /a\n\n"),
                     "Status: 301 Moved Permanently\r\nLocation: /a\r\n\r\n") == 0);
    test_cond("absolute URL: 302",
              strcmp(rendered("Location: http://h/a\n\n"),
                     "Status: 302 Found\r\nLocation: http://h/a\r\n\r\n") == 0);
    test_cond("network path: 302", strcmp(rendered("Location: //h/a\n\n"),
                                          "Status: 302 Found\r\nLocation: //h/a\r\n\r\n") == 0);
    test_cond("no Location: 200",
              strcmp(rendered("X: /a\n\n"), "Status: 200 OK\r\nX: /a\r\n\r\n") == 0);
}

static void test_reasons(void)
{
    test_cond("reason 200", strcmp(cgihdr_reason(200), "OK") == 0);
    test_cond("reason 429", strcmp(cgihdr_reason(429), "Too Many Requests") == 0);
    test_cond("reason 299 by class", strcmp(cgihdr_reason(299), "Success") == 0);
    test_cond("reason 150 by class", strcmp(cgihdr_reason(150), "Informational") == 0);
    test_cond("reason 577 by class", strcmp(cgihdr_reason(577), "Server Error") == 0);
    test_cond("reason 700 unknown", strcmp(cgihdr_reason(700), "Unknown") == 0);
}

int main(void)
{
    test_samples();
    test_malformed();
    test_nul_and_sticky();
    test_line_limits();
    test_block_limits();
    test_block();
    test_redirects();
    test_reasons();
    return test_report();
}
