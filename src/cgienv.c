/*
 * cgienv.c - the script's environment and argv (see cgienv.h), on the
 * model of slowcgi's exec_cgi and lighttpd's cgi_create_env: envp is
 * built entry by entry from the FastCGI params, never with setenv, and
 * never from our own environment (RATELIMIT_REDIS_PASSWORD lives there).
 * A vector grows by doubling; every entry is a separate allocation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgienv.h"
#include "util.h"

struct vec {
    char **v;
    size_t n, cap;
};

/* Append entry (consumed); v stays NULL-terminated. */
static void vec_add(struct vec *x, char *entry)
{
    if (x->n + 2 > x->cap) {
        x->cap = x->cap ? x->cap * 2 : 32;
        x->v = xrealloc(x->v, x->cap * sizeof *x->v);
    }
    x->v[x->n++] = entry;
    x->v[x->n] = NULL;
}

/* Length of the name of "NAME=VALUE" when NAME is [A-Za-z_][A-Za-z0-9_]*,
 * else 0. */
static size_t name_len(const char *e)
{
    size_t i;

    if (!((e[0] >= 'A' && e[0] <= 'Z') || (e[0] >= 'a' && e[0] <= 'z') || e[0] == '_'))
        return 0;
    for (i = 1; e[i] != '=' && e[i] != '\0'; i++) {
        char c = e[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return e[i] == '=' ? i : 0;
}

static int name_is(const char *e, size_t n, const char *name)
{
    return strlen(name) == n && memcmp(e, name, n) == 0;
}

/*
 * 1 when a request param must not reach the script: httpoxy's HTTP_PROXY,
 * libfcgi's and Apache's role variables, our own configuration (also as
 * Apache's REDIRECT_ copies, any depth), and the variables set here.
 */
static int dropped(const char *e, size_t n)
{
    static const char *const ours[] = {"FCGI_ROLE", "FCGI_APACHE_ROLE", "GATEWAY_INTERFACE",
                                       "CONTENT_LENGTH", "SCRIPT_FILENAME"};
    size_t i;

    for (i = 0; i < sizeof ours / sizeof ours[0]; i++) {
        if (name_is(e, n, ours[i]))
            return 1;
    }
    while (n > 9 && memcmp(e, "REDIRECT_", 9) == 0)
        e += 9, n -= 9;
    /* curl and wget also honour a lower-case http_proxy. */
    return (n == 10 && ascii_ncaseeq(e, "HTTP_PROXY", 10)) ||
           (n >= 10 && memcmp(e, "RATELIMIT_", 10) == 0);
}

/* 1 when x already has a variable named e[0..n). */
static int has(const struct vec *x, const char *e, size_t n)
{
    size_t i;

    for (i = 0; i < x->n; i++) {
        if (strncmp(x->v[i], e, n) == 0 && x->v[i][n] == '=')
            return 1;
    }
    return 0;
}

static void add_var(struct vec *x, const char *name, const char *value)
{
    size_t a = strlen(name), b = strlen(value);
    char *e = xmalloc(a + b + 2);

    memcpy(e, name, a);
    e[a] = '=';
    memcpy(e + a + 1, value, b + 1);
    vec_add(x, e);
}

char **cgienv_build(char *const *params, const char *script, long long content_length)
{
    struct vec x = {NULL, 0, 0};
    char *const *p;
    char num[32];

    for (p = params; p != NULL && *p != NULL; p++) {
        size_t n = name_len(*p);

        if (n != 0 && !dropped(*p, n) && !has(&x, *p, n))
            vec_add(&x, xstrdup(*p));
    }
    add_var(&x, "GATEWAY_INTERFACE", "CGI/1.1");
    if (!has(&x, "PATH", 4))
        add_var(&x, "PATH", CGIENV_DEFAULT_PATH);
    if (content_length >= 0) {
        (void)snprintf(num, sizeof num, "%lld", content_length);
        add_var(&x, "CONTENT_LENGTH", num);
    }
    add_var(&x, "SCRIPT_FILENAME", script);
    return x.v;
}

/* s[0..n) percent-decoded (a bad escape is kept as is, as Apache's
 * ap_unescape_url leaves it); caller owns. NULL when it decodes a NUL. */
static char *decode_word(const char *s, size_t n)
{
    char *w = xmalloc(n + 1);
    size_t i, j = 0;

    for (i = 0; i < n; i++) {
        int hi = -1, lo = -1;

        if (s[i] == '%' && i + 2 < n) {
            hi = hex_value(s[i + 1]);
            lo = hex_value(s[i + 2]);
        }
        if (hi >= 0 && lo >= 0) {
            w[j] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            w[j] = s[i];
        }
        if (w[j++] == '\0') {
            free(w);
            return NULL;
        }
    }
    w[j] = '\0';
    return w;
}

/* Add the ISINDEX words of q to x; 0 when one cannot be passed. */
static int add_words(struct vec *x, const char *q)
{
    size_t words = 0;

    for (;;) {
        const char *end = strchr(q, '+');
        size_t n = end != NULL ? (size_t)(end - q) : strlen(q);
        char *w;

        if (words++ == CGIENV_ARGV_MAX)
            return 1;
        if ((w = decode_word(q, n)) == NULL)
            return 0;
        vec_add(x, w);
        if (end == NULL)
            return 1;
        q = end + 1;
    }
}

char **cgienv_argv(const char *script, const char *query)
{
    struct vec x = {NULL, 0, 0};

    vec_add(&x, xstrdup(script));
    if (query == NULL || *query == '\0' || strchr(query, '=') != NULL)
        return x.v;
    if (!add_words(&x, query)) {
        cgienv_free(x.v);
        x.v = NULL;
        x.n = x.cap = 0;
        vec_add(&x, xstrdup(script));
    }
    return x.v;
}

void cgienv_free(char **v)
{
    size_t i;

    if (v == NULL)
        return;
    for (i = 0; v[i] != NULL; i++)
        free(v[i]);
    free(v);
}
