/*
 * request.c - the policy, one request top to bottom (request.h).
 *
 * A fixed pipeline: each stage either lets the request go on or answers
 * it, and then the request is over:
 *
 *   configuration -> identity -> deny/allow lists -> keys
 *     -> denial cache / Redis -> answer (Authorizer's 200) or relay
 *
 * Everything a request acquires lives in struct rl_request and is
 * released by request_reset().
 */
#include "request.h"

#include <string.h>
#include <unistd.h>

#include <fastcgi.h>

#include "cidr.h"
#include "deadline.h"
#include "denycache.h"
#include "fcgxio.h"
#include "log.h"
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
    /* One deadline for the whole request: a body that stops arriving, a
     * script that runs too long and a peer that stops reading the answer
     * all end there (deadline.h). */
    deadline_arm(rq->cfg->backend_timeout_ms);
    log_set_level(rq->cfg->log_level);
    if (rq->cfg->mode == RL_MODE_AUTHORIZER)
        rq->authorizer = 1;
    return RL_GO_ON;
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

/* Over a limit: log, and answer the denial unless this is a dry run. */
static enum rl_step denied_or_reply(struct rl_worker *w, struct rl_request *rq)
{
    const struct rl_config *cfg = rq->cfg;
    const struct rl_rule *rule = &cfg->rules[rq->d.worst];
    long long ttl = limiter_ttl_seconds(rq->d.r[rq->d.worst].retry_ms);

    if (cfg->dry_run) {
        rl_log(RL_LOG_WARN, "dry-run: would deny client %s: rule %s (%lld/%lldms) ttl %llds",
               rq->client.text, rule->name, rule->limit, rule->window_ms, ttl);
        return RL_GO_ON;
    }
    rl_log(RL_LOG_INFO, "denied client %s: rule %s ttl %llds", rq->client.text, rule->name, ttl);
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
    if (!cfg->dry_run && denycache_lookup(&w->deny, cfg, rq->keyp, now_ms(), &rq->d))
        return denied_or_reply(w, rq);
    if (limiter_check(w->rc, cfg, rq->keyp, &rq->d, &err) != RL_OK) {
        rl_log(RL_LOG_DEBUG, "client %s: %s", rq->client.text, err.msg);
        decision_unlimited(&rq->d, cfg);
        if (cfg->fail == RL_FAIL_OPEN)
            return RL_GO_ON;
        (void)response_error(&rq->out, 503, "rate limiter unavailable", 1, NULL);
        return RL_ANSWERED;
    }
    if (rq->d.allowed) {
        shadow_log(rq);
        return RL_GO_ON;
    }
    if (!cfg->dry_run)
        denycache_store(&w->deny, cfg, rq->keyp, now_ms(), &rq->d);
    return denied_or_reply(w, rq);
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
        config_or_reply, identity, lists_or_reply, keys_or_reply, limit_or_reply, admit};

    for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]); i++) {
        if (stages[i](w, rq) == RL_ANSWERED)
            return;
    }
}
