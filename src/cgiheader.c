/*
 * cgiheader.c - CGI response header parser (see cgiheader.h).
 *
 * Two tables do the work. A byte-class x state transition table (the
 * shape of fcgiwrap's header_state_machine, without its bugs) splits the
 * stream into field lines, accepting LF or CRLF and refusing bare CR,
 * control characters, folding and names that are not RFC 9110 tokens; it
 * never looks back, so any split of the input gives the same result. A
 * field table then handles each complete line: Status is consumed and
 * validated, the CGI fields may appear once, hop-by-hop fields are dropped
 * (RFC 3875 6.3: the script must not send them), everything else is kept
 * in order. Memory is bounded by CGIHDR_LINE_MAX and CGIHDR_BLOCK_MAX.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cgiheader.h"
#include "rl.h"
#include "util.h"

enum cgihdr_state {
    RL_HS_START = 0,
    RL_HS_NAME,
    RL_HS_NAME_WS,
    RL_HS_VALUE,
    RL_HS_CR,
    RL_HS_END_CR,
    RL_HS_DONE,
    RL_HS_FAIL,
    RL_HS_COUNT
};

/* Byte classes (RFC 9110 5.6.2 tokens, RFC 3875 6.3 field syntax). */
enum cgihdr_class {
    RL_HC_TOKEN = 0,
    RL_HC_COLON,
    RL_HC_WS,
    RL_HC_CR,
    RL_HC_LF,
    RL_HC_CTL,
    RL_HC_TEXT,
    RL_HC_COUNT
};

/* Actions; the E_* ones fail with the message of the same index. */
enum cgihdr_action {
    RL_HA_ADD = 0, /* byte joins the current line */
    RL_HA_COLON,   /* the name ends here */
    RL_HA_NONE,    /* CR of a CRLF: wait for the LF */
    RL_HA_LINE,    /* a field line is complete */
    RL_HA_END,     /* the blank line: the block is complete */
    RL_HE_BADNAME,
    RL_HE_NOCOLON,
    RL_HE_NAMEWS,
    RL_HE_FOLD,
    RL_HE_NONAME,
    RL_HE_CTL,
    RL_HE_BARECR,
    RL_HA_COUNT
};

static const char *const cgihdr_errmsg[RL_HA_COUNT] = {
    [RL_HE_BADNAME] = "invalid character in a header name",
    [RL_HE_NOCOLON] = "header line without ':'",
    [RL_HE_NAMEWS] = "whitespace before ':' in a header line",
    [RL_HE_FOLD] = "continuation line (obsolete line folding)",
    [RL_HE_NONAME] = "header line without a name",
    [RL_HE_CTL] = "control character in a header value",
    [RL_HE_BARECR] = "CR not followed by LF",
};

struct cgihdr_trans {
    unsigned char next, action;
};

/* clang-format off */
/* T: go to state s doing action a; X: fail with error e. */
#define T(s, a) {RL_HS_##s, RL_HA_##a}
#define X(e) {RL_HS_FAIL, RL_HE_##e}
static const struct cgihdr_trans cgihdr_table[RL_HS_COUNT][RL_HC_COUNT] = {
    /*                  TOKEN          COLON            WS                CR               LF            CTL         TEXT */
    [RL_HS_START]   = {T(NAME, ADD),    X(NONAME),       X(FOLD),          T(END_CR, NONE), T(DONE, END),  X(BADNAME), X(BADNAME)},
    [RL_HS_NAME]    = {T(NAME, ADD),    T(VALUE, COLON), T(NAME_WS, NONE), X(NOCOLON),      X(NOCOLON),    X(BADNAME), X(BADNAME)},
    /* Whitespace after a name: a ':' further on means "X-A : b" (refused,
     * RFC 3875 6.3), none means a line of text such as a script that
     * forgot its headers; the rest of the line tells which. */
    [RL_HS_NAME_WS] = {T(NAME_WS, NONE), X(NAMEWS),      T(NAME_WS, NONE), X(NOCOLON),      X(NOCOLON),    X(CTL),     T(NAME_WS, NONE)},
    [RL_HS_VALUE]   = {T(VALUE, ADD),   T(VALUE, ADD),   T(VALUE, ADD),    T(CR, NONE),     T(START, LINE), X(CTL),    T(VALUE, ADD)},
    [RL_HS_CR]      = {X(BARECR),       X(BARECR),       X(BARECR),        X(BARECR),       T(START, LINE), X(BARECR), X(BARECR)},
    [RL_HS_END_CR]  = {X(BARECR),       X(BARECR),       X(BARECR),        X(BARECR),       T(DONE, END),  X(BARECR),  X(BARECR)},
};
/* clang-format on */
#undef X
#undef T

