/*
 * worker.c - the worker's state (worker.h).
 */
#include "worker.h"

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
    w->rc = NULL;
    w->cc = NULL;
}
