/*
 * util.c - allocation, strict integer parsing, hashing and other helpers
 * that every module needs and that do no request I/O.
 *
 * Hashing uses OpenSSL's EVP interface (libcrypto) rather than a hand
 * written digest: SHA-256 hides credentials in Redis keys, SHA-1 names Lua
 * scripts the way Redis does.
 */
#include "deadline.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "log.h"
#include "rl.h"

void rl_err_set(struct rl_err *err, int kind, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return;
    err->kind = kind;
    va_start(ap, fmt);
    /* vsnprintf truncates and always terminates: truncation is fine here. */
    (void)vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

int rl_err_status(const struct rl_err *err)
{
    switch (err != NULL ? err->kind : RL_E_NONE) {
    case RL_E_NOTFOUND:
        return 404;
    case RL_E_DENIED:
        return 403;
    case RL_E_REDIS:
        return 503;
    case RL_E_PROTO:
        return 502;
    default:
        return 500;
    }
}

void rl_err_clear(struct rl_err *err)
{
    if (err == NULL)
        return;
    err->kind = RL_E_NONE;
    err->msg[0] = '\0';
}

static void oom(size_t n)
{
    rl_log(RL_LOG_ERROR, "out of memory allocating %zu bytes", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL)
        oom(n);
    return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

    if (p == NULL)
        oom(nmemb * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (q == NULL)
        oom(n);
    return q;
}

char *xstrdup(const char *s)
{
    return s == NULL ? NULL : xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p;

    if (s == NULL)
        return NULL;
    p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int parse_ll(const char *s, size_t len, long long min, long long max, long long *out)
{
    unsigned long long v = 0, lim;
    size_t i = 0;
    int neg = 0;

    if (s == NULL || len == 0)
        return RL_ERR;
    if (s[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i == len)
        return RL_ERR;
    /* The magnitude limit of the sign we have: LLONG_MAX or -LLONG_MIN. */
    lim = neg ? (unsigned long long)LLONG_MAX + 1ULL : (unsigned long long)LLONG_MAX;
    for (; i < len; i++) {
        unsigned d;

        if (s[i] < '0' || s[i] > '9')
            return RL_ERR;
        d = (unsigned)(s[i] - '0');
        if (v > (lim - d) / 10)
            return RL_ERR;
        v = v * 10 + d;
    }
    {
        long long r;

        if (neg)
            r = v == (unsigned long long)LLONG_MAX + 1ULL ? LLONG_MIN : -(long long)v;
        else
            r = (long long)v;
        if (r < min || r > max)
            return RL_ERR;
        *out = r;
    }
    return RL_OK;
}

void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

static int digest_hex(const EVP_MD *md, const void *p, size_t n, char *out)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;

    if (EVP_Digest(p, n, d, &dlen, md, NULL) != 1)
        return RL_ERR;
    hex_encode(d, dlen, out);
    return RL_OK;
}

int sha256_hex(const void *p, size_t n, char out[RL_SHA256_HEX_LEN + 1])
{
    return digest_hex(EVP_sha256(), p, n, out);
}

int sha1_hex(const void *p, size_t n, char out[RL_SHA1_HEX_LEN + 1])
{
    return digest_hex(EVP_sha1(), p, n, out);
}

long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;

    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

long long now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int ascii_ncaseeq(const char *a, const char *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];

        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y - 'A' + 'a');
        if (x != y)
            return 0;
    }
    return 1;
}

const char *env_get(char *const *envp, const char *name)
{
    size_t n = strlen(name);

    if (envp == NULL)
        return NULL;
    for (; *envp != NULL; envp++) {
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    }
    return NULL;
}

int write_full(int fd, const void *p, size_t n)
{
    const char *s = p;

    while (n > 0) {
        ssize_t w = write(fd, s, n);

        /* EINTR is retried, but not past the request's deadline: a
         * reader that stopped must not hold us (deadline.h). */
        if (w < 0 && errno == EINTR && !deadline_expired())
            continue;
        if (w <= 0)
            return RL_ERR;
        s += w;
        n -= (size_t)w;
    }
    return RL_OK;
}

void fd_close(int *fdp)
{
    if (*fdp >= 0) {
        /* On Linux the fd is released even when close() fails with EINTR:
         * retrying could close an fd another thread just opened. */
        (void)close(*fdp);
        *fdp = -1;
    }
}

int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
