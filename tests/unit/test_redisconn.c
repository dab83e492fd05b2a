/*
 * test_redisconn.c - redisconn against a fake peer: a child process on a
 * unix socket in a private temp dir that reads each command (parsed with
 * hiredis' reader) and answers from a script of steps, all at once or a
 * byte at a time. Covers the whole-command timeout (a reply trickled in
 * slower than RATELIMIT_REDIS_TIMEOUT_MS, each byte well within it), a
 * reply in pieces, AUTH with and without an ACL user, refused AUTH and
 * NOPERM as configuration errors (their own log line, once), and the
 * EVALSHA probe of --check. The real-server side is tests/bats/redis.bats.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "log.h"
#include "redisconn.h"
#include "rl.h"
#include "rlconfig.h"
#include "testhelp.h"
#include "util.h"

static const char script[] = "return 1";
static char sha[RL_SHA1_HEX_LEN + 1];
static char sha_reply[64]; /* "$40\r\n" sha "\r\n" */
static char dir[] = "/tmp/rl-test-redisconn-XXXXXX";
static char sock_path[sizeof(dir) + 16];
static char logged[4096]; /* the lines rl_log wrote, through the sink */

/* One command the peer reads and the answer it gives. */
struct step {
    const char *expect; /* the command's arguments joined by ' '; NULL: any */
    const char *reply;  /* RESP bytes */
    int delay_ms;       /* pause before each byte of the reply; 0: at once */
};

static int log_sink(void *ctx, const char *line, int len)
{
    size_t have = strlen(logged);

    (void)ctx;
    (void)snprintf(logged + have, sizeof(logged) - have, "%.*s\n", len, line);
    return 0;
}

/* How many times needle occurs in hay. */
static int count(const char *hay, const char *needle)
{
    int n = 0;

    while ((hay = strstr(hay, needle)) != NULL) {
        n++;
        hay += strlen(needle);
    }
    return n;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* 1 when the command's arguments, joined by ' ', are expect. */
static int cmd_is(const redisReply *cmd, const char *expect)
{
    char joined[512] = "";
    size_t i, n = 0;

    if (cmd->type != REDIS_REPLY_ARRAY)
        return 0;
    for (i = 0; i < cmd->elements && n < sizeof(joined); i++)
        n += (size_t)snprintf(joined + n, sizeof(joined) - n, "%s%s", i ? " " : "",
                              cmd->element[i]->str);
    return strcmp(joined, expect) == 0;
}

/* The next command on fd, or NULL when the client went away. */
static redisReply *peer_read(int fd, redisReader *rd)
{
    char buf[4096];
    void *cmd = NULL;

    for (;;) {
        ssize_t k;

        if (redisReaderGetReply(rd, &cmd) != REDIS_OK)
            return NULL;
        if (cmd != NULL)
            return cmd;
        k = read(fd, buf, sizeof(buf));
        if (k <= 0 || redisReaderFeed(rd, buf, (size_t)k) != REDIS_OK)
            return NULL;
    }
}

/* The child: serve one connection through the steps, then wait for the
 * client to close. Stops at the first write that fails. */
static void peer_serve(int lfd, const struct step *steps, size_t nsteps)
{
    int fd = accept(lfd, NULL, NULL);
    redisReader *rd = redisReaderCreate();
    char buf[256];
    size_t i, j;

    signal(SIGPIPE, SIG_IGN);
    for (i = 0; fd >= 0 && rd != NULL && i < nsteps; i++) {
        redisReply *cmd = peer_read(fd, rd);
        const char *reply = steps[i].reply;

        if (cmd == NULL)
            _exit(0);
        if (steps[i].expect != NULL && !cmd_is(cmd, steps[i].expect))
            reply = "-ERR peer: unexpected command\r\n";
        freeReplyObject(cmd);
        if (steps[i].delay_ms == 0 && write(fd, reply, strlen(reply)) < 0)
            _exit(0);
        for (j = 0; steps[i].delay_ms > 0 && reply[j] != '\0'; j++) {
            sleep_ms(steps[i].delay_ms);
            if (write(fd, reply + j, 1) != 1)
                _exit(0);
        }
    }
    while (fd >= 0 && read(fd, buf, sizeof(buf)) > 0) {
    }
    _exit(0);
}

/* Listen on sock_path and fork the peer; its pid. */
static pid_t peer_start(const struct step *steps, size_t nsteps)
{
    struct sockaddr_un sa;
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    pid_t pid;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    (void)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    (void)unlink(sock_path);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 4) != 0) {
        perror("peer socket");
        exit(2);
    }
    fflush(stdout);
    pid = fork();
    if (pid == 0)
        peer_serve(lfd, steps, nsteps);
    close(lfd);
    return pid;
}

