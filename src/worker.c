/*
 * worker.c - the worker's state (worker.h).
 */
#include "worker.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

void worker_init(struct rl_worker *w, char **env, const char *argv1)
{
    ssize_t n;

    memset(w, 0, sizeof(*w));
    w->argv1 = argv1;
    w->cc = config_cache_new(env, &w->cfg_err);
    if (w->cc != NULL)
        log_set_level(config_cache_base(w->cc)->log_level);
    w->rc = redisconn_new();
    n = readlink("/proc/self/exe", w->self_path, sizeof(w->self_path) - 1);
    w->self_path[n > 0 ? n : 0] = '\0';
}

/* The row of name: cached, else registered by reg (metrics_rule or
 * metrics_rule_request) and cached, (other) with a warn line included. */
static int metric_row(struct rl_worker *w, const char *name,
                      int (*reg)(struct metrics *, const char *, struct rl_err *))
{
    struct rl_err err;
    size_t i;
    int row;

    if (w->metrics == NULL)
        return METRICS_RULE_OTHER;
    for (i = 0; i < w->nmrows; i++) {
        if (strcmp(w->mrows[i].name, name) == 0)
            return w->mrows[i].row;
    }
    if (w->nmrows == METRICS_RULES)
        return METRICS_RULE_OTHER; /* as many names as the file has rows */
    row = reg(w->metrics, name, &err);
    if (row == METRICS_RULE_OTHER)
        rl_log(RL_LOG_WARN, "metrics: rule %s counted as (other): %s", name, err.msg);
    (void)snprintf(w->mrows[w->nmrows].name, sizeof(w->mrows[0].name), "%s", name);
    w->mrows[w->nmrows++].row = row;
    return row;
}

void worker_open_metrics(struct rl_worker *w)
{
    const struct rl_config *cfg;
    struct rl_err err;

    if (w->metrics != NULL || w->cc == NULL)
        return;
    cfg = config_cache_base(w->cc);
    w->metrics = metrics_open(cfg->metrics_file, 0, &err);
    if (w->metrics == NULL)
        rl_log(RL_LOG_WARN, "metrics off: %s", err.msg);
    redisconn_set_metrics(w->rc, w->metrics);
    /* The process's own rules take their rows now, off the request path,
     * and may take the rows kept for them; only a request's override
     * that names another rule takes one later, never one of those. */
    for (size_t i = 0; w->metrics != NULL && i < cfg->nrules; i++)
        (void)metric_row(w, cfg->rules[i].name, metrics_rule);
}

int worker_metric_row(struct rl_worker *w, const char *name)
{
    return metric_row(w, name, metrics_rule_request);
}

void worker_request_done(struct rl_worker *w)
{
    if (!metrics_lost(w->metrics))
        return;
    rl_log(RL_LOG_WARN,
           "metrics: counter file %s was truncated by someone: its counts are lost; counting "
           "again in a new file",
           config_cache_base(w->cc)->metrics_file);
    metrics_close(w->metrics);
    w->metrics = NULL;
    w->nmrows = 0;
    worker_open_metrics(w);
}

void worker_reset(struct rl_worker *w)
{
    denycache_clear(&w->deny);
    clientkey_hash_free(&w->hash);
    response_memo_free(&w->memo);
    cgirelay_cache_free(&w->relay);
}

void worker_free(struct rl_worker *w)
{
    worker_reset(w);
    redisconn_free(w->rc);
    config_cache_free(w->cc);
    metrics_close(w->metrics);
    w->metrics = NULL;
    w->nmrows = 0;
    w->rc = NULL;
    w->cc = NULL;
}
