/*
 * rediswire.h - one hiredis context's I/O under a deadline (hiredis 0.14
 * or 1.x): RESP commands built without hiredis' printf path, a connect to
 * any host:port or unix socket, a command sent and its reply read before
 * an absolute deadline, and the classification of error replies.
 *
 * Nothing here knows which Redis is "the" one, retries, or logs: that is
 * the caller's policy (redisconn.c for the worker's connection; a caller
 * may hold several contexts, one per node). Every function takes the
 * context and the deadline it works under.
 *
 * Why not hiredis' blocking mode: it bounds each read() (SO_RCVTIMEO), so
 * a server trickling its reply a byte at a time held a request for
 * seconds. Here the socket is non-blocking, our RESP bytes go out with
 * send(), and the reply is read with redisBufferRead() +
 * redisGetReplyFromReader() whenever poll() says so, all before one
 * deadline: the deadline bounds the whole command. Our bytes never enter
 * hiredis' output buffer (which is freed without being wiped), so a
 * caller can wipe a password from its own buffer once it is sent.
 *
 * Deadlines are absolute, on the now_ms() clock (util.h). A signal is
 * waited through unless it was the request deadline's (deadline.h).
 * Errors are RL_E_REDIS, the message starting with the caller's `what`.
 */
#ifndef RL_REDISWIRE_H
#define RL_REDISWIRE_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "rl.h"

/*
 * One command in RESP (an array of bulk strings), written I/O-free into a
 * buffer the caller owns (usually on its stack), without hiredis' printf
 * path (redisFormatSdsCommandArgv: sdscatfmt, vsnprintf). Declare the
 * number of arguments first, then add exactly that many. A command that
 * does not fit RL_CMD_MAX bytes, or gets a different number of arguments,
 * is not complete and is never sent. RL_CMD_MAX holds an EVALSHA with
 * RL_MAX_RULES rules of the buckets layout: 3 keys of up to RL_KEY_MAX
 * bytes each, their numbers and fields. (The builder
 * keeps the redisconn_ names its first users know it by.)
 */
#define RL_CMD_MAX 8192

struct redisconn_cmd {
    size_t len;   /* bytes used in buf */
    int left;     /* arguments still to add */
    int overflow; /* 1 once something did not fit */
    char buf[RL_CMD_MAX];
};

/* Start a command of argc arguments ("*argc\r\n"). */
void redisconn_cmd_init(struct redisconn_cmd *cmd, int argc);
/* Add s[0..len) as a bulk string ("$len\r\n" s "\r\n"); s borrowed. */
void redisconn_cmd_str(struct redisconn_cmd *cmd, const char *s, size_t len);
/* Add v in decimal as a bulk string. */
void redisconn_cmd_ll(struct redisconn_cmd *cmd, long long v);
/*
 * Add the last argument's header only ("$len\r\n"): the caller sends its
 * len bytes and "\r\n" after cmd->buf, from where they are (a script
 * larger than RL_CMD_MAX), as further struct rediswire_part.
 */
void redisconn_cmd_str_header(struct redisconn_cmd *cmd, size_t len);
/* 1 when every declared argument was added and everything fit, else 0. */
int redisconn_cmd_complete(const struct redisconn_cmd *cmd);

/* A piece of bytes to send: borrowed. */
struct rediswire_part {
    const char *p;
    size_t n;
};

/*
 * Connect to the unix socket path when it is not NULL, else to host
 * (NULL: 127.0.0.1) and port, within timeout_ms (hiredis bounds the
 * connect itself; a host name's resolution, getaddrinfo, is not bounded).
 * A signal during the connect is retried a few times unless the request
 * deadline expired. The socket is non-blocking and close-on-exec (a CGI
 * script must not inherit it); TCP gets keepalive. A connected context
 * (caller owns: redisFree), or NULL with *err ("connect: ...").
 */
redisContext *rediswire_connect(const char *host, int port, const char *path, int timeout_ms,
                                struct rl_err *err);

/*
 * Send parts[0..nparts) in order on c before deadline. RL_OK, or RL_ERR
 * with *err: then c is unusable (part of a command may be out), free it.
 * Sending several commands before reading any reply (pipelining) is fine.
 */
int rediswire_send(redisContext *c, const struct rediswire_part *parts, size_t nparts,
                   long long deadline, const char *what, struct rl_err *err);

/*
 * The next reply on c, read before deadline. A reply (caller owns:
 * freeReplyObject; an error reply is a reply), or NULL with *err: time is
 * up, the connection failed or the reply is malformed; then c is unusable
 * (a late reply could still arrive), free it.
 */
redisReply *rediswire_read(redisContext *c, long long deadline, const char *what,
                           struct rl_err *err);

/* rediswire_send() of parts, then rediswire_read(), before one deadline. */
redisReply *rediswire_roundtrip(redisContext *c, const struct rediswire_part *parts, size_t nparts,
                                long long deadline, const char *what, struct rl_err *err);

/* rediswire_roundtrip() of one command (complete: redisconn_cmd_complete). */
redisReply *rediswire_command(redisContext *c, const struct redisconn_cmd *cmd, long long deadline,
                              const char *what, struct rl_err *err);

/* 1 when r is an error reply whose code (its first word) is code. */
int rediswire_error_is(const redisReply *r, const char *code);

/*
 * 1 when r is an error about the server's state rather than the command
 * (LOADING, BUSY, MASTERDOWN, READONLY, OOM, MISCONF, CLUSTERDOWN,
 * NOREPLICAS, TRYAGAIN): every command would get it, so it is an outage.
 */
int rediswire_error_is_server_state(const redisReply *r);

/* What Redis refused when an error reply is a configuration error. */
enum rediswire_conf {
    RW_CONF_NONE = 0, /* not a configuration error */
    RW_CONF_AUTH,     /* authentication refused */
    RW_CONF_SELECT,   /* database refused */
    RW_CONF_NOPERM,   /* ACL permission missing */
    RW_CONF_KINDS
};

/*
 * The configuration error r is (enum rediswire_conf), or RW_CONF_NONE
 * (also when r is no error). refused: what a refusal of this very command
 * is (RW_CONF_AUTH for AUTH, RW_CONF_SELECT for SELECT), else
 * RW_CONF_NONE. NOAUTH is a missing password whatever the command;
 * WRONGPASS a refused one; an ACL refusal (also inside a script) is
 * NOPERM, "no permissions" or Redis 7.0's "can't run this command".
 */
int rediswire_conf_of(const redisReply *r, int refused);

/* What kind names, for messages: "authentication refused", ...; "" for
 * RW_CONF_NONE and anything out of range. Static storage. */
const char *rediswire_conf_name(int kind);

#endif
