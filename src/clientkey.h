/*
 * clientkey.h - who the client is, and the Redis key it is counted under.
 *
 * The address is REMOTE_ADDR, or, only when REMOTE_ADDR is in
 * RATELIMIT_TRUSTED_PROXIES, the right-most X-Forwarded-For entry that is
 * not itself trusted. IPv4-mapped IPv6 counts as IPv4; IPv6 is grouped by
 * RATELIMIT_IPV6_PREFIX. A rule's identity (address, header or variable)
 * is hashed with SHA-256 into PREFIX NAME ":" hex, so that a credential
 * used as a key never reaches Redis. Nothing here does I/O.
 */
#ifndef RL_CLIENTKEY_H
#define RL_CLIENTKEY_H

#include <stddef.h>

#include "cidr.h"
#include "rlconfig.h"
#include "rl.h"

#define RL_SKIP 1 /* clientkey_build(): the rule does not apply */

struct rl_client {
    int has_addr;        /* 1 when text is a parsed address */
    struct rl_addr addr; /* the client address, mapped IPv4 unmapped, not masked */
    /* Identity text used for ip keys and logs: the address, IPv6 masked to
     * the prefix as "2001:db8::/64"; or REMOTE_ADDR verbatim (truncated)
     * when it is not an address; "" when there is none. */
    char text[64];
};

/*
 * Decide the client address from params (REMOTE_ADDR, HTTP_X_FORWARDED_FOR).
 * Never fails: malformed XFF entries are skipped; a REMOTE_ADDR that is no
 * address is kept as text (has_addr = 0) and logged once per process.
 */
void clientkey_resolve(const struct rl_config *cfg, char *const *params, struct rl_client *out);

/*
 * The Redis key of rule for this request into key[keysz] (RL_KEY_MAX is
 * enough). Returns RL_OK, RL_SKIP when the rule's header/variable is
 * missing and RATELIMIT_KEY_MISSING=skip, or RL_ERR (*err) when keysz is
 * too small or hashing fails. Identities of different kinds never share a
 * key: the hash input is "ip\0ADDR", "header\0VALUE" or "env\0VALUE".
 */
int clientkey_build(const struct rl_config *cfg, const struct rl_rule *rule,
                    const struct rl_client *client, char *const *params, char *key, size_t keysz,
                    struct rl_err *err);

/*
 * Walk an X-Forwarded-For value from the right and return in *out the
 * first address that is not in trusted; when every entry is trusted, the
 * left-most valid one. Returns RL_OK, or RL_ERR when no entry parses.
 * Exposed for unit tests.
 */
int clientkey_xff_pick(const char *xff, const struct rl_cidr_list *trusted, struct rl_addr *out);

#endif
