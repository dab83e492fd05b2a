/*
 * units.c - values as the configuration reads and shows them: durations
 * ("90", "500ms", "30s", "1m", "1h", "1d"), byte sizes ("512k", "10m",
 * "1g"), and any value cut short for an error message.
 */
#include "rlconfig.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "confint.h"
#include "util.h"

static const struct {
    const char *suffix;
    long long ms;
} duration_units[] = {{"d", DAY_MS}, {"h", 3600000LL}, {"m", 60000LL}, {"s", 1000LL}, {"ms", 1LL}};

#define NUNITS (sizeof(duration_units) / sizeof(duration_units[0]))
_Static_assert(UNIT_SECONDS < NUNITS, "UNIT_SECONDS indexes duration_units (its \"s\")");

static long long unit_ms(const char *u, size_t len)
{
    size_t i;

    if (len == 0)
        return 1000; /* a plain number is seconds */
    for (i = 0; i < NUNITS; i++) {
        if (strlen(duration_units[i].suffix) == len &&
            memcmp(duration_units[i].suffix, u, len) == 0)
            return duration_units[i].ms;
    }
    return -1;
}

int config_parse_duration(const char *s, long long min_ms, long long max_ms, long long *out_ms)
{
    size_t len, digits = 0;
    long long n, mult;

    if (s == NULL)
        return RL_ERR;
    len = strlen(s);
    while (digits < len && s[digits] >= '0' && s[digits] <= '9')
        digits++;
    if (digits == 0)
        return RL_ERR; /* also refuses a sign, a space or a leading '.' */
    mult = unit_ms(s + digits, len - digits);
    if (mult < 0 || parse_ll(s, digits, 0, LLONG_MAX, &n) != RL_OK)
        return RL_ERR;
    if (max_ms < 0 || n > max_ms / mult)
        return RL_ERR; /* checked before multiplying: no overflow */
    n *= mult;
    if (n < min_ms)
        return RL_ERR;
    *out_ms = n;
    return RL_OK;
}

/* Duration text with the largest unit (from duration_units[first]) that
 * divides ms exactly: 60000 gives "1m" (first 0) or "60s" (UNIT_SECONDS). */
void units_fmt_duration(long long ms, size_t first, char *out, size_t outsz)
{
    size_t i;

    for (i = first; i < NUNITS; i++) {
        if (ms % duration_units[i].ms == 0) {
            (void)snprintf(out, outsz, "%lld%s", ms / duration_units[i].ms,
                           duration_units[i].suffix);
            return;
        }
    }
    (void)snprintf(out, outsz, "%lldms", ms);
}

/* A byte count: "1048576", or with a 1024-based unit "512k", "10m", "1g"
 * (either case), within [min, max]. RL_OK or RL_ERR. */
int units_parse_size(const char *s, long long min, long long max, long long *out)
{
    size_t len = strlen(s), digits = 0;
    long long n, mult = 1;

    while (digits < len && s[digits] >= '0' && s[digits] <= '9')
        digits++;
    if (digits == 0 || len - digits > 1)
        return RL_ERR;
    if (len - digits == 1) {
        const char *u = strchr("kKmMgG", s[digits]);

        if (u == NULL)
            return RL_ERR;
        mult = 1LL << (10 * (1 + (u - "kKmMgG") / 2));
    }
    if (parse_ll(s, digits, 0, LLONG_MAX, &n) != RL_OK || n > max / mult)
        return RL_ERR; /* checked before multiplying: no overflow */
    n *= mult;
    if (n < min)
        return RL_ERR;
    *out = n;
    return RL_OK;
}

/* Bytes as text with the largest 1024-based unit that divides them. */
void units_fmt_size(long long n, char *out, size_t outsz)
{
    const char *units = "gmk";
    int shift;

    for (shift = 30; shift >= 10 && n > 0; shift -= 10, units++) {
        if (n % (1LL << shift) == 0) {
            (void)snprintf(out, outsz, "%lld%c", n >> shift, *units);
            return;
        }
    }
    (void)snprintf(out, outsz, "%lld", n);
}

void cfg_shorten(const char *s, size_t len, char *out, size_t outsz)
{
    size_t i, n = len > SHOW_MAX ? SHOW_MAX : len;

    if (n > outsz - 4)
        n = outsz - 4;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (n < len) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}
