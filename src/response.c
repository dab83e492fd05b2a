/*
 * response.c - the answers the filter writes itself (response.h).
 *
 * Every answer is formatted completely into one capped buffer and handed to
 * the sink in a single write, so a peer never sees half a header block and
 * a failed write leaves nothing to undo. Every JSON string is made by
 * json-c: names and messages are escaped by it, never by us. The denial,
 * the hot path, is assembled from a constant frame, json-c's rendering of
 * the policy name (remembered per name) and integers, without printf or a
 * json-c object per request. RateLimit-Policy and
 * RateLimit follow draft-ietf-httpapi-ratelimit-headers-11 (Structured
 * Field lists, RFC 9651); all times are delta-seconds, never epochs.
 * The sink's body field (RATELIMIT_BODY) picks the body format: our JSON,
 * or RFC 9457 problem details; the headers are the same in both.
 */
#include "response.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cgiheader.h"
#include "metrics.h"
#include "rl.h"
#include "util.h"

#define RESP_MAX (16 * 1024) /* any answer of ours is far smaller */
#define RESP_START 1024      /* room reserved up front: one allocation */

/* The problem type draft-ietf-httpapi-ratelimit-headers (-09 on) registers
 * for a request that exceeds one or more quota policies; its extension
 * member "violated-policies" lists their names. */
#define PROBLEM_QUOTA_TYPE "https://iana.org/assignments/http-problem-types#quota-exceeded"
#define PROBLEM_QUOTA_TITLE "Request cannot be satisfied as assigned quota has been exceeded"

int out_write(struct rl_out *o, const void *p, size_t n)
{
    if (o->failed)
        return RL_ERR;
    if (n == 0)
        return RL_OK;
    if (o->write(o->ctx, p, n) != RL_OK) {
        o->failed = 1;
        return RL_ERR;
    }
    return RL_OK;
}

int out_puts(struct rl_out *o, const char *s)
{
    return out_write(o, s, strlen(s));
}

int out_flush(struct rl_out *o)
{
    if (o->failed)
        return RL_ERR;
    if (o->flush != NULL && o->flush(o->ctx) != RL_OK) {
        o->failed = 1;
        return RL_ERR;
    }
    return RL_OK;
}

const char *response_reason(int status)
{
    /* One reason table for the whole program: the CGI header parser's. */
    return cgihdr_reason(status);
}

/* Whole seconds rounded up, for windows and resets; 0 stays 0. */
static long long ceil_seconds(long long ms)
{
    if (ms <= 0)
        return 0;
    return ms / 1000 + (ms % 1000 != 0);
}

/* A window in seconds: draft-11 wants a non-zero integer. */
static long long window_seconds(const struct rl_rule *rule)
{
    long long s = ceil_seconds(rule->window_ms);

    return s < 1 ? 1 : s;
}

/*
 * The quota a rule advertises (RateLimit-Policy q, X-RateLimit-Limit, JSON
 * limit). For token-bucket it is the bucket capacity (burst): that is the
 * most a client can spend at once and the bound of the remaining count we
 * report, so r <= q always holds; w stays the configured window (the
 * bucket refills LIMIT tokens per window). Other algorithms: LIMIT.
 */
long long response_rule_quota(const struct rl_rule *rule)
{
    if (rule->algo == RL_ALGO_TOKEN_BUCKET && rule->burst > 0)
        return rule->burst;
    return rule->limit;
}

static size_t rule_count(const struct rl_config *cfg, const struct rl_decision *d)
{
    size_t n = d->nrules < cfg->nrules ? d->nrules : cfg->nrules;

    return n < RL_MAX_RULES ? n : RL_MAX_RULES;
}

/* A rule the answer may describe: applied, and not a shadow rule (those
 * send no header). */
static int shown(const struct rl_config *cfg, const struct rl_decision *d, size_t i)
{
    return d->r[i].applied && !cfg->rules[i].shadow;
}

/*
 * The rule the answer describes: d->worst when it names a rule shown
 * (applied, not shadow), else the first one shown; -1 when none is (all
 * skipped or shadow) or there is no decision at all (d NULL: not limited).
 */
