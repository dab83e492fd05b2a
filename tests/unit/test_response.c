/*
 * test_response.c - the bytes of every answer response.c writes: the README's
 * denial byte for byte, 503, each RATELIMIT_HEADERS choice, several rules,
 * allowed headers, the Authorizer's 200, JSON errors, a sink that fails,
 * and RATELIMIT_BODY=problem (RFC 9457), whose bodies are read back with
 * json-c. Answers are written into a memory rl_out, so no FastCGI is
 * involved.
 */
#include <string.h>

#include <json-c/json.h>

#include "buf.h"
#include "rlconfig.h"
#include "limiter.h"
#include "response.h"
#include "rl.h"
#include "testhelp.h"

struct mem_sink {
    struct buf b;
    int calls;
    int fail; /* 1: every write fails, as when the peer has gone */
    int flushes;
};

static int mem_write(void *ctx, const char *p, size_t n)
{
    struct mem_sink *m = ctx;

    m->calls++;
    if (m->fail)
        return RL_ERR;
    return buf_append(&m->b, p, n);
}

static int mem_flush(void *ctx)
{
    struct mem_sink *m = ctx;

    m->flushes++;
    return m->fail ? RL_ERR : RL_OK;
}

static void sink_init(struct mem_sink *m, struct rl_out *o)
{
    memset(m, 0, sizeof(*m));
    buf_init(&m->b, 1 << 20);
    memset(o, 0, sizeof(*o));
    o->write = mem_write;
    o->flush = mem_flush;
    o->ctx = m;
}

static void set_rule(struct rl_rule *r, const char *name, long long limit, long long window_ms,
                     int algo, long long burst)
{
    memset(r, 0, sizeof(*r));
    memcpy(r->name, name, strlen(name) + 1);
    r->key_kind = RL_KEY_IP;
    r->limit = limit;
    r->window_ms = window_ms;
    r->algo = algo;
    r->burst = burst;
}

/* The README's example: "default", 5 per 60 s, denied with 42 s to wait. */
static void spec_example(struct rl_config *cfg, struct rl_decision *d)
{
    memset(cfg, 0, sizeof(*cfg));
    set_rule(&cfg->rules[0], "default", 5, 60000, RL_ALGO_FIXED_WINDOW, 5);
    cfg->nrules = 1;
    memcpy(cfg->prefix, "ratelimit:", 11);
    cfg->status = 429;
    cfg->headers = RL_HDR_IETF | RL_HDR_X;
    cfg->ipv6_prefix = 64;
    memset(d, 0, sizeof(*d));
    d->allowed = 0;
    d->nrules = 1;
    d->r[0].applied = 1;
    d->r[0].allowed = 0;
    d->r[0].remaining = 0;
    d->r[0].reset_ms = 41200; /* rounds up to 42 */
    d->r[0].retry_ms = 41200;
    d->worst = 0;
}

static const char spec_headers[] = "Content-Type: application/json\r\n"
                                   "Cache-Control: no-store\r\n"
                                   "Retry-After: 42\r\n"
                                   "RateLimit-Policy: \"default\";q=5;w=60\r\n"
                                   "RateLimit: \"default\";r=0;t=42\r\n"
                                   "X-RateLimit-Limit: 5\r\n"
                                   "X-RateLimit-Remaining: 0\r\n"
                                   "X-RateLimit-Reset: 42\r\n"
                                   "\r\n";
static const char spec_body[] = "{\"message\":\"call limit reached\",\"policy\":\"default\","
                                "\"limit\":5,\"remaining\":0,\"window\":60,\"ttl\":42}";

