/*
 * test_rediswire.c - the wire room on its own, in one process: the RESP
 * builder's bytes, a connect to a unix socket path we listen on (the
 * kernel completes it from the backlog; we accept afterwards and play the
 * server by hand), two pipelined commands and their replies, a silent
 * peer (the deadline passes), a closed peer, and the error-reply
 * classification. The whole connection under redisconn's policy is
 * test_redisconn.c's; against real servers, tests/bats/redis.bats.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "rediswire.h"
#include "rl.h"
#include "testhelp.h"
#include "util.h"

static char dir[] = "/tmp/rl-test-rediswire-XXXXXX";
static char sock_path[sizeof(dir) + 16];

static int listen_unix(void)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    (void)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 4) != 0) {
        perror("listen_unix");
        exit(2);
    }
    return fd;
}

/* Read from fd until want's length arrived; 1 when the bytes are want. */
static int peer_expect(int fd, const char *want)
{
    char buf[256];
    size_t n = 0, len = strlen(want);

    while (n < len && n < sizeof(buf)) {
        ssize_t k = read(fd, buf + n, len - n);

        if (k <= 0)
            return 0;
        n += (size_t)k;
    }
    return n == len && memcmp(buf, want, len) == 0;
}

static void test_builder(void)
{
    struct redisconn_cmd cmd;
    static const char want[] = "*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n$8\r\n";

    redisconn_cmd_init(&cmd, 3);
    redisconn_cmd_str(&cmd, "SCRIPT", 6);
    redisconn_cmd_str(&cmd, "LOAD", 4);
    test_cond("a command is incomplete before its last argument", !redisconn_cmd_complete(&cmd));
    redisconn_cmd_str_header(&cmd, 8);
    test_cond("a header-only last argument completes it", redisconn_cmd_complete(&cmd));
    test_cond("its bytes end with the bulk header",
              cmd.len == sizeof(want) - 1 && memcmp(cmd.buf, want, cmd.len) == 0);
    redisconn_cmd_str_header(&cmd, 1);
    test_cond("one argument too many is not complete", !redisconn_cmd_complete(&cmd));
}

/* Two commands sent before any reply is read, then both replies. */
static void test_pipeline(redisContext *c, int peer)
{
    struct redisconn_cmd ping, incr;
    struct rediswire_part parts[2];
    struct rl_err err;
    redisReply *r1, *r2;
    long long deadline = now_ms() + 2000;

    redisconn_cmd_init(&ping, 1);
    redisconn_cmd_str(&ping, "PING", 4);
    redisconn_cmd_init(&incr, 2);
    redisconn_cmd_str(&incr, "INCR", 4);
    redisconn_cmd_str(&incr, "k", 1);
    parts[0] = (struct rediswire_part){ping.buf, ping.len};
    parts[1] = (struct rediswire_part){incr.buf, incr.len};
    rl_err_clear(&err);
    test_cond("two commands go out in one send",
              rediswire_send(c, parts, 2, deadline, "PIPE", &err) == RL_OK);
    test_cond("the peer gets both, in order",
              peer_expect(peer, "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n"));
    test_cond("the peer answers both", write(peer, "+PONG\r\n:7\r\n", 11) == 11);
    r1 = rediswire_read(c, deadline, "PING", &err);
    r2 = rediswire_read(c, deadline, "INCR", &err);
    test_cond("the first reply is the first command's",
              r1 != NULL && r1->type == REDIS_REPLY_STATUS && strcmp(r1->str, "PONG") == 0);
    test_cond("the second reply is the second command's",
              r2 != NULL && r2->type == REDIS_REPLY_INTEGER && r2->integer == 7);
    if (r1 != NULL)
        freeReplyObject(r1);
    if (r2 != NULL)
        freeReplyObject(r2);
}

static void test_deadline_and_close(redisContext *c, int peer)
{
    struct redisconn_cmd ping;
    struct rl_err err;
    redisReply *r;

    redisconn_cmd_init(&ping, 1);
    redisconn_cmd_str(&ping, "PING", 4);
    rl_err_clear(&err);
    r = rediswire_command(c, &ping, now_ms() + 50, "PING", &err);
    test_cond("a silent peer: no reply once the deadline passed", r == NULL);
    test_cond("the error says so", strcmp(err.msg, "PING: timed out") == 0);
    close(peer);
    rl_err_clear(&err);
    r = rediswire_read(c, now_ms() + 2000, "PING", &err);
    test_cond("a closed peer: no reply, an error", r == NULL && err.msg[0] != '\0');
}

