/*
 * clientkey.c - the client address and the per-rule Redis key (clientkey.h).
 *
 * X-Forwarded-For is believed only when the peer (REMOTE_ADDR) is a trusted
 * proxy, and then walked from the right: every proxy appends the address it
 * saw, so the right-most entry that is not one of ours is the peer our
 * outermost proxy really talked to. Everything to its left is whatever the
 * client chose to send, and is ignored - even when that right-most entry is
 * no address ("unknown", "_hidden"): stepping over it would hand the count
 * (and RATELIMIT_ALLOW) to an entry the client wrote itself.
 *
 * Keys are PREFIX NAME ":{" sha256(KIND "\0" VALUE) in hex "}" (a Redis
 * Cluster hash tag): the identity is hashed incrementally (no copy, no heap
 * of ours whatever its size), and the KIND tag keeps an "ip" identity from
 * ever meeting a header value.
 */
#include "clientkey.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/evp.h>

#include "log.h"
#include "util.h"

/* SP / HTAB: the blanks of HTTP (RFC 9110 5.6.3 OWS, 11.4 between an
 * Authorization scheme and its credentials). */
#define IS_BLANK(c) ((c) == ' ' || (c) == '\t')

/* Narrow s[0..*len) to leave out the blanks at both ends. */
static void trim_blanks(const char **s, size_t *len)
{
    while (*len > 0 && IS_BLANK((*s)[0])) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && IS_BLANK((*s)[*len - 1]))
        (*len)--;
}

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

/* 1 when xff has no entry at all: empty, or nothing but blanks. */
static int xff_blank(const char *xff)
{
    return xff[strspn(xff, " \t")] == '\0';
}

/* The entry s[0..len) without its blanks, parsed when it is an address. */
static void xff_entry(const char *s, size_t len, struct rl_xff_entry *out)
{
    trim_blanks(&s, &len);
    out->s = s;
    out->len = len;
    out->is_addr = xff_parse_entry(s, len, &out->addr) == RL_OK;
}

/*
 * The first entry from the right that is not a trusted address is the
 * client, parsed or not: an unparseable one is an opaque identity. An
 * empty one ("a, , b" with b trusted) too, as the empty identity: falling
 * back to REMOTE_ADDR would count the client as our proxy (perhaps in
 * RATELIMIT_ALLOW), and moving on to the left would let it pick the entry
 * it sent itself; an empty entry is shared, but no one else's identity.
 */
int clientkey_xff_pick(const char *xff, const struct rl_cidr_list *trusted,
                       struct rl_xff_entry *out)
{
    size_t end;

    if (xff == NULL || xff_blank(xff))
        return RL_ERR;
    end = strlen(xff);
    for (;;) {
        size_t start = end;

        while (start > 0 && xff[start - 1] != ',')
            start--;
        xff_entry(xff + start, end - start, out);
        if (!out->is_addr || !is_trusted(trusted, &out->addr))
            return RL_OK;
        if (start == 0)
            return RL_OK; /* a chain of our own proxies only: the left-most */
        end = start - 1;  /* skip the comma */
    }
}

/* "ADDR" for IPv4, "NET/PREFIX" for IPv6 grouped by prefix (just the
 * address for /128). Values outside 1..128 (an unset config) mean 64,
 * RATELIMIT_IPV6_PREFIX's default. */
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

/* Bytes of an opaque identity shown in logs: enough to recognise
 * "unknown" or "_hidden", too few to carry a log line of someone's. */
#define OPAQUE_SHOWN 32

/* 1 for the bytes an opaque identity may show in a log line as they are. */
static int shown_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("._-:[]/", ch) != NULL);
}

/* The client is the X-Forwarded-For entry s[0..len), no address: counted
 * by its hash, shown in logs as "xff:" and a short, sanitised prefix. */
