/*
 * clientkey.c - the client address and the per-rule Redis key (clientkey.h).
 *
 * X-Forwarded-For is believed only when the peer (REMOTE_ADDR) is a trusted
 * proxy, and then walked from the right: every proxy appends the address it
 * saw, so the right-most entry that is not one of ours is the peer our
 * outermost proxy really talked to. Everything to its left is whatever the
 * client chose to send, and is ignored.
 *
 * Keys are PREFIX NAME ":" sha256(KIND "\0" VALUE) in hex: the identity is
 * hashed incrementally (no copy, no heap of ours whatever its size), and the
 * KIND tag keeps an "ip" identity from ever meeting a header value.
 */
#include "clientkey.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/evp.h>

#include "log.h"
#include "util.h"

#define XFF_WS(c) ((c) == ' ' || (c) == '\t')

/* Copy s into out[outsz], truncated, always NUL-terminated. */
static void copy_trunc(char *out, size_t outsz, const char *s)
{
    size_t n = strlen(s);

    if (n >= outsz)
        n = outsz - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

/* 1 when s[0..len) is a port number, 0..65535 in decimal. */
static int is_port(const char *s, size_t len)
{
    long long port;

    return len > 0 && s[0] != '-' && parse_ll(s, len, 0, 65535, &port) == RL_OK;
}

/*
 * One X-Forwarded-For entry, already trimmed: "ADDR", "[V6]", and the forms
 * some proxies write with the port they saw: "1.2.3.4:5678", "[V6]:5678".
 * A bare IPv6 address has several colons and is tried whole first.
 */
static int xff_parse_entry(const char *s, size_t len, struct rl_addr *out)
{
    const char *colon;

    if (len == 0)
        return RL_ERR;
    if (cidr_parse_addr(s, len, out) == RL_OK)
        return RL_OK;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        size_t in;

        if (close == NULL)
            return RL_ERR;
        in = (size_t)(close - s) + 1; /* "[V6]" */
        if (in >= len || s[in] != ':' || !is_port(s + in + 1, len - in - 1))
            return RL_ERR;
        return cidr_parse_addr(s, in, out);
    }
    colon = memchr(s, ':', len);
    if (colon == NULL || memchr(colon + 1, ':', len - (size_t)(colon - s) - 1) != NULL)
        return RL_ERR;
    if (!is_port(colon + 1, len - (size_t)(colon - s) - 1))
        return RL_ERR;
    /* Only IPv4 may carry a bare ":port" (a v6 one would be ambiguous). */
    if (cidr_parse_addr(s, (size_t)(colon - s), out) != RL_OK || out->family != AF_INET)
        return RL_ERR;
    return RL_OK;
}

static int is_trusted(const struct rl_cidr_list *trusted, const struct rl_addr *a)
{
    return trusted != NULL && trusted->n > 0 && cidr_list_match(trusted, a);
}

int clientkey_xff_pick(const char *xff, const struct rl_cidr_list *trusted, struct rl_addr *out)
{
    struct rl_addr a, leftmost = {0};
    int found = 0;
    size_t end;

    if (xff == NULL)
        return RL_ERR;
    end = strlen(xff);
    /* Walk the comma-separated entries from the right. */
    for (;;) {
        size_t start = end, b, e = end;

        while (start > 0 && xff[start - 1] != ',')
            start--;
        b = start;
        while (b < e && XFF_WS(xff[b]))
            b++;
        while (e > b && XFF_WS(xff[e - 1]))
            e--;
        /* Garbage and empty entries are skipped, never fatal. */
        if (xff_parse_entry(xff + b, e - b, &a) == RL_OK) {
            if (!is_trusted(trusted, &a)) {
                *out = a;
                return RL_OK;
            }
            leftmost = a;
            found = 1;
        }
        if (start == 0)
            break;
        end = start - 1; /* skip the comma */
    }
    if (!found)
        return RL_ERR;
    *out = leftmost; /* a chain of our own proxies only */
    return RL_OK;
}

/* "ADDR" for IPv4, "NET/PREFIX" for IPv6 grouped by prefix (just the
 * address for /128). Values outside 1..128 (an unset config) mean 64,
 * SPEC's default. */
static void client_format(const struct rl_config *cfg, struct rl_client *c)
{
    struct rl_addr net = c->addr;
    int prefix = cfg->ipv6_prefix;
    size_t n;

    if (prefix < 1 || prefix > 128)
        prefix = 64;
    if (net.family == AF_INET6 && prefix < 128)
        cidr_mask(&net, prefix);
    if (cidr_format(&net, c->text, sizeof(c->text)) != RL_OK) {
        c->text[0] = '\0';
        return;
    }
    if (net.family != AF_INET6 || prefix == 128)
        return;
    n = strlen(c->text);
    (void)snprintf(c->text + n, sizeof(c->text) - n, "/%d", prefix);
}

