/*
 * confint.h - what the rooms of the configuration share and nothing else
 * includes: config.c (the variable table), rules.c (RATELIMIT_RULES and
 * rule keys), units.c (durations and sizes), confcache.c (per-request
 * overrides, unknown names). The public side is rlconfig.h. Calls go one
 * way: confcache -> config -> rules -> units.
 */
#ifndef RL_CONFINT_H
#define RL_CONFINT_H

#include <stddef.h>
#include <string.h>

#include "rlconfig.h"

#define ENV_PREFIX "RATELIMIT_"
#define ENV_PREFIX_LEN (sizeof(ENV_PREFIX) - 1)

#define SHOW_MAX 60            /* a value is cut to this many bytes in messages */
#define LIMIT_MAX 1000000000LL /* RATELIMIT_LIMIT / burst upper bound */
#define DAY_MS 86400000LL
#define CFG_VARS_MAX 64 /* room for the table's variables (config.c checks) */

/* A variable flagged F_RULE is replaced by RATELIMIT_RULES. */
#define F_RULE 1
/* F_BOUNDARY: a boundary of the process (where Redis is, what may run,
 * who is trusted), set by the process environment only. A request
 * parameter of that name is ignored, never parsed: a FastCGI peer or an
 * .htaccess author must not re-point Redis or widen the script root.
 * Variables without it are the limit policy, which a request may override. */
#define F_BOUNDARY 2

static inline int cfg_is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static inline int cfg_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* ---- the variable table (config.c), by index 0..cfg_var_count() */

size_t cfg_var_count(void);
/* The index of the variable name[0..len), or -1 when unknown. */
int cfg_var_find(const char *name, size_t len);
const char *cfg_var_name(size_t i);
int cfg_var_flags(size_t i); /* F_RULE, F_BOUNDARY */
/* vals[i] (CFG_VARS_MAX entries, NULL on entry) = the value of variable i
 * in envp, the last one winning. Borrowed from envp. */
void cfg_collect(char *const *envp, const char **vals);
/* The length of the NAME of a "NAME=VALUE" entry. */
size_t cfg_name_len(const char *e);

/* ---- rules.c: the parts of a rule that single variables also set */

/* "ip", "header:NAME" or "env:NAME" (kind words in any case) into the key
 * fields of r. RL_OK, or RL_ERR with *why (static text). */
int rule_parse_key(const char *s, size_t len, struct rl_rule *r, const char **why);
/* A rule name: [A-Za-z0-9_.-]{1,RL_NAME_MAX} into out (RL_NAME_MAX + 1
 * bytes). RL_OK, or RL_ERR with *why. */
int rule_parse_name(const char *s, size_t len, char *out, const char **why);

/* ---- units.c: durations and byte sizes as text (config_parse_duration
 * is public, in rlconfig.h), values cut for messages */

/* Copy s[0..len) into out (outsz > SHOW_MAX + 3), control characters as
 * '?' and cut to SHOW_MAX bytes with "..." so a message stays one short
 * line. */
void cfg_shorten(const char *s, size_t len, char *out, size_t outsz);

#define UNIT_FIRST 0   /* fmt_duration from days down: 60000 gives "1m" */
#define UNIT_SECONDS 3 /* fmt_duration from seconds down: 60000 gives "60s" */
/* Duration text with the largest unit (from the first'th: UNIT_*) that
 * divides ms exactly. */
void units_fmt_duration(long long ms, size_t first, char *out, size_t outsz);
/* A byte count: "1048576", or with a 1024-based unit "512k", "10m", "1g"
 * (either case), within [min, max]. RL_OK or RL_ERR. */
int units_parse_size(const char *s, long long min, long long max, long long *out);
/* Bytes as text with the largest 1024-based unit that divides them. */
void units_fmt_size(long long n, char *out, size_t outsz);

#endif
