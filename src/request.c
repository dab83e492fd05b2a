/*
 * request.c - the policy, one request top to bottom (request.h).
 *
 * A fixed pipeline: each stage either lets the request go on or answers
 * it, and then the request is over:
 *
 *   configuration -> metrics path -> identity -> deny/allow lists -> keys
 *     -> denial cache / Redis -> answer (Authorizer's 200) or relay
 *
 * The host's counters (metrics.h) are added to where the pipeline
 * decides: each applied rule's decision, RATELIMIT_FAIL's answers, and
 * (through the output sink) every error answer of ours.
 *
 * Everything a request acquires lives in struct rl_request and is
 * released by request_reset().
 */
#include "request.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fastcgi.h>

#include "cidr.h"
#include "deadline.h"
#include "denycache.h"
#include "fcgxio.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

/* What the client is told when the configuration is invalid. */
#define MSG_MISCONFIGURED "rate limiter misconfigured; see the server error log"

void request_init_fastcgi(struct rl_request *rq, FCGX_Request *r)
{
    memset(rq, 0, sizeof(*rq));
    rq->params = r->envp;
    rq->fcgx = r;
    rq->authorizer = r->role == FCGI_AUTHORIZER;
    rq->out.write = fcgx_write;
    rq->out.flush = fcgx_flush;
    rq->out.ctx = r->out;
    rq->body.read = fcgx_read;
    rq->body.fd = rq->authorizer ? -1 : r->ipcFd;
    rq->body.ctx = r->in;
    log_set_sink(fcgx_log, r);
}

void request_init_cgi(struct rl_request *rq, char *const *env)
{
    memset(rq, 0, sizeof(*rq));
    rq->params = env;
    rq->fds[0] = STDIN_FILENO;
    rq->fds[1] = STDOUT_FILENO;
    rq->fds[2] = STDERR_FILENO;
    rq->out.write = fd_write;
    rq->out.ctx = &rq->fds[1];
    rq->body.read = fd_read;
    rq->body.fd = STDIN_FILENO;
    rq->body.ctx = &rq->fds[0];
}

void request_reset(struct rl_request *rq)
{
    cgirelay_free(rq->relay);
    rq->relay = NULL;
    log_set_sink(NULL, NULL);
}

/* ---------------------------------------------------------------- stages */

/* The configuration for this request: the process's, with the request's
 * overrides (FastCGI only: in plain CGI the environment is the process's
 * own). Arms the request's deadline. */
static enum rl_step config_or_reply(struct rl_worker *w, struct rl_request *rq)
{
    struct rl_err err;

    if (w->cc == NULL) {
        rl_log(RL_LOG_ERROR, "invalid configuration: %s", w->cfg_err.msg);
        (void)response_error(&rq->out, rl_err_status(&w->cfg_err), MSG_MISCONFIGURED, 0, NULL);
        return RL_ANSWERED;
    }
    rq->cfg =
        rq->fcgx == NULL ? config_cache_base(w->cc) : config_for_request(w->cc, rq->params, &err);
    if (rq->cfg == NULL) {
        rl_log(RL_LOG_ERROR, "invalid configuration: %s", err.msg);
        (void)response_error(&rq->out, rl_err_status(&err), MSG_MISCONFIGURED, 0, NULL);
        return RL_ANSWERED;
    }
    rq->out.body = rq->cfg->body; /* every answer of ours from here on: RATELIMIT_BODY */
    /* One deadline for the whole request: a body that stops arriving, a
     * script that runs too long and a peer that stops reading the answer
     * all end there (deadline.h). */
    deadline_arm(rq->cfg->backend_timeout_ms);
    log_set_level(rq->cfg->log_level);
    if (rq->cfg->mode == RL_MODE_AUTHORIZER)
        rq->authorizer = 1;
    return RL_GO_ON;
}

/* The largest metrics text served: 128 rules of 5 series and the rest
 * are about 70 KiB. */
#define METRICS_TEXT_MAX (1024 * 1024)