static void test_connect(void)
{
    struct rl_err err;
    int lfd = listen_unix(), peer, fl;
    redisContext *c;

    rl_err_clear(&err);
    c = rediswire_connect(NULL, 0, sock_path, 1000, &err);
    test_cond("connects to the unix socket path given", c != NULL);
    if (c == NULL) {
        close(lfd);
        return;
    }
    fl = fcntl(c->fd, F_GETFL);
    test_cond("the socket is non-blocking", fl >= 0 && (fl & O_NONBLOCK));
    test_cond("the socket is close-on-exec", fcntl(c->fd, F_GETFD) == FD_CLOEXEC);
    peer = accept(lfd, NULL, NULL);
    test_pipeline(c, peer);
    test_deadline_and_close(c, peer);
    redisFree(c);
    close(lfd);
    unlink(sock_path);
    rl_err_clear(&err);
    c = rediswire_connect(NULL, 0, sock_path, 1000, &err);
    test_cond("no listener: NULL", c == NULL);
    test_cond("with a connect error", strncmp(err.msg, "connect: ", 9) == 0);
}

/* An error reply of text s, on the stack. */
static redisReply err_reply(const char *s)
{
    redisReply r;

    memset(&r, 0, sizeof(r));
    r.type = REDIS_REPLY_ERROR;
    r.str = (char *)s;
    r.len = strlen(s);
    return r;
}

static void test_errors(void)
{
    redisReply noscript = err_reply("NOSCRIPT No matching script"),
               longer = err_reply("NOSCRIPTS x"), loading = err_reply("LOADING Redis is loading"),
               noauth = err_reply("NOAUTH Authentication required."),
               wrongpass = err_reply("WRONGPASS invalid username-password pair"),
               noperm = err_reply("ERR Error running script: NOPERM this user has no permissions"),
               other = err_reply("ERR fcgi-ratelimit: KEYS and ARGV do not match"),
               bare = err_reply("BUSY");
    redisReply status;

    memset(&status, 0, sizeof(status));
    status.type = REDIS_REPLY_STATUS;
    status.str = (char *)"NOSCRIPT";
    status.len = 8;
    test_cond("error_is: the code", rediswire_error_is(&noscript, "NOSCRIPT"));
    test_cond("error_is: the whole first word", !rediswire_error_is(&longer, "NOSCRIPT"));
    test_cond("error_is: only error replies", !rediswire_error_is(&status, "NOSCRIPT"));
    test_cond("server state: LOADING", rediswire_error_is_server_state(&loading));
    test_cond("server state: a bare code", rediswire_error_is_server_state(&bare));
    test_cond("server state: not a script's error", !rediswire_error_is_server_state(&other));
    test_cond("conf: NOAUTH whatever the command",
              rediswire_conf_of(&noauth, RW_CONF_SELECT) == RW_CONF_AUTH);
    test_cond("conf: a refused SELECT",
              rediswire_conf_of(&other, RW_CONF_SELECT) == RW_CONF_SELECT);
    test_cond("conf: WRONGPASS", rediswire_conf_of(&wrongpass, RW_CONF_NONE) == RW_CONF_AUTH);
    test_cond("conf: NOPERM inside a script",
              rediswire_conf_of(&noperm, RW_CONF_NONE) == RW_CONF_NOPERM);
    test_cond("conf: a script's own error is none",
              rediswire_conf_of(&other, RW_CONF_NONE) == RW_CONF_NONE);
    test_cond("conf: no error is none", rediswire_conf_of(&status, RW_CONF_AUTH) == RW_CONF_NONE);
    test_cond("conf names",
              strcmp(rediswire_conf_name(RW_CONF_NOPERM), "ACL permission missing") == 0 &&
                  strcmp(rediswire_conf_name(RW_CONF_KINDS), "") == 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    (void)snprintf(sock_path, sizeof(sock_path), "%s/sock", dir);
    test_builder();
    test_connect();
    test_errors();
    unlink(sock_path);
    rmdir(dir);
    return test_report();
}
