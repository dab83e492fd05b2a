/*
 * fuzz_xff.c - libFuzzer target for the client address code: the
 * X-Forwarded-For walk (src/clientkey.c) and the CIDR parser (src/cidr.c).
 *
 * The input's first line is RATELIMIT_TRUSTED_PROXIES, parsed with
 * cidr_list_parse(); the rest is an X-Forwarded-For value for
 * clientkey_xff_pick() and clientkey_resolve(), and each of its comma- or
 * space-separated pieces also goes through cidr_parse(). Every address
 * that parses must print with cidr_format() and parse back to itself, and
 * masking must keep it inside its own prefix. A picked entry must lie in
 * the value, without blanks at its ends; an opaque client must show only a
 * short, sanitised text and match no CIDR list. The same value is also an
 * Authorization header, whose key must not change when its scheme is
 * spelt in upper case with more blanks around.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cidr.h"
#include "clientkey.h"
#include "rlconfig.h"
#include "log.h"
#include "rl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int drop_log(void *ctx, const char *line, int len)
{
    (void)ctx;
    (void)line;
    (void)len;
    return 0;
}

/* An address from the parser must print and parse back to itself. */
static void check_roundtrip(const struct rl_addr *a)
{
    char text[64];
    struct rl_addr back;

    if (a->family != AF_INET && a->family != AF_INET6)
        abort();
    if (cidr_format(a, text, sizeof(text)) != RL_OK)
        abort();
    if (cidr_parse_addr(text, strlen(text), &back) != RL_OK)
        abort();
    if (back.family != a->family || memcmp(back.a, a->a, a->family == AF_INET ? 4 : 16) != 0)
        abort();
}

/* One CIDR entry: parse, round-trip, and its own list must match it. */
static void fuzz_cidr(const char *s, size_t len)
{
    struct rl_cidr c;
    struct rl_cidr_list one;
    struct rl_addr masked;

    if (cidr_parse(s, len, &c) != RL_OK)
        return;
    if (c.prefix < 0 || c.prefix > (c.addr.family == AF_INET ? 32 : 128))
        abort();
    check_roundtrip(&c.addr);
    one.n = 1;
    one.v = &c;
    if (!cidr_list_match(&one, &c.addr))
        abort();
    masked = c.addr;
    cidr_mask(&masked, c.prefix);
    if (memcmp(&masked, &c.addr, sizeof(masked)) != 0)
        abort(); /* host bits are already clear */
}

/* The picked entry lies inside xff and has no blanks at its ends. */
static void check_entry(const char *xff, const struct rl_xff_entry *e)
{
    size_t n = strlen(xff);

    if (e->s < xff || e->s > xff + n || e->len > (size_t)(xff + n - e->s))
        abort();
    if (e->len > 0 &&
        (e->s[0] == ' ' || e->s[0] == '\t' || e->s[e->len - 1] == ' ' || e->s[e->len - 1] == '\t'))
        abort();
    if (memchr(e->s, ',', e->len) != NULL)
        abort();
    if (e->is_addr)
        check_roundtrip(&e->addr);
}

/* An opaque client: "xff:" and at most 32 shown bytes (+ "..."), nothing
 * a log line could be bent with, and no list ever matches it. */