static void test_deny(void)
{
    struct rl_config cfg;
    struct rl_decision d;
    struct mem_sink m;
    struct rl_out o;
    struct buf want, body;

    spec_example(&cfg, &d);
    buf_init(&body, 4096);
    test_cond("deny body", response_deny_body(NULL, &body, &cfg, &d) == RL_OK &&
                               strcmp(buf_str(&body), spec_body) == 0);
    buf_free(&body);

    sink_init(&m, &o);
    buf_init(&want, 4096);
    buf_printf(&want, "Status: 429 Too Many Requests\r\n%s%s\n", spec_headers, spec_body);
    test_cond("deny 429 is the README example", response_deny(NULL, &o, &cfg, &d) == RL_OK &&
                                                    strcmp(buf_str(&m.b), buf_str(&want)) == 0);
    test_cond("deny is one write", m.calls == 1 && o.headers_sent == 1);
    test_cond("deny refuses a second header block",
              response_deny(NULL, &o, &cfg, &d) == RL_ERR && m.calls == 1);
    buf_free(&m.b);

    cfg.status = 503;
    sink_init(&m, &o);
    buf_reset(&want);
    buf_printf(&want, "Status: 503 Service Unavailable\r\n%s%s\n", spec_headers, spec_body);
    test_cond("deny 503", response_deny(NULL, &o, &cfg, &d) == RL_OK &&
                              strcmp(buf_str(&m.b), buf_str(&want)) == 0);
    buf_free(&m.b);
    buf_free(&want);

    /* ttl is whole seconds, at least 1, and Retry-After is the same. */
    cfg.status = 429;
    d.r[0].retry_ms = 1;
    sink_init(&m, &o);
    test_cond("deny ttl at least 1", response_deny(NULL, &o, &cfg, &d) == RL_OK &&
                                         strstr(buf_str(&m.b), "Retry-After: 1\r\n") != NULL &&
                                         strstr(buf_str(&m.b), "\"ttl\":1}\n") != NULL);
    buf_free(&m.b);
}

static int headers_for(int flags, const char *want)
{
    struct rl_config cfg;
    struct rl_decision d;
    struct buf b;
    int ok;

    spec_example(&cfg, &d);
    cfg.headers = flags;
    buf_init(&b, 4096);
    ok = response_ratelimit_headers(&b, &cfg, &d) == RL_OK && strcmp(buf_str(&b), want) == 0;
    buf_free(&b);
    return ok;
}

static void test_header_choice(void)
{
    test_cond("headers=ietf", headers_for(RL_HDR_IETF, "RateLimit-Policy: \"default\";q=5;w=60\r\n"
                                                       "RateLimit: \"default\";r=0;t=42\r\n"));
    test_cond("headers=x", headers_for(RL_HDR_X, "X-RateLimit-Limit: 5\r\n"
                                                 "X-RateLimit-Remaining: 0\r\n"
                                                 "X-RateLimit-Reset: 42\r\n"));
    test_cond("headers=none", headers_for(0, ""));
    test_cond("headers=all",
              headers_for(RL_HDR_IETF | RL_HDR_X, "RateLimit-Policy: \"default\";q=5;w=60\r\n"
                                                  "RateLimit: \"default\";r=0;t=42\r\n"
                                                  "X-RateLimit-Limit: 5\r\n"
                                                  "X-RateLimit-Remaining: 0\r\n"
                                                  "X-RateLimit-Reset: 42\r\n"));
}

/* Three rules, the middle one skipped (its header was missing). */
static void three_rules(struct rl_config *cfg, struct rl_decision *d)
{
    spec_example(cfg, d);
    set_rule(&cfg->rules[0], "per-ip", 100, 60000, RL_ALGO_SLIDING_WINDOW, 100);
    set_rule(&cfg->rules[1], "per-user", 10, 1000, RL_ALGO_FIXED_WINDOW, 10);
    set_rule(&cfg->rules[2], "per-key", 5000, 3600000, RL_ALGO_TOKEN_BUCKET, 200);
    cfg->nrules = 3;
    memset(d, 0, sizeof(*d));
    d->allowed = 1;
    d->nrules = 3;
    d->r[0] =
        (struct rl_rule_result){.applied = 1, .allowed = 1, .remaining = 97, .reset_ms = 59001};
    d->r[2] =
        (struct rl_rule_result){.applied = 1, .allowed = 1, .remaining = 12, .reset_ms = 1500};
    d->worst = 2;
}

