/* test_cidr.c - address and CIDR parsing, lists, matching, masking, text. */
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include "cidr.h"
#include "rl.h"
#include "testhelp.h"

static int addr(const char *s, struct rl_addr *a)
{
    return cidr_parse_addr(s, strlen(s), a);
}

static int cidr(const char *s, struct rl_cidr *c)
{
    return cidr_parse(s, strlen(s), c);
}

/* The text of an address, or "" when it cannot be formatted. */
static const char *text(const struct rl_addr *a)
{
    static char out[64];

    if (cidr_format(a, out, sizeof(out)) != RL_OK)
        out[0] = '\0';
    return out;
}

static void test_addr(void)
{
    struct rl_addr a;
    static const unsigned char v6one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

    test_cond("ipv4", addr("192.0.2.7", &a) == RL_OK && a.family == AF_INET && a.a[0] == 192 &&
                          a.a[1] == 0 && a.a[2] == 2 && a.a[3] == 7);
    test_cond("ipv4 rest zero", a.a[4] == 0 && a.a[15] == 0);
    test_cond("ipv6", addr("2001:db8::1", &a) == RL_OK && a.family == AF_INET6 && a.a[0] == 0x20 &&
                          a.a[1] == 0x01 && a.a[15] == 1);
    test_cond("ipv6 loopback", addr("::1", &a) == RL_OK && memcmp(a.a, v6one, 16) == 0);
    test_cond("ipv6 brackets",
              addr("[::1]", &a) == RL_OK && a.family == AF_INET6 && memcmp(a.a, v6one, 16) == 0);
    test_cond("mapped becomes ipv4", addr("::ffff:10.1.2.3", &a) == RL_OK && a.family == AF_INET &&
                                         a.a[0] == 10 && a.a[3] == 3 && a.a[4] == 0 &&
                                         a.a[10] == 0);
    test_cond("mapped hex form", addr("::ffff:a01:203", &a) == RL_OK && a.family == AF_INET &&
                                     a.a[0] == 10 && a.a[1] == 1 && a.a[3] == 3);
    test_cond("mapped in brackets",
              addr("[::FFFF:127.0.0.1]", &a) == RL_OK && a.family == AF_INET && a.a[0] == 127);
    test_cond("ipv4-compatible stays v6", addr("::10.1.2.3", &a) == RL_OK && a.family == AF_INET6);
    test_cond("len bound respected", cidr_parse_addr("10.0.0.12345", 8, &a) == RL_OK &&
                                         a.family == AF_INET && a.a[3] == 1);
}

/* Each must be refused by cidr_parse_addr(). */
static const char *const bad_addrs[] = {
    "",
    "abc",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "1.2.3.-1",
    " 1.2.3.4",
    "1.2.3.4 ",
    "01.2.3.4",
    "[::1",
    "::1]",
    "[]",
    "[1.2.3.4]",
    "fe80::1%eth0",
    "[fe80::1%1]",
    ":::",
    "1::2::3",
    "12345::",
    "::g",
    "1.2.3.4/8",
    "0x7f.0.0.1",
    "-",
    "[",
    "]",
    "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255:1",
};