/* 1 when the request is for path: REQUEST_URI without its query, or
 * SCRIPT_NAME followed by PATH_INFO (the path as the server decoded and
 * mapped it: "%6D" for "m" too). */
static int is_path(char *const *params, const char *path)
{
    const char *uri = env_get(params, "REQUEST_URI"), *sn, *pi;
    size_t n = strlen(path), k;

    if (uri != NULL && strcspn(uri, "?") == n && memcmp(uri, path, n) == 0)
        return 1;
    if ((sn = env_get(params, "SCRIPT_NAME")) == NULL || strncmp(sn, path, (k = strlen(sn))) != 0)
        return 0;
    pi = env_get(params, "PATH_INFO");
    return strcmp(pi != NULL ? pi : "", path + k) == 0;
}

/* 1 when the peer may read the metrics: REMOTE_ADDR is in
 * RATELIMIT_METRICS_ALLOW, and is not a trusted proxy passing on someone
 * else's request (X-Forwarded-For): a reverse proxy on loopback would
 * otherwise hand the counters to every client it forwards. */
static int metrics_peer_ok(const struct rl_request *rq, const char *peer)
{
    struct rl_addr addr;

    if (peer == NULL || cidr_parse_addr(peer, strlen(peer), &addr) != RL_OK ||
        !cidr_list_match(&rq->cfg->metrics_allow, &addr))
        return 0;
    return env_get(rq->params, "HTTP_X_FORWARDED_FOR") == NULL ||
           !cidr_list_match(&rq->cfg->trusted_proxies, &addr);
}

/* RATELIMIT_METRICS_PATH: the host's counters in Prometheus' text format,
 * to clients in RATELIMIT_METRICS_ALLOW, judged by REMOTE_ADDR (the peer
 * itself: a forwarded address can be anybody's); 403 to others and to a
 * trusted proxy forwarding a request. Never counted, never limited, never
 * relayed. Not in the Authorizer role: the web server would drop the text
 * and serve the URL itself, unlimited. 503 without metrics, or once the
 * file was truncated (metrics_lost). */
static enum rl_step metrics_or_reply(struct rl_worker *w, struct rl_request *rq)
{
    const char *peer;
    struct buf b;

    if (rq->cfg->metrics_path == NULL || rq->authorizer ||
        !is_path(rq->params, rq->cfg->metrics_path))
        return RL_GO_ON;
    rq->out.metrics = NULL;
    peer = env_get(rq->params, "REMOTE_ADDR");
    if (!metrics_peer_ok(rq, peer)) {
        rl_log(RL_LOG_INFO,
               "metrics: client %s is not in RATELIMIT_METRICS_ALLOW, or is a trusted "
               "proxy forwarding a request (X-Forwarded-For)",
               peer != NULL ? peer : "(no REMOTE_ADDR)");
        (void)response_error(&rq->out, 403, "forbidden", 0, NULL);
        return RL_ANSWERED;
    }
    if (w->metrics == NULL) {
        rl_log(RL_LOG_WARN, "metrics: %s asked, but metrics are off (see the log at start)",
               rq->cfg->metrics_path);
        (void)response_error(&rq->out, 503, "metrics unavailable", 0, NULL);
        return RL_ANSWERED;
    }
    buf_init(&b, METRICS_TEXT_MAX);
    if (metrics_render(w->metrics, &b) != RL_OK) {
        rl_log(RL_LOG_ERROR, "metrics: the text is larger than %d bytes", METRICS_TEXT_MAX);
        (void)response_error(&rq->out, 500, "metrics unavailable", 0, NULL);
    } else if (metrics_lost(w->metrics)) {
        /* before or while rendering: the text is this process's only */
        rl_log(RL_LOG_WARN, "metrics: %s asked, but the counter file was truncated",
               rq->cfg->metrics_path);
        (void)response_error(&rq->out, 503, "metrics unavailable", 0, NULL);
    } else {
        (void)response_text(&rq->out, 200, "text/plain; version=0.0.4; charset=utf-8", b.ptr,
                            b.len);
    }
    buf_free(&b);
    return RL_ANSWERED;
}

