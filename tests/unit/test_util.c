/* test_util.c - parse_ll, buf, hashing and the small helpers of util.c;
 * log.c's sink and its stderr fallback. */
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "rl.h"
#include "testhelp.h"
#include "util.h"

static int ll(const char *s, long long min, long long max, long long *out)
{
    return parse_ll(s, strlen(s), min, max, out);
}

static void test_parse_ll(void)
{
    long long v = 7;

    test_cond("parse_ll 0", ll("0", 0, 10, &v) == RL_OK && v == 0);
    test_cond("parse_ll 42", ll("42", 0, 100, &v) == RL_OK && v == 42);
    test_cond("parse_ll -5", ll("-5", -10, 10, &v) == RL_OK && v == -5);
    test_cond("parse_ll LLONG_MAX",
              ll("9223372036854775807", LLONG_MIN, LLONG_MAX, &v) == RL_OK && v == LLONG_MAX);
    test_cond("parse_ll LLONG_MIN",
              ll("-9223372036854775808", LLONG_MIN, LLONG_MAX, &v) == RL_OK && v == LLONG_MIN);
    test_cond("parse_ll overflow", ll("9223372036854775808", LLONG_MIN, LLONG_MAX, &v) == RL_ERR);
    test_cond("parse_ll underflow", ll("-9223372036854775809", LLONG_MIN, LLONG_MAX, &v) == RL_ERR);
    test_cond("parse_ll empty", parse_ll("", 0, 0, 10, &v) == RL_ERR);
    test_cond("parse_ll lone minus", ll("-", -10, 10, &v) == RL_ERR);
    test_cond("parse_ll junk", ll("12a", 0, 100, &v) == RL_ERR);
    test_cond("parse_ll space", ll(" 12", 0, 100, &v) == RL_ERR);
    test_cond("parse_ll plus", ll("+12", 0, 100, &v) == RL_ERR);
    test_cond("parse_ll above max", ll("11", 0, 10, &v) == RL_ERR);
    test_cond("parse_ll below min", ll("0", 1, 10, &v) == RL_ERR);
    test_cond("parse_ll NULL", parse_ll(NULL, 3, 0, 10, &v) == RL_ERR);
    test_cond("parse_ll len bound", parse_ll("123", 2, 0, 100, &v) == RL_OK && v == 12);
}

static void test_buf(void)
{
    struct buf b;

    buf_init(&b, 8);
    test_cond("buf empty str", strcmp(buf_str(&b), "") == 0);
    test_cond("buf append", buf_append(&b, "abcd", 4) == RL_OK && b.len == 4);
    test_cond("buf printf", buf_printf(&b, "%d", 1234) == RL_OK && strcmp(b.ptr, "abcd1234") == 0);
    test_cond("buf cap", buf_append(&b, "x", 1) == RL_ERR && b.len == 8);
    buf_consume(&b, 3);
    test_cond("buf consume", strcmp(buf_str(&b), "d1234") == 0 && b.len == 5);
    buf_reset(&b);
    test_cond("buf reset", b.len == 0 && strcmp(buf_str(&b), "") == 0);
    test_cond("buf printf too big", buf_printf(&b, "%s", "123456789") == RL_ERR && b.len == 0);
    buf_free(&b);
    buf_free(&b);
    buf_free(NULL);
    test_cond("buf free twice and NULL", b.ptr == NULL);

    buf_init(&b, 4096);
    test_cond("buf printf grows", buf_printf(&b, "%0100d", 7) == RL_OK && b.len == 100 &&
                                      b.ptr[99] == '7' && b.ptr[100] == '\0');
    test_cond("buf printf in place", buf_printf(&b, "<%s>", "x") == RL_OK && b.len == 103 &&
                                         strcmp(b.ptr + 100, "<x>") == 0);
    buf_reset(&b);
    test_cond("buf reserve", buf_reserve(&b, 2000) == RL_OK && b.cap > 2000 && b.len == 0);
    test_cond("buf reserve past max", buf_reserve(&b, 4097) == RL_ERR);
    test_cond("buf ll",
              buf_append_ll(&b, 0) == RL_OK && buf_append_ll(&b, -42) == RL_OK &&
                  buf_append_ll(&b, 9223372036854775807LL) == RL_OK &&
                  buf_append_ll(&b, -9223372036854775807LL - 1) == RL_OK &&
                  strcmp(buf_str(&b), "0-429223372036854775807-9223372036854775808") == 0);
    buf_free(&b);
    buf_init(&b, 3);
    test_cond("buf ll cap", buf_append_ll(&b, 1234) == RL_ERR && b.len == 0 &&
                                buf_append_ll(&b, 123) == RL_OK && strcmp(buf_str(&b), "123") == 0);
    buf_free(&b);
}

static void test_hash(void)
{
    char h[RL_SHA256_HEX_LEN + 1], s[RL_SHA1_HEX_LEN + 1];

    test_cond("sha256 abc",
              sha256_hex("abc", 3, h) == RL_OK &&
                  strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") ==
                      0);
    test_cond("sha1 abc", sha1_hex("abc", 3, s) == RL_OK &&
                              strcmp(s, "a9993e364706816aba3e25717850c26c9cd0d89d") == 0);
}

static void test_misc(void)
{
    static char e1[] = "A=1", e2[] = "AB=2", e3[] = "C=";
    char *envp[] = {e1, e2, e3, NULL};

    test_cond("env_get exact", strcmp(env_get(envp, "AB"), "2") == 0);
    test_cond("env_get prefix no match", strcmp(env_get(envp, "A"), "1") == 0);
    test_cond("env_get empty", strcmp(env_get(envp, "C"), "") == 0);
    test_cond("env_get missing", env_get(envp, "D") == NULL);
    test_cond("ascii_ncaseeq", ascii_ncaseeq("Content-Type", "content-type", 12));
    test_cond("ascii_ncaseeq differs", !ascii_ncaseeq("Status", "Statuz", 6));
}

static int sink_calls, sink_rc;

static int sink(void *ctx, const char *line, int len)
{
    (void)ctx;
    (void)line;
    (void)len;
    sink_calls++;
    return sink_rc;
}

/* What stderr got while f ran, into out (NUL-terminated). */
static void on_stderr(void (*f)(void), char *out, size_t cap)
{
    int p[2], saved = dup(2);
    ssize_t n;

    out[0] = '\0';
    if (saved < 0 || pipe(p) < 0)
        return;
    (void)dup2(p[1], 2);
    close(p[1]);
    f();
    (void)dup2(saved, 2);
    close(saved);
    n = read(p[0], out, cap - 1);
    out[n > 0 ? n : 0] = '\0';
    close(p[0]);
}

static void log_one(void)
{
    rl_log(RL_LOG_ERROR, "line %d", 7);
}

static void test_log_sink(void)
{
    char got[256];

    log_set_sink(sink, NULL);
    sink_calls = 0;
    sink_rc = 0;
    on_stderr(log_one, got, sizeof got);
    test_cond("a sink that takes the line: nothing on stderr", sink_calls == 1 && got[0] == '\0');
    sink_rc = -1;
    on_stderr(log_one, got, sizeof got);
    test_cond("a sink that cannot deliver: the line on stderr",
              sink_calls == 2 && strstr(got, "error: line 7\n") != NULL);
    log_set_sink(NULL, NULL);
    on_stderr(log_one, got, sizeof got);
    test_cond("no sink: stderr", sink_calls == 2 && strstr(got, "error: line 7\n") != NULL);
}

int main(void)
{
    test_log_sink();
    test_parse_ll();
    test_buf();
    test_hash();
    test_misc();
    return test_report();
}