/* Fields met so far, for the "must not repeat" rule and the final status. */
#define RL_HF_ANY 1u
#define RL_HF_STATUS 2u
#define RL_HF_LOCATION 4u
#define RL_HF_CTYPE 8u

/* What happens to a field line with this name (case-insensitive). */
enum cgihdr_kind { RL_HK_KEEP = 0, RL_HK_STATUS, RL_HK_DROP };

struct cgihdr_field {
    const char *name;
    unsigned flag; /* non-zero: may appear once */
    int kind;
};

static const struct cgihdr_field cgihdr_fields[] = {
    {"Status", RL_HF_STATUS, RL_HK_STATUS},
    {"Location", RL_HF_LOCATION, RL_HK_KEEP},
    {"Content-Type", RL_HF_CTYPE, RL_HK_KEEP},
    /* Hop-by-hop (RFC 9110 7.6.1): about the server's own connection to
     * the client, which the script does not own (RFC 3875 6.3.4 lets the
     * server strip them). */
    {"Connection", 0, RL_HK_DROP},
    {"Keep-Alive", 0, RL_HK_DROP},
    {"Proxy-Connection", 0, RL_HK_DROP},
    {"Transfer-Encoding", 0, RL_HK_DROP},
    {"TE", 0, RL_HK_DROP},
    {"Trailer", 0, RL_HK_DROP},
    {"Upgrade", 0, RL_HK_DROP},
};

