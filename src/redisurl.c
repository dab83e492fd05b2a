/*
 * redisurl.c - RATELIMIT_REDIS_URL into a struct rl_redis_target
 * (redisurl.h). I/O-free; tests/unit/test_redisurl.c feeds it good and bad
 * forms.
 */
#include "redisurl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "cidr.h"
#include "rl.h"
#include "util.h"

#define HOST_MAX 253 /* longest DNS name */
#define USER_MAX 256
#define DB_MAX 1000000
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

static int url_is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* The length of val's "SCHEME://" (RFC 3986 3.1: letters, digits, '+',
 * '-', '.'), or 0 when it has none: what comes before a "://" that does
 * not follow a real scheme may be part of a password. */
static size_t scheme_len(const char *val)
{
    size_t n = strspn(val, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");

    return n > 0 && strncmp(val + n, "://", 3) == 0 ? n + 3 : 0;
}

/* The contract: redisurl.h. */
void redisurl_mask(const char *val, char *out, size_t outsz)
{
    size_t n = scheme_len(val);
    const char *at = strrchr(val, '@'), *rest = val + n;

    if (at != NULL)
        (void)snprintf(out, outsz, "%.*s%s@%s", (int)n, val, rest[0] == ':' ? ":***" : "***",
                       at + 1);
    else if (n == 0 || strchr(rest, ':') != NULL)
        (void)snprintf(out, outsz, "%.*s***", (int)n, val);
    else
        (void)snprintf(out, outsz, "%s", val); /* truncation is fine: shortened anyway */
}

/* s percent-encoded into out (RFC 3986: unreserved characters as they
 * are), cut at outsz: a user name as the display shows it. */
static void pct_encode(const char *s, char *out, size_t outsz)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (; *s != '\0' && o + 4 <= outsz; s++) {
        unsigned char c = (unsigned char)*s;

        if (url_is_alnum((char)c) || strchr("-._~", c) != NULL) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

/* The target as logs show it: the user name, never the password. */
static void set_display(struct rl_redis_target *t)
{
    char d[USER_MAX * 3 + HOST_MAX + 64], user[USER_MAX * 3 + 2];

    user[0] = '\0';
    if (t->user != NULL) {
        pct_encode(t->user, user, sizeof(user) - 1);
        memcpy(user + strlen(user), "@", 2);
    }
    if (t->path != NULL)
        (void)snprintf(d, sizeof(d), "unix://%s?db=%d", t->path, t->db);
    else
        (void)snprintf(d, sizeof(d),
                       strchr(t->host, ':') ? "redis://%s[%s]:%d/%d" : "redis://%s%s:%d/%d", user,
                       t->host, t->port, t->db);
    t->display = xstrdup(d); /* sizes are bounded: no truncation */
}

/* unix:///path/redis.sock[?db=N]; s points after "unix://". */
static int parse_unix_url(struct rl_redis_target *t, const char *s, const char **why)
{
    size_t plen = strcspn(s, "?");
    long long db = 0;

    *why = "expected unix:///absolute/path.sock[?db=N] (path at most 107 bytes)";
    if (s[0] != '/' || plen > SUN_PATH_MAX)
        return RL_ERR;
    if (s[plen] == '?') {
        const char *q = s + plen + 1;

        *why = "expected ?db=N with N 0..1000000 after the socket path";
        if (strncmp(q, "db=", 3) != 0 || parse_ll(q + 3, strlen(q + 3), 0, DB_MAX, &db) != RL_OK)
            return RL_ERR;
    }
    t->path = xstrndup(s, plen);
    t->db = (int)db;
    return RL_OK;
}

/* host, [v6] or name: the host part up to ':' or '/'; *rest after it. */
static int parse_url_host(struct rl_redis_target *t, const char *s, const char **rest,
                          const char **why)
{
    size_t n, i;

    *why = "expected a host name or address after redis://";
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        struct rl_addr a;

        *why = "expected an IPv6 address in [brackets]";
        if (end == NULL || cidr_parse_addr(s, (size_t)(end - s + 1), &a) != RL_OK)
            return RL_ERR;
        t->host = xstrndup(s + 1, (size_t)(end - s - 1));
        *rest = end + 1;
        return RL_OK;
    }
    n = strcspn(s, ":/");
    if (n == 0 || n > HOST_MAX)
        return RL_ERR;
    for (i = 0; i < n; i++) {
        if (!url_is_alnum(s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_')
            return RL_ERR;
    }
    t->host = xstrndup(s, n);
    *rest = s + n;
    return RL_OK;
}

/* [:port][/db] after the host. */
static int parse_url_port_db(struct rl_redis_target *t, const char *s, const char **why)
{
    long long port = 6379, db = 0;

    if (*s == ':') {
        size_t n = strcspn(s + 1, "/");

        *why = "expected a port 1..65535 after ':'";
        if (parse_ll(s + 1, n, 1, 65535, &port) != RL_OK)
            return RL_ERR;
        s += 1 + n;
    }
    if (*s == '/') {
        *why = "expected a database number 0..1000000 after '/'";
        if (s[1] != '\0' && parse_ll(s + 1, strlen(s + 1), 0, DB_MAX, &db) != RL_OK)
            return RL_ERR;
    } else if (*s != '\0') {
        *why = "expected redis://[:password@]host[:port][/db]";
        return RL_ERR;
    }
    t->port = (int)port;
    t->db = (int)db;
    return RL_OK;
}

/* s[0..n) percent-decoded (RFC 3986 2.1) into a new string (caller owns),
 * or NULL when an escape is malformed or decodes to NUL, or the result is
 * longer than max. */
static char *pct_decode(const char *s, size_t n, size_t max)
{
    char *out = xmalloc(n + 1);
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        int hi, lo;

        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        if (i + 2 >= n)
            goto bad; /* "%" or "%X" at the end */
        hi = hex_value(s[i + 1]);
        lo = hex_value(s[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            goto bad;
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    if (o <= max)
        return out;
bad:
    free(out);
    return NULL;
}

/* "[USER]:PASSWORD" (userinfo, s[0..n)) into t->user and t->password,
 * both percent-decoded; an empty user is the default user. */
static int parse_userinfo(struct rl_redis_target *t, const char *s, size_t n, const char **why)
{
    const char *colon = memchr(s, ':', n);
    size_t ulen;

    *why = "expected [USER]:PASSWORD@ before the host";
    if (colon == NULL)
        return RL_ERR;
    ulen = (size_t)(colon - s);
    *why = "invalid %-escape, or too long, in the user name or password before '@'";
    if (ulen > 0 && (t->user = pct_decode(s, ulen, USER_MAX)) == NULL)
        return RL_ERR;
    if (n > ulen + 1 &&
        (t->password = pct_decode(colon + 1, n - ulen - 1, REDISURL_PW_MAX)) == NULL)
        return RL_ERR;
    return RL_OK;
}

/* redis://[[USER]:PASSWORD@]host[:port][/db]; s points after "redis://".
 * The userinfo runs to the last '@' (a host has none), so an unencoded '@'
 * in a password still works. */
static int parse_tcp_url(struct rl_redis_target *t, const char *s, const char **why)
{
    const char *at = strrchr(s, '@');

    if (at != NULL) {
        if (parse_userinfo(t, s, (size_t)(at - s), why) != RL_OK)
            return RL_ERR;
        s = at + 1;
    }
    if (parse_url_host(t, s, &s, why) != RL_OK)
        return RL_ERR;
    return parse_url_port_db(t, s, why);
}

typedef int url_parser(struct rl_redis_target *t, const char *rest, const char **why);

/* One row per scheme: what follows it is parsed by parse, into mode. */
static const struct url_scheme {
    const char *prefix;
    int mode;
    url_parser *parse;
} url_schemes[] = {
    {"redis://", RL_REDIS_SERVER, parse_tcp_url},
    {"unix://", RL_REDIS_SERVER, parse_unix_url},
};

#define NSCHEMES (sizeof(url_schemes) / sizeof(url_schemes[0]))

int redisurl_parse(const char *url, struct rl_redis_target *t, const char **why)
{
    struct rl_redis_target n;
    size_t i, plen;

    *why = "expected redis://[[USER]:PASSWORD@]host[:port][/db] or "
           "unix:///path/redis.sock[?db=N]";
    if (url == NULL || strlen(url) > REDISURL_MAX)
        return RL_ERR;
    for (i = 0; i < NSCHEMES; i++) {
        plen = strlen(url_schemes[i].prefix);
        if (strlen(url) >= plen && ascii_ncaseeq(url, url_schemes[i].prefix, plen))
            break;
    }
    if (i == NSCHEMES)
        return RL_ERR;
    memset(&n, 0, sizeof(n));
    n.mode = url_schemes[i].mode;
    if (url_schemes[i].parse(&n, url + plen, why) != RL_OK) {
        redisurl_target_free(&n);
        return RL_ERR;
    }
    set_display(&n);
    n.sentinel_password = t->sentinel_password;
    *t = n;
    return RL_OK;
}

void redisurl_target_free(struct rl_redis_target *t)
{
    if (t == NULL)
        return;
    free(t->host);
    free(t->path);
    free(t->user);
    free(t->password);
    free(t->display);
    free(t->sentinel_password);
    memset(t, 0, sizeof(*t));
}
