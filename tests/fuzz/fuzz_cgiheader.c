/*
 * fuzz_cgiheader.c - libFuzzer target for the CGI response header parser
 * (src/cgiheader.c): the bytes a hostile or broken script prints.
 *
 * The first input byte seeds the split points; the rest is the script's
 * stdout. It is parsed once whole and once in chunks whose sizes come
 * from the seed, and the two runs must agree on everything the relay
 * uses (done, failed, error, status, reason, kept fields, header length):
 * the parser promises that any split of the input gives the same result. A finished
 * block is then rendered with cgihdr_block(). Any disagreement aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cgiheader.h"
#include "rl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feed p[0..n) in chunks sized by a small LCG seeded from seed; returns
 * the number of bytes the parser took as header. */
static size_t feed_chunks(struct cgihdr *h, const char *p, size_t n, unsigned seed)
{
    size_t off = 0, header = 0, used;
    unsigned maxchunk = (seed & 0x3f) + 1, x = seed * 2654435761u + 1;

    while (off < n) {
        size_t chunk;

        x = x * 1103515245u + 12345u;
        chunk = 1 + (x >> 16) % maxchunk;
        if (chunk > n - off)
            chunk = n - off;
        used = (size_t)-1;
        if (cgihdr_feed(h, p + off, chunk, &used) != RL_OK)
            return header;
        if (used > chunk)
            abort(); /* the parser took more than it was given */
        header += used;
        off += chunk;
    }
    return header;
}

/* 1 when a and b hold the same bytes (an empty buf may have no storage). */
static int same_buf(const struct buf *a, const struct buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
}

/* Abort unless a and b describe the same outcome. */
static void same_result(const struct cgihdr *a, size_t ua, const struct cgihdr *b, size_t ub)
{
    if (a->done != b->done || a->failed != b->failed)
        abort();
    if (a->failed && strcmp(a->errstr, b->errstr) != 0)
        abort();
    if (!a->done)
        return;
    if (ua != ub || a->total != b->total || a->status != b->status)
        abort();
    if (!same_buf(&a->reason, &b->reason) || !same_buf(&a->kept, &b->kept))
        abort();
}

/* Render the finished block and check the promises of cgiheader.h. */
static void check_block(const struct cgihdr *h)
{
    struct buf out;

    /* A finished block's status is a final one (1xx is a 502). */
    if (h->status < 200 || h->status > 599 || h->reason.len == 0)
        abort();
    buf_init(&out, 2 * CGIHDR_BLOCK_MAX);
    if (cgihdr_block(h, "X-Fuzz: 1\r\n", &out) == RL_OK) {
        if (out.len < 4 || memcmp(out.ptr + out.len - 4, "\r\n\r\n", 4) != 0)
            abort();
        /* A local redirect (a local Location, no Status) has no status
         * line, so that Apache serves the path itself; all else starts
         * with one. */
        if ((memcmp(out.ptr, "Status: ", 8) == 0) == h->local_redirect)
            abort();
    }
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cgihdr whole, parts;
    const char *p;
    size_t n, used = 0, used_parts;

    if (size < 1)
        return 0;
    p = (const char *)data + 1;
    n = size - 1;

    cgihdr_init(&whole);
    if (cgihdr_feed(&whole, p, n, &used) == RL_OK && whole.done)
        check_block(&whole);
    if (whole.done && used > n)
        abort();

    cgihdr_init(&parts);
    used_parts = feed_chunks(&parts, p, n, data[0]);
    same_result(&whole, used, &parts, used_parts);

    cgihdr_free(&whole);
    cgihdr_free(&parts);
    cgihdr_free(NULL);
    return 0;
}
