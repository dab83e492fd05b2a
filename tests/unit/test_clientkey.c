/*
 * test_clientkey.c - who the client is and which key it is counted under:
 * the X-Forwarded-For walk (trusted peers only, right to left, the first
 * untrusted entry is the client even when it is no address), IPv4-mapped
 * addresses, IPv6 prefix grouping, hashed header/variable identities whose
 * raw value never reaches the key, and Authorization scheme normalisation.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cidr.h"
#include "clientkey.h"
#include "rlconfig.h"
#include "log.h"
#include "rl.h"
#include "testhelp.h"
#include "util.h"

static struct rl_config cfg;

static void cfg_init(void)
{
    struct rl_err err;

    memset(&cfg, 0, sizeof(cfg));
    memcpy(cfg.prefix, "ratelimit:", 11);
    cfg.ipv6_prefix = 64;
    cfg.key_missing = RL_MISSING_IP;
    if (cidr_list_parse("10.0.0.0/8, 2001:db8:ffff::/48", &cfg.trusted_proxies, &err) != RL_OK)
        printf("# cidr_list_parse: %s\n", err.msg);
}

static void rule_init(struct rl_rule *r, const char *name, int kind, const char *param)
{
    memset(r, 0, sizeof(*r));
    memcpy(r->name, name, strlen(name) + 1);
    r->key_kind = kind;
    memcpy(r->key_param, param, strlen(param) + 1);
    r->limit = 10;
    r->window_ms = 60000;
}

/* Text of clientkey_xff_pick(xff): the address, "opaque:ENTRY" for an
 * entry that is no address, or "ERR". */
static const char *pick(const char *xff, const struct rl_cidr_list *trusted)
{
    static char text[200];
    struct rl_xff_entry e;

    if (clientkey_xff_pick(xff, trusted, &e) != RL_OK)
        return "ERR";
    if (!e.is_addr) {
        if (e.len > sizeof(text) - 8)
            return "opaque too long";
        memcpy(text, "opaque:", 7);
        memcpy(text + 7, e.s, e.len);
        text[7 + e.len] = '\0';
        return text;
    }
    if (cidr_format(&e.addr, text, sizeof(text)) != RL_OK)
        return "ERR";
    return text;
}

static int pick_is(const char *xff, const char *want)
{
    return strcmp(pick(xff, &cfg.trusted_proxies), want) == 0;
}