static void peer_stop(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGKILL);
        (void)waitpid(pid, NULL, 0);
    }
    (void)unlink(sock_path);
}

static void cfg_init(struct rl_config *cfg, int timeout_ms)
{
    static char display[] = "unix:///peer";

    memset(cfg, 0, sizeof(*cfg));
    cfg->redis.path = sock_path;
    cfg->redis.display = display;
    cfg->redis_timeout_ms = timeout_ms;
    cfg->fail = RL_FAIL_OPEN;
    (void)snprintf(cfg->prefix, sizeof(cfg->prefix), "ratelimit:");
}

/* EVALSHA sha 0 through rc against cfg. */
static redisReply *eval(struct redisconn *rc, const struct rl_config *cfg, struct rl_err *err)
{
    struct redisconn_cmd cmd;

    redisconn_cmd_init(&cmd, 3);
    redisconn_cmd_str(&cmd, "EVALSHA", 7);
    redisconn_cmd_str(&cmd, sha, strlen(sha));
    redisconn_cmd_ll(&cmd, 0);
    rl_err_clear(err);
    return redisconn_eval(rc, cfg, script, sha, &cmd, "k", err);
}

/* A reply trickled a byte every 20 ms (2 s in all) with a 200 ms timeout:
 * each read is quick, the command is not. hiredis' per-read timeout
 * waited for the whole reply. */
static void test_trickle(void)
{
    static char slow[128];
    struct step steps[2] = {{NULL, sha_reply, 0}, {NULL, slow, 20}};
    struct rl_config cfg;
    struct rl_err err;
    struct redisconn *rc = redisconn_new();
    redisReply *r;
    pid_t pid;

    (void)snprintf(slow, sizeof(slow), "$100\r\n%0100d\r\n", 0);
    cfg_init(&cfg, 200);
    pid = peer_start(steps, 2);
    logged[0] = '\0';
    r = eval(rc, &cfg, &err);
    test_cond("trickled reply: the command times out as a whole",
              r == NULL && strstr(err.msg, "EVALSHA: timed out") != NULL);
    test_cond("trickled reply: logged as unreachable", strstr(logged, "unreachable") != NULL);
    freeReplyObject(r);
    redisconn_free(rc);
    peer_stop(pid);
}

/* 1 when the process has a socket open (fds 3..1023) and every one is
 * close-on-exec: the connection must not reach a CGI script. */
static int sockets_cloexec(void)
{
    struct stat st;
    int fd, seen = 0;

    for (fd = 3; fd < 1024; fd++) {
        if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
            continue;
        seen = 1;
        if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC))
            return 0;
    }
    return seen;
}

/* A reply in pieces, each well within the timeout: assembled. */
static void test_pieces(void)
{
    struct step steps[2] = {{"SCRIPT LOAD return 1", sha_reply, 2},
                            {NULL, "*2\r\n:7\r\n$2\r\nok\r\n", 5}};
    struct rl_config cfg;
    struct rl_err err;
    struct redisconn *rc = redisconn_new();
    redisReply *r;
    pid_t pid;

    cfg_init(&cfg, 5000);
    pid = peer_start(steps, 2);
    r = eval(rc, &cfg, &err);
    test_cond("reply in pieces: read whole", r != NULL && r->type == REDIS_REPLY_ARRAY &&
                                                 r->elements == 2 && r->element[0]->integer == 7 &&
                                                 strcmp(r->element[1]->str, "ok") == 0);
    test_cond("the connection is close-on-exec", sockets_cloexec());
    freeReplyObject(r);
    redisconn_free(rc);
    peer_stop(pid);
}