static void client_opaque(struct rl_client *c, const char *s, size_t len)
{
    size_t n = 4, i;

    c->has_addr = 0;
    c->opaque = s;
    c->opaque_len = len;
    memcpy(c->text, "xff:", 4);
    for (i = 0; i < len && i < OPAQUE_SHOWN; i++) {
        unsigned char ch = (unsigned char)s[i];

        c->text[n++] = shown_char(ch) ? (char)ch : '?';
    }
    if (i < len) {
        memcpy(c->text + n, "...", 3);
        n += 3;
    }
    c->text[n] = '\0';
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
        struct rl_xff_entry e;

        if (clientkey_xff_pick(xff, &cfg->trusted_proxies, &e) == RL_OK) {
            if (!e.is_addr) {
                client_opaque(out, e.s, e.len);
                return;
            }
            a = e.addr;
        }
    }
    out->has_addr = 1;
    out->addr = a;
    client_format(cfg, out);
}

/* What a rule hashes: tag, then value[0..len), normalised when auth. */
struct identity {
    const char *tag;
    const char *value; /* borrowed */
    size_t len;
    int auth; /* an Authorization header: normalise the scheme */
};

void clientkey_hash_free(struct clientkey_hash *h)
{
    EVP_MD_CTX_free(h->ctx);
    EVP_MD_free(h->md);
    h->ctx = NULL;
    h->md = NULL;
}

