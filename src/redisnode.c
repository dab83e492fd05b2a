/*
 * redisnode.c - a session with one Redis server (redisnode.h): the login
 * and script steps of a new connection, and an EVALSHA with its NOSCRIPT
 * reload. Every exchange is bounded by the caller's timeout from its
 * start (rediswire.h); the password's RESP bytes are ours and wiped once
 * sent.
 */
#include "redisnode.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

/* One command and its reply within timeout_ms from now. */
static redisReply *send_cmd(redisContext *c, int timeout_ms, const struct redisconn_cmd *cmd,
                            const char *what, struct rl_err *err)
{
    return rediswire_command(c, cmd, now_ms() + timeout_ms, what, err);
}

/* Run a command that must answer +OK (AUTH, SELECT); what names it in
 * messages. An error reply is a configuration error of kind refused
 * (*conf). RL_OK, or RL_ERR with *err. */
static int command_ok(redisContext *c, int timeout_ms, const struct redisconn_cmd *cmd,
                      const char *what, int refused, int *conf, struct rl_err *err)
{
    redisReply *r = send_cmd(c, timeout_ms, cmd, what, err);
    int ok;

    if (r == NULL)
        return RL_ERR;
    ok = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
    /* Redis' error text never repeats the password. */
    if (!ok) {
        *conf = rediswire_conf_of(r, refused);
        rl_err_set(err, RL_E_REDIS, "%s: %s", what,
                   r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    }
    freeReplyObject(r);
    return ok ? RL_OK : RL_ERR;
}

/* AUTH [user] password, when there is a password or an ACL user. */
static int auth(redisContext *c, int timeout_ms, const struct redisnode_login *login, int *conf,
                struct rl_err *err)
{
    const char *user = login->user, *pw = login->password;
    struct redisconn_cmd cmd;
    char what[96];
    int ret;

    if (user == NULL && (pw == NULL || pw[0] == '\0'))
        return RL_OK;
    if (pw == NULL)
        pw = "";
    redisconn_cmd_init(&cmd, user != NULL ? 3 : 2);
    redisconn_cmd_str(&cmd, "AUTH", 4);
    if (user != NULL)
        redisconn_cmd_str(&cmd, user, strlen(user));
    redisconn_cmd_str(&cmd, pw, strlen(pw));
    if (user != NULL)
        (void)snprintf(what, sizeof(what), "AUTH as user '%s'", user); /* may truncate */
    else
        (void)snprintf(what, sizeof(what), "AUTH");
    if (redisconn_cmd_complete(&cmd)) {
        ret = command_ok(c, timeout_ms, &cmd, what, RW_CONF_AUTH, conf, err);
    } else {
        rl_err_set(err, RL_E_REDIS, "%s: user name and password exceed %d bytes", what, RL_CMD_MAX);
        *conf = RW_CONF_AUTH;
        ret = RL_ERR;
    }
    explicit_bzero(cmd.buf, cmd.len);
    return ret;
}

/* SELECT db when db != 0. */
static int select_db(redisContext *c, int timeout_ms, int db, int *conf, struct rl_err *err)
{
    struct redisconn_cmd cmd;
    char what[32];

    if (db == 0)
        return RL_OK;
    redisconn_cmd_init(&cmd, 2);
    redisconn_cmd_str(&cmd, "SELECT", 6);
    redisconn_cmd_ll(&cmd, db);
    (void)snprintf(what, sizeof(what), "SELECT %d", db);
    return command_ok(c, timeout_ms, &cmd, what, RW_CONF_SELECT, conf, err);
}

/* ROLE must say "master" (a server named by stale sentinels, or a
 * demoted master, says "slave"). */
static int role_is_master(redisContext *c, int timeout_ms, const char *host, int port, int *conf,
                          struct rl_err *err)
{
    struct redisconn_cmd cmd;
    redisReply *r;
    int ok;

    redisconn_cmd_init(&cmd, 1);
    redisconn_cmd_str(&cmd, "ROLE", 4);
    r = send_cmd(c, timeout_ms, &cmd, "ROLE", err);
    if (r == NULL)
        return RL_ERR;
    ok = r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
         r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") == 0;
    if (!ok) {
        *conf = rediswire_conf_of(r, RW_CONF_NONE);
        rl_err_set(err, RL_E_REDIS, "ROLE: %s:%d %s", host != NULL ? host : "?", port,
                   r->type == REDIS_REPLY_ERROR ? r->str : "is not the master (yet)");
    }
    freeReplyObject(r);
    return ok ? RL_OK : RL_ERR;
}

/* SCRIPT LOAD script; the SHA Redis names it by must be sha. The script
 * is sent from where it is (it may exceed RL_CMD_MAX): the header, the
 * script, then the bulk string's CRLF. */
static int script_load(redisContext *c, int timeout_ms, const char *script, const char *sha,
                       int *conf, struct rl_err *err)
{
    struct redisconn_cmd head;
    struct rediswire_part parts[3];
    redisReply *r;
    int ret = RL_ERR;

    redisconn_cmd_init(&head, 3);
    redisconn_cmd_str(&head, "SCRIPT", 6);
    redisconn_cmd_str(&head, "LOAD", 4);
    redisconn_cmd_str_header(&head, strlen(script));
    parts[0] = (struct rediswire_part){head.buf, head.len};
    parts[1] = (struct rediswire_part){script, strlen(script)};
    parts[2] = (struct rediswire_part){"\r\n", 2};
    r = rediswire_roundtrip(c, parts, 3, now_ms() + timeout_ms, "SCRIPT LOAD", err);
    if (r == NULL)
        return RL_ERR;
    if (r->type == REDIS_REPLY_ERROR) {
        *conf = rediswire_conf_of(r, RW_CONF_NONE);
        rl_err_set(err, RL_E_REDIS, "SCRIPT LOAD: %s", r->str);
    } else if (r->type != REDIS_REPLY_STRING || r->len != strlen(sha) ||
               !ascii_ncaseeq(r->str, sha, r->len)) {
        rl_err_set(err, RL_E_REDIS, "SCRIPT LOAD: unexpected reply, expected SHA %s", sha);
    } else {
        ret = RL_OK;
    }
    freeReplyObject(r);
    return ret;
}

redisContext *redisnode_open(const char *host, int port, const char *path,
                             const struct redisnode_login *login, int timeout_ms,
                             const char *script, const char *sha, int *conf, struct rl_err *err)
{
    redisContext *c = rediswire_connect(host, port, path, timeout_ms, err);

    if (c == NULL)
        return NULL;
    if (auth(c, timeout_ms, login, conf, err) != RL_OK ||
        select_db(c, timeout_ms, login->db, conf, err) != RL_OK ||
        (login->check_role && role_is_master(c, timeout_ms, host, port, conf, err) != RL_OK) ||
        script_load(c, timeout_ms, script, sha, conf, err) != RL_OK) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* cmd on c, after ASKING when asking (both sent before either reply is
 * read: one round trip); the EVALSHA's reply, or NULL with *err. */
static redisReply *eval_once(redisContext *c, int asking, int timeout_ms,
                             const struct redisconn_cmd *cmd, struct rl_err *err)
{
    static const char asking_cmd[] = "*1\r\n$6\r\nASKING\r\n";
    struct rediswire_part parts[2];
    long long deadline = now_ms() + timeout_ms;
    redisReply *r;
    size_t n = 0;

    if (!asking)
        return rediswire_command(c, cmd, deadline, "EVALSHA", err);
    parts[n++] = (struct rediswire_part){asking_cmd, sizeof(asking_cmd) - 1};
    parts[n++] = (struct rediswire_part){cmd->buf, cmd->len};
    if (rediswire_send(c, parts, n, deadline, "ASKING + EVALSHA", err) != RL_OK)
        return NULL;
    r = rediswire_read(c, deadline, "ASKING", err);
    if (r == NULL)
        return NULL;
    if (r->type == REDIS_REPLY_ERROR) { /* e.g. NOPERM: no +asking */
        redisReply *e = r;

        r = rediswire_read(c, deadline, "EVALSHA", err); /* bounced: MOVED */
        if (r != NULL)
            freeReplyObject(r);
        return e;
    }
    freeReplyObject(r);
    return rediswire_read(c, deadline, "EVALSHA", err);
}

int redisnode_eval(redisContext *c, int asking, int timeout_ms, const char *script, const char *sha,
                   const struct redisconn_cmd *cmd, redisReply **out, int *conf, unsigned *reloads,
                   struct rl_err *err)
{
    redisReply *r = eval_once(c, asking, timeout_ms, cmd, err);

    if (r != NULL && rediswire_error_is(r, "NOSCRIPT")) {
        freeReplyObject(r);
        ++*reloads;
        if (script_load(c, timeout_ms, script, sha, conf, err) != RL_OK)
            return RN_DOWN;
        r = eval_once(c, asking, timeout_ms, cmd, err);
    }
    if (r == NULL)
        return RN_DOWN;
    return redisnode_outcome_of(r, out, conf, err);
}

int redisnode_outcome_of(redisReply *r, redisReply **out, int *conf, struct rl_err *err)
{
    int outcome;

    if (r->type != REDIS_REPLY_ERROR) {
        *out = r;
        return RN_OK;
    }
    if (rediswire_error_is(r, "MOVED") || rediswire_error_is(r, "ASK")) {
        *out = r;
        return RN_REDIRECT;
    }
    if (rediswire_error_is(r, "TRYAGAIN")) {
        /* A Cluster slot in mid-migration with some keys moved: this
         * request's keys only; the node is fine. */
        rl_err_set(err, RL_E_REDIS, "EVALSHA: %s", r->str);
        freeReplyObject(r);
        return RN_SCRIPT_ERROR;
    }
    *conf = rediswire_conf_of(r, RW_CONF_NONE);
    outcome =
        *conf != RW_CONF_NONE || rediswire_error_is_server_state(r) ? RN_DOWN : RN_SCRIPT_ERROR;
    rl_err_set(err, RL_E_REDIS, "EVALSHA: %s", r->str);
    freeReplyObject(r);
    return outcome;
}