static int pick_rule(const struct rl_config *cfg, const struct rl_decision *d)
{
    size_t i, n;

    if (d == NULL)
        return -1;
    n = rule_count(cfg, d);
    if (d->worst < n && shown(cfg, d, d->worst))
        return (int)d->worst;
    for (i = 0; i < n; i++) {
        if (shown(cfg, d, i))
            return (int)i;
    }
    return -1;
}

static long long clamp0(long long v)
{
    return v < 0 ? 0 : v;
}

/*
 * Append name as an sf-string: quoted, '"' and '\' escaped. Config keeps
 * names to [A-Za-z0-9_.-]; anything else outside printable ASCII (which an
 * sf-string cannot carry, and CR/LF would split the header) becomes '_'.
 */
static int append_sf_string(struct buf *b, const char *name)
{
    const unsigned char *p = (const unsigned char *)name;

    if (buf_append(b, "\"", 1) != RL_OK)
        return RL_ERR;
    while (*p != '\0') {
        const unsigned char *run = p;

        /* The usual name is one run of plain characters: one append. */
        while (*p >= 0x20 && *p <= 0x7e && *p != '"' && *p != '\\')
            p++;
        if (p > run && buf_append(b, run, (size_t)(p - run)) != RL_OK)
            return RL_ERR;
        if (*p == '\0')
            break;
        if (*p == '"' || *p == '\\') {
            if (buf_append(b, "\\", 1) != RL_OK || buf_append(b, p, 1) != RL_OK)
                return RL_ERR;
        } else if (buf_append(b, "_", 1) != RL_OK) {
            return RL_ERR;
        }
        p++;
    }
    return buf_append(b, "\"", 1);
}

/* RateLimit-Policy: one list member per rule shown (pick_rule). */
static int append_policy(struct buf *b, const struct rl_config *cfg, const struct rl_decision *d)
{
    size_t i, n = rule_count(cfg, d);
    int first = 1;

    if (buf_puts(b, "RateLimit-Policy: ") != RL_OK)
        return RL_ERR;
    for (i = 0; i < n; i++) {
        const struct rl_rule *rule = &cfg->rules[i];

        if (!shown(cfg, d, i))
            continue;
        if ((!first && buf_puts(b, ", ") != RL_OK) || append_sf_string(b, rule->name) != RL_OK ||
            buf_puts(b, ";q=") != RL_OK || buf_append_ll(b, response_rule_quota(rule)) != RL_OK ||
            buf_puts(b, ";w=") != RL_OK || buf_append_ll(b, window_seconds(rule)) != RL_OK)
            return RL_ERR;
        first = 0;
    }
    return buf_puts(b, "\r\n");
}

int response_ratelimit_headers(struct buf *b, const struct rl_config *cfg,
                               const struct rl_decision *d)
{
    int w = pick_rule(cfg, d);
    const struct rl_rule *rule;
    long long remaining, reset;

    if (w < 0)
        return RL_OK; /* nothing was counted: nothing to report */
    rule = &cfg->rules[w];
    remaining = clamp0(d->r[w].remaining);
    reset = ceil_seconds(d->r[w].reset_ms);
    if (cfg->headers & RL_HDR_IETF) {
        if (append_policy(b, cfg, d) != RL_OK || buf_puts(b, "RateLimit: ") != RL_OK ||
            append_sf_string(b, rule->name) != RL_OK || buf_puts(b, ";r=") != RL_OK ||
            buf_append_ll(b, remaining) != RL_OK || buf_puts(b, ";t=") != RL_OK ||
            buf_append_ll(b, reset) != RL_OK || buf_puts(b, "\r\n") != RL_OK)
            return RL_ERR;
    }
    if (cfg->headers & RL_HDR_X) {
        if (buf_puts(b, "X-RateLimit-Limit: ") != RL_OK ||
            buf_append_ll(b, response_rule_quota(rule)) != RL_OK ||
            buf_puts(b, "\r\nX-RateLimit-Remaining: ") != RL_OK ||
            buf_append_ll(b, remaining) != RL_OK ||
            buf_puts(b, "\r\nX-RateLimit-Reset: ") != RL_OK || buf_append_ll(b, reset) != RL_OK ||
            buf_puts(b, "\r\n") != RL_OK)
            return RL_ERR;
    }
    return RL_OK;
}