static const struct {
    int status;
    const char *reason;
} cgihdr_reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {425, "Too Early"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {451, "Unavailable For Legal Reasons"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *cgihdr_reason(int status)
{
    static const char *const class_reason[] = {"Informational", "Success", "Redirection",
                                               "Client Error", "Server Error"};
    size_t i;

    for (i = 0; i < sizeof cgihdr_reasons / sizeof cgihdr_reasons[0]; i++) {
        if (cgihdr_reasons[i].status == status)
            return cgihdr_reasons[i].reason;
    }
    if (status >= 100 && status <= 599)
        return class_reason[status / 100 - 1];
    return "Unknown";
}

static int byte_class(unsigned char c)
{
    /* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
     * "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA (RFC 9110 5.6.2) */
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
        (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL))
        return RL_HC_TOKEN;
    switch (c) {
    case ':':
        return RL_HC_COLON;
    case ' ':
    case '\t':
        return RL_HC_WS;
    case '\r':
        return RL_HC_CR;
    case '\n':
        return RL_HC_LF;
    default:
        return (c < 0x20 || c == 0x7f) ? RL_HC_CTL : RL_HC_TEXT;
    }
}

static int fail(struct cgihdr *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct cgihdr *h, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(h->errstr, sizeof h->errstr, fmt, ap);
    va_end(ap);
    h->failed = 1;
    h->state = RL_HS_FAIL;
    return RL_ERR;
}

void cgihdr_init(struct cgihdr *h)
{
    memset(h, 0, sizeof *h);
    h->state = RL_HS_START;
    buf_init(&h->line, CGIHDR_LINE_MAX);
    buf_init(&h->reason, CGIHDR_LINE_MAX);
    /* A kept line may grow by 2 bytes ("A:b\n" gives "A: b\r\n"). */
    buf_init(&h->kept, 2 * CGIHDR_BLOCK_MAX);
}

void cgihdr_free(struct cgihdr *h)
{
    if (h == NULL)
        return;
    buf_free(&h->line);
    buf_free(&h->reason);
    buf_free(&h->kept);
}

/* "NNN" or "NNN reason": three digits 200..599. RFC 3875 6.3.3 allows any
 * three digits, but the answer is final: a 1xx (say "100 Continue") is no
 * answer at all, and the web server would wait for another one. */
static int on_status(struct cgihdr *h, const char *v, size_t n)
{
    size_t i = 3;

    if (n < 3 || v[0] < '2' || v[0] > '5' || v[1] < '0' || v[1] > '9' || v[2] < '0' || v[2] > '9' ||
        (n > 3 && v[3] != ' ' && v[3] != '\t'))
        return fail(h, "invalid Status '%.*s'", (int)(n < 40 ? n : 40), v);
    h->status = (v[0] - '0') * 100 + (v[1] - '0') * 10 + (v[2] - '0');
    while (i < n && (v[i] == ' ' || v[i] == '\t'))
        i++;
    buf_reset(&h->reason);
    if (buf_append(&h->reason, v + i, n - i) != RL_OK)
        return fail(h, "Status reason too long");
    return RL_OK;
}

static const struct cgihdr_field *field_lookup(const char *name, size_t n)
{
    size_t i;

    for (i = 0; i < sizeof cgihdr_fields / sizeof cgihdr_fields[0]; i++) {
        if (strlen(cgihdr_fields[i].name) == n && ascii_ncaseeq(cgihdr_fields[i].name, name, n))
            return &cgihdr_fields[i];
    }
    return NULL;
}

/* One complete field line: line = name (name_len bytes) then the value. */
static int on_line(struct cgihdr *h)
{
    const char *name = h->line.ptr, *v = h->line.ptr + h->name_len;
    size_t n = h->line.len - h->name_len;
    const struct cgihdr_field *f = field_lookup(name, h->name_len);
    int rc = RL_OK;

    /* Optional whitespace around the value is not part of it. */
    while (n > 0 && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    h->seen |= RL_HF_ANY;
    if (f != NULL && f->flag != 0) {
        if (h->seen & f->flag)
            return fail(h, "repeated %s header", f->name);
        h->seen |= f->flag;
    }
    if (f != NULL && f->flag == RL_HF_LOCATION && n == 0)
        return fail(h, "empty Location header");
    /* local-Location is an abs-path (RFC 3875 6.2.2); "//host/x" is a
     * network-path reference, so a client redirect. */
    if (f != NULL && f->flag == RL_HF_LOCATION)
        h->local_location = v[0] == '/' && (n == 1 || v[1] != '/');
    if (f != NULL && f->kind == RL_HK_STATUS)
        rc = on_status(h, v, n);
    else if (f == NULL || f->kind == RL_HK_KEEP) {
        if (buf_append(&h->kept, name, h->name_len) != RL_OK ||
            buf_append(&h->kept, n > 0 ? ": " : ":", n > 0 ? 2 : 1) != RL_OK ||
            buf_append(&h->kept, v, n) != RL_OK || buf_append(&h->kept, "\r\n", 2) != RL_OK)
            rc = fail(h, "header block too large");
    }
    buf_reset(&h->line);
    h->name_len = 0;
    h->line_len = 0;
    return rc;
}

/* The blank line: settle the status. A Location without Status is a
 * client redirect, 302 (RFC 3875 6.2.3), unless it is a local path: then
 * a local redirect (6.2.2), which the block passes on without a status
 * line so that a server that does them (Apache) serves the path itself;
 * status then says what the answer is to a server that does not (302). */
static int on_end(struct cgihdr *h)
{
    if (!(h->seen & RL_HF_ANY))
        return fail(h, "no header block (the answer starts with a blank line)");
    if (!(h->seen & RL_HF_STATUS)) {
        h->status = (h->seen & RL_HF_LOCATION) ? 302 : 200;
        h->local_redirect = (h->seen & RL_HF_LOCATION) && h->local_location;
    }
    if (h->reason.len == 0 && buf_puts(&h->reason, cgihdr_reason(h->status)) != RL_OK)
        return fail(h, "Status reason too long");
    h->done = 1;
    return RL_OK;
}

/* Run one byte through the machine. */
static int step(struct cgihdr *h, unsigned char c)
{
    const struct cgihdr_trans *t = &cgihdr_table[h->state][byte_class(c)];

    if (++h->line_len > CGIHDR_LINE_MAX)
        return fail(h, "header line longer than %d bytes", CGIHDR_LINE_MAX);
    if (++h->total > CGIHDR_BLOCK_MAX)
        return fail(h, "header block larger than %d bytes (no blank line?)", CGIHDR_BLOCK_MAX);
    h->state = t->next;
    switch (t->action) {
    case RL_HA_ADD:
        /* Cannot fail: line's cap equals CGIHDR_LINE_MAX, checked above. */
        return buf_append(&h->line, &c, 1) == RL_OK ? RL_OK : fail(h, "header line too long");
    case RL_HA_COLON:
        h->name_len = h->line.len;
        return RL_OK;
    case RL_HA_NONE:
        return RL_OK;
    case RL_HA_LINE:
        return on_line(h);
    case RL_HA_END:
        return on_end(h);
    default:
        return fail(h, "%s", cgihdr_errmsg[t->action]);
    }
}

int cgihdr_feed(struct cgihdr *h, const char *p, size_t n, size_t *used)
{
    size_t i = 0;
    int rc = h->failed ? RL_ERR : RL_OK;

    while (rc == RL_OK && !h->done && i < n)
        rc = step(h, (unsigned char)p[i++]);
    if (used != NULL)
        *used = i;
    return rc;
}

int cgihdr_block(const struct cgihdr *h, const char *extra, struct buf *out)
{
    if (!h->done || h->failed)
        return RL_ERR;
    if ((!h->local_redirect &&
         buf_printf(out, "Status: %d %s\r\n", h->status, buf_str(&h->reason)) != RL_OK) ||
        buf_append(out, buf_str(&h->kept), h->kept.len) != RL_OK ||
        (extra != NULL && buf_puts(out, extra) != RL_OK) || buf_append(out, "\r\n", 2) != RL_OK)
        return RL_ERR;
    return RL_OK;
}
