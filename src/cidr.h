/*
 * cidr.h - IP addresses and CIDR lists: parsing (no I/O), masking, matching.
 *
 * Used for RATELIMIT_TRUSTED_PROXIES, RATELIMIT_ALLOW, RATELIMIT_DENY, the
 * X-Forwarded-For walk and IPv6 prefix grouping. An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d) is always stored as the IPv4 address it carries, so that
 * one client is one client whichever way the server spells it.
 */
#ifndef RL_CIDR_H
#define RL_CIDR_H

#include <stddef.h>

#include "rl.h"

struct rl_addr {
    int family;          /* AF_INET or AF_INET6 */
    unsigned char a[16]; /* network order; IPv4 uses a[0..3] */
};

struct rl_cidr {
    struct rl_addr addr; /* host bits already cleared */
    int prefix;          /* 0..32 or 0..128 */
};

struct rl_cidr_list {
    size_t n;
    struct rl_cidr *v; /* owned; freed by cidr_list_free() */
};

/*
 * Parse one address: dotted IPv4, IPv6 (optionally in [brackets]; a %zone
 * is refused), IPv4-mapped IPv6 becomes IPv4. Surrounding spaces are not
 * accepted. RL_OK or RL_ERR; never reads past s[len-1].
 */
int cidr_parse_addr(const char *s, size_t len, struct rl_addr *out);

/* "ADDR" or "ADDR/PREFIX" (host bits are cleared). RL_OK or RL_ERR. */
int cidr_parse(const char *s, size_t len, struct rl_cidr *out);

/*
 * Parse a list separated by commas and/or white space ("" gives an empty
 * list). On error *err names the bad entry; out is left empty.
 */
int cidr_list_parse(const char *s, struct rl_cidr_list *out, struct rl_err *err);

/* Release the list; NULL and an empty list are fine. */
void cidr_list_free(struct rl_cidr_list *l);

/* Deep copy; dst must be empty. */
void cidr_list_copy(struct rl_cidr_list *dst, const struct rl_cidr_list *src);

/* 1 when addr is inside any entry of l (families must match), else 0. */
int cidr_list_match(const struct rl_cidr_list *l, const struct rl_addr *addr);

/* Clear all bits of addr after the first prefix bits. */
void cidr_mask(struct rl_addr *addr, int prefix);

/* Text form (inet_ntop) into out; RL_OK or RL_ERR if outsz is too small. */
int cidr_format(const struct rl_addr *addr, char *out, size_t outsz);

#endif