/* Who the client is (REMOTE_ADDR, or what RATELIMIT_* says to trust). */
static enum rl_step identity(struct rl_worker *w, struct rl_request *rq)
{
    (void)w;
    clientkey_resolve(rq->cfg, rq->params, &rq->client);
    return RL_GO_ON;
}

/* RATELIMIT_DENY answers 403; RATELIMIT_ALLOW skips every rule. */
static enum rl_step lists_or_reply(struct rl_worker *w, struct rl_request *rq)
{
    const struct rl_client *c = &rq->client;

    (void)w;
    if (c->has_addr && cidr_list_match(&rq->cfg->deny, &c->addr)) {
        rl_log(RL_LOG_INFO, "client %s is in RATELIMIT_DENY", c->text);
        (void)response_error(&rq->out, 403, "forbidden", 0, NULL);
        return RL_ANSWERED;
    }
    rq->limited = !(c->has_addr && cidr_list_match(&rq->cfg->allow, &c->addr));
    return RL_GO_ON;
}

/* Every rule's Redis key (NULL for a rule that does not apply). */
static enum rl_step keys_or_reply(struct rl_worker *w, struct rl_request *rq)
{
    const struct rl_config *cfg = rq->cfg;
    struct rl_err err;

    for (size_t i = 0; rq->limited && i < cfg->nrules; i++) {
        int rc = clientkey_build(&w->hash, cfg, &cfg->rules[i], &rq->client, rq->params,
                                 rq->keys[i], RL_KEY_MAX, &err);

        if (rc == RL_ERR) {
            rl_log(RL_LOG_ERROR, "client %s: rule %s: %s", rq->client.text, cfg->rules[i].name,
                   err.msg);
            (void)response_error(&rq->out, rl_err_status(&err), "rate limiter error", 0, NULL);
            return RL_ANSWERED;
        }
        rq->keyp[i] = rc == RL_SKIP ? NULL : rq->keys[i];
    }
    return RL_GO_ON;
}

static const char *client_name(const struct rl_request *rq, size_t i, char *out, size_t outsz);

/* An admitted request left rule i at or past RATELIMIT_NEAR_LIMIT of its
 * quota: count it, and say so at info. */
static void near_limit(struct rl_worker *w, struct rl_request *rq, size_t i, int row)
{
    const struct rl_rule *rule = &rq->cfg->rules[i];
    long long quota = response_rule_quota(rule), left = rq->d.r[i].remaining;
    char name[32];

    if ((double)(quota - left) < rq->cfg->near_limit * (double)quota)
        return;
    metrics_near_limit(w->metrics, row);
    rl_log(RL_LOG_INFO, "near limit: client %s rule %s: %lld of %lld left",
           client_name(rq, i, name, sizeof(name)), rule->name, left, quota);
}

/* Count the decision rule by rule (metrics.h): an admitted request is
 * "allowed" by every rule that applied (and perhaps near its limit); a
 * refused one is "denied" (or "denied_cache", or "would_deny" in a dry
 * run) by each rule over its limit. A shadow rule over its limit counts
 * "would_deny" either way. A rule that would have admitted a request
 * another rule refused was not charged and is not counted. */
static void count_decision(struct rl_worker *w, struct rl_request *rq, int from_cache)
{
    const struct rl_config *cfg = rq->cfg;
    enum metrics_decision over = cfg->dry_run ? METRICS_WOULD_DENY
                                 : from_cache ? METRICS_DENIED_CACHE
                                              : METRICS_DENIED;

    if (w->metrics == NULL)
        return;
    for (size_t i = 0; i < rq->d.nrules && i < cfg->nrules; i++) {
        const struct rl_rule_result *r = &rq->d.r[i];
        enum metrics_decision d;
        int row;

        if (!r->applied)
            continue;
        if (!r->allowed && cfg->rules[i].shadow)
            d = METRICS_WOULD_DENY; /* a shadow rule never denies */
        else if (rq->d.allowed)
            d = METRICS_ALLOWED;
        else if (!r->allowed)
            d = over;
        else
            continue; /* it admitted, another rule refused: not charged */
        row = worker_metric_row(w, cfg->rules[i].name);
        metrics_decision(w->metrics, row, d);
        if (d == METRICS_ALLOWED)
            near_limit(w, rq, i, row);
    }
}

