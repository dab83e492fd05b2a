/*
 * util.h - small helpers with no I/O: allocation that aborts on OOM, strict
 * number parsing, hex encoding and SHA-256 from libcrypto.
 */
#ifndef RL_UTIL_H
#define RL_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Allocate or abort() after logging: our own OOM is not recoverable. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* Copy s (may be NULL: returns NULL). Caller owns the result. */
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/*
 * Parse s[0..len) as a base-10 integer within [min, max] into *out.
 * Rejects empty input, signs other than one leading '-', any junk, and
 * overflow. Returns RL_OK or RL_ERR (then *out is untouched).
 */
int parse_ll(const char *s, size_t len, long long min, long long max, long long *out);

/* Lower-case hex of n bytes into out, which must hold 2*n+1 bytes. */
void hex_encode(const unsigned char *in, size_t n, char *out);

#define RL_SHA256_HEX_LEN 64
/* SHA-256 of p[0..n) as 64 hex digits + NUL in out[65]. RL_OK or RL_ERR. */
int sha256_hex(const void *p, size_t n, char out[RL_SHA256_HEX_LEN + 1]);

#define RL_SHA1_HEX_LEN 40
/* SHA-1 (what Redis names scripts by) as 40 hex digits + NUL. RL_OK or RL_ERR. */
int sha1_hex(const void *p, size_t n, char out[RL_SHA1_HEX_LEN + 1]);

/* Monotonic clock in milliseconds. */
long long now_ms(void);

/* 64-bit FNV-1a: h (FNV1A_INIT to start) folded with p[0..n). Not for
 * anything an attacker must not collide on purpose. */
#define FNV1A_INIT UINT64_C(14695981039346656037)
uint64_t fnv1a(uint64_t h, const void *p, size_t n);
/* The same clock in microseconds (durations for the metrics). */
long long now_us(void);

/* Case-insensitive ASCII comparison of a[0..n) and b[0..n). */
int ascii_ncaseeq(const char *a, const char *b, size_t n);

/* Find NAME in a NULL-terminated "NAME=VALUE" array; borrowed value or NULL. */
const char *env_get(char *const *envp, const char *name);

/* The value of one hexadecimal digit (0-9, a-f, A-F), or -1. */
int hex_value(char c);

/*
 * Write all n bytes of p to fd, retrying on short writes and on EINTR
 * until the request's deadline (deadline.h) has passed.
 * RL_OK, or RL_ERR with errno set (EPIPE: the reader went away).
 */
int write_full(int fd, const void *p, size_t n);

/* Close *fdp if >= 0 (EINTR-safe as Linux allows) and set it to -1. */
void fd_close(int *fdp);

#endif