static void test_xff_pick(void)
{
    char *big;
    size_t i, n = 100000;
    struct rl_xff_entry e;

    test_cond("xff client before one proxy", pick_is("1.2.3.4, 10.0.0.2", "1.2.3.4"));
    test_cond("xff client before our proxy", pick_is("1.2.3.4, 10.0.0.1", "1.2.3.4"));
    test_cond("xff spoofed left-most ignored", pick_is("6.6.6.6, 1.2.3.4, 10.0.0.2", "1.2.3.4"));
    test_cond("xff right-most untrusted wins", pick_is("1.2.3.4, 5.6.7.8", "5.6.7.8"));
    test_cond("xff all trusted: left-most", pick_is("10.0.0.1, 10.9.9.9, 10.0.0.2", "10.0.0.1"));
    test_cond("xff v6 proxy", pick_is("2001:db8:1::7, 2001:db8:ffff::1", "2001:db8:1::7"));
    test_cond("xff mapped v4", pick_is("::ffff:192.0.2.9, 10.1.1.1", "192.0.2.9"));
    test_cond("xff ip:port", pick_is("10.0.0.1, 1.2.3.4:5678", "1.2.3.4"));
    test_cond("xff [v6]:port", pick_is("[2001:db8::1]:443,10.0.0.1", "2001:db8::1"));
    test_cond("xff [v6]", pick_is("[2001:db8::2]", "2001:db8::2"));
    test_cond("xff tabs and spaces", pick_is("\t 1.2.3.4 \t,  10.0.0.1  ", "1.2.3.4"));
    test_cond("xff empty", pick_is("", "ERR"));
    test_cond("xff blanks only", pick_is(" \t ", "ERR"));
    test_cond("xff NULL", strcmp(pick(NULL, &cfg.trusted_proxies), "ERR") == 0);
    test_cond("xff no trusted list: right-most",
              strcmp(pick("1.1.1.1, 10.0.0.1", NULL), "10.0.0.1") == 0);

    /* The right-most untrusted entry is the client even when it is no
     * address: what lies to its left is the client's own choice. */
    test_cond("xff unknown is the client", pick_is("1.2.3.4, unknown", "opaque:unknown"));
    test_cond("xff unknown behind our proxy",
              pick_is("1.2.3.4, unknown, 10.0.0.1", "opaque:unknown"));
    test_cond("xff obfuscated id", pick_is("1.2.3.4,_hidden ,10.0.0.9", "opaque:_hidden"));
    test_cond("xff garbage right of an address",
              pick_is("1.2.3.4, bogus, , 999.1.1.1, 10.0.0.3", "opaque:999.1.1.1"));
    test_cond("xff bad port", pick_is("1.1.1.1, 2.2.2.2:99999999, 3.3.3.3:x", "opaque:3.3.3.3:x"));
    test_cond("xff [v6] junk after",
              pick_is("1.1.1.1, [2001:db8::1]x, [2001:db8::1]:", "opaque:[2001:db8::1]:"));
    test_cond("xff zone is no address", pick_is("fe80::1%eth0", "opaque:fe80::1%eth0"));
    test_cond("xff garbage left of the client ignored", pick_is("junk, 1.2.3.4", "1.2.3.4"));
    /* An empty entry is the (shared) empty identity: neither the proxy
     * (REMOTE_ADDR) nor the client-written entry to its left. */
    test_cond("xff empty entry is the client", pick_is("1.2.3.4, , 10.0.0.1", "opaque:"));
    test_cond("xff trailing comma", pick_is("1.2.3.4,", "opaque:"));
    test_cond("xff commas only", pick_is(",,, ,", "opaque:"));
    test_cond("xff entry points into the value",
              clientkey_xff_pick("a, unknown ,10.0.0.1", &cfg.trusted_proxies, &e) == RL_OK &&
                  !e.is_addr && e.len == 7 && memcmp(e.s, "unknown", 7) == 0);

    big = malloc(n + 32);
    for (i = 0; i + 2 <= n; i += 2)
        memcpy(big + i, "a,", 2);
    big[i] = '\0';
    test_cond("xff 100 kB of garbage: the empty last entry", pick_is(big, "opaque:"));
    memcpy(big + i, "1.2.3.4", 8);
    test_cond("xff 100 kB then an address", pick_is(big, "1.2.3.4"));
    memset(big, '1', n);
    big[n] = '\0';
    test_cond("xff one huge entry", clientkey_xff_pick(big, &cfg.trusted_proxies, &e) == RL_OK &&
                                        !e.is_addr && e.s == big && e.len == n);
    free(big);
}

static void resolve(char *const *params, struct rl_client *c)
{
    clientkey_resolve(&cfg, params, c);
}

static void test_resolve(void)
{
    static char ra_untrusted[] = "203.0.113.5", ra_proxy[] = "REMOTE_ADDR=10.0.0.1",
                xff[] = "HTTP_X_FORWARDED_FOR=6.6.6.6, 198.51.100.7, 10.0.0.9",
                xff_blank[] = "HTTP_X_FORWARDED_FOR= ", ra_u[] = "REMOTE_ADDR=203.0.113.5";
    char *p1[] = {ra_u, xff, NULL}, *p2[] = {ra_proxy, xff, NULL}, *p3[] = {ra_proxy, NULL},
         *p4[] = {ra_proxy, xff_blank, NULL}, *p5[] = {xff, NULL};
    struct rl_client c;

    resolve(p1, &c);
    test_cond("untrusted peer's XFF ignored",
              c.has_addr && strcmp(c.text, ra_untrusted) == 0 && c.addr.family == AF_INET);
    resolve(p2, &c);
    test_cond("trusted peer: XFF right-most untrusted",
              c.has_addr && strcmp(c.text, "198.51.100.7") == 0);
    resolve(p3, &c);
    test_cond("trusted peer without XFF", c.has_addr && strcmp(c.text, "10.0.0.1") == 0);
    resolve(p4, &c);
    test_cond("trusted peer, blank XFF", c.has_addr && strcmp(c.text, "10.0.0.1") == 0);
    resolve(p5, &c);
    test_cond("no REMOTE_ADDR", !c.has_addr && strcmp(c.text, "") == 0);
    clientkey_resolve(&cfg, NULL, &c);
    test_cond("NULL params", !c.has_addr && strcmp(c.text, "") == 0);
}