/* How the log names the client of rule i: the address for an ip rule;
 * for a header or variable (maybe a credential) only the first 8 hex
 * digits of its hash, from the key's hash tag, never the value. */
static const char *client_name(const struct rl_request *rq, size_t i, char *out, size_t outsz)
{
    const char *tag;

    if (rq->cfg->rules[i].key_kind == RL_KEY_IP)
        return rq->client.text;
    tag = rq->keyp[i] != NULL ? strchr(rq->keyp[i], '{') : NULL;
    (void)snprintf(out, outsz, "key %.8s", tag != NULL ? tag + 1 : "?");
    return out;
}

/* One warn line when a client starts being denied by a rule (an
 * episode: host-wide with metrics, see metrics_episode; per worker
 * without, where the denial cache answers the rest of it); later denials
 * of the episode are info lines. */
static void log_denial(struct rl_worker *w, struct rl_request *rq, int from_cache)
{
    const struct rl_config *cfg = rq->cfg;
    long long now_s = (long long)time(NULL);
    char name[32];

    for (size_t i = 0; i < rq->d.nrules && i < cfg->nrules; i++) {
        const struct rl_rule *rule = &cfg->rules[i];
        const struct rl_rule_result *r = &rq->d.r[i];
        long long ttl = limiter_ttl_seconds(r->retry_ms);
        int start;

        if (!r->applied || r->allowed || rule->shadow)
            continue;
        if (w->metrics == NULL) /* per worker: its denial cache answers the rest */
            start = !from_cache;
        else
            start = rq->keyp[i] != NULL &&
                    metrics_episode(w->metrics, fnv1a(FNV1A_INIT, rq->keyp[i], strlen(rq->keyp[i])),
                                    now_s, now_s + ttl);
        rl_log(start ? RL_LOG_WARN : RL_LOG_INFO,
               "denied client %s: rule %s (%lld per %lld ms) ttl %llds",
               client_name(rq, i, name, sizeof(name)), rule->name, rule->limit, rule->window_ms,
               ttl);
    }
}

/* Over a limit: log, and answer the denial unless this is a dry run. */
static enum rl_step denied_or_reply(struct rl_worker *w, struct rl_request *rq, int from_cache)
{
    const struct rl_config *cfg = rq->cfg;
    const struct rl_rule *rule = &cfg->rules[rq->d.worst];
    long long ttl = limiter_ttl_seconds(rq->d.r[rq->d.worst].retry_ms);

    if (cfg->dry_run) {
        rl_log(RL_LOG_WARN, "dry-run: would deny client %s: rule %s (%lld/%lldms) ttl %llds",
               rq->client.text, rule->name, rule->limit, rule->window_ms, ttl);
        return RL_GO_ON;
    }
    log_denial(w, rq, from_cache);
    (void)response_deny(&w->memo, &rq->out, cfg, &rq->d);
    return RL_ANSWERED;
}

/* Admitted: a line for each shadow rule over its limit (it denies
 * nothing, and was not charged). */
static void shadow_log(const struct rl_request *rq)
{
    const struct rl_config *cfg = rq->cfg;

    for (size_t i = 0; i < rq->d.nrules && i < cfg->nrules; i++) {
        const struct rl_rule *rule = &cfg->rules[i];

        if (!rq->d.r[i].would_deny)
            continue;
        rl_log(RL_LOG_WARN, "shadow: would deny client %s: rule %s (%lld/%lldms) ttl %llds",
               rq->client.text, rule->name, rule->limit, rule->window_ms,
               limiter_ttl_seconds(rq->d.r[i].retry_ms));
    }
}

