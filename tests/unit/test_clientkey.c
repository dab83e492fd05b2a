/*
 * test_clientkey.c - who the client is and which key it is counted under:
 * the X-Forwarded-For walk (trusted peers only, right to left, garbage
 * skipped), IPv4-mapped addresses, IPv6 prefix grouping, and hashed
 * header/variable identities whose raw value never reaches the key.
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

/* Text of clientkey_xff_pick(xff), or "ERR". */
static const char *pick(const char *xff, const struct rl_cidr_list *trusted)
{
    static char text[64];
    struct rl_addr a;

    if (clientkey_xff_pick(xff, trusted, &a) != RL_OK ||
        cidr_format(&a, text, sizeof(text)) != RL_OK)
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

    test_cond("xff client before one proxy", pick_is("1.2.3.4, 10.0.0.2", "1.2.3.4"));
    test_cond("xff spoofed left-most ignored", pick_is("6.6.6.6, 1.2.3.4, 10.0.0.2", "1.2.3.4"));
    test_cond("xff right-most untrusted wins", pick_is("1.2.3.4, 5.6.7.8", "5.6.7.8"));
    test_cond("xff all trusted: left-most", pick_is("10.0.0.1, 10.9.9.9, 10.0.0.2", "10.0.0.1"));
    test_cond("xff v6 proxy", pick_is("2001:db8:1::7, 2001:db8:ffff::1", "2001:db8:1::7"));
    test_cond("xff mapped v4", pick_is("::ffff:192.0.2.9, 10.1.1.1", "192.0.2.9"));
    test_cond("xff garbage skipped", pick_is("1.2.3.4, bogus, , 999.1.1.1, 10.0.0.3", "1.2.3.4"));
    test_cond("xff ip:port", pick_is("10.0.0.1, 1.2.3.4:5678", "1.2.3.4"));
    test_cond("xff [v6]:port", pick_is("[2001:db8::1]:443,10.0.0.1", "2001:db8::1"));
    test_cond("xff [v6]", pick_is("[2001:db8::2]", "2001:db8::2"));
    test_cond("xff bad port skipped", pick_is("1.1.1.1, 2.2.2.2:99999999, 3.3.3.3:x", "1.1.1.1"));
    test_cond("xff [v6] junk after", pick_is("1.1.1.1, [2001:db8::1]x, [2001:db8::1]:", "1.1.1.1"));
    test_cond("xff tabs and spaces", pick_is("\t 1.2.3.4 \t,  10.0.0.1  ", "1.2.3.4"));
    test_cond("xff commas only", pick_is(",,, ,", "ERR"));
    test_cond("xff empty", pick_is("", "ERR"));
    test_cond("xff NULL", strcmp(pick(NULL, &cfg.trusted_proxies), "ERR") == 0);
    test_cond("xff zone refused", pick_is("fe80::1%eth0", "ERR"));
    test_cond("xff no trusted list: right-most",
              strcmp(pick("1.1.1.1, 10.0.0.1", NULL), "10.0.0.1") == 0);

    big = malloc(n + 32);
    for (i = 0; i + 2 <= n; i += 2)
        memcpy(big + i, "a,", 2);
    big[i] = '\0';
    test_cond("xff 100 kB of garbage", pick_is(big, "ERR"));
    memcpy(big + i, "1.2.3.4", 8);
    test_cond("xff 100 kB then an address", pick_is(big, "1.2.3.4"));
    memset(big, '1', n);
    big[n] = '\0';
    test_cond("xff one huge entry", pick_is(big, "ERR"));
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
                xff_junk[] = "HTTP_X_FORWARDED_FOR=junk, ,", ra_u[] = "REMOTE_ADDR=203.0.113.5";
    char *p1[] = {ra_u, xff, NULL}, *p2[] = {ra_proxy, xff, NULL}, *p3[] = {ra_proxy, NULL},
         *p4[] = {ra_proxy, xff_junk, NULL}, *p5[] = {xff, NULL};
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
    test_cond("trusted peer, garbage XFF", c.has_addr && strcmp(c.text, "10.0.0.1") == 0);
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
              clientkey_build(&cfg, &rule, &c1, pm, k1, sizeof(k1), NULL) == RL_OK &&
                  clientkey_build(&cfg, &rule, &c2, p4, k2, sizeof(k2), NULL) == RL_OK &&
                  strcmp(k1, k2) == 0);

    resolve(p1, &c1);
    resolve(p2, &c2);
    resolve(p3, &c3);
    test_cond("v6 text is the /64", strcmp(c1.text, "2001:db8:1:2::/64") == 0);
    test_cond("v6 address itself is kept unmasked", c1.addr.a[15] == 1);
    clientkey_build(&cfg, &rule, &c1, p1, k1, sizeof(k1), NULL);
    clientkey_build(&cfg, &rule, &c2, p2, k2, sizeof(k2), NULL);
    clientkey_build(&cfg, &rule, &c3, p3, k3, sizeof(k3), NULL);
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
              clientkey_build(&cfg, &rule, &c, p, k1, sizeof(k1), NULL) == RL_OK &&
                  clientkey_build(&cfg, &rule, &c2, p2, k2, sizeof(k2), NULL) == RL_OK &&
                  strcmp(k1, k2) != 0);
    resolve(pl, &c);
    test_cond("long REMOTE_ADDR truncated", !c.has_addr && strlen(c.text) == sizeof(c.text) - 1);
}

