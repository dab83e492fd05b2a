/*
 * clientkey.h - who the client is, and the Redis key it is counted under.
 *
 * The client is REMOTE_ADDR, or, only when REMOTE_ADDR is in
 * RATELIMIT_TRUSTED_PROXIES, the right-most X-Forwarded-For entry that is
 * not itself trusted, even when that entry is no address ("unknown", an
 * obfuscated "_hidden"): then it is an opaque identity that no CIDR list
 * matches. IPv4-mapped IPv6 counts as IPv4; IPv6 is grouped by
 * RATELIMIT_IPV6_PREFIX. A rule's identity (address, opaque entry, header
 * or variable) is hashed with SHA-256 into PREFIX NAME ":" hex, so that a
 * credential used as a key never reaches Redis; an Authorization scheme is
 * compared case-insensitively (RFC 9110 11.1). Nothing here does I/O.
 */
#ifndef RL_CLIENTKEY_H
#define RL_CLIENTKEY_H

#include <stddef.h>

#include "cidr.h"
#include "rlconfig.h"
#include "rl.h"

#define RL_SKIP 1 /* clientkey_build(): the rule does not apply */

struct rl_client {
    /* 1 when addr holds the client's address. Only then may RATELIMIT_ALLOW
     * or RATELIMIT_DENY match: an opaque or textual client never does. */
    int has_addr;
    struct rl_addr addr; /* the client address, mapped IPv4 unmapped, not masked */
    /* An opaque client (an X-Forwarded-For entry that is no address):
     * opaque_len bytes at opaque, borrowed from params (valid as long as
     * they are), not NUL-terminated, possibly empty. NULL otherwise. Its
     * ip key hashes all of it, under its own tag "xff". */
    const char *opaque;
    size_t opaque_len;
    /* Identity text used for ip keys and logs: the address, IPv6 masked to
     * the prefix as "2001:db8::/64"; or REMOTE_ADDR verbatim (truncated)
     * when it is not an address; "" when there is none. For an opaque
     * client, for logs only: "xff:" and at most 32 sanitised bytes. */
    char text[64];
};

/*
 * Decide the client from params (REMOTE_ADDR, HTTP_X_FORWARDED_FOR), see
 * clientkey_xff_pick(). Never fails: a REMOTE_ADDR that is no address is
 * kept as text (has_addr = 0) and logged once per process. out borrows
 * from params (opaque).
 */
void clientkey_resolve(const struct rl_config *cfg, char *const *params, struct rl_client *out);

/*
 * The hashing state a worker keeps (worker.h): the SHA-256 digest,
 * fetched once (an implicit fetch per request costs more than hashing a
 * short key), and a context. All zero until its first use.
 */
struct clientkey_hash {
    struct evp_md_st *md;
    struct evp_md_ctx_st *ctx;
};

/* Free what h holds and empty it. */
void clientkey_hash_free(struct clientkey_hash *h);

/*
 * With the hashing state h (NULL: one for this call only), the Redis key
 * of rule for this request into key[keysz] (RL_KEY_MAX is
 * enough). Returns RL_OK, RL_SKIP when the rule's header/variable is
 * missing and RATELIMIT_KEY_MISSING=skip, or RL_ERR (*err) when keysz is
 * too small or hashing fails. Identities of different kinds never share a
 * key: the hash input is "ip\0ADDR", "xff\0ENTRY", "header\0VALUE" or
 * "env\0VALUE". An Authorization or Proxy-Authorization header value is
 * normalised first (see clientkey.c); other values are hashed as they are.
 */
int clientkey_build(struct clientkey_hash *h, const struct rl_config *cfg,
                    const struct rl_rule *rule, const struct rl_client *client, char *const *params,
                    char *key, size_t keysz, struct rl_err *err);

/* One X-Forwarded-For entry, as clientkey_xff_pick() found it. */
struct rl_xff_entry {
    int is_addr;         /* 1: addr holds the entry, parsed */
    struct rl_addr addr; /* valid when is_addr */
    const char *s;       /* the entry without blanks around it, borrowed */
    size_t len;          /* bytes at s (the entry is not NUL-terminated) */
};

/*
 * Walk an X-Forwarded-For value from the right, skipping entries that are
 * addresses in trusted, and return in *out the first entry that is not:
 * the client, whether or not it parses (see clientkey.c for why). When
 * every entry is trusted, the left-most one. Returns RL_OK, or RL_ERR when
 * xff is NULL or holds nothing but blanks (no entry at all). out borrows
 * from xff. Exposed for unit tests.
 */
int clientkey_xff_pick(const char *xff, const struct rl_cidr_list *trusted,
                       struct rl_xff_entry *out);

#endif