static void test_ipv6(void)
{
    static char m[] = "REMOTE_ADDR=::ffff:192.0.2.1", v4[] = "REMOTE_ADDR=192.0.2.1",
                a1[] = "REMOTE_ADDR=2001:db8:1:2::1", a2[] = "REMOTE_ADDR=2001:db8:1:2:ffff:1:2:3",
                a3[] = "REMOTE_ADDR=2001:db8:1:3::1";
    char *pm[] = {m, NULL}, *p4[] = {v4, NULL}, *p1[] = {a1, NULL}, *p2[] = {a2, NULL},
         *p3[] = {a3, NULL};
    struct rl_client c1, c2, c3;
    struct rl_rule rule;
    char k1[RL_KEY_MAX], k2[RL_KEY_MAX], k3[RL_KEY_MAX];

    rule_init(&rule, "per-ip", RL_KEY_IP, "");
    resolve(pm, &c1);
    resolve(p4, &c2);
    test_cond("mapped v4 is v4", c1.addr.family == AF_INET && strcmp(c1.text, "192.0.2.1") == 0);
    test_cond("mapped v4 key = v4 key",
              clientkey_build(NULL, &cfg, &rule, &c1, pm, k1, sizeof(k1), NULL) == RL_OK &&
                  clientkey_build(NULL, &cfg, &rule, &c2, p4, k2, sizeof(k2), NULL) == RL_OK &&
                  strcmp(k1, k2) == 0);

    resolve(p1, &c1);
    resolve(p2, &c2);
    resolve(p3, &c3);
    test_cond("v6 text is the /64", strcmp(c1.text, "2001:db8:1:2::/64") == 0);
    test_cond("v6 address itself is kept unmasked", c1.addr.a[15] == 1);
    clientkey_build(NULL, &cfg, &rule, &c1, p1, k1, sizeof(k1), NULL);
    clientkey_build(NULL, &cfg, &rule, &c2, p2, k2, sizeof(k2), NULL);
    clientkey_build(NULL, &cfg, &rule, &c3, p3, k3, sizeof(k3), NULL);
    test_cond("one /64, one key", strcmp(k1, k2) == 0);
    test_cond("other /64, other key", strcmp(k1, k3) != 0);

    cfg.ipv6_prefix = 128;
    resolve(p1, &c1);
    resolve(p2, &c2);
    test_cond("prefix 128: the address", strcmp(c1.text, "2001:db8:1:2::1") == 0 &&
                                             strcmp(c2.text, "2001:db8:1:2:ffff:1:2:3") == 0);
    cfg.ipv6_prefix = 48;
    resolve(p3, &c3);
    test_cond("prefix 48", strcmp(c3.text, "2001:db8:1::/48") == 0);
    cfg.ipv6_prefix = 64;
}

static int log_lines;

static int count_line(void *ctx, const char *line, int len)
{
    (void)ctx;
    (void)line;
    (void)len;
    log_lines++;
    return 0;
}

static void test_not_an_address(void)
{
    static char ra[] = "REMOTE_ADDR=unix:/run/sock", ra2[] = "REMOTE_ADDR=unix:/run/sock2",
                ra_long[] =
                    "REMOTE_ADDR="
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    char *p[] = {ra, NULL}, *p2[] = {ra2, NULL}, *pl[] = {ra_long, NULL};
    struct rl_client c, c2;
    struct rl_rule rule;
    char k1[RL_KEY_MAX], k2[RL_KEY_MAX];

    rule_init(&rule, "per-ip", RL_KEY_IP, "");
    log_set_sink(count_line, NULL);
    resolve(p, &c);
    resolve(p2, &c2);
    log_set_sink(NULL, NULL);
    test_cond("non-address warned once per process", log_lines == 1);
    test_cond("non-address REMOTE_ADDR kept as text",
              !c.has_addr && strcmp(c.text, "unix:/run/sock") == 0);
    test_cond("non-address texts count apart",
              clientkey_build(NULL, &cfg, &rule, &c, p, k1, sizeof(k1), NULL) == RL_OK &&
                  clientkey_build(NULL, &cfg, &rule, &c2, p2, k2, sizeof(k2), NULL) == RL_OK &&
                  strcmp(k1, k2) != 0);
    resolve(pl, &c);
    test_cond("long REMOTE_ADDR truncated", !c.has_addr && strlen(c.text) == sizeof(c.text) - 1);
}