static void test_allowed(void)
{
    struct rl_config cfg;
    struct rl_decision d;
    struct buf b;

    three_rules(&cfg, &d);
    buf_init(&b, 4096);
    test_cond("several rules, skipped one left out",
              response_ratelimit_headers(&b, &cfg, &d) == RL_OK &&
                  strcmp(buf_str(&b), "RateLimit-Policy: \"per-ip\";q=100;w=60, "
                                      "\"per-key\";q=200;w=3600\r\n"
                                      "RateLimit: \"per-key\";r=12;t=2\r\n"
                                      "X-RateLimit-Limit: 200\r\n"
                                      "X-RateLimit-Remaining: 12\r\n"
                                      "X-RateLimit-Reset: 2\r\n") == 0);
    /* A sub-second window still advertises w=1 (draft-11: non-zero). */
    buf_reset(&b);
    cfg.rules[0].window_ms = 500;
    d.worst = 0;
    d.r[0].reset_ms = 0;
    test_cond("sub-second window, reset 0",
              response_ratelimit_headers(&b, &cfg, &d) == RL_OK &&
                  strstr(buf_str(&b), "\"per-ip\";q=100;w=1, ") != NULL &&
                  strstr(buf_str(&b), "RateLimit: \"per-ip\";r=97;t=0\r\n") != NULL);
    buf_reset(&b);
    d.r[0].applied = 0;
    d.r[2].applied = 0;
    test_cond("all skipped: no headers",
              response_ratelimit_headers(&b, &cfg, &d) == RL_OK && b.len == 0);
    test_cond("no decision: no headers",
              response_ratelimit_headers(&b, &cfg, NULL) == RL_OK && b.len == 0);
    buf_free(&b);

    three_rules(&cfg, &d);
    buf_init(&b, 40);
    test_cond("headers past the cap", response_ratelimit_headers(&b, &cfg, &d) == RL_ERR);
    buf_free(&b);
}

/* three_rules with per-key a shadow rule over its limit. */
static void shadow_rules(struct rl_config *cfg, struct rl_decision *d)
{
    three_rules(cfg, d);
    cfg->rules[2].shadow = 1;
    d->r[2] = (struct rl_rule_result){
        .applied = 1, .allowed = 0, .reset_ms = 9000, .retry_ms = 8000, .would_deny = 1};
    d->worst = 0;
}

static void test_shadow(void)
{
    struct rl_config cfg;
    struct rl_decision d;
    struct mem_sink m;
    struct rl_out o;
    struct buf b;

    shadow_rules(&cfg, &d);
    buf_init(&b, 4096);
    test_cond("shadow rule: no header names it",
              response_ratelimit_headers(&b, &cfg, &d) == RL_OK &&
                  strcmp(buf_str(&b), "RateLimit-Policy: \"per-ip\";q=100;w=60\r\n"
                                      "RateLimit: \"per-ip\";r=97;t=60\r\n"
                                      "X-RateLimit-Limit: 100\r\n"
                                      "X-RateLimit-Remaining: 97\r\n"
                                      "X-RateLimit-Reset: 60\r\n") == 0);
    buf_reset(&b);
    d.worst = 2; /* even if named: the first rule shown instead */
    test_cond("shadow rule named worst: not shown",
              response_ratelimit_headers(&b, &cfg, &d) == RL_OK &&
                  strstr(buf_str(&b), "per-key") == NULL &&
                  strstr(buf_str(&b), "RateLimit: \"per-ip\";r=97;") != NULL);
    buf_reset(&b);
    d.r[0].applied = 0;
    test_cond("only a shadow rule applied: no headers",
              response_ratelimit_headers(&b, &cfg, &d) == RL_OK && b.len == 0);
    buf_free(&b);
    sink_init(&m, &o);
    test_cond("only a shadow rule applied: authorizer sends no variable",
              response_authorizer_allow(&o, &cfg, &d) == RL_OK &&
                  strstr(buf_str(&m.b), "RATELIMIT") == NULL);
    buf_free(&m.b);

    shadow_rules(&cfg, &d);
    d.allowed = 0;
    d.r[1] = (struct rl_rule_result){.applied = 1, .allowed = 0, .reset_ms = 700, .retry_ms = 700};
    d.worst = 1;
    sink_init(&m, &o);
    test_cond("a real rule denies: the answer names it, not the shadow rule",
              response_deny(NULL, &o, &cfg, &d) == RL_OK &&
                  strstr(buf_str(&m.b), "\"policy\":\"per-user\"") != NULL &&
                  strstr(buf_str(&m.b), "per-key") == NULL);
    buf_free(&m.b);
}