/* Add key: val to obj, consuming val (also on failure, and NULL is an
 * error: a failed json-c constructor). */
static int json_add(struct json_object *obj, const char *key, struct json_object *val)
{
    if (val == NULL)
        return RL_ERR;
    if (json_object_object_add(obj, key, val) != 0) {
        json_object_put(val); /* not stolen when the add fails */
        return RL_ERR;
    }
    return RL_OK;
}

/* Serialise obj compactly onto b (no spaces, "/" unescaped). obj is borrowed. */
static int json_append(struct buf *b, struct json_object *obj)
{
    const char *s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
                                                            JSON_C_TO_STRING_NOSLASHESCAPE);

    if (s == NULL)
        return RL_ERR;
    return buf_puts(b, s);
}

/* The rule a denial describes and its ttl (>= 1); rule 0 if none applied. */
static size_t deny_rule(const struct rl_config *cfg, const struct rl_decision *d, long long *ttl)
{
    int w = pick_rule(cfg, d);

    *ttl = limiter_ttl_seconds(w < 0 ? 0 : d->r[w].retry_ms);
    return w < 0 ? 0 : (size_t)w;
}

void response_memo_free(struct response_memo *m)
{
    for (size_t i = 0; i < RESPONSE_MEMO_NAMES; i++) {
        free(m->e[i].name);
        free(m->e[i].json);
    }
    memset(m, 0, sizeof(*m));
}

/*
 * Append name as a JSON string, quoted and escaped by json-c, remembered
 * in m (may be NULL): names come from the configuration, so a worker
 * meets a handful of them and renders each once. RL_OK or RL_ERR.
 */
static int append_json_name(struct response_memo *m, struct buf *b, const char *name)
{
    struct json_object *o;
    const char *s;
    unsigned i;
    int rc;

    for (i = 0; m != NULL && i < RESPONSE_MEMO_NAMES; i++) {
        if (m->e[i].name != NULL && strcmp(m->e[i].name, name) == 0)
            return buf_puts(b, m->e[i].json);
    }
    o = json_object_new_string(name);
    s = o != NULL ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                          JSON_C_TO_STRING_NOSLASHESCAPE)
                  : NULL;
    rc = s != NULL ? buf_puts(b, s) : RL_ERR;
    if (s != NULL && m != NULL) {
        i = m->next++ % RESPONSE_MEMO_NAMES;
        free(m->e[i].name);
        free(m->e[i].json);
        m->e[i].name = xstrdup(name);
        m->e[i].json = xstrdup(s);
    }
    json_object_put(o);
    return rc;
}

/* The fields in the order the README shows them; remaining is 0 in
 * every denial. */
int response_deny_body(struct response_memo *m, struct buf *b, const struct rl_config *cfg,
                       const struct rl_decision *d)
{
    long long ttl;
    const struct rl_rule *rule = &cfg->rules[deny_rule(cfg, d, &ttl)];

    if (buf_puts(b, "{\"message\":\"call limit reached\",\"policy\":") != RL_OK ||
        append_json_name(m, b, rule->name) != RL_OK || buf_puts(b, ",\"limit\":") != RL_OK ||
        buf_append_ll(b, response_rule_quota(rule)) != RL_OK ||
        buf_puts(b, ",\"remaining\":0,\"window\":") != RL_OK ||
        buf_append_ll(b, window_seconds(rule)) != RL_OK || buf_puts(b, ",\"ttl\":") != RL_OK ||
        buf_append_ll(b, ttl) != RL_OK || buf_puts(b, "}") != RL_OK)
        return RL_ERR;
    return RL_OK;
}

/*
 * The denial as problem details (RFC 9457), members in a fixed order:
 * type, title, status, detail, violated-policies (every applied rule that
 * denied; the described rule if the decision names none), and ttl as an
 * extension member. Assembled like the JSON body: a constant frame, the
 * names rendered by json-c (remembered in m: a name renders the same in
 * either body, so one memo serves both) and integers.
 */
