/*
 * redisconn.c - the worker's one Redis connection (hiredis 0.14, blocking).
 *
 * Lifecycle: connected lazily on the first EVALSHA, with the connect and
 * command timeouts of RATELIMIT_REDIS_TIMEOUT_MS, then AUTH, SELECT and
 * SCRIPT LOAD of the first request's script (whose SHA must be ours). A
 * NOSCRIPT reply (another of the limiter's scripts, first used later;
 * Redis restarted, SCRIPT FLUSH, failover) loads the script and retries
 * once. The EVALSHA itself is RESP the caller wrote (struct
 * redisconn_cmd), appended as is: no printf-style formatting. A NULL
 * reply means the context is dead: it is freed and reopened on a later
 * call. A changed target (per-request RATELIMIT_REDIS_URL) reconnects.
 *
 * Circuit breaker (a dead Redis must not cost every request a timeout):
 * after a failure calls fail at once, with no I/O, for 1 s, doubling to
 * 30 s while probes keep failing; one call probes when the period ends and
 * a success closes the breaker. Outages are logged once when they start
 * and once when they end, with cfg->redis.display, never the password.
 *
 * What counts as a failure: no connection, a timeout, a dead socket, and
 * error replies that describe the server (LOADING, BUSY, READONLY, OOM,
 * ...): every request would get them. An error from the script itself
 * (a bug, a key a third party corrupted) concerns that request: it fails
 * alone, the connection stays, the breaker does not open.
 */
#include "redisconn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "log.h"
#include "util.h"

#define BACKOFF_FIRST_MS 1000LL
#define BACKOFF_MAX_MS 30000LL
#define CONNECT_ATTEMPTS 3        /* only a signal (EINTR) makes us try again */
#define SCRIPT_ERR_LOG_MS 60000LL /* at most one such WARN a minute */

struct redisconn {
    redisContext *ctx;
    /* The target the connection and the breaker are about (copies: the
     * config may be a per-request one). has_target: the copies are set. */
    int has_target;
    char *host, *path, *password, *display;
    int port, db;
    /* Circuit breaker: down while an outage lasts (it was logged). */
    int down;
    long long down_since_ms, retry_at_ms, backoff_ms;
    char reason[RL_ERR_MSG_MAX];
    long long script_err_logged_ms; /* last WARN about a script error */
};

/* How the EVALSHA went. */
enum eval_outcome { EV_OK, EV_SCRIPT_ERROR, EV_DOWN };

struct redisconn *redisconn_new(void)
{
    return xcalloc(1, sizeof(struct redisconn));
}

void redisconn_close(struct redisconn *rc)
{
    if (rc == NULL || rc->ctx == NULL)
        return;
    redisFree(rc->ctx);
    rc->ctx = NULL;
}

/* Free a string, wiping it first when it is a secret. */
static void str_free(char **p, int secret)
{
    if (*p != NULL && secret) {
        volatile char *v = *p;

        while (*v != '\0')
            *v++ = '\0';
    }
    free(*p);
    *p = NULL;
}

static void target_clear(struct redisconn *rc)
{
    str_free(&rc->host, 0);
    str_free(&rc->path, 0);
    str_free(&rc->password, 1);
    str_free(&rc->display, 0);
    rc->has_target = 0;
}

void redisconn_free(struct redisconn *rc)
{
    if (rc == NULL)
        return;
    redisconn_close(rc);
    target_clear(rc);
    memset(rc, 0xff, sizeof(*rc)); /* poison: a use after free shows */
    free(rc);
}

/* ------------------------------------------------------------ the target */

static int str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static const char *display_of(const struct rl_config *cfg)
{
    return cfg->redis.display != NULL ? cfg->redis.display : "(redis)";
}

static int target_eq(const struct redisconn *rc, const struct rl_redis_target *t)
{
    return rc->has_target && rc->port == t->port && rc->db == t->db && str_eq(rc->host, t->host) &&
           str_eq(rc->path, t->path) && str_eq(rc->password, t->password);
}