static void test_authorizer(void)
{
    struct rl_config cfg;
    struct rl_decision d;
    struct mem_sink m;
    struct rl_out o;

    three_rules(&cfg, &d);
    sink_init(&m, &o);
    test_cond("authorizer allow", response_authorizer_allow(&o, &cfg, &d) == RL_OK &&
                                      strcmp(buf_str(&m.b), "Status: 200 OK\r\n"
                                                            "Variable-RATELIMIT_LIMIT: 200\r\n"
                                                            "Variable-RATELIMIT_REMAINING: 12\r\n"
                                                            "Variable-RATELIMIT_RESET: 2\r\n"
                                                            "\r\n") == 0);
    buf_free(&m.b);
    d.r[0].applied = 0;
    d.r[2].applied = 0;
    sink_init(&m, &o);
    test_cond("authorizer allow, nothing counted",
              response_authorizer_allow(&o, &cfg, &d) == RL_OK &&
                  strcmp(buf_str(&m.b), "Status: 200 OK\r\n\r\n") == 0);
    buf_free(&m.b);
    sink_init(&m, &o);
    test_cond("authorizer allow, no decision",
              response_authorizer_allow(&o, &cfg, NULL) == RL_OK &&
                  strcmp(buf_str(&m.b), "Status: 200 OK\r\n\r\n") == 0);
    buf_free(&m.b);
}

static void test_error(void)
{
    struct mem_sink m;
    struct rl_out o;
    static char x_hdr[] = "X-Test: 1\r\n";

    sink_init(&m, &o);
    test_cond("error 503 with Retry-After",
              response_error(&o, 503, "redis unreachable", 1, NULL) == RL_OK &&
                  strcmp(buf_str(&m.b), "Status: 503 Service Unavailable\r\n"
                                        "Content-Type: application/json\r\n"
                                        "Cache-Control: no-store\r\n"
                                        "Retry-After: 1\r\n"
                                        "\r\n"
                                        "{\"message\":\"redis unreachable\"}\n") == 0);
    test_cond("error sets headers_sent", o.headers_sent == 1);
    test_cond("error after headers: nothing written",
              response_error(&o, 500, "x", 0, NULL) == RL_ERR && m.calls == 1);
    buf_free(&m.b);

    sink_init(&m, &o);
    test_cond("error 404, extra headers, JSON escaping",
              response_error(&o, 404, "no \"x\" at /a\\b", 0, x_hdr) == RL_OK &&
                  strcmp(buf_str(&m.b), "Status: 404 Not Found\r\n"
                                        "Content-Type: application/json\r\n"
                                        "Cache-Control: no-store\r\n"
                                        "X-Test: 1\r\n"
                                        "\r\n"
                                        "{\"message\":\"no \\\"x\\\" at /a\\\\b\"}\n") == 0);
    buf_free(&m.b);
}

static void test_failing_sink(void)
{
    struct rl_config cfg;
    struct rl_decision d;
    struct mem_sink m;
    struct rl_out o;

    spec_example(&cfg, &d);
    sink_init(&m, &o);
    test_cond("out_puts ok", out_puts(&o, "abc") == RL_OK && out_flush(&o) == RL_OK &&
                                 m.flushes == 1 && strcmp(buf_str(&m.b), "abc") == 0);
    m.fail = 1;
    test_cond("failed write", out_write(&o, "x", 1) == RL_ERR && o.failed == 1);
    m.fail = 0;
    test_cond("failure is sticky",
              out_puts(&o, "y") == RL_ERR && out_flush(&o) == RL_ERR && m.calls == 2);
    test_cond("deny into a dead sink", response_deny(NULL, &o, &cfg, &d) == RL_ERR && m.calls == 2);
    test_cond("even an empty write fails once failed", out_write(&o, "", 0) == RL_ERR);
    buf_free(&m.b);

    sink_init(&m, &o);
    o.flush = NULL;
    m.fail = 1;
    test_cond("flush NULL is ok", out_flush(&o) == RL_OK);
    test_cond("error into a dead sink",
              response_error(&o, 500, "x", 0, NULL) == RL_ERR && o.failed == 1);
    buf_free(&m.b);
}