int response_deny_problem_body(struct response_memo *m, struct buf *b, const struct rl_config *cfg,
                               const struct rl_decision *d)
{
    long long ttl;
    size_t w = deny_rule(cfg, d, &ttl), i, n = d != NULL ? rule_count(cfg, d) : 0;
    int status = cfg->status == 503 ? 503 : 429, first = 1;

    if (buf_puts(b, "{\"type\":\"" PROBLEM_QUOTA_TYPE "\",\"title\":\"" PROBLEM_QUOTA_TITLE
                    "\",\"status\":") != RL_OK ||
        buf_append_ll(b, status) != RL_OK ||
        buf_puts(b, ",\"detail\":\"call limit reached; try again in ") != RL_OK ||
        buf_append_ll(b, ttl) != RL_OK || buf_puts(b, " s\",\"violated-policies\":[") != RL_OK)
        return RL_ERR;
    for (i = 0; i < n; i++) {
        if (!d->r[i].applied || d->r[i].allowed || cfg->rules[i].shadow)
            continue; /* a shadow rule never denies, and is never shown */
        if ((!first && buf_puts(b, ",") != RL_OK) ||
            append_json_name(m, b, cfg->rules[i].name) != RL_OK)
            return RL_ERR;
        first = 0;
    }
    if (first && append_json_name(m, b, cfg->rules[w].name) != RL_OK)
        return RL_ERR;
    if (buf_puts(b, "],\"ttl\":") != RL_OK || buf_append_ll(b, ttl) != RL_OK ||
        buf_puts(b, "}") != RL_OK)
        return RL_ERR;
    return RL_OK;
}

/* The status we put on the wire: one outside 100..599 is a bug: 500. */
static int wire_status(int status)
{
    return status < 100 || status > 599 ? 500 : status;
}

/* "Status: N Reason\r\n" for wire_status(status). */
static int append_status(struct buf *b, int status)
{
    status = wire_status(status);
    if (buf_puts(b, "Status: ") != RL_OK || buf_append_ll(b, status) != RL_OK ||
        buf_puts(b, " ") != RL_OK || buf_puts(b, response_reason(status)) != RL_OK)
        return RL_ERR;
    return buf_puts(b, "\r\n");
}

/* Write b as the complete answer (headers and body) in one write. */
static int send_answer(struct rl_out *o, struct buf *b)
{
    int r = out_write(o, b->ptr, b->len);

    o->headers_sent = 1;
    buf_free(b);
    return r;
}

/* The Content-Type line and Cache-Control: no-store for o's body format. */
static int append_content_type(struct buf *b, const struct rl_out *o)
{
    return buf_puts(b, o->body == RL_BODY_PROBLEM ? "Content-Type: application/problem+json\r\n"
                                                    "Cache-Control: no-store\r\n"
                                                  : "Content-Type: application/json\r\n"
                                                    "Cache-Control: no-store\r\n");
}

int response_deny(struct response_memo *m, struct rl_out *o, const struct rl_config *cfg,
                  const struct rl_decision *d)
{
    struct buf b;
    long long ttl;
    int status = cfg->status == 503 ? 503 : 429;
    int problem = o->body == RL_BODY_PROBLEM;

    if (o->headers_sent)
        return RL_ERR; /* a second header block would corrupt the answer */
    (void)deny_rule(cfg, d, &ttl);
    buf_init(&b, RESP_MAX);
    /* Status first, as in every answer of ours; 429 must not be cached
     * (RFC 6585 section 4). */
    if (buf_reserve(&b, RESP_START) != RL_OK || append_status(&b, status) != RL_OK ||
        append_content_type(&b, o) != RL_OK || buf_puts(&b, "Retry-After: ") != RL_OK ||
        buf_append_ll(&b, ttl) != RL_OK || buf_puts(&b, "\r\n") != RL_OK ||
        response_ratelimit_headers(&b, cfg, d) != RL_OK || buf_puts(&b, "\r\n") != RL_OK ||
        (problem ? response_deny_problem_body(m, &b, cfg, d) : response_deny_body(m, &b, cfg, d)) !=
            RL_OK ||
        buf_puts(&b, "\n") != RL_OK) {
        buf_free(&b);
        return RL_ERR;
    }
    return send_answer(o, &b);
}

/*
 * The error body onto b: {"message": message}, or with problem set RFC
 * 9457 problem details of no particular type: "about:blank", whose title
 * is the status's reason phrase (RFC 9457 section 4.2.1), and the message
 * as the detail.
 */