/* An allowed decision for "not limited" (allow list, every rule skipped,
 * Redis down with fail open): no rule applied, so no rate-limit headers. */
static void decision_unlimited(struct rl_decision *d, const struct rl_config *cfg)
{
    memset(d, 0, sizeof(*d));
    d->allowed = 1;
    d->nrules = cfg->nrules;
}

/* The decision: a denial this worker still remembers (no Redis trip), or
 * Redis's; Redis down, RATELIMIT_FAIL says open (go on) or closed (503). */
static enum rl_step limit_or_reply(struct rl_worker *w, struct rl_request *rq)
{
    const struct rl_config *cfg = rq->cfg;
    struct rl_err err;

    decision_unlimited(&rq->d, cfg);
    if (!rq->limited)
        return RL_GO_ON;
    if (!cfg->dry_run && denycache_lookup(&w->deny, cfg, rq->keyp, now_ms(), &rq->d)) {
        count_decision(w, rq, 1);
        return denied_or_reply(w, rq, 1);
    }
    if (limiter_check(w->rc, cfg, rq->keyp, &rq->d, &err) != RL_OK) {
        rl_log(RL_LOG_DEBUG, "client %s: %s", rq->client.text, err.msg);
        if (err.kind == RL_E_PROTO) /* a reply the limiter could not read */
            metrics_count(w->metrics, METRICS_REDIS_REPLY);
        decision_unlimited(&rq->d, cfg);
        if (cfg->fail == RL_FAIL_OPEN) {
            metrics_count(w->metrics, METRICS_FAIL_OPEN);
            return RL_GO_ON;
        }
        metrics_count(w->metrics, METRICS_FAIL_CLOSED);
        (void)response_error(&rq->out, 503, "rate limiter unavailable", 1, NULL);
        return RL_ANSWERED;
    }
    count_decision(w, rq, 0);
    if (rq->d.allowed) {
        shadow_log(rq);
        return RL_GO_ON;
    }
    if (!cfg->dry_run)
        denycache_store(&w->deny, cfg, rq->keyp, now_ms(), &rq->d);
    return denied_or_reply(w, rq, 0);
}

/* Admitted: the Authorizer's 200, or run the script and relay its answer
 * (the relay is the request's, released by request_reset). */
static enum rl_step admit(struct rl_worker *w, struct rl_request *rq)
{
    struct rl_relay_req *q = &rq->relay_req;

    if (rq->authorizer) {
        (void)response_authorizer_allow(&rq->out, rq->cfg, &rq->d);
        return RL_ANSWERED;
    }
    q->params = rq->params;
    q->cfg = rq->cfg;
    q->body = &rq->body;
    q->out = &rq->out;
    q->decision = &rq->d;
    if (rq->fcgx != NULL) {
        q->errlog = fcgx_errlog;
        q->errlog_ctx = rq->fcgx->err;
        q->end = fcgx_end;
        q->end_ctx = rq->fcgx;
    } else {
        q->errlog = fd_errlog;
        q->errlog_ctx = &rq->fds[2];
    }
    q->self_path = w->self_path[0] ? w->self_path : NULL;
    q->argv1 = w->argv1;
    q->cache = &w->relay;
    rq->relay = cgirelay_new(q);
    (void)cgirelay_run(rq->relay);
    return RL_ANSWERED;
}

void request_handle(struct rl_worker *w, struct rl_request *rq)
{
    static enum rl_step (*const stages[])(struct rl_worker *, struct rl_request *) = {
        config_or_reply, metrics_or_reply, identity, lists_or_reply,
        keys_or_reply,   limit_or_reply,   admit};

    rq->out.metrics = w->metrics;
    for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]); i++) {
        if (stages[i](w, rq) == RL_ANSWERED)
            return;
    }
}