/* Names no configuration accepts, to show the escaping is still right:
 * sf-string in the headers, json-c in the body; and more names than the
 * body's memo of rendered names holds. */
static void test_odd_names(void)
{
    static const char *const names[] = {"n0", "n1", "n2", "n3", "n4", "n5",
                                        "n6", "n7", "n8", "n9", "n0"};
    struct rl_config cfg;
    struct rl_decision d;
    struct buf b;
    char want[128];
    int ok = 1;

    spec_example(&cfg, &d);
    set_rule(&cfg.rules[0], "a\"b\\c\x01/", 5, 60000, RL_ALGO_FIXED_WINDOW, 5);
    buf_init(&b, 4096);
    test_cond("odd name: sf-string",
              response_ratelimit_headers(&b, &cfg, &d) == RL_OK &&
                  strstr(b.ptr, "RateLimit: \"a\\\"b\\\\c_/\";r=0;t=42\r\n") != NULL);
    buf_reset(&b);
    test_cond("odd name: json", response_deny_body(NULL, &b, &cfg, &d) == RL_OK &&
                                    strstr(b.ptr, "\"policy\":\"a\\\"b\\\\c\\u0001/\",") != NULL);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        set_rule(&cfg.rules[0], names[i], 5, 60000, RL_ALGO_FIXED_WINDOW, 5);
        buf_reset(&b);
        snprintf(want, sizeof(want), "\"policy\":\"%s\",", names[i]);
        ok = ok && response_deny_body(NULL, &b, &cfg, &d) == RL_OK && strstr(b.ptr, want) != NULL;
    }
    test_cond("json names past the memo", ok);
    buf_free(&b);
}

/* The body after the header block, parsed; NULL if it is not JSON. */
static struct json_object *parse_body(const char *answer)
{
    const char *p = strstr(answer, "\r\n\r\n");

    return p != NULL ? json_tokener_parse(p + 4) : NULL;
}

/* obj's string member key equals want. */
static int str_member(struct json_object *obj, const char *key, const char *want)
{
    struct json_object *v;

    return json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_string) &&
           strcmp(json_object_get_string(v), want) == 0;
}

static int int_member(struct json_object *obj, const char *key, int want)
{
    struct json_object *v;

    return json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_int) &&
           json_object_get_int(v) == want;
}

/* violated-policies is an array of exactly the names want (n of them). */
static int policies_member(struct json_object *obj, const char *const *want, size_t n)
{
    struct json_object *a;

    if (!json_object_object_get_ex(obj, "violated-policies", &a) ||
        !json_object_is_type(a, json_type_array) || json_object_array_length(a) != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(a, i);

        if (!json_object_is_type(e, json_type_string) || strcmp(json_object_get_string(e), want[i]))
            return 0;
    }
    return 1;
}

static const char quota_type[] = "https://iana.org/assignments/http-problem-types#quota-exceeded";

