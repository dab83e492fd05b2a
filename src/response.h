/*
 * response.h - every answer the filter writes itself: the denial (429/503
 * with JSON ttl, Retry-After, RateLimit-Policy/RateLimit draft-11 and
 * X-RateLimit-*), the JSON error answers, and the Authorizer's 200.
 *
 * Answers go through struct rl_out (out.h), so that formatting is testable
 * into a memory buffer. JSON bodies are built with json-c. The sink's body
 * field (enum rl_body, from RATELIMIT_BODY) chooses our JSON or RFC 9457
 * application/problem+json for the denial and the errors alike.
 */
#ifndef RL_RESPONSE_H
#define RL_RESPONSE_H

#include <stddef.h>

#include "buf.h"
#include "decision.h"
#include "out.h"
#include "rlconfig.h"

/* "Too Many Requests" for 429, etc.; "Unknown" for others. Static. */
const char *response_reason(int status);

/*
 * Append the rate-limit header lines ("Name: value\r\n") selected by
 * cfg->headers for decision d: RateLimit-Policy (every applied rule),
 * RateLimit and X-RateLimit-Limit/Remaining/Reset (the worst rule).
 * Nothing when no rule applied (d NULL or every rule skipped).
 * RL_OK or RL_ERR (buffer cap).
 */
int response_ratelimit_headers(struct buf *b, const struct rl_config *cfg,
                               const struct rl_decision *d);

/* What a worker remembers of the names it rendered as JSON strings
 * (worker.h); all zero is empty. It holds names, never bodies: a name
 * renders the same in the JSON and the problem+json denial, so both
 * formats share it and the format is no part of its key. */
#define RESPONSE_MEMO_NAMES 8
struct response_memo {
    struct {
        char *name;
        char *json;
    } e[RESPONSE_MEMO_NAMES];
    unsigned next;
};

/* Free what m holds and empty it. */
void response_memo_free(struct response_memo *m);

/* The denial's JSON body (message, policy, limit, remaining, window, ttl);
 * m (may be NULL) remembers the policy names rendered. */
int response_deny_body(struct response_memo *m, struct buf *b, const struct rl_config *cfg,
                       const struct rl_decision *d);

/*
 * The denial as RFC 9457 problem details: type (the draft's
 * ".../http-problem-types#quota-exceeded"), title, status, detail,
 * violated-policies (names of the applied rules that denied) and ttl.
 * m (may be NULL) remembers the names rendered. RL_OK or RL_ERR (cap).
 */
int response_deny_problem_body(struct response_memo *m, struct buf *b, const struct rl_config *cfg,
                               const struct rl_decision *d);

/*
 * The whole denial: "Status: <cfg->status> ..." first, Content-Type
 * (application/json, or application/problem+json when o->body is
 * RL_BODY_PROBLEM), Retry-After = ttl, rate-limit headers, the body of
 * that format. RL_OK or RL_ERR (also, writing nothing, when headers were
 * already sent).
 */
int response_deny(struct response_memo *m, struct rl_out *o, const struct rl_config *cfg,
                  const struct rl_decision *d);

/* The quota a rule advertises (RateLimit-Policy q, X-RateLimit-Limit, the
 * JSON limit): token-bucket's burst, else the limit. */
long long response_rule_quota(const struct rl_rule *rule);

/*
 * An answer of status with the n bytes of body as they are, of
 * content_type; not cached. RL_ERR when headers were already sent or the
 * peer is gone.
 */
int response_text(struct rl_out *o, int status, const char *content_type, const char *body,
                  size_t n);

/*
 * A JSON error answer {"message": message} with status, or, when o->body
 * is RL_BODY_PROBLEM, application/problem+json {"type":"about:blank",
 * "title": reason phrase, "status", "detail": message}; message NULL is
 * the reason phrase. retry_after_s > 0 adds Retry-After. extra_headers
 * ("Name: v\r\n"..., may be NULL) is added as is. Does nothing (RL_ERR)
 * when headers were already sent.
 */
int response_error(struct rl_out *o, int status, const char *message, int retry_after_s,
                   const char *extra_headers);

/*
 * Authorizer allow: "Status: 200" and only Variable-RATELIMIT_LIMIT,
 * Variable-RATELIMIT_REMAINING and Variable-RATELIMIT_RESET (nothing
 * else: Apache leaks other headers to the client); no variables at all
 * when no rule applied. RL_ERR, writing nothing, if headers were sent.
 */
int response_authorizer_allow(struct rl_out *o, const struct rl_config *cfg,
                              const struct rl_decision *d);

#endif