/* prefix + name + ":{" + sha256(tag "\0" value) + "}", computed independently. */
static int key_is(const char *key, const char *name, const char *tag, const char *value)
{
    size_t nt = strlen(tag) + 1, nv = strlen(value);
    char *in = malloc(nt + nv + 1), hex[RL_SHA256_HEX_LEN + 1], want[RL_KEY_MAX];
    int ok;

    memcpy(in, tag, nt);
    memcpy(in + nt, value, nv);
    ok = sha256_hex(in, nt + nv, hex) == RL_OK &&
         (size_t)snprintf(want, sizeof(want), "ratelimit:%s:{%s}", name, hex) < sizeof(want) &&
         strcmp(key, want) == 0;
    free(in);
    return ok;
}

static void test_header_keys(void)
{
    static char ra[] = "REMOTE_ADDR=192.0.2.1", hdr[] = "HTTP_X_API_KEY=secret-token\r\nX: y",
                hdr_ip[] = "HTTP_X_API_KEY=192.0.2.1",
                hdr_empty[] = "HTTP_X_API_KEY=", user[] = "REMOTE_USER=192.0.2.1";
    char *p[] = {ra, hdr, NULL}, *pip[] = {ra, hdr_ip, user, NULL}, *pnone[] = {ra, NULL},
         *pempty[] = {ra, hdr_empty, NULL};
    struct rl_rule rh, rip, renv;
    struct rl_client c;
    char k[RL_KEY_MAX], kip[RL_KEY_MAX], kenv[RL_KEY_MAX];

    rule_init(&rh, "per-key", RL_KEY_HEADER, "HTTP_X_API_KEY");
    rule_init(&rip, "per-key", RL_KEY_IP, "");
    rule_init(&renv, "per-key", RL_KEY_ENV, "REMOTE_USER");
    resolve(p, &c);
    test_cond("header key hashed",
              clientkey_build(NULL, &cfg, &rh, &c, p, k, sizeof(k), NULL) == RL_OK &&
                  key_is(k, "per-key", "header", "secret-token\r\nX: y"));
    test_cond("header key has no raw value",
              strstr(k, "secret") == NULL && strlen(k) == 10 + 7 + 2 + 64 + 1);
    test_cond("ip key hashed",
              clientkey_build(NULL, &cfg, &rip, &c, p, kip, sizeof(kip), NULL) == RL_OK &&
                  key_is(kip, "per-key", "ip", "192.0.2.1") && strstr(kip, "192.0.2.1") == NULL);
    test_cond("header equal to the IP: another key",
              clientkey_build(NULL, &cfg, &rh, &c, pip, k, sizeof(k), NULL) == RL_OK &&
                  strcmp(k, kip) != 0);
    test_cond("env key",
              clientkey_build(NULL, &cfg, &renv, &c, pip, kenv, sizeof(kenv), NULL) == RL_OK &&
                  key_is(kenv, "per-key", "env", "192.0.2.1") && strcmp(kenv, k) != 0 &&
                  strcmp(kenv, kip) != 0);

    test_cond("missing header counted by IP",
              clientkey_build(NULL, &cfg, &rh, &c, pnone, k, sizeof(k), NULL) == RL_OK &&
                  strcmp(k, kip) == 0);
    test_cond("empty header counted by IP",
              clientkey_build(NULL, &cfg, &rh, &c, pempty, k, sizeof(k), NULL) == RL_OK &&
                  strcmp(k, kip) == 0);
    cfg.key_missing = RL_MISSING_SKIP;
    test_cond("missing header skipped",
              clientkey_build(NULL, &cfg, &rh, &c, pnone, k, sizeof(k), NULL) == RL_SKIP);
    test_cond("empty header skipped",
              clientkey_build(NULL, &cfg, &rh, &c, pempty, k, sizeof(k), NULL) == RL_SKIP);
    test_cond("missing variable skipped",
              clientkey_build(NULL, &cfg, &renv, &c, pnone, k, sizeof(k), NULL) == RL_SKIP);
    test_cond("ip rule never skipped",
              clientkey_build(NULL, &cfg, &rip, &c, pnone, k, sizeof(k), NULL) == RL_OK);
    cfg.key_missing = RL_MISSING_IP;
}

