/*
 * decision.h - what the limiter decides for one request, rule by rule:
 * the types the answer (response.c), the denial cache and the request
 * read, without the Redis client the limiter needs to reach them.
 */
#ifndef RL_DECISION_H
#define RL_DECISION_H

#include <stddef.h>

#include "rlconfig.h"

struct rl_rule_result {
    int applied;         /* 0 when the rule was skipped (no key) */
    int allowed;         /* this rule alone admits the request */
    long long remaining; /* requests left after this one (0 when denied) */
    long long reset_ms;  /* until the quota is whole again (RateLimit t) */
    long long retry_ms;  /* until a request would be admitted; 0 if allowed */
    /* A shadow rule (struct rl_rule) over its limit: allowed is 0, yet it
     * denies nothing; when the decision admits the request, it was
     * admitted anyway (and this rule not charged). */
    int would_deny;
};

struct rl_decision {
    /* every applied rule but the shadow ones admits (the request was
     * charged to each rule that admitted it) */
    int allowed;
    size_t nrules;
    struct rl_rule_result r[RL_MAX_RULES];
    /* The rule the headers and JSON describe, never a shadow rule: on a
     * denial the violated rule with the longest retry; when allowed the one
     * with the fewest remaining (ties: the longer reset). */
    size_t worst;
};

/* Whole seconds, at least 1, for a millisecond delay: Retry-After / ttl. */
long long limiter_ttl_seconds(long long ms);

#endif
