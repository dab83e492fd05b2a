/*
 * rules.c - the grammar of a rule: RATELIMIT_RULES ("NAME KEY LIMIT/WINDOW
 * [ALGORITHM] [burst=N] [shadow]" separated by ';'), and the key and name parts
 * that RATELIMIT_KEY and RATELIMIT_NAME share with it.
 */
#include "rlconfig.h"

#include <string.h>

#include "algo.h"
#include "confint.h"
#include "util.h"

/* RFC 9110 5.6.2 tchar: what a header field name may contain. */
static int is_tchar(char c)
{
    return cfg_is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* header:NAME is read from the CGI variable the server makes of it:
 * HTTP_ + upper case, other characters as '_' (RFC 3875 4.1.18), except
 * Content-Type and Content-Length, which have their own (4.1.2, 4.1.3). */
static void header_param(const char *name, size_t n, char *out)
{
    size_t i, o = 0;

    if (n == 12 && ascii_ncaseeq(name, "Content-Type", n)) {
        memcpy(out, "CONTENT_TYPE", 13);
        return;
    }
    if (n == 14 && ascii_ncaseeq(name, "Content-Length", n)) {
        memcpy(out, "CONTENT_LENGTH", 15);
        return;
    }
    memcpy(out, "HTTP_", 5);
    o = 5;
    for (i = 0; i < n; i++) {
        char c = name[i];

        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        else if (!cfg_is_alnum(c))
            c = '_';
        out[o++] = c;
    }
    out[o] = '\0';
}

static int parse_key_name(int kind, const char *name, size_t n, const char **why)
{
    size_t i;

    if (kind == RL_KEY_HEADER) {
        *why = "expected header:NAME with NAME a header field name (at most 123 bytes)";
        if (n == 0 || n > RL_PARAM_MAX - 5)
            return RL_ERR;
        for (i = 0; i < n; i++) {
            if (!is_tchar(name[i]))
                return RL_ERR;
        }
        return RL_OK;
    }
    *why = "expected env:NAME with NAME of A-Z, a-z, 0-9 and _ (at most 128 bytes)";
    if (n == 0 || n > RL_PARAM_MAX)
        return RL_ERR;
    for (i = 0; i < n; i++) {
        if (!cfg_is_alnum(name[i]) && name[i] != '_')
            return RL_ERR;
    }
    return RL_OK;
}

/* "ip", "header:NAME" or "env:NAME" (kind words in any case) into the key
 * fields of r. RL_ERR with *why. */
int rule_parse_key(const char *s, size_t len, struct rl_rule *r, const char **why)
{
    int kind;
    size_t skip;

    if (len == 2 && ascii_ncaseeq(s, "ip", 2)) {
        kind = RL_KEY_IP;
        skip = 2;
    } else if (len >= 7 && ascii_ncaseeq(s, "header:", 7)) {
        kind = RL_KEY_HEADER;
        skip = 7;
    } else if (len >= 4 && ascii_ncaseeq(s, "env:", 4)) {
        kind = RL_KEY_ENV;
        skip = 4;
    } else {
        *why = "expected ip, header:NAME or env:NAME";
        return RL_ERR;
    }
    if (kind != RL_KEY_IP && parse_key_name(kind, s + skip, len - skip, why) != RL_OK)
        return RL_ERR;
    r->key_kind = kind;
    memcpy(r->key_spec, s, len); /* len <= 4 + RL_PARAM_MAX < sizeof(key_spec) */
    r->key_spec[len] = '\0';
    r->key_param[0] = '\0';
    if (kind == RL_KEY_HEADER)
        header_param(s + skip, len - skip, r->key_param);
    if (kind == RL_KEY_ENV) {
        memcpy(r->key_param, s + skip, len - skip); /* <= RL_PARAM_MAX */
        r->key_param[len - skip] = '\0';
    }
    return RL_OK;
}

/* A rule name: [A-Za-z0-9_.-]{1,RL_NAME_MAX}; it is part of Redis keys and
 * of a quoted Structured Field string. */
int rule_parse_name(const char *s, size_t len, char *out, const char **why)
{
    size_t i;

    *why = "expected 1..64 characters of A-Z, a-z, 0-9, '_', '.' and '-'";
    if (len == 0 || len > RL_NAME_MAX)
        return RL_ERR;
    for (i = 0; i < len; i++) {
        if (!cfg_is_alnum(s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
            return RL_ERR;
    }
    memcpy(out, s, len);
    out[len] = '\0';
    return RL_OK;
}

/* ------------------------------------------------------------ RATELIMIT_RULES */

struct token {
    const char *p;
    size_t n;
};

#define RULE_TOKENS_MAX 6 /* NAME KEY LIMIT/WINDOW [ALGORITHM] [burst=N] [shadow] */
#define RULE_GRAMMAR "NAME KEY LIMIT/WINDOW [ALGORITHM] [burst=N] [shadow]"

/* Split s[0..len) at white space into at most max+1 tokens (one more
 * than allowed, so the caller can name the first extra one). */
static size_t tokenize(const char *s, size_t len, struct token *t, size_t max)
{
    size_t i = 0, n = 0;

    while (i < len && n <= max) {
        if (cfg_is_space(s[i])) {
            i++;
            continue;
        }
        t[n].p = s + i;
        while (i < len && !cfg_is_space(s[i]))
            i++;
        t[n].n = (size_t)(s + i - t[n].p);
        n++;
    }
    return n;
}

static void rule_error(struct rl_err *err, const char *item, size_t len, const char *why)
{
    char shown[SHOW_MAX + 8];

    while (len > 0 && cfg_is_space(*item))
        item++, len--;
    while (len > 0 && cfg_is_space(item[len - 1]))
        len--;
    cfg_shorten(item, len, shown, sizeof(shown));
    rl_err_set(err, RL_E_CONFIG, "RATELIMIT_RULES: invalid rule '%s': %s", shown, why);
}

/* "LIMIT/WINDOW" into r. */
static int parse_rate(const struct token *t, struct rl_rule *r, const char **why)
{
    const char *slash = memchr(t->p, '/', t->n);
    char win[32];
    size_t wlen;

    *why = "expected LIMIT/WINDOW, e.g. 100/1m";
    if (slash == NULL)
        return RL_ERR;
    if (parse_ll(t->p, (size_t)(slash - t->p), 1, LIMIT_MAX, &r->limit) != RL_OK) {
        *why = "expected a limit 1..1000000000 before '/'";
        return RL_ERR;
    }
    wlen = t->n - (size_t)(slash - t->p) - 1;
    *why = "expected a window 1ms..365d after '/' (e.g. 500ms, 30s, 1m, 1h, 1d)";
    if (wlen >= sizeof(win))
        return RL_ERR;
    memcpy(win, slash + 1, wlen);
    win[wlen] = '\0';
    return config_parse_duration(win, 1, 365 * DAY_MS, &r->window_ms);
}

static int is_shadow(const struct token *t)
{
    return t->n == 6 && memcmp(t->p, "shadow", 6) == 0;
}

/* The word shadow: last, once. Elsewhere than last it would be read as a
 * key, a rate or an algorithm, so say what it is. RL_ERR with *why. */
static int parse_shadow(const struct token *t, size_t n, struct rl_rule *r, const char **why)
{
    size_t i, seen = 0;

    /* t[0] is the NAME: a rule may be called shadow. */
    for (i = 1; i < n; i++)
        seen += (size_t)is_shadow(&t[i]);
    if (seen > 1) {
        *why = "shadow given twice: expected " RULE_GRAMMAR;
        return RL_ERR;
    }
    if (seen == 1 && !is_shadow(&t[n - 1])) {
        *why = "shadow must be the last word: expected " RULE_GRAMMAR;
        return RL_ERR;
    }
    r->shadow = seen == 1 && n > 3; /* "a ip shadow": the rate is missing */
    if (seen == 1 && !r->shadow) {
        *why = "shadow must follow LIMIT/WINDOW: expected " RULE_GRAMMAR;
        return RL_ERR;
    }
    return RL_OK;
}

/* The optional ALGORITHM and burst=N, in either order, once each; buf
 * (RL_ERR_MSG_MAX bytes) holds *why when it lists the algorithms. */
static int parse_rule_options(const struct token *t, size_t n, struct rl_rule *r, char *buf,
                              const char **why)
{
    int have_algo = 0, have_burst = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        if (t[i].n >= 6 && memcmp(t[i].p, "burst=", 6) == 0) {
            *why = "expected burst=N with N 1..1000000000";
            if (have_burst++ || parse_ll(t[i].p + 6, t[i].n - 6, 1, LIMIT_MAX, &r->burst) != RL_OK)
                return RL_ERR;
            continue;
        }
        if (have_algo++ || (r->algo = algo_parse(t[i].p, t[i].n)) < 0) {
            memcpy(buf, "expected an algorithm: ", 24);
            algo_names(buf + 23, RL_ERR_MSG_MAX - 23, " or ");
            *why = buf;
            return RL_ERR;
        }
    }
    if (have_burst && r->algo != RL_ALGO_TOKEN_BUCKET) {
        *why = "burst=N applies to token-bucket only";
        return RL_ERR;
    }
    if (!have_burst)
        r->burst = r->limit;
    return RL_OK;
}

/* One "NAME KEY LIMIT/WINDOW [ALGORITHM] [burst=N] [shadow]" item into *r. */
static int parse_rule(const char *item, size_t len, struct rl_rule *r, struct rl_err *err)
{
    struct token t[RULE_TOKENS_MAX + 1];
    size_t n = tokenize(item, len, t, RULE_TOKENS_MAX);
    const char *why = "expected " RULE_GRAMMAR;
    char buf[RL_ERR_MSG_MAX];

    memset(r, 0, sizeof(*r));
    r->algo = RL_ALGO_FIXED_WINDOW;
    if (n <= RULE_TOKENS_MAX && parse_shadow(t, n, r, &why) != RL_OK)
        ;                                                 /* why: shadow misplaced */
    else if (n - (size_t)r->shadow > RULE_TOKENS_MAX - 1) /* without shadow, one word fewer */
        why = "too many words: expected " RULE_GRAMMAR;
    else if (n >= 3 && rule_parse_name(t[0].p, t[0].n, r->name, &why) == RL_OK &&
             rule_parse_key(t[1].p, t[1].n, r, &why) == RL_OK &&
             parse_rate(&t[2], r, &why) == RL_OK &&
             parse_rule_options(t + 3, n - 3 - (size_t)r->shadow, r, buf, &why) == RL_OK)
        return RL_OK;
    rule_error(err, item, len, why);
    return RL_ERR;
}

static int is_blank(const char *s, size_t len)
{
    while (len > 0 && cfg_is_space(*s))
        s++, len--;
    return len == 0;
}

static int name_taken(const struct rl_rule *rules, size_t n, const char *name)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcmp(rules[i].name, name) == 0)
            return 1;
    }
    return 0;
}

int config_parse_rules(const char *s, struct rl_rule *rules, size_t *n, struct rl_err *err)
{
    size_t count = 0;

    *n = 0;
    while (s != NULL && *s != '\0') {
        const char *semi = strchr(s, ';');
        size_t len = semi != NULL ? (size_t)(semi - s) : strlen(s);

        if (!is_blank(s, len)) {
            if (count == RL_MAX_RULES) {
                rl_err_set(err, RL_E_CONFIG, "RATELIMIT_RULES: too many rules (at most %d)",
                           RL_MAX_RULES);
                return RL_ERR;
            }
            if (parse_rule(s, len, &rules[count], err) != RL_OK)
                return RL_ERR;
            if (name_taken(rules, count, rules[count].name)) {
                rl_err_set(err, RL_E_CONFIG, "RATELIMIT_RULES: duplicate rule name '%s'",
                           rules[count].name);
                return RL_ERR;
            }
            count++;
        }
        s += len + (semi != NULL);
    }
    if (count == 0) {
        rl_err_set(err, RL_E_CONFIG,
                   "RATELIMIT_RULES: no rule given: expected " RULE_GRAMMAR " separated by ';'");
        return RL_ERR;
    }
    *n = count;
    return RL_OK;
}