static void test_problem_deny(void)
{
    static const char *const one[] = {"default"}, *const two[] = {"per-ip", "per-key"};
    struct rl_config cfg;
    struct rl_decision d;
    struct mem_sink m;
    struct rl_out o;
    struct json_object *j = NULL;
    struct buf want;

    spec_example(&cfg, &d);
    sink_init(&m, &o);
    o.body = RL_BODY_PROBLEM;
    buf_init(&want, 4096);
    /* The README's headers, with only the Content-Type changed. */
    buf_printf(&want,
               "Status: 429 Too Many Requests\r\n"
               "Content-Type: application/problem+json\r\n%s",
               strchr(spec_headers, '\n') + 1);
    test_cond("problem deny: one write, same headers",
              response_deny(NULL, &o, &cfg, &d) == RL_OK && m.calls == 1 &&
                  strncmp(buf_str(&m.b), buf_str(&want), want.len) == 0);
    j = parse_body(buf_str(&m.b));
    test_cond("problem deny: body is JSON", j != NULL && json_object_is_type(j, json_type_object));
    test_cond("problem deny: members", str_member(j, "type", quota_type) &&
                                           str_member(j, "title",
                                                      "Request cannot be satisfied as "
                                                      "assigned quota has been exceeded") &&
                                           int_member(j, "status", 429) &&
                                           str_member(j, "detail",
                                                      "call limit reached; try "
                                                      "again in 42 s") &&
                                           policies_member(j, one, 1) && int_member(j, "ttl", 42));
    test_cond("problem deny: nothing else", j != NULL && json_object_object_length(j) == 6);
    json_object_put(j);
    j = NULL;
    buf_free(&m.b);
    buf_free(&want);

    cfg.status = 503;
    sink_init(&m, &o);
    o.body = RL_BODY_PROBLEM;
    test_cond("problem deny 503", response_deny(NULL, &o, &cfg, &d) == RL_OK &&
                                      strncmp(buf_str(&m.b), "Status: 503 ", 12) == 0 &&
                                      (j = parse_body(buf_str(&m.b))) != NULL &&
                                      int_member(j, "status", 503));
    json_object_put(j);
    j = NULL;
    buf_free(&m.b);

    /* Two of three rules deny (the middle one was skipped): both named,
     * in rule order; ttl is the longest retry, the one described. */
    three_rules(&cfg, &d);
    d.allowed = 0;
    d.r[0] = (struct rl_rule_result){.applied = 1, .retry_ms = 3000, .reset_ms = 3000};
    d.r[2] = (struct rl_rule_result){.applied = 1, .retry_ms = 9500, .reset_ms = 9500};
    d.worst = 2;
    sink_init(&m, &o);
    o.body = RL_BODY_PROBLEM;
    test_cond("problem deny: every denying rule", response_deny(NULL, &o, &cfg, &d) == RL_OK &&
                                                      (j = parse_body(buf_str(&m.b))) != NULL &&
                                                      policies_member(j, two, 2) &&
                                                      int_member(j, "ttl", 10));
    json_object_put(j);
    j = NULL;
    buf_free(&m.b);
    /* One denying rule of two applied: only it. */
    d.r[0].allowed = 1;
    d.r[0].retry_ms = 0;
    sink_init(&m, &o);
    o.body = RL_BODY_PROBLEM;
    test_cond("problem deny: an admitting rule is not named",
              response_deny(NULL, &o, &cfg, &d) == RL_OK &&
                  (j = parse_body(buf_str(&m.b))) != NULL && policies_member(j, two + 1, 1));
    json_object_put(j);
    buf_free(&m.b);
}

/* One memo serves both formats: it holds rendered names, not bodies, so a
 * name first rendered for one format is right in the other. */
static void test_problem_memo(void)
{
    static const char *const odd[] = {"a\"b\\c\x01/"};
    struct response_memo memo;
    struct rl_config cfg;
    struct rl_decision d;
    struct json_object *j = NULL;
    struct buf b;

    memset(&memo, 0, sizeof(memo));
    spec_example(&cfg, &d);
    set_rule(&cfg.rules[0], odd[0], 5, 60000, RL_ALGO_FIXED_WINDOW, 5);
    buf_init(&b, 4096);
    test_cond("memo: json first", response_deny_body(&memo, &b, &cfg, &d) == RL_OK &&
                                      (j = json_tokener_parse(buf_str(&b))) != NULL &&
                                      str_member(j, "policy", odd[0]));
    json_object_put(j);
    j = NULL;
    buf_reset(&b);
    test_cond("memo: then problem, odd name escaped",
              response_deny_problem_body(&memo, &b, &cfg, &d) == RL_OK &&
                  (j = json_tokener_parse(buf_str(&b))) != NULL && policies_member(j, odd, 1));
    json_object_put(j);
    buf_reset(&b);
    test_cond("memo: json again unchanged", response_deny_body(&memo, &b, &cfg, &d) == RL_OK &&
                                                strstr(buf_str(&b), "\"message\":") != NULL);
    buf_free(&b);
    response_memo_free(&memo);

    buf_init(&b, 40);
    test_cond("problem body past the cap",
              response_deny_problem_body(NULL, &b, &cfg, &d) == RL_ERR);
    buf_free(&b);
}