/* h's context, initialised for a new digest, or NULL. */
static EVP_MD_CTX *hash_begin(struct clientkey_hash *h)
{
    if (h->md == NULL && (h->md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
        return NULL;
    if (h->ctx == NULL && (h->ctx = EVP_MD_CTX_new()) == NULL)
        return NULL;
    return EVP_DigestInit_ex(h->ctx, h->md, NULL) == 1 ? h->ctx : NULL;
}

static int hash_update(EVP_MD_CTX *ctx, const void *p, size_t n)
{
    return EVP_DigestUpdate(ctx, p, n) == 1 ? RL_OK : RL_ERR;
}

/* s[0..n) in ASCII lower case, a stack chunk at a time. */
static int hash_lower(EVP_MD_CTX *ctx, const char *s, size_t n)
{
    char chunk[64] = {0}; /* (cppcheck 2.17 cannot see the loop fill it) */

    while (n > 0) {
        size_t k = n < sizeof(chunk) ? n : sizeof(chunk);

        for (size_t i = 0; i < k; i++)
            chunk[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
        if (hash_update(ctx, chunk, k) != RL_OK)
            return RL_ERR;
        s += k;
        n -= k;
    }
    return RL_OK;
}

/*
 * An Authorization value v[0..n), already trimmed, as "scheme SP
 * credentials" with the scheme in lower case and the blanks between them
 * (SP / HTAB, RFC 9110 11.4: 1*SP, tolerated as any run) one space: the
 * scheme is case-insensitive (RFC 9110 11.1), the credentials are not and
 * stay byte-exact. A value without blanks is hashed as it is: it may be a
 * bare token, whose case matters.
 */
static int hash_auth(EVP_MD_CTX *ctx, const char *v, size_t n)
{
    size_t scheme = 0, cred;

    while (scheme < n && !IS_BLANK(v[scheme]))
        scheme++;
    if (scheme == n)
        return hash_update(ctx, v, n);
    for (cred = scheme; cred < n && IS_BLANK(v[cred]); cred++)
        ;
    if (hash_lower(ctx, v, scheme) != RL_OK || hash_update(ctx, " ", 1) != RL_OK)
        return RL_ERR;
    return hash_update(ctx, v + cred, n - cred);
}

/* SHA-256 of id's tag (with its NUL) then value, as hex into hex[65]. */
static int hash_identity(struct clientkey_hash *h, const struct identity *id,
                         char hex[RL_SHA256_HEX_LEN + 1])
{
    EVP_MD_CTX *ctx = hash_begin(h);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    int r;

    if (ctx == NULL || hash_update(ctx, id->tag, strlen(id->tag) + 1) != RL_OK)
        return RL_ERR;
    r = id->auth ? hash_auth(ctx, id->value, id->len) : hash_update(ctx, id->value, id->len);
    if (r != RL_OK || EVP_DigestFinal_ex(ctx, d, &dlen) != 1 || dlen != 32)
        return RL_ERR;
    hex_encode(d, dlen, hex);
    return RL_OK;
}

/* 1 for the params of the headers whose value is "scheme credentials". */
static int is_auth_header(const struct rl_rule *rule)
{
    return rule->key_kind == RL_KEY_HEADER &&
           (strcmp(rule->key_param, "HTTP_AUTHORIZATION") == 0 ||
            strcmp(rule->key_param, "HTTP_PROXY_AUTHORIZATION") == 0);
}

/* The client's own identity: its opaque XFF entry, or its address text. */
static void client_identity(const struct rl_client *client, struct identity *id)
{
    id->auth = 0;
    if (client->opaque != NULL) {
        id->tag = "xff";
        id->value = client->opaque;
        id->len = client->opaque_len;
        return;
    }
    id->tag = "ip";
    id->value = client->text;
    id->len = strlen(client->text);
}

/* The identity of rule into *id (borrowed), or RL_SKIP. */
static int rule_identity(const struct rl_config *cfg, const struct rl_rule *rule,
                         const struct rl_client *client, char *const *params, struct identity *id)
{
    const char *v;
    size_t n;

    client_identity(client, id);
    if (rule->key_kind != RL_KEY_HEADER && rule->key_kind != RL_KEY_ENV)
        return RL_OK;
    v = env_get(params, rule->key_param);
    n = v != NULL ? strlen(v) : 0;
    if (is_auth_header(rule))
        trim_blanks(&v, &n); /* OWS around a field value is no part of it */
    /* An empty header is no identity: it would put every client that
     * sends "X-Api-Key:" into one shared count. */
    if (n == 0)
        return cfg->key_missing == RL_MISSING_SKIP ? RL_SKIP : RL_OK;
    id->tag = rule->key_kind == RL_KEY_HEADER ? "header" : "env";
    id->value = v;
    id->len = n;
    id->auth = is_auth_header(rule);
    return RL_OK;
}

int clientkey_build(struct clientkey_hash *h, const struct rl_config *cfg,
                    const struct rl_rule *rule, const struct rl_client *client, char *const *params,
                    char *key, size_t keysz, struct rl_err *err)
{
    struct clientkey_hash once = {NULL, NULL};
    struct identity id;
    char hex[RL_SHA256_HEX_LEN + 1];
    size_t np, nn;
    int r;

    r = rule_identity(cfg, rule, client, params, &id);
    if (r != RL_OK)
        return r;
    np = strlen(cfg->prefix);
    nn = strlen(rule->name);
    if (key == NULL || keysz < np + nn + 2 + RL_SHA256_HEX_LEN + 2) {
        rl_err_set(err, RL_E_CONFIG, "key for rule '%s' does not fit in %zu bytes", rule->name,
                   keysz);
        return RL_ERR;
    }
    r = hash_identity(h != NULL ? h : &once, &id, hex);
    clientkey_hash_free(&once);
    if (r != RL_OK) {
        rl_err_set(err, RL_E_IO, "SHA-256 failed for rule '%s'", rule->name);
        return RL_ERR;
    }
    /* PREFIX NAME ":{" H "}": the hash is a Redis Cluster hash tag, so that
     * every key of one identity lives in one slot (in every mode: one key
     * format wherever the data goes). */
    memcpy(key, cfg->prefix, np);
    memcpy(key + np, rule->name, nn);
    memcpy(key + np + nn, ":{", 2);
    memcpy(key + np + nn + 2, hex, RL_SHA256_HEX_LEN);
    memcpy(key + np + nn + 2 + RL_SHA256_HEX_LEN, "}", 2);
    return RL_OK;
}