static void test_addr_bad(void)
{
    struct rl_addr a;
    char longs[300];
    unsigned char bin[64];
    size_t i;
    int all_bad = 1;

    for (i = 0; i < sizeof(bad_addrs) / sizeof(bad_addrs[0]); i++) {
        if (addr(bad_addrs[i], &a) != RL_ERR) {
            printf("# accepted bad address '%s'\n", bad_addrs[i]);
            all_bad = 0;
        }
    }
    test_cond("bad addresses refused", all_bad);
    memset(longs, '1', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    test_cond("very long refused", addr(longs, &a) == RL_ERR);
    memcpy(longs, "::", 2);
    memset(longs + 2, '0', 100);
    longs[102] = '\0';
    test_cond("long ipv6 zero run refused", addr(longs, &a) == RL_ERR);
    test_cond("embedded NUL refused", cidr_parse_addr("1.2.3.4\0", 8, &a) == RL_ERR);
    for (i = 0; i < sizeof(bin); i++)
        bin[i] = (unsigned char)(i * 37 + 1);
    test_cond("binary refused", cidr_parse_addr((const char *)bin, sizeof(bin), &a) == RL_ERR);
    test_cond("NULL refused", cidr_parse_addr(NULL, 3, &a) == RL_ERR);
    test_cond("zero length refused", cidr_parse_addr("1.2.3.4", 0, &a) == RL_ERR);
}

static void test_cidr_parse(void)
{
    struct rl_cidr c;

    test_cond("v4 /8", cidr("10.1.2.3/8", &c) == RL_OK && c.prefix == 8 &&
                           c.addr.family == AF_INET && strcmp(text(&c.addr), "10.0.0.0") == 0);
    test_cond("v4 no prefix is /32", cidr("10.1.2.3", &c) == RL_OK && c.prefix == 32 &&
                                         strcmp(text(&c.addr), "10.1.2.3") == 0);
    test_cond("v4 /0", cidr("1.2.3.4/0", &c) == RL_OK && c.prefix == 0 &&
                           strcmp(text(&c.addr), "0.0.0.0") == 0);
    test_cond("v4 /12 partial byte",
              cidr("172.31.255.255/12", &c) == RL_OK && strcmp(text(&c.addr), "172.16.0.0") == 0);
    test_cond("v6 /64", cidr("2001:db8:1:2:3:4:5:6/64", &c) == RL_OK && c.prefix == 64 &&
                            c.addr.family == AF_INET6 &&
                            strcmp(text(&c.addr), "2001:db8:1:2::") == 0);
    test_cond("v6 no prefix is /128", cidr("::1", &c) == RL_OK && c.prefix == 128);
    test_cond("v6 /0", cidr("::/0", &c) == RL_OK && c.prefix == 0);
    test_cond("v6 brackets /48", cidr("[2001:db8:aa:bb::1]/48", &c) == RL_OK && c.prefix == 48 &&
                                     strcmp(text(&c.addr), "2001:db8:aa::") == 0);
    test_cond("mapped /104 -> v4 /8", cidr("::ffff:10.0.0.0/104", &c) == RL_OK &&
                                          c.addr.family == AF_INET && c.prefix == 8 &&
                                          strcmp(text(&c.addr), "10.0.0.0") == 0);
    test_cond("mapped /96 -> v4 /0",
              cidr("::ffff:0.0.0.0/96", &c) == RL_OK && c.addr.family == AF_INET && c.prefix == 0);
    test_cond("mapped no prefix -> v4 /32",
              cidr("::ffff:1.2.3.4", &c) == RL_OK && c.addr.family == AF_INET && c.prefix == 32);
    test_cond("mapped /80 stays v6", cidr("::ffff:1.2.3.4/80", &c) == RL_OK &&
                                         c.addr.family == AF_INET6 && c.prefix == 80);
    test_cond("prefix leading zero", cidr("10.0.0.0/08", &c) == RL_OK && c.prefix == 8);
}

static void test_cidr_bad(void)
{
    static const char *const bad[] = {"1.2.3.4/33", "::/129",
                                      "1.2.3.4/",   "1.2.3.4/-1",
                                      "1.2.3.4/+8", "1.2.3.4/8a",
                                      "1.2.3.4/ 8", "1.2.3.4/8/8",
                                      "/8",         "[::1/64]",
                                      "[::1]/",     "abc/8",
                                      "1.2.3/24",   "1.2.3.4/99999999999999999999",
                                      "[::1]64",    "::ffff:1.2.3.4/129"};
    struct rl_cidr c;
    size_t i;
    int all_bad = 1;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (cidr(bad[i], &c) != RL_ERR) {
            printf("# accepted bad CIDR '%s'\n", bad[i]);
            all_bad = 0;
        }
    }
    test_cond("bad CIDRs refused", all_bad);
    test_cond("cidr NULL", cidr_parse(NULL, 0, &c) == RL_ERR);
    test_cond("cidr empty", cidr("", &c) == RL_ERR);
}