/* prefix + name + ":" + sha256(tag "\0" value), computed independently. */
static int key_is(const char *key, const char *name, const char *tag, const char *value)
{
    size_t nt = strlen(tag) + 1, nv = strlen(value);
    char *in = malloc(nt + nv + 1), hex[RL_SHA256_HEX_LEN + 1], want[RL_KEY_MAX];
    int ok;

    memcpy(in, tag, nt);
    memcpy(in + nt, value, nv);
    ok = sha256_hex(in, nt + nv, hex) == RL_OK &&
         (size_t)snprintf(want, sizeof(want), "ratelimit:%s:%s", name, hex) < sizeof(want) &&
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
    test_cond("header key hashed", clientkey_build(&cfg, &rh, &c, p, k, sizeof(k), NULL) == RL_OK &&
                                       key_is(k, "per-key", "header", "secret-token\r\nX: y"));
    test_cond("header key has no raw value",
              strstr(k, "secret") == NULL && strlen(k) == 10 + 7 + 1 + 64);
    test_cond("ip key hashed",
              clientkey_build(&cfg, &rip, &c, p, kip, sizeof(kip), NULL) == RL_OK &&
                  key_is(kip, "per-key", "ip", "192.0.2.1") && strstr(kip, "192.0.2.1") == NULL);
    test_cond("header equal to the IP: another key",
              clientkey_build(&cfg, &rh, &c, pip, k, sizeof(k), NULL) == RL_OK &&
                  strcmp(k, kip) != 0);
    test_cond("env key", clientkey_build(&cfg, &renv, &c, pip, kenv, sizeof(kenv), NULL) == RL_OK &&
                             key_is(kenv, "per-key", "env", "192.0.2.1") && strcmp(kenv, k) != 0 &&
                             strcmp(kenv, kip) != 0);

    test_cond("missing header counted by IP",
              clientkey_build(&cfg, &rh, &c, pnone, k, sizeof(k), NULL) == RL_OK &&
                  strcmp(k, kip) == 0);
    test_cond("empty header counted by IP",
              clientkey_build(&cfg, &rh, &c, pempty, k, sizeof(k), NULL) == RL_OK &&
                  strcmp(k, kip) == 0);
    cfg.key_missing = RL_MISSING_SKIP;
    test_cond("missing header skipped",
              clientkey_build(&cfg, &rh, &c, pnone, k, sizeof(k), NULL) == RL_SKIP);
    test_cond("empty header skipped",
              clientkey_build(&cfg, &rh, &c, pempty, k, sizeof(k), NULL) == RL_SKIP);
    test_cond("missing variable skipped",
              clientkey_build(&cfg, &renv, &c, pnone, k, sizeof(k), NULL) == RL_SKIP);
    test_cond("ip rule never skipped",
              clientkey_build(&cfg, &rip, &c, pnone, k, sizeof(k), NULL) == RL_OK);
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
              clientkey_build(&cfg, &rh, &c, p, k, sizeof(k), NULL) == RL_OK &&
                  key_is(k, "per-key", "header", hdr + 15));
    rl_err_clear(&err);
    test_cond("key buffer too small",
              clientkey_build(&cfg, &rh, &c, p, k, 10 + 7 + 1 + 64, &err) == RL_ERR &&
                  err.kind != RL_E_NONE);
    test_cond("key buffer just big enough",
              clientkey_build(&cfg, &rh, &c, p, k, 10 + 7 + 1 + 64 + 1, NULL) == RL_OK);
    free(hdr);
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
    cidr_list_free(&cfg.trusted_proxies);
    return test_report();
}