/* Make cfg's target the current one; another target starts afresh: new
 * connection, closed breaker (its outage was another server's). */
static void target_sync(struct redisconn *rc, const struct rl_config *cfg)
{
    const struct rl_redis_target *t = &cfg->redis;

    if (target_eq(rc, t))
        return;
    if (rc->has_target)
        rl_log(RL_LOG_INFO, "redis target changed from %s to %s", rc->display, display_of(cfg));
    redisconn_close(rc);
    target_clear(rc);
    rc->host = xstrdup(t->host);
    rc->path = xstrdup(t->path);
    rc->password = xstrdup(t->password);
    rc->display = xstrdup(display_of(cfg));
    rc->port = t->port;
    rc->db = t->db;
    rc->has_target = 1;
    rc->down = 0;
    rc->backoff_ms = 0;
}

/* ------------------------------------------------------------ breaker */

/* 1 when the breaker is open: fail now with *err, without I/O. */
static int breaker_blocks(const struct redisconn *rc, struct rl_err *err)
{
    long long now;

    if (!rc->down)
        return 0;
    now = now_ms();
    if (now >= rc->retry_at_ms)
        return 0; /* this call is the probe */
    rl_err_set(err, RL_E_REDIS, "redis %s unavailable: %s (next try in %lld ms)", rc->display,
               rc->reason, rc->retry_at_ms - now);
    return 1;
}

/* A connection or server failure: open the breaker (log if it was closed)
 * or, when a probe failed, double the period. */
static void breaker_fail(struct redisconn *rc, const struct rl_config *cfg, const char *reason)
{
    long long now = now_ms();

    (void)snprintf(rc->reason, sizeof(rc->reason), "%s", reason);
    if (!rc->down) {
        rc->down = 1;
        rc->down_since_ms = now;
        rc->backoff_ms = BACKOFF_FIRST_MS;
        rl_log(RL_LOG_ERROR, "redis %s unreachable: %s; failing %s until it is back", rc->display,
               reason, cfg->fail == RL_FAIL_CLOSED ? "closed (503)" : "open (not limiting)");
    } else {
        rc->backoff_ms = rc->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : rc->backoff_ms * 2;
        rl_log(RL_LOG_DEBUG, "redis %s still unreachable: %s; next try in %lld ms", rc->display,
               reason, rc->backoff_ms);
    }
    rc->retry_at_ms = now + rc->backoff_ms;
}

/* Redis answered: close the breaker (log the end of an outage). */
static void breaker_ok(struct redisconn *rc)
{
    if (!rc->down)
        return;
    rl_log(RL_LOG_WARN, "redis %s is back after %lld ms", rc->display,
           now_ms() - rc->down_since_ms);
    rc->down = 0;
    rc->backoff_ms = 0;
}

/* ------------------------------------------------------------ commands */

static struct timeval timeout_tv(const struct rl_config *cfg)
{
    int ms = cfg->redis_timeout_ms > 0 ? cfg->redis_timeout_ms : 100;
    struct timeval tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

/* Dead context (NULL reply): say why. hiredis reports a timeout of its
 * blocking socket (SO_RCVTIMEO) as EAGAIN's text: name it. */
static void set_ctx_err(struct rl_err *err, const redisContext *c, const char *what)
{
    const char *why = c->err ? c->errstr : "no reply";

    if (c->err == REDIS_ERR_IO && strcmp(why, strerror(EAGAIN)) == 0)
        why = "timed out";
    rl_err_set(err, RL_E_REDIS, "%s: %s", what, why);
}

/* Run a command that must answer +OK (AUTH, SELECT). */
static int command_ok(redisContext *c, int argc, const char **argv, const size_t *len,
                      struct rl_err *err)
{
    redisReply *r = redisCommandArgv(c, argc, argv, len);
    int ok;