/* AUTH user password for an ACL user, AUTH password without one. */
static void test_auth_user(void)
{
    struct step with_user[3] = {
        {"AUTH lim pw", "+OK\r\n", 0}, {NULL, sha_reply, 0}, {NULL, ":1\r\n", 0}};
    struct step no_user[3] = {{"AUTH pw", "+OK\r\n", 0}, {NULL, sha_reply, 0}, {NULL, ":1\r\n", 0}};
    struct rl_config cfg;
    struct rl_err err;
    struct redisconn *rc = redisconn_new();
    char user[] = "lim", pw[] = "pw";
    redisReply *r;
    pid_t pid;

    cfg_init(&cfg, 5000);
    cfg.redis.user = user;
    cfg.redis.password = pw;
    pid = peer_start(with_user, 3);
    r = eval(rc, &cfg, &err);
    test_cond("ACL user: AUTH user password", r != NULL && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    redisconn_free(rc);
    peer_stop(pid);

    rc = redisconn_new();
    cfg.redis.user = NULL;
    pid = peer_start(no_user, 3);
    r = eval(rc, &cfg, &err);
    test_cond("no user: AUTH password", r != NULL && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    redisconn_free(rc);
    peer_stop(pid);
}

/* A refused AUTH: a configuration error, logged once, not "unreachable";
 * the next call fails at once (no new connection: the peer takes one). */
static void test_auth_refused(void)
{
    struct step steps[1] = {
        {"AUTH lim hunter2", "-WRONGPASS invalid username-password pair\r\n", 0}};
    struct rl_config cfg;
    struct rl_err err;
    struct redisconn *rc = redisconn_new();
    char user[] = "lim", pw[] = "hunter2";
    redisReply *r1, *r2;
    pid_t pid;

    cfg_init(&cfg, 5000);
    cfg.redis.user = user;
    cfg.redis.password = pw;
    pid = peer_start(steps, 1);
    logged[0] = '\0';
    r1 = eval(rc, &cfg, &err);
    r2 = eval(rc, &cfg, &err);
    test_cond("refused AUTH: the call fails", r1 == NULL && err.kind == RL_E_REDIS);
    test_cond("refused AUTH: a configuration error line naming AUTH",
              strstr(logged, "configuration error, authentication refused: AUTH as user 'lim': "
                             "WRONGPASS") != NULL);
    test_cond("refused AUTH: not unreachable, no password, one line",
              strstr(logged, "unreachable") == NULL && strstr(logged, "hunter2") == NULL &&
                  count(logged, "fcgi-ratelimit[") == 1);
    test_cond("refused AUTH: then fails at once",
              r2 == NULL && strstr(err.msg, "configuration error") != NULL);
    redisconn_free(rc);
    peer_stop(pid);
}

/* NOPERM to EVALSHA: a configuration error; --check's probe fails on it
 * and passes on the script's own refusal of the arguments. */
static void test_noperm(void)
{
    struct step eval_steps[2] = {
        {NULL, sha_reply, 0},
        {NULL, "-NOPERM this user has no permissions to run the 'evalsha' command\r\n", 0}};
    struct step check_ok[2] = {{NULL, sha_reply, 0},
                               {NULL, "-ERR fcgi-ratelimit: KEYS and ARGV do not match\r\n", 0}};
    struct rl_config cfg;
    struct rl_err err;
    struct redisconn *rc = redisconn_new();
    char probe[96];
    redisReply *r;
    pid_t pid;

    cfg_init(&cfg, 5000);
    pid = peer_start(eval_steps, 2);
    logged[0] = '\0';
    r = eval(rc, &cfg, &err);
    test_cond("NOPERM: a configuration error line",
              r == NULL &&
                  strstr(logged, "configuration error, ACL permission missing: EVALSHA: "
                                 "NOPERM") != NULL &&
                  strstr(logged, "unreachable") == NULL);
    redisconn_free(rc);
    peer_stop(pid);

    rc = redisconn_new();
    pid = peer_start(eval_steps, 2);
    rl_err_clear(&err);
    test_cond("--check: NOPERM to EVALSHA fails it",
              redisconn_check(rc, &cfg, script, &err) == RL_ERR &&
                  strstr(err.msg, "configuration error, ACL permission missing") != NULL);
    redisconn_free(rc);
    peer_stop(pid);

    rc = redisconn_new();
    (void)snprintf(probe, sizeof(probe), "EVALSHA %s 1 ratelimit:check", sha);
    check_ok[1].expect = probe;
    pid = peer_start(check_ok, 2);
    rl_err_clear(&err);
    test_cond("--check: the script's refusal of the probe passes",
              redisconn_check(rc, &cfg, script, &err) == RL_OK);
    redisconn_free(rc);
    peer_stop(pid);
}

int main(void)
{
    if (mkdtemp(dir) == NULL || sha1_hex(script, strlen(script), sha) != RL_OK) {
        perror("setup");
        return 2;
    }
    (void)snprintf(sock_path, sizeof(sock_path), "%s/peer.sock", dir);
    (void)snprintf(sha_reply, sizeof(sha_reply), "$40\r\n%s\r\n", sha);
    log_set_sink(log_sink, NULL);
    test_trickle();
    test_pieces();
    test_auth_user();
    test_auth_refused();
    test_noperm();
    log_set_sink(NULL, NULL);
    (void)rmdir(dir);
    return test_report();
}