/* A REMOTE_ADDR that is no address (a unix socket path, a server bug):
 * still counted, by its text, and said once so the admin can fix it. */
static void client_as_text(struct rl_client *c, const char *ra)
{
    static int warned;

    c->has_addr = 0;
    copy_trunc(c->text, sizeof(c->text), ra);
    if (!warned) {
        warned = 1;
        rl_log(RL_LOG_WARN, "REMOTE_ADDR '%s' is not an IP address; counting it as text", c->text);
    }
}

void clientkey_resolve(const struct rl_config *cfg, char *const *params, struct rl_client *out)
{
    const char *ra = env_get(params, "REMOTE_ADDR");
    struct rl_addr a;

    memset(out, 0, sizeof(*out));
    if (ra == NULL || ra[0] == '\0')
        return; /* text "": every such request shares one count */
    if (cidr_parse_addr(ra, strlen(ra), &a) != RL_OK) {
        client_as_text(out, ra);
        return;
    }
    /* XFF from anyone but our own proxies is the client's own claim. */
    if (is_trusted(&cfg->trusted_proxies, &a)) {
        const char *xff = env_get(params, "HTTP_X_FORWARDED_FOR");
        struct rl_addr picked;

        if (xff != NULL && clientkey_xff_pick(xff, &cfg->trusted_proxies, &picked) == RL_OK)
            a = picked;
    }
    out->has_addr = 1;
    out->addr = a;
    client_format(cfg, out);
}

/*
 * SHA-256 of tag (with its NUL) then value, as hex into hex[65]. The digest
 * (fetched once: an implicit fetch per request costs more than hashing a
 * short key) and the context are kept for the life of the worker, which
 * serves one request at a time; they are deliberately never freed.
 */
static int hash_identity(const char *tag, const char *value, char hex[RL_SHA256_HEX_LEN + 1])
{
    static EVP_MD *md;
    static EVP_MD_CTX *ctx;
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;

    if (md == NULL && (md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
        return RL_ERR;
    if (ctx == NULL && (ctx = EVP_MD_CTX_new()) == NULL)
        return RL_ERR;
    if (EVP_DigestInit_ex(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, tag, strlen(tag) + 1) != 1 ||
        EVP_DigestUpdate(ctx, value, strlen(value)) != 1 ||
        EVP_DigestFinal_ex(ctx, d, &dlen) != 1 || dlen != 32)
        return RL_ERR;
    hex_encode(d, dlen, hex);
    return RL_OK;
}

/* The identity of rule: tag and value (borrowed), or RL_SKIP. */
static int rule_identity(const struct rl_config *cfg, const struct rl_rule *rule,
                         const struct rl_client *client, char *const *params, const char **tag,
                         const char **value)
{
    const char *v;

    *tag = "ip";
    *value = client->text;
    if (rule->key_kind != RL_KEY_HEADER && rule->key_kind != RL_KEY_ENV)
        return RL_OK;
    v = env_get(params, rule->key_param);
    /* An empty header is no identity: it would put every client that
     * sends "X-Api-Key:" into one shared count. */
    if (v == NULL || v[0] == '\0')
        return cfg->key_missing == RL_MISSING_SKIP ? RL_SKIP : RL_OK;
    *tag = rule->key_kind == RL_KEY_HEADER ? "header" : "env";
    *value = v;
    return RL_OK;
}

int clientkey_build(const struct rl_config *cfg, const struct rl_rule *rule,
                    const struct rl_client *client, char *const *params, char *key, size_t keysz,
                    struct rl_err *err)
{
    const char *tag, *value;
    char hex[RL_SHA256_HEX_LEN + 1];
    size_t np, nn;
    int r;

    r = rule_identity(cfg, rule, client, params, &tag, &value);
    if (r != RL_OK)
        return r;
    np = strlen(cfg->prefix);
    nn = strlen(rule->name);
    if (key == NULL || keysz < np + nn + 1 + RL_SHA256_HEX_LEN + 1) {
        rl_err_set(err, RL_E_CONFIG, "key for rule '%s' does not fit in %zu bytes", rule->name,
                   keysz);
        return RL_ERR;
    }
    if (hash_identity(tag, value, hex) != RL_OK) {
        rl_err_set(err, RL_E_IO, "SHA-256 failed for rule '%s'", rule->name);
        return RL_ERR;
    }
    memcpy(key, cfg->prefix, np);
    memcpy(key + np, rule->name, nn);
    key[np + nn] = ':';
    memcpy(key + np + nn + 1, hex, RL_SHA256_HEX_LEN + 1);
    return RL_OK;
}