static void test_list(void)
{
    struct rl_cidr_list l = {7, NULL}, copy;
    struct rl_err err;
    struct rl_addr a;

    test_cond("list empty string",
              cidr_list_parse("", &l, &err) == RL_OK && l.n == 0 && l.v == NULL);
    test_cond("list only separators", cidr_list_parse(" , ,\t\n", &l, &err) == RL_OK && l.n == 0);
    test_cond("list NULL", cidr_list_parse(NULL, &l, &err) == RL_OK && l.n == 0);
    test_cond("list mixed separators",
              cidr_list_parse(" 10.0.0.0/8,192.168.0.0/16 ,, ::1\t2001:db8::/32,\n127.0.0.1 ", &l,
                              &err) == RL_OK &&
                  l.n == 5);
    test_cond("list entries", l.n == 5 && l.v[0].prefix == 8 && l.v[2].addr.family == AF_INET6 &&
                                  l.v[4].prefix == 32);
    test_cond("match v4", addr("10.200.3.4", &a) == RL_OK && cidr_list_match(&l, &a) == 1);
    test_cond("match v4 /16", addr("192.168.99.1", &a) == RL_OK && cidr_list_match(&l, &a) == 1);
    test_cond("no match v4", addr("11.0.0.1", &a) == RL_OK && cidr_list_match(&l, &a) == 0);
    test_cond("no match v4 edge", addr("192.169.0.0", &a) == RL_OK && cidr_list_match(&l, &a) == 0);
    test_cond("match v6", addr("2001:db8:ffff::9", &a) == RL_OK && cidr_list_match(&l, &a) == 1);
    test_cond("no match v6", addr("2001:db9::9", &a) == RL_OK && cidr_list_match(&l, &a) == 0);
    test_cond("match v6 host", addr("::1", &a) == RL_OK && cidr_list_match(&l, &a) == 1);
    test_cond("match mapped client",
              addr("::ffff:10.9.9.9", &a) == RL_OK && cidr_list_match(&l, &a) == 1);
    test_cond("match NULL list", cidr_list_match(NULL, &a) == 0);

    cidr_list_copy(&copy, &l);
    test_cond("copy deep",
              copy.n == l.n && copy.v != l.v && memcmp(copy.v, l.v, l.n * sizeof(*l.v)) == 0);
    cidr_list_free(&l);
    test_cond("free empties", l.n == 0 && l.v == NULL);
    test_cond("copy survives free",
              addr("10.1.1.1", &a) == RL_OK && cidr_list_match(&copy, &a) == 1);
    cidr_list_free(&copy);
    cidr_list_free(&copy);
    cidr_list_free(NULL);
    cidr_list_copy(&copy, &l);
    test_cond("copy of empty", copy.n == 0 && copy.v == NULL);
}