static void test_big_and_small(void)
{
    static char ra[] = "REMOTE_ADDR=192.0.2.1";
    size_t n = 20 * 1024;
    char *hdr = malloc(n + 32), *p[] = {ra, hdr, NULL}, k[RL_KEY_MAX];
    struct rl_rule rh;
    struct rl_client c;
    struct rl_err err;

    memcpy(hdr, "HTTP_X_API_KEY=", 15);
    memset(hdr + 15, 'v', n);
    hdr[15 + n] = '\0';
    rule_init(&rh, "per-key", RL_KEY_HEADER, "HTTP_X_API_KEY");
    resolve(p, &c);
    test_cond("20 kB header hashed",
              clientkey_build(NULL, &cfg, &rh, &c, p, k, sizeof(k), NULL) == RL_OK &&
                  key_is(k, "per-key", "header", hdr + 15));
    rl_err_clear(&err);
    test_cond("key buffer too small",
              clientkey_build(NULL, &cfg, &rh, &c, p, k, 10 + 7 + 2 + 64 + 1, &err) == RL_ERR &&
                  err.kind != RL_E_NONE);
    test_cond("key buffer just big enough",
              clientkey_build(NULL, &cfg, &rh, &c, p, k, 10 + 7 + 2 + 64 + 1 + 1, NULL) == RL_OK);
    free(hdr);
}

/* The client behind a trusted proxy is an entry that is no address. */
static void test_opaque(void)
{
    static char ra[] = "REMOTE_ADDR=10.0.0.1", xu[] = "HTTP_X_FORWARDED_FOR=1.2.3.4, unknown",
                xa[] = "HTTP_X_FORWARDED_FOR=1.2.3.4",
                xh[] = "HTTP_X_FORWARDED_FOR=1.2.3.4, _hidden",
                xe[] = "HTTP_X_FORWARDED_FOR=1.2.3.4, , 10.0.0.2", ru[] = "REMOTE_ADDR=unknown",
                xt[] = "HTTP_X_FORWARDED_FOR=1.2.3.4, 10.0.0.1";
    char *pu[] = {ra, xu, NULL}, *pa[] = {ra, xa, NULL}, *ph[] = {ra, xh, NULL},
         *pe[] = {ra, xe, NULL}, *pru[] = {ru, NULL}, *pt[] = {ra, xt, NULL};
    struct rl_client c, ca;
    struct rl_rule rip, rh;
    struct rl_cidr_list all = {0, NULL};
    char k[RL_KEY_MAX], ka[RL_KEY_MAX], k2[RL_KEY_MAX];

    rule_init(&rip, "per-ip", RL_KEY_IP, "");
    rule_init(&rh, "per-ip", RL_KEY_HEADER, "HTTP_X_API_KEY");
    if (cidr_list_parse("0.0.0.0/0 ::/0", &all, NULL) != RL_OK)
        printf("# cidr_list_parse failed\n");
    resolve(pu, &c);
    resolve(pa, &ca);
    test_cond("XFF '1.2.3.4, unknown': the client is 'unknown'",
              !c.has_addr && c.opaque != NULL && c.opaque_len == 7 &&
                  memcmp(c.opaque, "unknown", 7) == 0 && strcmp(c.text, "xff:unknown") == 0);
    test_cond("opaque key is sha256(xff\\0unknown)",
              clientkey_build(NULL, &cfg, &rip, &c, pu, k, sizeof(k), NULL) == RL_OK &&
                  key_is(k, "per-ip", "xff", "unknown"));
    test_cond("... not the key of 1.2.3.4",
              clientkey_build(NULL, &cfg, &rip, &ca, pa, ka, sizeof(ka), NULL) == RL_OK &&
                  key_is(ka, "per-ip", "ip", "1.2.3.4") && strcmp(k, ka) != 0);
    test_cond("a missing header falls back to the opaque identity",
              clientkey_build(NULL, &cfg, &rh, &c, pu, k2, sizeof(k2), NULL) == RL_OK &&
                  strcmp(k, k2) == 0);
    /* request.c matches RATELIMIT_ALLOW / DENY only when has_addr; the
     * address is zeroed too, so even 0.0.0.0/0 cannot match it. */
    test_cond("an opaque client never matches an allow list",
              !c.has_addr && !cidr_list_match(&all, &c.addr) && cidr_list_match(&all, &ca.addr));
    resolve(pru, &ca);
    test_cond("opaque 'unknown' is not REMOTE_ADDR 'unknown'",
              clientkey_build(NULL, &cfg, &rip, &ca, pru, ka, sizeof(ka), NULL) == RL_OK &&
                  strcmp(k, ka) != 0);
    resolve(ph, &c);
    test_cond("an obfuscated id is the client",
              !c.has_addr && strcmp(c.text, "xff:_hidden") == 0 &&
                  clientkey_build(NULL, &cfg, &rip, &c, ph, k2, sizeof(k2), NULL) == RL_OK &&
                  key_is(k2, "per-ip", "xff", "_hidden"));
    resolve(pe, &c);
    test_cond("an empty entry right of our proxy: the empty identity",
              !c.has_addr && c.opaque != NULL && c.opaque_len == 0 && strcmp(c.text, "xff:") == 0 &&
                  !cidr_list_match(&all, &c.addr) &&
                  clientkey_build(NULL, &cfg, &rip, &c, pe, k2, sizeof(k2), NULL) == RL_OK &&
                  key_is(k2, "per-ip", "xff", ""));
    resolve(pt, &c);
    test_cond("XFF '1.2.3.4, 10.0.0.1' with 10/8 trusted: 1.2.3.4",
              c.has_addr && c.opaque == NULL && strcmp(c.text, "1.2.3.4") == 0 &&
                  cidr_list_match(&all, &c.addr));
    cidr_list_free(&all);
}