static void test_problem_error(void)
{
    static const char head403[] = "Status: 403 Forbidden\r\n"
                                  "Content-Type: application/problem+json\r\n"
                                  "Cache-Control: no-store\r\n\r\n{";
    struct mem_sink m;
    struct rl_out o;
    struct json_object *j = NULL;

    sink_init(&m, &o);
    o.body = RL_BODY_PROBLEM;
    test_cond("problem 403", response_error(&o, 403, "forbidden", 0, NULL) == RL_OK &&
                                 strncmp(buf_str(&m.b), head403, sizeof(head403) - 1) == 0);
    j = parse_body(buf_str(&m.b));
    test_cond("problem 403 members",
              str_member(j, "type", "about:blank") && str_member(j, "title", "Forbidden") &&
                  int_member(j, "status", 403) && str_member(j, "detail", "forbidden") &&
                  json_object_object_length(j) == 4);
    json_object_put(j);
    j = NULL;
    buf_free(&m.b);

    sink_init(&m, &o);
    o.body = RL_BODY_PROBLEM;
    test_cond("problem 503 keeps Retry-After and extra headers",
              response_error(&o, 503, "rate limiter unavailable", 1, "X-Test: 1\r\n") == RL_OK &&
                  strstr(buf_str(&m.b), "Retry-After: 1\r\nX-Test: 1\r\n\r\n{") != NULL &&
                  (j = parse_body(buf_str(&m.b))) != NULL &&
                  str_member(j, "title", "Service Unavailable") && int_member(j, "status", 503) &&
                  str_member(j, "detail", "rate limiter unavailable"));
    json_object_put(j);
    j = NULL;
    buf_free(&m.b);

    /* The body's status is the one on the status line, also for a bug's. */
    sink_init(&m, &o);
    o.body = RL_BODY_PROBLEM;
    test_cond("problem: bad status is 500 in both places",
              response_error(&o, 42, NULL, 0, NULL) == RL_OK &&
                  strncmp(buf_str(&m.b), "Status: 500 ", 12) == 0 &&
                  (j = parse_body(buf_str(&m.b))) != NULL && int_member(j, "status", 500) &&
                  str_member(j, "title", "Internal Server Error"));
    json_object_put(j);
    buf_free(&m.b);

    /* The default (0) is JSON, byte for byte as before. */
    sink_init(&m, &o);
    test_cond("json is the default",
              o.body == RL_BODY_JSON && response_error(&o, 403, "forbidden", 0, NULL) == RL_OK &&
                  strcmp(buf_str(&m.b), "Status: 403 Forbidden\r\n"
                                        "Content-Type: application/json\r\n"
                                        "Cache-Control: no-store\r\n"
                                        "\r\n"
                                        "{\"message\":\"forbidden\"}\n") == 0);
    buf_free(&m.b);
}

static void test_reason(void)
{
    test_cond("reason 200", strcmp(response_reason(200), "OK") == 0);
    test_cond("reason 302", strcmp(response_reason(302), "Found") == 0);
    test_cond("reason 403", strcmp(response_reason(403), "Forbidden") == 0);
    test_cond("reason 404", strcmp(response_reason(404), "Not Found") == 0);
    test_cond("reason 429", strcmp(response_reason(429), "Too Many Requests") == 0);
    test_cond("reason 500", strcmp(response_reason(500), "Internal Server Error") == 0);
    test_cond("reason 502", strcmp(response_reason(502), "Bad Gateway") == 0);
    test_cond("reason 503", strcmp(response_reason(503), "Service Unavailable") == 0);
    test_cond("reason 504", strcmp(response_reason(504), "Gateway Timeout") == 0);
    test_cond("reason unknown", strcmp(response_reason(799), "Unknown") == 0);
}

int main(void)
{
    test_deny();
    test_header_choice();
    test_allowed();
    test_shadow();
    test_authorizer();
    test_error();
    test_failing_sink();
    test_odd_names();
    test_problem_deny();
    test_problem_memo();
    test_problem_error();
    test_reason();
    return test_report();
}
