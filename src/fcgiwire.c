/*
 * fcgiwire.c - the FastCGI head check of fcgiwire.h. A record is an 8-byte
 * header (version 1, type, request id, content length, padding length,
 * reserved) and its content and padding (FastCGI 1.0, section 3.3). The
 * PARAMS content of all records is one stream of name-value pairs, each
 * length 1 byte (< 128) or 4 bytes with the top bit set (section 3.4); a
 * pair may cross a record boundary, so the pair walker keeps its state
 * from one record to the next. Every record of the head must carry the
 * BEGIN_REQUEST's id: libfcgi skips others without a word and would wait.
 */
#include <string.h>

#include "fcgiwire.h"

#define REC_HEADER 8
#define T_BEGIN 1
#define T_PARAMS 4
#define T_STDIN 5

/* The name-value pair walker: where it is within the params stream. */
struct pairs {
    size_t total; /* params bytes seen */
    int field;    /* 0: name length, 1: value length, 2: skipping data */
    unsigned char lb[4];
    int lbn; /* bytes of the current 4-byte length seen */
    unsigned long len[2];
    unsigned long skip; /* data bytes left of the current pair */
};

/* Feed one length byte; RL-style 0 ok, -1 bad. */
static int pairs_len_byte(struct pairs *w, unsigned char c)
{
    if (w->lbn == 0 && (c & 0x80) == 0) {
        w->len[w->field] = c;
    } else {
        w->lb[w->lbn++] = c;
        if (w->lbn < 4)
            return 0;
        w->len[w->field] = ((unsigned long)(w->lb[0] & 0x7f) << 24) |
                           ((unsigned long)w->lb[1] << 16) | ((unsigned long)w->lb[2] << 8) |
                           w->lb[3];
    }
    w->lbn = 0;
    if (w->len[w->field] > FCGIWIRE_PARAMS_MAX)
        return -1;
    if (++w->field == 2) {
        /* Each length is 31 bits at most, so the sum cannot wrap here;
         * libfcgi adds them as ints, which can. */
        if (w->len[0] + w->len[1] > FCGIWIRE_PARAMS_MAX)
            return -1;
        w->skip = w->len[0] + w->len[1];
        if (w->skip == 0)
            w->field = 0;
    }
    return 0;
}

/* Walk n bytes of params content. 0, or -1 when malformed or too large. */
static int pairs_feed(struct pairs *w, const unsigned char *p, size_t n)
{
    w->total += n;
    if (w->total > FCGIWIRE_PARAMS_MAX)
        return -1;
    while (n > 0) {
        if (w->field == 2) {
            size_t k = w->skip < n ? (size_t)w->skip : n;

            p += k;
            n -= k;
            w->skip -= k;
            if (w->skip == 0)
                w->field = 0;
            continue;
        }
        if (pairs_len_byte(w, *p) != 0)
            return -1;
        p++;
        n--;
    }
    return 0;
}

/* 1 when the walker stands between pairs (the stream may end there). */
static int pairs_whole(const struct pairs *w)
{
    return w->field == 0 && w->lbn == 0;
}

static int bad(const char **why, const char *reason)
{
    *why = reason;
    return FCGIWIRE_BAD;
}

/* 1 when the records from p on are STDIN records of request id, ending
 * with an empty one, all within the n bytes. */
static int body_whole(const unsigned char *p, size_t n, unsigned id)
{
    size_t off = 0;

    while (n - off >= REC_HEADER) {
        const unsigned char *h = p + off;
        size_t clen = (size_t)h[4] << 8 | h[5];

        if (h[0] != 1 || h[1] != T_STDIN || ((unsigned)h[2] << 8 | h[3]) != id)
            return 0;
        if (clen == 0)
            return 1;
        off += REC_HEADER + clen + h[6];
        if (off > n)
            return 0;
    }
    return 0;
}

int fcgiwire_scan(const unsigned char *p, size_t n, struct fcgiwire_head *hd)
{
    const char **why = &hd->why;
    struct pairs w;
    size_t off = 0;
    unsigned begun = 0; /* the request's id once BEGIN_REQUEST was seen */

    memset(&w, 0, sizeof(w));
    hd->why = NULL;
    hd->body_whole = 0;
    while (n - off >= REC_HEADER) {
        const unsigned char *h = p + off;
        unsigned id = (unsigned)h[2] << 8 | h[3];
        size_t clen = (size_t)h[4] << 8 | h[5], rlen = REC_HEADER + clen + h[6];

        if (h[0] != 1)
            return bad(why, "not FastCGI (version is not 1)");
        if (id == 0) {
            /* Management records (FCGI_GET_VALUES): no web server sends
             * them, and libfcgi answers them into a fixed 64-byte buffer
             * with no bound. */
            return bad(why, "a management record (request id 0)");
        } else if (!begun) {
            if (h[1] != T_BEGIN || clen != 8)
                return bad(why, "the request does not start with BEGIN_REQUEST");
            begun = id;
        } else if (id != begun) {
            /* libfcgi would skip it silently and wait for more. */
            return bad(why, "a record of another request id inside the head");
        } else if (h[1] != T_PARAMS) {
            return bad(why, "a record other than PARAMS before the params ended");
        } else if (clen == 0) {
            if (!pairs_whole(&w))
                return bad(why, "params end inside a pair");
            off += rlen;
            hd->body_whole = off <= n && body_whole(p + off, n - off, begun);
            return FCGIWIRE_COMPLETE;
        } else if (n - off < REC_HEADER + clen) {
            /* Walk what is here of a record still arriving: a bad length
             * is seen now, not after the peer sent 64 KB more. */
            return pairs_feed(&w, h + REC_HEADER, n - off - REC_HEADER) != 0
                       ? bad(why, "malformed or oversized params")
                       : FCGIWIRE_INCOMPLETE;
        } else if (pairs_feed(&w, h + REC_HEADER, clen) != 0) {
            return bad(why, "malformed or oversized params");
        }
        if (n - off < rlen)
            return FCGIWIRE_INCOMPLETE;
        off += rlen;
    }
    return FCGIWIRE_INCOMPLETE;
}