static int error_body(struct buf *b, int problem, int status, const char *message)
{
    struct json_object *obj = json_object_new_object();
    int r = RL_ERR;

    if (obj == NULL)
        return RL_ERR;
    if (!problem) {
        if (json_add(obj, "message", json_object_new_string(message)) == RL_OK)
            r = json_append(b, obj);
    } else if (json_add(obj, "type", json_object_new_string("about:blank")) == RL_OK &&
               json_add(obj, "title", json_object_new_string(response_reason(status))) == RL_OK &&
               json_add(obj, "status", json_object_new_int(status)) == RL_OK &&
               json_add(obj, "detail", json_object_new_string(message)) == RL_OK) {
        r = json_append(b, obj);
    }
    json_object_put(obj);
    return r;
}

int response_error(struct rl_out *o, int status, const char *message, int retry_after_s,
                   const char *extra_headers)
{
    struct buf b;

    if (o->headers_sent)
        return RL_ERR; /* too late: the status is already on the wire */
    metrics_own_status(o->metrics, status);
    if (message == NULL)
        message = response_reason(status);
    buf_init(&b, RESP_MAX);
    if (append_status(&b, status) != RL_OK || append_content_type(&b, o) != RL_OK ||
        (retry_after_s > 0 && buf_printf(&b, "Retry-After: %d\r\n", retry_after_s) != RL_OK) ||
        (extra_headers != NULL && buf_puts(&b, extra_headers) != RL_OK) ||
        buf_puts(&b, "\r\n") != RL_OK ||
        error_body(&b, o->body == RL_BODY_PROBLEM, wire_status(status), message) != RL_OK ||
        buf_puts(&b, "\n") != RL_OK) {
        buf_free(&b);
        return RL_ERR;
    }
    return send_answer(o, &b);
}

int response_text(struct rl_out *o, int status, const char *content_type, const char *body,
                  size_t n)
{
    struct buf b;

    if (o->headers_sent)
        return RL_ERR;
    buf_init(&b, RESP_MAX);
    if (append_status(&b, status) != RL_OK ||
        buf_printf(&b, "Content-Type: %s\r\nCache-Control: no-store\r\nContent-Length: %zu\r\n\r\n",
                   content_type, n) != RL_OK) {
        buf_free(&b);
        return RL_ERR;
    }
    o->headers_sent = 1;
    if (out_write(o, b.ptr, b.len) != RL_OK) {
        buf_free(&b);
        return RL_ERR;
    }
    buf_free(&b);
    return out_write(o, body, n);
}

/*
 * When every rule was skipped (RATELIMIT_KEY_MISSING=skip) nothing was
 * counted, so no Variable-RATELIMIT_* is sent at all, as the responder sends
 * no RateLimit headers then: the application can tell "not limited" from
 * "limited, N left" by the variables' absence.
 */
int response_authorizer_allow(struct rl_out *o, const struct rl_config *cfg,
                              const struct rl_decision *d)
{
    struct buf b;
    int w = pick_rule(cfg, d);

    if (o->headers_sent)
        return RL_ERR;
    buf_init(&b, RESP_MAX);
    if (buf_reserve(&b, RESP_START) != RL_OK || buf_puts(&b, "Status: 200 OK\r\n") != RL_OK ||
        (w >= 0 && (buf_puts(&b, "Variable-RATELIMIT_LIMIT: ") != RL_OK ||
                    buf_append_ll(&b, response_rule_quota(&cfg->rules[w])) != RL_OK ||
                    buf_puts(&b, "\r\nVariable-RATELIMIT_REMAINING: ") != RL_OK ||
                    buf_append_ll(&b, clamp0(d->r[w].remaining)) != RL_OK ||
                    buf_puts(&b, "\r\nVariable-RATELIMIT_RESET: ") != RL_OK ||
                    buf_append_ll(&b, ceil_seconds(d->r[w].reset_ms)) != RL_OK ||
                    buf_puts(&b, "\r\n") != RL_OK)) ||
        buf_puts(&b, "\r\n") != RL_OK) {
        buf_free(&b);
        return RL_ERR;
    }
    return send_answer(o, &b);
}