static void check_opaque(const struct rl_client *c)
{
    static const char shown[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789._-:[]/?";
    struct rl_cidr any;
    struct rl_cidr_list all = {1, &any};
    size_t n = strlen(c->text);

    if (c->has_addr || strncmp(c->text, "xff:", 4) != 0 || n > 4 + 32 + 3)
        abort();
    if (strspn(c->text + 4, shown) < n - 4 - (n > 4 + 32 ? 3 : 0))
        abort();
    if (cidr_parse("0.0.0.0/0", 9, &any) != RL_OK || cidr_list_match(&all, &c->addr))
        abort();
}

/* The Authorization key of v equals that of v with the scheme in upper
 * case and blanks around: one client however the scheme is spelt. */
static void fuzz_auth(const struct rl_config *cfg, const struct rl_client *client, const char *v)
{
    static const char name[] = "HTTP_AUTHORIZATION=";
    struct rl_rule rule;
    size_t n = strlen(v), i, lead, end;
    char *a = malloc(sizeof(name) + n), *b = malloc(sizeof(name) + n + 3);
    char *pa[] = {a, NULL}, *pb[] = {b, NULL}, ka[RL_KEY_MAX], kb[RL_KEY_MAX];
    int ra, rb, cred;

    if (a == NULL || b == NULL)
        goto out;
    memset(&rule, 0, sizeof(rule));
    memcpy(rule.name, "f", 2);
    rule.key_kind = RL_KEY_HEADER;
    memcpy(rule.key_param, "HTTP_AUTHORIZATION", sizeof("HTTP_AUTHORIZATION"));
    memcpy(a, name, sizeof(name) - 1);
    memcpy(a + sizeof(name) - 1, v, n + 1);
    memcpy(b, name, sizeof(name) - 1);
    b[sizeof(name) - 1] = '\t';
    lead = strspn(v, " \t");
    end = lead + strcspn(v + lead, " \t"); /* the scheme is v[lead..end) */
    cred = v[end + strspn(v + end, " \t")] != '\0';
    memcpy(b + sizeof(name), v, end);
    for (i = lead; cred && i < end; i++) /* a bare token keeps its case */
        b[sizeof(name) + i] = v[i] >= 'a' && v[i] <= 'z' ? (char)(v[i] - 'a' + 'A') : v[i];
    b[sizeof(name) + end] = ' '; /* one more blank after the scheme */
    memcpy(b + sizeof(name) + end + 1, v + end, n - end);
    b[sizeof(name) + n + 1] = ' ';
    b[sizeof(name) + n + 2] = '\0';
    ra = clientkey_build(NULL, cfg, &rule, client, pa, ka, sizeof(ka), NULL);
    rb = clientkey_build(NULL, cfg, &rule, client, pb, kb, sizeof(kb), NULL);
    if (ra != RL_OK || rb != RL_OK || strcmp(ka, kb) != 0)
        abort();
out:
    free(a);
    free(b);
}

/* clientkey_resolve() with REMOTE_ADDR trusted or not, and the XFF value. */
static void fuzz_resolve(const struct rl_cidr_list *trusted, const char *xff, int v6prefix)
{
    struct rl_config *cfg = calloc(1, sizeof(*cfg));
    struct rl_client client;
    char *params[3];
    const char *remote = trusted->n > 0 ? "REMOTE_ADDR=10.0.0.1" : "REMOTE_ADDR=192.0.2.7";
    size_t xlen = strlen(xff);
    char *xv = malloc(xlen + sizeof("HTTP_X_FORWARDED_FOR="));

    if (cfg == NULL || xv == NULL)
        goto out;
    cfg->trusted_proxies = *trusted; /* borrowed: not freed here */
    cfg->ipv6_prefix = v6prefix;
    memcpy(xv, "HTTP_X_FORWARDED_FOR=", sizeof("HTTP_X_FORWARDED_FOR=") - 1);
    memcpy(xv + sizeof("HTTP_X_FORWARDED_FOR=") - 1, xff, xlen + 1);
    params[0] = (char *)remote;
    params[1] = xv;
    params[2] = NULL;
    clientkey_resolve(cfg, params, &client);
    if (memchr(client.text, '\0', sizeof(client.text)) == NULL)
        abort();
    if (client.has_addr)
        check_roundtrip(&client.addr);
    if (client.opaque != NULL)
        check_opaque(&client);
    else if (!client.has_addr)
        abort(); /* REMOTE_ADDR is an address here */
    fuzz_auth(cfg, &client, xff);
out:
    free(xv);
    free(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1), *xff, *nl;
    struct rl_cidr_list trusted = {0, NULL};
    struct rl_err err;
    struct rl_xff_entry picked;
    size_t i, start;

    if (buf == NULL)
        return 0;
    log_set_sink(drop_log, NULL);
    memcpy(buf, data, size);
    buf[size] = '\0';
    nl = strchr(buf, '\n');
    if (nl != NULL) {
        *nl = '\0';
        xff = nl + 1;
    } else {
        xff = buf + strlen(buf);
    }
    if (cidr_list_parse(buf, &trusted, &err) != RL_OK && trusted.n != 0)
        abort(); /* an error leaves the list empty */
    for (i = 0; i < trusted.n; i++)
        check_roundtrip(&trusted.v[i].addr);

    if (clientkey_xff_pick(xff, &trusted, &picked) == RL_OK)
        check_entry(xff, &picked);
    else if (xff[strspn(xff, " \t")] != '\0')
        abort(); /* a value with any entry always names a client */
    fuzz_resolve(&trusted, xff, size > 0 ? 1 + data[0] % 128 : 64);

    start = 0;
    for (i = 0;; i++) {
        char c = xff[i];

        if (c == '\0' || c == ',' || c == ' ') {
            fuzz_cidr(xff + start, i - start);
            start = i + 1;
        }
        if (c == '\0')
            break;
    }
    cidr_list_free(&trusted);
    cidr_list_free(NULL);
    free(buf);
    return 0;
}
