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

/* The contract: redisurl.h. */
void redisurl_mask_password(const char *url, char *out, size_t outsz)
{
    struct rl_redis_target t;
    const char *why, *rest = url + scheme_len(url), *at, *colon;

    memset(&t, 0, sizeof(t));
    if (redisurl_parse(url, &t, &why) != RL_OK) {
        redisurl_mask(url, out, outsz);
        return;
    }
    redisurl_target_free(&t);
    /* As parse_url_userinfo splits it: the userinfo ends at the last '@',
     * the user name at its first ':'. */
    at = strrchr(rest, '@');
    colon = at != NULL ? memchr(rest, ':', (size_t)(at - rest)) : NULL;
    if (at == NULL)
        (void)snprintf(out, outsz, "%s", url);
    else if (colon == NULL) /* an '@' in a unix:// path, say: no userinfo known */
        redisurl_mask(url, out, outsz);
    else
        (void)snprintf(out, outsz, "%.*s:***%s", (int)(colon - url), url, at);
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
    char d[USER_MAX * 3 + REDISURL_NODES_MAX * (HOST_MAX + 10) + REDISURL_NAME_MAX + 64];
    char user[USER_MAX * 3 + 2];
    size_t o;
    int i;

    user[0] = '\0';
    if (t->user != NULL) {
        pct_encode(t->user, user, sizeof(user) - 1);
        memcpy(user + strlen(user), "@", 2);
    }
    if (t->path != NULL) {
        (void)snprintf(d, sizeof(d), "unix://%s?db=%d", t->path, t->db);
    } else if (t->mode == RL_REDIS_SENTINEL || t->mode == RL_REDIS_CLUSTER) {
        o = (size_t)snprintf(
            d, sizeof(d), "%s%s",
            t->mode == RL_REDIS_SENTINEL ? "redis+sentinel://" : "redis+cluster://", user);
        for (i = 0; i < t->nnodes; i++)
            o += (size_t)snprintf(d + o, sizeof(d) - o,
                                  strchr(t->nodes[i].host, ':') ? "%s[%s]:%d" : "%s%s:%d",
                                  i > 0 ? "," : "", t->nodes[i].host, t->nodes[i].port);
        if (t->mode == RL_REDIS_SENTINEL)
            (void)snprintf(d + o, sizeof(d) - o, "/%s/%d", t->master, t->db);
    } else {
        (void)snprintf(d, sizeof(d),
                       strchr(t->host, ':') ? "redis://%s[%s]:%d/%d" : "redis://%s%s:%d/%d", user,
                       t->host, t->port, t->db);
    }
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

/* host, [v6] or name: the host part up to ':', '/' or ','; *rest after
 * it; *host a new string (caller owns). */
static int parse_url_host(char **host, const char *s, const char **rest, const char **why)
{
    size_t n, i;

    *why = "expected a host name or address after //";
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        struct rl_addr a;

        *why = "expected an IPv6 address in [brackets]";
        if (end == NULL || cidr_parse_addr(s, (size_t)(end - s + 1), &a) != RL_OK)
            return RL_ERR;
        *host = xstrndup(s + 1, (size_t)(end - s - 1));
        *rest = end + 1;
        return RL_OK;
    }
    n = strcspn(s, ":/,");
    if (n == 0 || n > HOST_MAX)
        return RL_ERR;
    for (i = 0; i < n; i++) {
        if (!url_is_alnum(s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_')
            return RL_ERR;
    }
    *host = xstrndup(s, n);
    *rest = s + n;
    return RL_OK;
}

/* [:port] after a host, up to '/', ',' or the end; *rest after it. */
static int parse_url_port(int *port, int defport, const char *s, const char **rest,
                          const char **why)
{
    long long p = defport;

    if (*s == ':') {
        size_t n = strcspn(s + 1, "/,");

        *why = "expected a port 1..65535 after ':'";
        if (parse_ll(s + 1, n, 1, 65535, &p) != RL_OK)
            return RL_ERR;
        s += 1 + n;
    }
    *port = (int)p;
    *rest = s;
    return RL_OK;
}

/* [/db] at the end: the database number. */
static int parse_url_db(int *db, const char *s, const char **why)
{
    long long d = 0;

    if (*s == '/') {
        *why = "expected a database number 0..1000000 after '/'";
        if (s[1] != '\0' && parse_ll(s + 1, strlen(s + 1), 0, DB_MAX, &d) != RL_OK)
            return RL_ERR;
    } else if (*s != '\0') {
        return RL_ERR;
    }
    *db = (int)d;
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

/* The userinfo before the last '@' (a host has none, so an unencoded '@'
 * in a password still works), if any; *rest after it. */
static int parse_url_userinfo(struct rl_redis_target *t, const char *s, const char **rest,
                              const char **why)
{
    const char *at = strrchr(s, '@');

    *rest = s;
    if (at == NULL)
        return RL_OK;
    if (parse_userinfo(t, s, (size_t)(at - s), why) != RL_OK)
        return RL_ERR;
    *rest = at + 1;
    return RL_OK;
}

/* redis://[[USER]:PASSWORD@]host[:port][/db]; s points after "redis://". */
static int parse_tcp_url(struct rl_redis_target *t, const char *s, const char **why)
{
    if (parse_url_userinfo(t, s, &s, why) != RL_OK ||
        parse_url_host(&t->host, s, &s, why) != RL_OK ||
        parse_url_port(&t->port, 6379, s, &s, why) != RL_OK)
        return RL_ERR;
    *why = "expected redis://[[USER]:PASSWORD@]host[:port][/db]";
    return parse_url_db(&t->db, s, why);
}

/* host[:port][,host[:port]...] into t->nodes (defport when a port is
 * missing); *rest after the list. */
static int parse_url_nodes(struct rl_redis_target *t, int defport, const char *s, const char **rest,
                           const char **why)
{
    for (;;) {
        struct rl_redis_node *node = &t->nodes[t->nnodes];

        *why = "expected at most 16 host:port in the list";
        if (t->nnodes == REDISURL_NODES_MAX)
            return RL_ERR;
        if (parse_url_host(&node->host, s, &s, why) != RL_OK)
            return RL_ERR;
        t->nnodes++;
        if (parse_url_port(&node->port, defport, s, &s, why) != RL_OK)
            return RL_ERR;
        if (*s != ',')
            break;
        s++;
    }
    *rest = s;
    return RL_OK;
}

/* redis+cluster://[[USER]:PASSWORD@]host[:port][,host[:port]...][/]; s
 * points after the "//". A cluster has database 0 only. */
static int parse_cluster_url(struct rl_redis_target *t, const char *s, const char **why)
{
    if (parse_url_userinfo(t, s, &s, why) != RL_OK || parse_url_nodes(t, 6379, s, &s, why) != RL_OK)
        return RL_ERR;
    *why = "expected redis+cluster://[[USER]:PASSWORD@]host[:port][,host[:port]...] (a cluster "
           "has no database but 0)";
    return strcmp(s, "") == 0 || strcmp(s, "/") == 0 || strcmp(s, "/0") == 0 ? RL_OK : RL_ERR;
}

/* redis+sentinel://[[USER]:PASSWORD@]host[:port][,host[:port]...]/MASTER[/db];
 * s points after the "//". */
static int parse_sentinel_url(struct rl_redis_target *t, const char *s, const char **why)
{
    size_t n;

    if (parse_url_userinfo(t, s, &s, why) != RL_OK ||
        parse_url_nodes(t, 26379, s, &s, why) != RL_OK)
        return RL_ERR;
    *why = "expected /MASTERNAME (letters, digits, '.', '-', '_') after the sentinels";
    if (*s != '/')
        return RL_ERR;
    s++;
    n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");
    if (n == 0 || n > REDISURL_NAME_MAX)
        return RL_ERR;
    t->master = xstrndup(s, n);
    *why =
        "expected redis+sentinel://[[USER]:PASSWORD@]host[:port][,host[:port]...]/MASTERNAME[/db]";
    return parse_url_db(&t->db, s + n, why);
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
    {"redis+sentinel://", RL_REDIS_SENTINEL, parse_sentinel_url},
    {"redis+cluster://", RL_REDIS_CLUSTER, parse_cluster_url},
};

#define NSCHEMES (sizeof(url_schemes) / sizeof(url_schemes[0]))

int redisurl_parse(const char *url, struct rl_redis_target *t, const char **why)
{
    struct rl_redis_target n;
    size_t i, plen;

    *why = "expected redis://[[USER]:PASSWORD@]host[:port][/db], "
           "unix:///path/redis.sock[?db=N] or "
           "redis+sentinel://[[USER]:PASSWORD@]host[:port][,host[:port]...]/MASTERNAME[/db] or "
           "redis+cluster://[[USER]:PASSWORD@]host[:port][,host[:port]...]";
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

static int str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

int redisurl_target_eq(const struct rl_redis_target *a, const struct rl_redis_target *b)
{
    int i;

    if (a->mode != b->mode || a->port != b->port || a->db != b->db || a->nnodes != b->nnodes ||
        !str_eq(a->host, b->host) || !str_eq(a->path, b->path) || !str_eq(a->user, b->user) ||
        !str_eq(a->password, b->password) || !str_eq(a->master, b->master) ||
        !str_eq(a->sentinel_password, b->sentinel_password))
        return 0;
    for (i = 0; i < a->nnodes; i++) {
        if (a->nodes[i].port != b->nodes[i].port || !str_eq(a->nodes[i].host, b->nodes[i].host))
            return 0;
    }
    return 1;
}

void redisurl_target_copy(struct rl_redis_target *dst, const struct rl_redis_target *src)
{
    int i;

    *dst = *src;
    dst->host = xstrdup(src->host);
    dst->path = xstrdup(src->path);
    dst->user = xstrdup(src->user);
    dst->password = xstrdup(src->password);
    dst->display = xstrdup(src->display);
    dst->sentinel_password = xstrdup(src->sentinel_password);
    dst->master = xstrdup(src->master);
    for (i = 0; i < src->nnodes; i++)
        dst->nodes[i].host = xstrdup(src->nodes[i].host);
}

/* Wipe a secret, then free it. */
static void secret_free(char *s)
{
    if (s != NULL)
        explicit_bzero(s, strlen(s));
    free(s);
}

void redisurl_target_free(struct rl_redis_target *t)
{
    if (t == NULL)
        return;
    free(t->host);
    free(t->path);
    free(t->user);
    secret_free(t->password);
    free(t->display);
    secret_free(t->sentinel_password);
    for (int i = 0; i < t->nnodes; i++)
        free(t->nodes[i].host);
    free(t->master);
    memset(t, 0, sizeof(*t));
}