/* What a log line may show of an opaque client: short, no raw bytes. */
static void test_opaque_text(void)
{
    static char ra[] = "REMOTE_ADDR=10.0.0.1";
    char xff[300], *p[] = {ra, xff, NULL}, k1[RL_KEY_MAX], k2[RL_KEY_MAX];
    struct rl_client c;
    struct rl_rule rip;
    size_t i, n = 21;

    rule_init(&rip, "per-ip", RL_KEY_IP, "");
    memcpy(xff, "HTTP_X_FORWARDED_FOR=", n);
    memcpy(xff + n, "\x1b[31m\"evil\"\r\n%s ", 16);
    for (i = n + 16; i < n + 200; i++)
        xff[i] = 'z';
    xff[i] = '\0';
    resolve(p, &c);
    test_cond("opaque text is short", !c.has_addr && strlen(c.text) == 4 + 32 + 3 &&
                                          strncmp(c.text, "xff:", 4) == 0 &&
                                          strcmp(c.text + 4 + 32, "...") == 0);
    test_cond("opaque text is sanitised",
              strspn(c.text + 4,
                     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:[]/?") ==
                      strlen(c.text) - 4 &&
                  strncmp(c.text + 4, "?[31m?evil????", 14) == 0);
    test_cond("the key hashes the whole entry",
              c.opaque_len == 200 &&
                  clientkey_build(NULL, &cfg, &rip, &c, p, k1, sizeof(k1), NULL) == RL_OK &&
                  key_is(k1, "per-ip", "xff", xff + n));
    xff[n + 199] = 'y'; /* differs past what the text shows */
    resolve(p, &c);
    test_cond("entries alike in their first 32 bytes count apart",
              clientkey_build(NULL, &cfg, &rip, &c, p, k2, sizeof(k2), NULL) == RL_OK &&
                  strcmp(k1, k2) != 0);
}

/* The key of rule for a request with the header param hdr ("NAME=VALUE"). */
static const char *auth_key(const struct rl_rule *rule, const char *hdr)
{
    static char ra[] = "REMOTE_ADDR=192.0.2.1", h[256], k[RL_KEY_MAX];
    char *p[] = {ra, h, NULL};
    struct rl_client c;

    (void)snprintf(h, sizeof(h), "%s", hdr);
    resolve(p, &c);
    if (clientkey_build(NULL, &cfg, rule, &c, p, k, sizeof(k), NULL) != RL_OK)
        return "ERR";
    return k;
}

static int auth_same(const struct rl_rule *rule, const char *a, const char *b)
{
    char ka[RL_KEY_MAX];

    (void)snprintf(ka, sizeof(ka), "%s", auth_key(rule, a));
    return strcmp(ka, "ERR") != 0 && strcmp(ka, auth_key(rule, b)) == 0;
}

static void test_authorization(void)
{
    static const char *const same[] = {
        "HTTP_AUTHORIZATION=basic dXNlcjpwdw==",          "HTTP_AUTHORIZATION=BASIC dXNlcjpwdw==",
        "HTTP_AUTHORIZATION=Basic  dXNlcjpwdw==",         "HTTP_AUTHORIZATION=Basic\tdXNlcjpwdw==",
        "HTTP_AUTHORIZATION= \tBasic \t dXNlcjpwdw== \t", "HTTP_AUTHORIZATION=bAsIc dXNlcjpwdw==",
    };
    const char *base = "HTTP_AUTHORIZATION=Basic dXNlcjpwdw==";
    struct rl_rule ra, rp, rk;
    size_t i;

    rule_init(&ra, "per-user", RL_KEY_HEADER, "HTTP_AUTHORIZATION");
    rule_init(&rp, "per-user", RL_KEY_HEADER, "HTTP_PROXY_AUTHORIZATION");
    rule_init(&rk, "per-user", RL_KEY_HEADER, "HTTP_X_API_KEY");
    test_cond("Authorization: scheme lower-cased, one space",
              key_is(auth_key(&ra, base), "per-user", "header", "basic dXNlcjpwdw=="));
    for (i = 0; i < sizeof(same) / sizeof(same[0]); i++)
        test_cond("Authorization: one client however the scheme is spelt",
                  auth_same(&ra, base, same[i]));
    test_cond("Authorization: credentials are case-sensitive",
              !auth_same(&ra, base, "HTTP_AUTHORIZATION=Basic DXNLCJPWDW=="));
    test_cond("Authorization: blanks inside credentials kept",
              !auth_same(&ra, "HTTP_AUTHORIZATION=Foo a b", "HTTP_AUTHORIZATION=Foo a  b"));
    test_cond("Authorization: another scheme, another client",
              !auth_same(&ra, base, "HTTP_AUTHORIZATION=Bearer dXNlcjpwdw=="));
    test_cond("Authorization: a bare token keeps its case",
              !auth_same(&ra, "HTTP_AUTHORIZATION=AbC", "HTTP_AUTHORIZATION=abc") &&
                  key_is(auth_key(&ra, "HTTP_AUTHORIZATION= AbC "), "per-user", "header", "AbC"));
    test_cond("Proxy-Authorization normalised too",
              auth_same(&rp, "HTTP_PROXY_AUTHORIZATION=Basic QQ==",
                        "HTTP_PROXY_AUTHORIZATION=BASIC \t QQ==") &&
                  key_is(auth_key(&rp, "HTTP_PROXY_AUTHORIZATION=BASIC QQ=="), "per-user", "header",
                         "basic QQ=="));
    test_cond("X-Api-Key is not normalised",
              !auth_same(&rk, "HTTP_X_API_KEY=Basic QQ==", "HTTP_X_API_KEY=basic QQ==") &&
                  !auth_same(&rk, "HTTP_X_API_KEY=Basic QQ==", "HTTP_X_API_KEY=Basic  QQ==") &&
                  !auth_same(&rk, "HTTP_X_API_KEY=k", "HTTP_X_API_KEY= k"));
    test_cond("blank Authorization counted by IP",
              strcmp(auth_key(&ra, "HTTP_AUTHORIZATION= \t "), auth_key(&ra, "X=y")) == 0);
    cfg.key_missing = RL_MISSING_SKIP;
    test_cond("blank Authorization skipped with KEY_MISSING=skip",
              strcmp(auth_key(&ra, "HTTP_AUTHORIZATION= \t "), "ERR") == 0);
    cfg.key_missing = RL_MISSING_IP;
}

int main(void)
{
    cfg_init();
    test_xff_pick();
    test_resolve();
    test_ipv6();
    test_not_an_address();
    test_header_keys();
    test_big_and_small();
    test_opaque();
    test_opaque_text();
    test_authorization();
    cidr_list_free(&cfg.trusted_proxies);
    return test_report();
}