    if (r == NULL) {
        set_ctx_err(err, c, argv[0]);
        return RL_ERR;
    }
    ok = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
    /* Redis' error text never repeats the password. */
    if (!ok)
        rl_err_set(err, RL_E_REDIS, "%s: %s", argv[0],
                   r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return ok ? RL_OK : RL_ERR;
}

/* SCRIPT LOAD script; the SHA Redis names it by must be sha. */
static int script_load(redisContext *c, const char *script, const char *sha, struct rl_err *err)
{
    const char *argv[3] = {"SCRIPT", "LOAD", script};
    size_t len[3] = {6, 4, strlen(script)};
    redisReply *r = redisCommandArgv(c, 3, argv, len);
    int ret = RL_ERR;

    if (r == NULL) {
        set_ctx_err(err, c, "SCRIPT LOAD");
        return RL_ERR;
    }
    if (r->type == REDIS_REPLY_ERROR)
        rl_err_set(err, RL_E_REDIS, "SCRIPT LOAD: %s", r->str);
    else if (r->type != REDIS_REPLY_STRING || r->len != strlen(sha) ||
             !ascii_ncaseeq(r->str, sha, r->len))
        rl_err_set(err, RL_E_REDIS, "SCRIPT LOAD: unexpected reply, expected SHA %s", sha);
    else
        ret = RL_OK;
    freeReplyObject(r);
    return ret;
}

/* ------------------------------------------------------------ connecting */

static redisContext *connect_once(const struct rl_config *cfg)
{
    struct timeval tv = timeout_tv(cfg);

    if (cfg->redis.path != NULL)
        return redisConnectUnixWithTimeout(cfg->redis.path, tv);
    return redisConnectWithTimeout(cfg->redis.host != NULL ? cfg->redis.host : "127.0.0.1",
                                   cfg->redis.port, tv);
}

/* A connected context with the command timeout set, or NULL with *err.
 * hiredis retries read/write on EINTR itself, but a signal during its
 * connect poll() fails the connect (libfcgi's handlers have no
 * SA_RESTART): that is no outage, so try again a few times. */
static redisContext *connect_ctx(const struct rl_config *cfg, struct rl_err *err)
{
    redisContext *c = NULL;
    int attempt, saved = 0;

    for (attempt = 0; attempt < CONNECT_ATTEMPTS; attempt++) {
        errno = 0;
        c = connect_once(cfg);
        saved = errno;
        if (c == NULL || !c->err || saved != EINTR)
            break;
        redisFree(c);
        c = NULL;
    }
    if (c == NULL) {
        rl_err_set(err, RL_E_REDIS, "connect: %s",
                   saved == EINTR ? "interrupted" : "out of memory");
        return NULL;
    }
    /* The command timeout (SO_RCVTIMEO/SO_SNDTIMEO); sets c->err if it fails. */
    if (!c->err)
        (void)redisSetTimeout(c, timeout_tv(cfg));
    if (c->err) {
        rl_err_set(err, RL_E_REDIS, "connect: %s", c->errstr);
        redisFree(c);
        return NULL;
    }
    /* TCP: hiredis sets TCP_NODELAY itself; keepalive finds a peer that
     * vanished while the connection sat idle between requests. */
    if (cfg->redis.path == NULL)
        (void)redisEnableKeepAlive(c);
    return c;
}

/* AUTH when a password is set, SELECT when db != 0. */
static int connect_setup(redisContext *c, const struct rl_config *cfg, struct rl_err *err)
{
    char db[16];
    const char *argv[2];
    size_t len[2];

    if (cfg->redis.password != NULL && cfg->redis.password[0] != '\0') {
        argv[0] = "AUTH";
        argv[1] = cfg->redis.password;
        len[0] = 4;
        len[1] = strlen(cfg->redis.password);
        if (command_ok(c, 2, argv, len, err) != RL_OK)
            return RL_ERR;
    }
    if (cfg->redis.db != 0) {
        (void)snprintf(db, sizeof(db), "%d", cfg->redis.db);
        argv[0] = "SELECT";
        argv[1] = db;
        len[0] = 6;
        len[1] = strlen(db);
        if (command_ok(c, 2, argv, len, err) != RL_OK)
            return RL_ERR;
    }
    return RL_OK;
}

/* Connect, authenticate, select and load the script into rc->ctx. */
static int conn_open(struct redisconn *rc, const struct rl_config *cfg, const char *script,
                     const char *sha, struct rl_err *err)
{
    redisContext *c = connect_ctx(cfg, err);

    if (c == NULL)
        return RL_ERR;
    if (connect_setup(c, cfg, err) != RL_OK || script_load(c, script, sha, err) != RL_OK) {
        redisFree(c);
        return RL_ERR;
    }
    rc->ctx = c;
    return RL_OK;
}

/* ------------------------------------------------------------ RESP */

/* Append n bytes, or mark the command overflowed. */
static void cmd_put(struct redisconn_cmd *cmd, const char *p, size_t n)
{
    if (cmd->overflow || n > sizeof(cmd->buf) - cmd->len) {
        cmd->overflow = 1;
        return;
    }
    memcpy(cmd->buf + cmd->len, p, n);
    cmd->len += n;
}

/* Write v in decimal ending just before end; the first digit's address. */
static char *dec_rev(char *end, unsigned long long v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return end;
}

/* Append tag ('*' or '$'), n in decimal and CRLF: a RESP header. */
static void cmd_put_header(struct redisconn_cmd *cmd, char tag, unsigned long long n)
{
    char tmp[24];
    char *p;

    tmp[22] = '\r';
    tmp[23] = '\n';
    p = dec_rev(tmp + 22, n);
    *--p = tag;
    cmd_put(cmd, p, (size_t)(tmp + sizeof(tmp) - p));
}

void redisconn_cmd_init(struct redisconn_cmd *cmd, int argc)
{
    cmd->len = 0;
    cmd->overflow = argc < 0;
    cmd->left = argc < 0 ? 0 : argc;
    cmd_put_header(cmd, '*', (unsigned long long)cmd->left);
}

void redisconn_cmd_str(struct redisconn_cmd *cmd, const char *s, size_t len)
{
    if (cmd->left-- <= 0)
        cmd->overflow = 1;
    cmd_put_header(cmd, '$', len);
    cmd_put(cmd, s, len);
    cmd_put(cmd, "\r\n", 2);
}

void redisconn_cmd_ll(struct redisconn_cmd *cmd, long long v)
{
    char tmp[24];
    /* The magnitude through unsigned arithmetic: LLONG_MIN has no positive
     * long long. */
    char *p =
        dec_rev(tmp + sizeof(tmp), v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v);

    if (v < 0)
        *--p = '-';
    redisconn_cmd_str(cmd, p, (size_t)(tmp + sizeof(tmp) - p));
}

int redisconn_cmd_complete(const struct redisconn_cmd *cmd)
{
    return !cmd->overflow && cmd->left == 0;
}

/* ------------------------------------------------------------ EVALSHA */

/* Send a formatted command and read its reply: redisCommand's blocking
 * round trip without its formatting. NULL when the context failed. */
static redisReply *send_cmd(redisContext *c, const struct redisconn_cmd *cmd)
{
    void *r = NULL;

    if (redisAppendFormattedCommand(c, cmd->buf, cmd->len) != REDIS_OK ||
        redisGetReply(c, &r) != REDIS_OK)
        return NULL;
    return r;
}

static int error_is(const redisReply *r, const char *code)
{
    size_t n = strlen(code);

    return r->type == REDIS_REPLY_ERROR && r->len >= n && memcmp(r->str, code, n) == 0 &&
           (r->len == n || r->str[n] == ' ');
}

/* Error replies about the server's state rather than this request: every
 * request would get them, so they count as an outage. */
static int error_is_server_state(const redisReply *r)
{
    static const char *const codes[] = {"LOADING",   "BUSY",        "MASTERDOWN", "READONLY",
                                        "OOM",       "MISCONF",     "NOAUTH",     "NOPERM",
                                        "WRONGPASS", "CLUSTERDOWN", "NOREPLICAS", "TRYAGAIN"};
    size_t i;

    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (error_is(r, codes[i]))
            return 1;
    }
    return 0;
}

/* EVALSHA, re-loading the script once on NOSCRIPT. EV_OK with *out, or
 * EV_SCRIPT_ERROR / EV_DOWN with *err. */
static int eval_reload(redisContext *c, const char *script, const char *sha,
                       const struct redisconn_cmd *cmd, redisReply **out, struct rl_err *err)
{
    redisReply *r = send_cmd(c, cmd);
    int outcome;

    if (r != NULL && error_is(r, "NOSCRIPT")) {
        freeReplyObject(r);
        if (script_load(c, script, sha, err) != RL_OK)
            return EV_DOWN;
        r = send_cmd(c, cmd);
    }
    if (r == NULL) {
        set_ctx_err(err, c, "EVALSHA");
        return EV_DOWN;
    }
    if (r->type != REDIS_REPLY_ERROR) {
        *out = r;
        return EV_OK;
    }
    outcome = error_is_server_state(r) ? EV_DOWN : EV_SCRIPT_ERROR;
    rl_err_set(err, RL_E_REDIS, "EVALSHA: %s", r->str);
    freeReplyObject(r);
    return outcome;
}

/* A script error fails only its request, and the caller may log it at
 * debug level only: say it at WARN, but not once per request. */
static void log_script_error(struct redisconn *rc, const struct rl_err *err)
{
    long long now = now_ms();

    if (rc->script_err_logged_ms != 0 && now - rc->script_err_logged_ms < SCRIPT_ERR_LOG_MS)
        return;
    rc->script_err_logged_ms = now;
    rl_log(RL_LOG_WARN, "redis %s: limiter script failed: %s", rc->display,
           err != NULL ? err->msg : "error reply");
}

redisReply *redisconn_eval(struct redisconn *rc, const struct rl_config *cfg, const char *script,
                           const char *sha, const struct redisconn_cmd *cmd, struct rl_err *err)
{
    redisReply *reply = NULL;
    int outcome;

    if (!redisconn_cmd_complete(cmd)) {
        rl_err_set(err, RL_E_REDIS, "EVALSHA: incomplete request (a bug)");
        return NULL;
    }
    target_sync(rc, cfg);
    if (breaker_blocks(rc, err))
        return NULL;
    if (rc->ctx == NULL && conn_open(rc, cfg, script, sha, err) != RL_OK) {
        breaker_fail(rc, cfg, err != NULL ? err->msg : "connect failed");
        return NULL;
    }
    outcome = eval_reload(rc->ctx, script, sha, cmd, &reply, err);
    if (outcome == EV_DOWN) {
        /* After a timeout a late reply could still arrive: never reuse. */
        redisconn_close(rc);
        breaker_fail(rc, cfg, err != NULL ? err->msg : "EVALSHA failed");
        return NULL;
    }
    breaker_ok(rc);
    if (outcome == EV_SCRIPT_ERROR)
        log_script_error(rc, err);
    return reply; /* NULL for EV_SCRIPT_ERROR */
}

int redisconn_check(struct redisconn *rc, const struct rl_config *cfg, const char *script,
                    struct rl_err *err)
{
    char sha[RL_SHA1_HEX_LEN + 1];

    if (sha1_hex(script, strlen(script), sha) != RL_OK) {
        rl_err_set(err, RL_E_REDIS, "cannot compute the script's SHA-1");
        return RL_ERR;
    }
    target_sync(rc, cfg);
    redisconn_close(rc);
    if (conn_open(rc, cfg, script, sha, err) != RL_OK) {
        if (err != NULL)
            rl_log(RL_LOG_DEBUG, "redis %s: check failed: %s", rc->display, err->msg);
        return RL_ERR;
    }
    breaker_ok(rc);
    return RL_OK;
}
