/*
 * request.h - one request, whatever role it came in, from its parameters
 * to its answer: the policy of fcgi-ratelimit (request.c).
 */
#ifndef RL_REQUEST_H
#define RL_REQUEST_H

#include <fcgiapp.h>

#include "cgirelay.h"
#include "clientkey.h"
#include "limiter.h"
#include "response.h"
#include "rlconfig.h"
#include "worker.h"

/* One request. Set up by request_init_fastcgi() or request_init_cgi(),
 * filled by request_handle(), released by request_reset(). */
struct rl_request {
    char *const *params; /* borrowed: FCGX envp or environ */
    int authorizer;      /* the FastCGI role is AUTHORIZER */
    FCGX_Request *fcgx;  /* NULL in plain CGI */
    struct rl_out out;
    struct rl_body_src body;
    int fds[3]; /* plain CGI: stdin, stdout, stderr, the adapters' ctx */
    /* Filled stage by stage. */
    const struct rl_config *cfg;
    struct rl_client client;
    int limited; /* 0: on the allow list, no rule is checked */
    char keys[RL_MAX_RULES][RL_KEY_MAX];
    const char *keyp[RL_MAX_RULES]; /* into keys; NULL: the rule is skipped */
    struct rl_decision d;
    struct rl_relay_req relay_req;
    struct relay *relay; /* owned: the script's run */
};

/* A FastCGI request libfcgi has read the head of (r borrowed until
 * request_reset). Log lines go to its FCGI_STDERR until then. */
void request_init_fastcgi(struct rl_request *rq, FCGX_Request *r);

/* The plain CGI request of this process: environ, fds 0, 1 and 2. */
void request_init_cgi(struct rl_request *rq, char *const *env);

/*
 * Serve rq with worker w: configuration, identity, allow and deny lists,
 * the denial cache or Redis, then the answer (denial, Authorizer's 200)
 * or the relay to the script. Always answers.
 */
void request_handle(struct rl_worker *w, struct rl_request *rq);

/* Release everything rq holds (the relay's child, fds and spool too)
 * and restore the log sink. */
void request_reset(struct rl_request *rq);

#endif
