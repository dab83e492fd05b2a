/*
 * cgiheader.h - the CGI response header parser (RFC 3875 section 6), with
 * no I/O: the relay feeds it the script's stdout in whatever pieces the
 * pipe gives, and it says where the header block ends and the body starts
 * (hiredis read.c style, so tests/unit/test_cgiheader.c needs no process).
 *
 * It accepts LF or CRLF line endings, bounds every line and the whole
 * block, validates Status (200..599: the answer is final), turns a
 * Location without Status into 302 or, for a local path, a local redirect
 * (RFC 3875 6.2.2),
 * refuses repeated CGI fields and drops hop-by-hop fields the script must
 * not send. cgihdr_block() then renders the block the relay writes.
 */
#ifndef RL_CGIHEADER_H
#define RL_CGIHEADER_H

#include <stddef.h>

#include "buf.h"

/* Longest header line, counting its line ending (Apache's 8 KiB). */
#define CGIHDR_LINE_MAX 8192
/* Longest header block, counting the blank line (lighttpd's 64 KiB). */
#define CGIHDR_BLOCK_MAX 65536
#define CGIHDR_ERR_MAX 128

struct cgihdr {
    /* Public results. */
    int done;   /* 1 once the blank line ending the block was consumed */
    int failed; /* 1 after an error (sticky); errstr says why */
    int status; /* the answer's status (200..599), valid once done */
    /* 1 once done when the answer is a local redirect: Location "/path"
     * and no Status (RFC 3875 6.2.2); cgihdr_block then writes no status
     * line, and status says 302 (what a server without them answers). */
    int local_redirect;
    size_t total;      /* bytes of the header block consumed so far */
    struct buf reason; /* reason phrase, valid once done (never empty) */
    struct buf kept;   /* kept fields "Name: value\r\n", in order, no Status */
    char errstr[CGIHDR_ERR_MAX];

    /* Private state of the line machine. */
    int state;          /* enum cgihdr_state in cgiheader.c */
    unsigned seen;      /* CGI fields met so far (bit flags) */
    int local_location; /* the Location met is a local path */
    size_t line_len;    /* bytes of the current line, line ending included */
    size_t name_len;    /* length of the field name in line */
    struct buf line;    /* the current line without its line ending */
};

/* Prepare h for a new answer. Allocates nothing until bytes are fed. */
void cgihdr_init(struct cgihdr *h);

/* Release what h holds; h may be reused after cgihdr_init(). NULL is a no-op. */
void cgihdr_free(struct cgihdr *h);

/*
 * Feed the next n bytes of the script's stdout. *used (may be NULL) gets
 * how many of them belonged to the header block; once h->done, the other
 * n - *used bytes are the start of the body, and later calls consume
 * nothing. Returns RL_OK, or RL_ERR on a malformed block (line without
 * ':', bad name, control character, line or block too long, bad or
 * repeated Status, repeated Location/Content-Type, empty block); then
 * h->failed and h->errstr are set and stay set (the relay answers 502).
 */
int cgihdr_feed(struct cgihdr *h, const char *p, size_t n, size_t *used);

/*
 * Append the block to send, once h->done: "Status: NNN reason\r\n" (none
 * for a local redirect: Apache serves one only when no status is set), the
 * kept fields, extra ("Name: v\r\n"..., may be NULL, added as is) and the
 * blank line. out is the caller's (initialised, owned). RL_OK, or RL_ERR
 * when h is not done or out's cap is reached.
 */
int cgihdr_block(const struct cgihdr *h, const char *extra, struct buf *out);

/* Standard reason phrase for status, or one for its class. Static string. */
const char *cgihdr_reason(int status);

#endif
