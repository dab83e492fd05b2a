/*
 * cidr.c - IP addresses and CIDR lists: parsing, masking, matching, text.
 *
 * Parsing does no I/O and trusts nothing: input is bounded, copied into a
 * small NUL-terminated buffer and handed to inet_pton(), which is strict
 * (four dotted decimal parts for IPv4, no zones). An IPv4-mapped IPv6
 * address (::ffff:a.b.c.d) is stored as the IPv4 address it carries; a CIDR
 * written that way (::ffff:10.0.0.0/104) becomes 10.0.0.0/8, so that a
 * client matches whichever way the web server spells its address.
 */
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util.h"

/* Longest address text we accept: a full IPv6 with an embedded IPv4
 * ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255") is 45 bytes. */
#define ADDR_TEXT_MAX 63

/* Shown in error messages: a bad list entry is cut to this many bytes. */
#define ENTRY_SHOW_MAX 60

static const unsigned char v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int family_bits(int family)
{
    return family == AF_INET ? 32 : 128;
}

/* 1 when a 16-byte IPv6 address is ::ffff:a.b.c.d. */
static int is_v4mapped(const unsigned char *a)
{
    return memcmp(a, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0;
}

/* Rewrite an IPv4-mapped IPv6 address in place as the IPv4 it carries. */
static void unmap_v4(struct rl_addr *addr)
{
    unsigned char v4[4];

    memcpy(v4, addr->a + 12, 4);
    memset(addr->a, 0, sizeof(addr->a));
    memcpy(addr->a, v4, 4);
    addr->family = AF_INET;
}

/*
 * Parse s[0..len) into *out without unmapping. RL_ERR for empty or long
 * input, an embedded NUL, a %zone, unbalanced brackets or an IPv4 inside
 * brackets.
 */
static int parse_addr_raw(const char *s, size_t len, struct rl_addr *out)
{
    char tmp[ADDR_TEXT_MAX + 1];
    int bracket = 0;

    if (s == NULL || len == 0)
        return RL_ERR;
    if (s[0] == '[') {
        if (len < 3 || s[len - 1] != ']')
            return RL_ERR;
        s++;
        len -= 2;
        bracket = 1;
    }
    if (len > ADDR_TEXT_MAX || memchr(s, '\0', len) != NULL || memchr(s, '%', len) != NULL)
        return RL_ERR;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    memset(out, 0, sizeof(*out));
    if (memchr(tmp, ':', len) != NULL) {
        if (inet_pton(AF_INET6, tmp, out->a) != 1)
            return RL_ERR;
        out->family = AF_INET6;
        return RL_OK;
    }
    /* Brackets are for IPv6 only (RFC 3986 IP-literal). */
    if (bracket || inet_pton(AF_INET, tmp, out->a) != 1)
        return RL_ERR;
    out->family = AF_INET;
    return RL_OK;
}

int cidr_parse_addr(const char *s, size_t len, struct rl_addr *out)
{
    struct rl_addr a;

    if (parse_addr_raw(s, len, &a) != RL_OK)
        return RL_ERR;
    if (a.family == AF_INET6 && is_v4mapped(a.a))
        unmap_v4(&a);
    *out = a;
    return RL_OK;
}

int cidr_parse(const char *s, size_t len, struct rl_cidr *out)
{
    const char *slash;
    struct rl_addr a;
    long long prefix;
    size_t alen;

    if (s == NULL || len == 0)
        return RL_ERR;
    slash = memchr(s, '/', len);
    alen = slash != NULL ? (size_t)(slash - s) : len;
    if (parse_addr_raw(s, alen, &a) != RL_OK)
        return RL_ERR;
    prefix = family_bits(a.family);
    if (slash != NULL &&
        parse_ll(slash + 1, len - alen - 1, 0, family_bits(a.family), &prefix) != RL_OK)
        return RL_ERR;
    /* ::ffff:0:0/96 and longer prefixes lie wholly inside the mapped range
     * and so describe IPv4 networks. A shorter prefix spans real IPv6 space
     * too; it stays IPv6 (and so never matches a client we store as IPv4). */
    if (a.family == AF_INET6 && prefix >= 96 && is_v4mapped(a.a)) {
        unmap_v4(&a);
        prefix -= 96;
    }
    cidr_mask(&a, (int)prefix);
    out->addr = a;
    out->prefix = (int)prefix;
    return RL_OK;
}

static int is_list_sep(char c)
{
    return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Append one entry, growing the array geometrically. */
static void list_push(struct rl_cidr_list *l, size_t *cap, const struct rl_cidr *c)
{
    if (l->n == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        l->v = xrealloc(l->v, *cap * sizeof(*l->v));
    }
    l->v[l->n++] = *c;
}

int cidr_list_parse(const char *s, struct rl_cidr_list *out, struct rl_err *err)
{
    struct rl_cidr_list l = {0, NULL};
    size_t cap = 0;

    out->n = 0;
    out->v = NULL;
    while (s != NULL && *s != '\0') {
        struct rl_cidr c;
        size_t n = 0;

        if (is_list_sep(*s)) {
            s++;
            continue;
        }
        while (s[n] != '\0' && !is_list_sep(s[n]))
            n++;
        if (cidr_parse(s, n, &c) != RL_OK) {
            int show = n > ENTRY_SHOW_MAX ? ENTRY_SHOW_MAX : (int)n;

            rl_err_set(err, RL_E_CONFIG, "bad entry '%.*s%s' (expected ADDRESS or ADDRESS/PREFIX)",
                       show, s, n > ENTRY_SHOW_MAX ? "..." : "");
            cidr_list_free(&l);
            return RL_ERR;
        }
        list_push(&l, &cap, &c);
        s += n;
    }
    *out = l;
    return RL_OK;
}

void cidr_list_free(struct rl_cidr_list *l)
{
    if (l == NULL)
        return;
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void cidr_list_copy(struct rl_cidr_list *dst, const struct rl_cidr_list *src)
{
    dst->n = 0;
    dst->v = NULL;
    if (src == NULL || src->n == 0)
        return;
    dst->v = xmalloc(src->n * sizeof(*src->v));
    memcpy(dst->v, src->v, src->n * sizeof(*src->v));
    dst->n = src->n;
}

/* 1 when the first prefix bits of a and b are equal. */
static int prefix_equal(const unsigned char *a, const unsigned char *b, int prefix)
{
    int full = prefix / 8, rest = prefix % 8;

    if (memcmp(a, b, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    return ((a[full] ^ b[full]) & (unsigned char)(0xff << (8 - rest))) == 0;
}

int cidr_list_match(const struct rl_cidr_list *l, const struct rl_addr *addr)
{
    size_t i;

    if (l == NULL || addr == NULL)
        return 0;
    for (i = 0; i < l->n; i++) {
        const struct rl_cidr *c = &l->v[i];

        if (c->addr.family == addr->family && prefix_equal(c->addr.a, addr->a, c->prefix))
            return 1;
    }
    return 0;
}

void cidr_mask(struct rl_addr *addr, int prefix)
{
    int bits = family_bits(addr->family), i;

    if (prefix < 0)
        prefix = 0;
    if (prefix > bits)
        prefix = bits;
    /* Bytes past the family's length are always zero for IPv4: clear all
     * 16 so that the invariant holds whatever the caller left there. */
    for (i = 0; i < 16; i++) {
        int keep = prefix - i * 8;

        if (keep <= 0)
            addr->a[i] = 0;
        else if (keep < 8)
            addr->a[i] &= (unsigned char)(0xff << (8 - keep));
    }
}

int cidr_format(const struct rl_addr *addr, char *out, size_t outsz)
{
    if (addr == NULL || out == NULL || outsz == 0)
        return RL_ERR;
    if (addr->family != AF_INET && addr->family != AF_INET6)
        return RL_ERR;
    if (outsz > (size_t)INET6_ADDRSTRLEN * 4)
        outsz = (size_t)INET6_ADDRSTRLEN * 4; /* socklen_t is narrow; no need for more */
    if (inet_ntop(addr->family, addr->a, out, (socklen_t)outsz) == NULL) {
        out[0] = '\0';
        return RL_ERR;
    }
    return RL_OK;
}
