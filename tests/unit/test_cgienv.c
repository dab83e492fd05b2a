/*
 * test_cgienv.c - the script's environment and argv (cgienv.c): pure
 * functions, checked with no process and no fd.
 */
#include <stdlib.h>
#include <string.h>

#include "cgienv.h"
#include "testhelp.h"

/* A param (cgienv_build takes char *const *, as FCGX envp is). */
#define S(lit) ((char *)(lit))

/* The value of NAME in v, or NULL. */
static const char *get(char **v, const char *name)
{
    size_t n = strlen(name), i;

    for (i = 0; v != NULL && v[i] != NULL; i++) {
        if (strncmp(v[i], name, n) == 0 && v[i][n] == '=')
            return v[i] + n + 1;
    }
    return NULL;
}

static size_t count(char **v)
{
    size_t n = 0;

    while (v != NULL && v[n] != NULL)
        n++;
    return n;
}

static void test_env(void)
{
    static char *params[] = {S("REMOTE_ADDR=127.0.0.1"),
                             S("HTTP_PROXY=http://evil:3128"),
                             S("http_proxy=http://evil:3128"),
                             S("RATELIMIT_REDIS_PASSWORD=pw"),
                             S("REDIRECT_REDIRECT_RATELIMIT_LIMIT=1"),
                             S("REDIRECT_HTTP_PROXY=x"),
                             S("HTTP_X_A=first"),
                             S("HTTP_X_A=second"),
                             S("CONTENT_LENGTH=999"),
                             S("SCRIPT_FILENAME=/wrapper"),
                             S("GATEWAY_INTERFACE=CGI/9"),
                             S("FCGI_ROLE=RESPONDER"),
                             S("BAD-NAME=x"),
                             S("=x"),
                             S("NOEQUALS"),
                             S("QUERY_STRING=a=E"),
                             NULL};
    static char *with_path[] = {S("PATH=/opt/bin"), NULL};
    char **v = cgienv_build(params, "/srv/cgi/x.cgi", 42);

    test_cond("env: request params kept (a value with any text in it)",
              get(v, "REMOTE_ADDR") != NULL && strcmp(get(v, "REMOTE_ADDR"), "127.0.0.1") == 0 &&
                  strcmp(get(v, "QUERY_STRING"), "a=E") == 0);
    test_cond("env: no HTTP_PROXY in any case or REDIRECT_ copy",
              get(v, "HTTP_PROXY") == NULL && get(v, "http_proxy") == NULL &&
                  get(v, "REDIRECT_HTTP_PROXY") == NULL);
    test_cond("env: no RATELIMIT_*", get(v, "RATELIMIT_REDIS_PASSWORD") == NULL &&
                                         get(v, "REDIRECT_REDIRECT_RATELIMIT_LIMIT") == NULL);
    test_cond("env: the first of repeated names wins", strcmp(get(v, "HTTP_X_A"), "first") == 0);
    test_cond("env: ours replace the server's",
              strcmp(get(v, "CONTENT_LENGTH"), "42") == 0 &&
                  strcmp(get(v, "SCRIPT_FILENAME"), "/srv/cgi/x.cgi") == 0 &&
                  strcmp(get(v, "GATEWAY_INTERFACE"), "CGI/1.1") == 0 &&
                  get(v, "FCGI_ROLE") == NULL);
    test_cond("env: Debian's PATH for services when none given",
              strcmp(get(v, "PATH"),
                     "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") == 0);
    test_cond("env: invalid names dropped; the count is exact", count(v) == 7);
    cgienv_free(v);
    v = cgienv_build(with_path, "/s", -1);
    test_cond("env: the server's PATH kept, no CONTENT_LENGTH without a body",
              strcmp(get(v, "PATH"), "/opt/bin") == 0 && get(v, "CONTENT_LENGTH") == NULL &&
                  count(v) == 3);
    cgienv_free(v);
    v = cgienv_build(NULL, "/s", 0);
    test_cond("env: no params at all", count(v) == 4 && strcmp(get(v, "CONTENT_LENGTH"), "0") == 0);
    cgienv_free(v);
    cgienv_free(NULL);
}

static int argv_is(char **v, const char *const *want)
{
    size_t i;

    for (i = 0; want[i] != NULL; i++) {
        if (v[i] == NULL || strcmp(v[i], want[i]) != 0)
            return 0;
    }
    return v[i] == NULL;
}

static void test_argv(void)
{
    static const char *const isindex[] = {"/s", "a", "b c", "", "d+", "%zz", NULL};
    static const char *const none[] = {"/s", NULL};
    char q[2048], **v;
    size_t i;

    v = cgienv_argv("/s", "a+b%20c++d%2B+%zz");
    test_cond("argv: ISINDEX words split on '+', percent-decoded", argv_is(v, isindex));
    cgienv_free(v);
    v = cgienv_argv("/s", "a=b+c");
    test_cond("argv: a query with '=' gives no words", argv_is(v, none));
    cgienv_free(v);
    v = cgienv_argv("/s", "");
    test_cond("argv: empty query", argv_is(v, none));
    cgienv_free(v);
    v = cgienv_argv("/s", NULL);
    test_cond("argv: no query", argv_is(v, none));
    cgienv_free(v);
    v = cgienv_argv("/s", "a+b%00c");
    test_cond("argv: a word with a NUL gives no words", argv_is(v, none));
    cgienv_free(v);
    for (i = 0; i < 600; i++)
        memcpy(q + 2 * i, "w+", 2);
    q[2 * 600 - 1] = '\0';
    v = cgienv_argv("/s", q);
    test_cond("argv: at most 511 words (Apache's cut)",
              count(v) == 1 + CGIENV_ARGV_MAX && strcmp(v[511], "w") == 0);
    cgienv_free(v);
}

int main(void)
{
    test_env();
    test_argv();
    return test_report();
}