static void test_list_bad(void)
{
    struct rl_cidr_list l;
    struct rl_err err;
    char longs[4000];

    rl_err_clear(&err);
    test_cond("list bad entry",
              cidr_list_parse("10.0.0.0/8, 1.2.3.4/33, ::1", &l, &err) == RL_ERR && l.n == 0 &&
                  l.v == NULL);
    test_cond("list error names entry",
              strstr(err.msg, "'1.2.3.4/33'") != NULL && err.kind == RL_E_CONFIG);
    test_cond("list bad first", cidr_list_parse("nope", &l, &err) == RL_ERR && l.n == 0);
    test_cond("list semicolon is not a separator",
              cidr_list_parse("10.0.0.1;10.0.0.2", &l, &err) == RL_ERR);
    memset(longs, 'a', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    test_cond("list long entry", cidr_list_parse(longs, &l, &err) == RL_ERR &&
                                     strlen(err.msg) < 120 && strstr(err.msg, "...") != NULL);
    test_cond("list NULL err ok", cidr_list_parse("x", &l, NULL) == RL_ERR);
}

static void test_list_many(void)
{
    char s[2000];
    size_t i, off = 0;
    struct rl_cidr_list l;
    struct rl_addr a;

    for (i = 0; i < 100; i++)
        off += (size_t)snprintf(s + off, sizeof(s) - off, "10.0.%zu.0/24 ", i);
    test_cond("list of 100", cidr_list_parse(s, &l, NULL) == RL_OK && l.n == 100);
    test_cond("list of 100 last", addr("10.0.99.200", &a) == RL_OK && cidr_list_match(&l, &a) == 1);
    test_cond("list of 100 miss", addr("10.0.100.1", &a) == RL_OK && cidr_list_match(&l, &a) == 0);
    cidr_list_free(&l);
}

/* Prefixes that end inside a byte: both sides of each boundary. */
static void test_match_partial(void)
{
    struct rl_cidr_list l;
    struct rl_addr a;

    test_cond("partial list",
              cidr_list_parse("172.16.0.0/12 10.0.2.0/23 2001:db8:8000::/33", &l, NULL) == RL_OK &&
                  l.n == 3);
    test_cond("/12 low edge", addr("172.16.0.0", &a) == RL_OK && cidr_list_match(&l, &a) == 1);
    test_cond("/12 high edge", addr("172.31.255.255", &a) == RL_OK && cidr_list_match(&l, &a) == 1);
    test_cond("/12 below", addr("172.15.255.255", &a) == RL_OK && cidr_list_match(&l, &a) == 0);
    test_cond("/12 above", addr("172.32.0.0", &a) == RL_OK && cidr_list_match(&l, &a) == 0);
    test_cond("/23 inside", addr("10.0.3.255", &a) == RL_OK && cidr_list_match(&l, &a) == 1);
    test_cond("/23 outside", addr("10.0.4.0", &a) == RL_OK && cidr_list_match(&l, &a) == 0);
    test_cond("/23 before", addr("10.0.1.255", &a) == RL_OK && cidr_list_match(&l, &a) == 0);
    test_cond("/33 inside", addr("2001:db8:ffff::1", &a) == RL_OK && cidr_list_match(&l, &a) == 1);
    test_cond("/33 outside", addr("2001:db8:7fff::1", &a) == RL_OK && cidr_list_match(&l, &a) == 0);
    test_cond("family must match",
              addr("::172.16.0.1", &a) == RL_OK && cidr_list_match(&l, &a) == 0);
    cidr_list_free(&l);
}

static void test_mask_format(void)
{
    struct rl_addr a;
    char small[8];

    addr("2001:db8:1234:5678:9abc:def0:1234:5678", &a);
    cidr_mask(&a, 64);
    test_cond("mask /64", strcmp(text(&a), "2001:db8:1234:5678::") == 0);
    cidr_mask(&a, 24);
    test_cond("mask /24", strcmp(text(&a), "2001:d00::") == 0);
    cidr_mask(&a, 20);
    test_cond("mask /20", strcmp(text(&a), "2001::") == 0);
    addr("2001:db8::1", &a);
    cidr_mask(&a, 128);
    test_cond("mask /128 keeps", strcmp(text(&a), "2001:db8::1") == 0);
    cidr_mask(&a, 999);
    test_cond("mask over max clamps", strcmp(text(&a), "2001:db8::1") == 0);
    cidr_mask(&a, -5);
    test_cond("mask negative clears", strcmp(text(&a), "::") == 0);
    addr("255.255.255.255", &a);
    cidr_mask(&a, 23);
    test_cond("mask v4 /23", strcmp(text(&a), "255.255.254.0") == 0);
    cidr_mask(&a, 0);
    test_cond("mask v4 /0", strcmp(text(&a), "0.0.0.0") == 0);

    addr("192.168.100.200", &a);
    test_cond("format too small", cidr_format(&a, small, sizeof(small)) == RL_ERR);
    test_cond("format zero size", cidr_format(&a, small, 0) == RL_ERR);
    a.family = 12345;
    test_cond("format bad family", cidr_format(&a, small, sizeof(small)) == RL_ERR);
    test_cond("format NULL", cidr_format(NULL, small, sizeof(small)) == RL_ERR);
}

int main(void)
{
    test_addr();
    test_addr_bad();
    test_cidr_parse();
    test_cidr_bad();
    test_list();
    test_list_bad();
    test_list_many();
    test_match_partial();
    test_mask_format();
    return test_report();
}
